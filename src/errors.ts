import { GraphQLError } from 'graphql';
import { HeaderMap } from '@apollo/server';
import { ErrorCode, HTTP_STATUS, isErrorCode } from '@keyward/client/wire';

/**
 * Every error code a client can see, each with the HTTP status it maps to. The one table lives
 * in the wire contract shared with the client package; resolvers, the context builder and the
 * HTTP layer all read it through here.
 */
export { ErrorCode, HTTP_STATUS, isErrorCode };

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

/** What a client is told to wait (Retry-After, seconds) when a backing store is unreachable. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

/** 503 UNAVAILABLE with Retry-After: a database or Redis this request needs cannot be reached. */
export function storeUnavailableError(): KeywardError {
  return new KeywardError(ErrorCode.UNAVAILABLE, 'A backing store (database or Redis) is unreachable; retry shortly', {}, { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS });
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
