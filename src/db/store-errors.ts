const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN']);

/**
 * True when an error means a database or Redis cannot be reached (worth retrying, and
 * UNAVAILABLE / 503 for a client), as opposed to a statement the store refused.
 */
export function isStoreUnreachable(error: unknown): boolean {
  for (let current = error as { code?: string; driverError?: unknown; cause?: unknown; message?: string } | undefined, depth = 0; current && depth < 4; depth++) {
    if (current.code && UNREACHABLE.has(current.code)) return true;
    if (current.message && /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(current.message)) return true;
    current = (current.driverError ?? current.cause) as typeof current;
  }
  return false;
}
