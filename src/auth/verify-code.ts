/**
 * Verification outcomes and the error each refusal reads as: part of the wire contract shared
 * with the client package (its Express middleware answers refusals the same way).
 */
export { REFUSAL_ERROR, VerifyCode } from '@keyward/client/wire';
