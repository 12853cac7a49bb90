/**
 * `@keyward/client`: the typed client. Its methods and types are generated from keyward's
 * schema (src/generated/graphql.ts); the Express middleware is '@keyward/client/express', the
 * wire contract (error codes, statuses, key headers) '@keyward/client/wire'.
 */
export { KeywardClient } from './client';
export type { KeywardClientOptions } from './client';
export { KeywardClientError } from './client-error';
export type { KeywardClientErrorDetails } from './client-error';
export { ErrorCode, HTTP_STATUS } from './wire';
export type * from './generated/graphql';
