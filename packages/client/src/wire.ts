/**
 * keyward's wire contract beyond the GraphQL schema: the error codes and the HTTP status of
 * each, the outcomes of a key verification and the error each refusal reads as, where a
 * request's key is read from, which rate-limit window the X-RateLimit-* headers show, and how
 * Retry-After is counted. The server and this package both take them from here, so they cannot
 * drift apart. This module imports nothing: it runs in any JavaScript runtime.
 */

/** Every error code keyward answers with (`extensions.code`, or `error.code` of the Express middleware). */
export enum ErrorCode {
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  INVALID_API_KEY = 'INVALID_API_KEY',
  KEY_EXPIRED = 'KEY_EXPIRED',
  KEY_REVOKED = 'KEY_REVOKED',
  KEY_DISABLED = 'KEY_DISABLED',
  ORGANIZATION_SUSPENDED = 'ORGANIZATION_SUSPENDED',
  FORBIDDEN_IP = 'FORBIDDEN_IP',
  INSUFFICIENT_SCOPE = 'INSUFFICIENT_SCOPE',
  /** The target belongs to another tenant. */
  FORBIDDEN = 'FORBIDDEN',
  NOT_FOUND = 'NOT_FOUND',
  KEY_LIMIT_EXCEEDED = 'KEY_LIMIT_EXCEEDED',
  RATE_LIMITED = 'RATE_LIMITED',
  QUOTA_EXCEEDED = 'QUOTA_EXCEEDED',
  NO_ACTIVE_SESSION = 'NO_ACTIVE_SESSION',
  SESSION_BALANCE_EMPTY = 'SESSION_BALANCE_EMPTY',
  SESSION_ALREADY_ACTIVE = 'SESSION_ALREADY_ACTIVE',
  BAD_USER_INPUT = 'BAD_USER_INPUT',
  GRAPHQL_PARSE_FAILED = 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED = 'GRAPHQL_VALIDATION_FAILED',
  QUERY_TOO_COMPLEX = 'QUERY_TOO_COMPLEX',
  PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE',
  IDEMPOTENCY_CONFLICT = 'IDEMPOTENCY_CONFLICT',
  /** A backing store (database, Redis) is down. */
  UNAVAILABLE = 'UNAVAILABLE',
  /** Message masked for the client; details only in the server's log. */
  INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR',
}

/** The HTTP status each error code is answered with. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  INVALID_API_KEY: 401,
  KEY_EXPIRED: 401,
  KEY_REVOKED: 401,
  KEY_DISABLED: 401,
  ORGANIZATION_SUSPENDED: 403,
  FORBIDDEN_IP: 403,
  INSUFFICIENT_SCOPE: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  KEY_LIMIT_EXCEEDED: 403,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  NO_ACTIVE_SESSION: 402,
  SESSION_BALANCE_EMPTY: 402,
  SESSION_ALREADY_ACTIVE: 409,
  BAD_USER_INPUT: 400,
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  QUERY_TOO_COMPLEX: 400,
  PAYLOAD_TOO_LARGE: 413,
  IDEMPOTENCY_CONFLICT: 409,
  UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(HTTP_STATUS, value);
}

/** Outcome of a key verification (`verifyKey`'s `code`). Anything but VALID means: deny the request. */
export enum VerifyCode {
  VALID = 'VALID',
  /** Unknown, malformed, checksum-invalid or deleted key. */
  NOT_FOUND = 'NOT_FOUND',
  DISABLED = 'DISABLED',
  REVOKED = 'REVOKED',
  EXPIRED = 'EXPIRED',
  ORGANIZATION_SUSPENDED = 'ORGANIZATION_SUSPENDED',
  FORBIDDEN_IP = 'FORBIDDEN_IP',
  INSUFFICIENT_SCOPE = 'INSUFFICIENT_SCOPE',
  RATE_LIMITED = 'RATE_LIMITED',
  QUOTA_EXCEEDED = 'QUOTA_EXCEEDED',
  NO_ACTIVE_SESSION = 'NO_ACTIVE_SESSION',
}

/** How a refusal reads as an error when the refused key is the caller's own key. */
export const REFUSAL_ERROR: Readonly<Record<Exclude<VerifyCode, VerifyCode.VALID>, ErrorCode>> = {
  NOT_FOUND: ErrorCode.INVALID_API_KEY,
  DISABLED: ErrorCode.KEY_DISABLED,
  REVOKED: ErrorCode.KEY_REVOKED,
  EXPIRED: ErrorCode.KEY_EXPIRED,
  ORGANIZATION_SUSPENDED: ErrorCode.ORGANIZATION_SUSPENDED,
  FORBIDDEN_IP: ErrorCode.FORBIDDEN_IP,
  INSUFFICIENT_SCOPE: ErrorCode.INSUFFICIENT_SCOPE,
  RATE_LIMITED: ErrorCode.RATE_LIMITED,
  QUOTA_EXCEEDED: ErrorCode.QUOTA_EXCEEDED,
  NO_ACTIVE_SESSION: ErrorCode.NO_ACTIVE_SESSION,
};

/** What a request's key headers (or a socket's connection parameters) hold. */
export type PresentedKey =
  | { kind: 'key'; key: string }
  | { kind: 'none' }
  /** An Authorization value that is not "Bearer <key>": refused, X-API-Key is not read then. */
  | { kind: 'not-bearer' };

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The key presented as `Authorization: Bearer <key>` or, without an Authorization value,
 * `X-API-Key: <key>` (the first value when repeated; surrounding whitespace is not part of the
 * key). Empty values count as absent; values that are not strings are ignored.
 */
export function keyFromHeaders(headers: { authorization?: unknown; apiKey?: unknown }): PresentedKey {
  const { authorization } = headers;
  if (typeof authorization === 'string' && authorization !== '') {
    const bearer = BEARER.exec(authorization);
    return bearer ? { kind: 'key', key: bearer[1] } : { kind: 'not-bearer' };
  }
  const first = Array.isArray(headers.apiKey) ? headers.apiKey[0] : headers.apiKey;
  const apiKey = typeof first === 'string' ? first.trim() : '';
  return apiKey !== '' ? { kind: 'key', key: apiKey } : { kind: 'none' };
}

/**
 * The key of a graphql-ws `connection_init`: `{ authorization: "Bearer <key>" }` (or
 * `Authorization`), else `{ apiKey: "<key>" }` (or `x-api-key`); null when there is none.
 */
export function keyFromConnectionParams(params: Readonly<Record<string, unknown>> | null | undefined): string | null {
  if (!params) return null;
  const presented = keyFromHeaders({ authorization: params.authorization ?? params.Authorization, apiKey: params.apiKey ?? params['x-api-key'] });
  return presented.kind === 'key' ? presented.key : null;
}

/** The window X-RateLimit-* headers show: the one with the least left (ties: the smaller limit). */
export function tightest<T extends { remaining: number; limit: number }>(states: readonly T[]): T | null {
  let best: T | null = null;
  for (const state of states) {
    if (!best || state.remaining < best.remaining || (state.remaining === best.remaining && state.limit < best.limit)) best = state;
  }
  return best;
}

/** Retry-After: whole seconds until `resetAtMs`, at least 1 (both in milliseconds since the epoch). */
export function retryAfterSeconds(resetAtMs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((resetAtMs - nowMs) / 1000));
}
