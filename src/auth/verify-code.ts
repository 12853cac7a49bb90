import { ErrorCode } from '../errors';

/** Outcome of a key verification. Anything but VALID means: deny the request. */
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

/** How a refusal reads when the refused key is the caller of a GraphQL operation. */
export const REFUSAL_ERROR: Record<Exclude<VerifyCode, VerifyCode.VALID>, ErrorCode> = {
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
