// Unreachable, or transiently unable to serve (lock contention that outlasted the retries).
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY']);

/** The driver's error code (mysql2 `ER_…`, better-sqlite3 `SQLITE_…`, Node `E…`) of an error TypeORM may have wrapped. */
export function driverErrorCode(error: unknown): string | undefined {
  const candidate = error as { code?: unknown; driverError?: { code?: unknown } } | null | undefined;
  const code = candidate?.driverError?.code ?? candidate?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A UNIQUE / PRIMARY KEY violation on either database. */
export function isDuplicateKey(error: unknown): boolean {
  const code = driverErrorCode(error);
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * True when an error means a database or Redis cannot be reached (worth retrying, and
 * UNAVAILABLE / 503 for a client), as opposed to a statement the store refused.
 */
export function isStoreUnreachable(error: unknown): boolean {
  for (let current = error as { driverError?: unknown; originalError?: unknown; cause?: unknown; thrownValue?: unknown; message?: string } | undefined, depth = 0; current && depth < 6; depth++) {
    const code = driverErrorCode(current);
    if (code && UNREACHABLE.has(code)) return true;
    if (current.message && /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(current.message)) return true;
    // TypeORM wraps driver errors (driverError), Apollo wraps what plugins throw (originalError),
    // graphql-js wraps non-Error throws as NonErrorThrown { thrownValue }.
    current = (current.driverError ?? current.originalError ?? current.cause ?? current.thrownValue) as typeof current;
  }
  return false;
}
