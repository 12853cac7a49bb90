import { GraphQLError } from 'graphql';
import { HeaderMap } from '@apollo/server';

/**
 * Every error code a client can see, each with the HTTP status it maps to.
 * This is the one table: resolvers, the context builder and the HTTP layer all read it.
 */
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
  /** Message masked for the client; details only in the log. */
  INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR',
}

export const HTTP_STATUS: Record<ErrorCode, number> = {
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
  return typeof value === 'string' && value in HTTP_STATUS;
}

/**
 * An expected refusal that reaches the client as a GraphQL error with `extensions.code`
 * (and, for Apollo, `extensions.http.status`, which Apollo strips from the response body).
 */
export class KeywardError extends GraphQLError {
  readonly code: ErrorCode;

  /**
   * `retryAfterSeconds` (whole seconds, at least 1) answers with `Retry-After` and shows in
   * `extensions.retryAfterSeconds`.
   */
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}, options: { retryAfterSeconds?: number | null } = {}) {
    const retryAfter = options.retryAfterSeconds ?? null;
    const http = { status: HTTP_STATUS[code], ...(retryAfter !== null && { headers: new HeaderMap([['retry-after', String(retryAfter)]]) }) };
    super(message, { extensions: { ...extensions, ...(retryAfter !== null && { retryAfterSeconds: retryAfter }), code, http } });
    this.code = code;
  }
}

/** Bad input always names the field it is about. */
export class BadUserInputError extends KeywardError {
  constructor(field: string, message: string) {
    super(ErrorCode.BAD_USER_INPUT, `${field}: ${message}`, { field });
  }
}

export class NotFoundError extends KeywardError {
  constructor(what: string) {
    super(ErrorCode.NOT_FOUND, `${what} not found`);
  }
}

export class ForbiddenError extends KeywardError {
  constructor(message: string) {
    super(ErrorCode.FORBIDDEN, message);
  }
}

export class InsufficientScopeError extends KeywardError {
  constructor(message: string) {
    super(ErrorCode.INSUFFICIENT_SCOPE, message);
  }
}
