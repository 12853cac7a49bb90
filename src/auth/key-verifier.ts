import { DataSource } from 'typeorm';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { hashesEqual, hashSecret, isWellFormedSecret } from '../api-keys/key-format';
import { OrganizationEntity, OrganizationStatus } from '../organizations/organization.entity';
import { Clock } from '../clock';
import { ipAllowed } from './ip-allowlist';
import { holdsAll } from './scopes';
import { VerifyCode } from './verify-code';

export interface VerificationRequest {
  /** The secret as presented. */
  secret: string;
  /** Client address, checked against the key's ipAllowlist. */
  ip: string | null;
  /** All must be held. */
  requiredScopes?: readonly string[];
}

export type VerificationOutcome =
  | { valid: true; code: VerifyCode.VALID; key: ApiKeyEntity; organization: OrganizationEntity }
  | { valid: false; code: Exclude<VerifyCode, VerifyCode.VALID>; reason: string; key?: ApiKeyEntity; organization?: OrganizationEntity };

function refuse(code: Exclude<VerifyCode, VerifyCode.VALID>, reason: string, key?: ApiKeyEntity, organization?: OrganizationEntity): VerificationOutcome {
  return { valid: false, code, reason, key, organization };
}

/**
 * The verification pipeline (DESIGN.md), first failure wins:
 * 1 format + checksum, 2 lookup by hash, 3 deleted / revoked / disabled / expired,
 * 4 organization suspended, 5 IP allowlist, 6 required scopes.
 * Refusals are values, not exceptions; nothing is consumed by a refused request.
 */
export class KeyVerifier {
  constructor(private readonly dataSource: DataSource, private readonly clock: Clock, private readonly pepper: string) {}

  async verify(request: VerificationRequest): Promise<VerificationOutcome> {
    if (!isWellFormedSecret(request.secret)) return refuse(VerifyCode.NOT_FOUND, 'The API key is malformed or its checksum is wrong');

    const hash = hashSecret(this.pepper, request.secret);
    const key = await this.dataSource.getRepository(ApiKeyEntity).findOneBy({ secretHash: hash });
    if (!key || !hashesEqual(key.secretHash, hash) || key.deletedAt) return refuse(VerifyCode.NOT_FOUND, 'The API key does not exist');

    const now = this.clock.now();
    if (key.revokedAt) return refuse(VerifyCode.REVOKED, 'The API key was revoked', key);
    if (key.disabled) return refuse(VerifyCode.DISABLED, 'The API key is disabled', key);
    if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) {
      return refuse(VerifyCode.EXPIRED, `The API key expired at ${key.expiresAt.toISOString()}`, key);
    }

    const organization = await this.dataSource.getRepository(OrganizationEntity).findOneBy({ id: key.organizationId });
    if (!organization) return refuse(VerifyCode.NOT_FOUND, 'The API key does not exist', key);
    if (organization.status === OrganizationStatus.SUSPENDED) {
      return refuse(VerifyCode.ORGANIZATION_SUSPENDED, 'The organization of this API key is suspended', key, organization);
    }

    if (!ipAllowed(key.ipAllowlist, request.ip)) {
      return refuse(VerifyCode.FORBIDDEN_IP, `Requests from ${request.ip ?? 'an unknown address'} are not allowed for this API key`, key, organization);
    }

    if (request.requiredScopes && !holdsAll(key.scopes, request.requiredScopes)) {
      return refuse(VerifyCode.INSUFFICIENT_SCOPE, `The API key lacks a required scope (needs all of: ${request.requiredScopes.join(', ')})`, key, organization);
    }

    return { valid: true, code: VerifyCode.VALID, key, organization };
  }
}
