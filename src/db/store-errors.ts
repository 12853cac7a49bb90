// Unreachable, or transiently unable to serve (lock contention that outlasted the retries).
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY']);

/**
 * True when an error means a database or Redis cannot be reached (worth retrying, and
 * UNAVAILABLE / 503 for a client), as opposed to a statement the store refused.
 */
export function isStoreUnreachable(error: unknown): boolean {
  for (let current = error as { code?: string; driverError?: unknown; cause?: unknown; thrownValue?: unknown; message?: string } | undefined, depth = 0; current && depth < 5; depth++) {
    if (current.code && UNREACHABLE.has(current.code)) return true;
    if (current.message && /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(current.message)) return true;
    // graphql-js wraps non-Error throws as NonErrorThrown { thrownValue }.
    current = (current.driverError ?? current.cause ?? current.thrownValue) as typeof current;
  }
  return false;
}
