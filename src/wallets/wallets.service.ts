import { createHash, randomBytes } from 'node:crypto';
import { getAddress, isAddress, isHex, verifyMessage } from 'viem';
import { DataSource } from 'typeorm';
import { WalletChallengeEntity } from './wallet-challenge.entity';
import { OrganizationEntity } from '../organizations/organization.entity';
import { OrganizationsService } from '../organizations/organizations.service';
import { ApiKeysService, CreatedApiKey } from '../api-keys/api-keys.service';
import { KeyEnvironment } from '../api-keys/api-key.entity';
import { AuditLogService } from '../audit-log/audit-log.service';
import { Actor } from '../auth/actor';
import { PRESET_SCOPES, ScopePreset } from '../auth/scopes';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { BadUserInputError } from '../errors';
import { QuotaSpec } from '../quotas/quotas.service';
import { LIMITS, requireText } from '../validation';

/** How long a challenge may be signed and used (milliseconds). */
export const CHALLENGE_TTL_MS = 5 * 60_000;

export interface WalletChallenge {
  /** Single use; pass back to createApiKeyWithWallet. */
  token: string;
  /** Exact text the wallet signs (EIP-191 personal_sign). */
  message: string;
  expiresAt: Date;
}

export interface CreateApiKeyWithWallet {
  address: string;
  signature: string;
  token: string;
  name: string;
  environment?: KeyEnvironment | null;
  preset?: ScopePreset | null;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

function checksummed(field: string, address: string): `0x${string}` {
  if (typeof address !== 'string' || !isAddress(address, { strict: false })) {
    throw new BadUserInputError(field, `"${String(address).slice(0, 60)}" is not an Ethereum address (0x followed by 40 hex digits)`);
  }
  return getAddress(address);
}

/**
 * Key creation by wallet signature: a challenge message (domain, address, nonce, issued and
 * expiry time) is signed with EIP-191 personal_sign and checked with viem. The first key of an
 * address creates its organization (named after the checksummed address, with the configured
 * default quotas); later keys join it.
 */
export class WalletsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly organizations: OrganizationsService,
    private readonly apiKeys: ApiKeysService,
    private readonly audit: AuditLogService,
    private readonly clock: Clock,
    private readonly defaultQuotas: readonly QuotaSpec[],
  ) {}

  async challenge(addressInput: string, domain: string): Promise<WalletChallenge> {
    const address = checksummed('address', addressInput);
    const now = this.clock.now();
    const token = randomBytes(32).toString('base64url');
    const nonce = randomBytes(12).toString('hex');
    const expiresAt = new Date(now.getTime() + CHALLENGE_TTL_MS);
    const message = [
      `${domain} wants you to sign in with your Ethereum account:`,
      address,
      '',
      'Sign this message to create a keyward API key for this wallet. It costs nothing and sends no transaction.',
      '',
      `Domain: ${domain}`,
      `Nonce: ${nonce}`,
      `Issued At: ${now.toISOString()}`,
      `Expiration Time: ${expiresAt.toISOString()}`,
    ].join('\n');
    await this.dataSource.getRepository(WalletChallengeEntity).insert({ tokenHash: hashToken(token), address, message, expiresAt, usedAt: null, createdAt: now });
    return { token, message, expiresAt };
  }

  async createKey(input: CreateApiKeyWithWallet, ip: string | null): Promise<CreatedApiKey> {
    const address = checksummed('address', input.address);
    const token = requireText('token', input.token, 200);
    const name = requireText('name', input.name, LIMITS.nameLength);
    if (typeof input.signature !== 'string' || !isHex(input.signature) || input.signature.length !== 132) {
      throw new BadUserInputError('signature', 'must be a 65-byte hex signature (0x followed by 130 hex digits) from personal_sign');
    }
    const preset = input.preset ?? ScopePreset.INFERENCE;

    const created = await this.transactions.run(async (tx) => {
      const challenge = await tx.getRepository(WalletChallengeEntity).findOneBy({ tokenHash: hashToken(token) });
      if (!challenge) throw new BadUserInputError('token', 'unknown challenge token; ask walletChallenge for a new one');
      if (challenge.usedAt) throw new BadUserInputError('token', 'this challenge was already used; ask walletChallenge for a new one');
      if (challenge.expiresAt.getTime() <= this.clock.now().getTime()) throw new BadUserInputError('token', 'this challenge expired; ask walletChallenge for a new one');
      if (challenge.address !== address) throw new BadUserInputError('address', 'the challenge was issued for another address');
      const valid = await verifyMessage({ address, message: challenge.message, signature: input.signature as `0x${string}` }).catch(() => false);
      if (!valid) throw new BadUserInputError('signature', `the signature was not made by ${address} over the challenge message`);
      // Single use: claimed in the same transaction that creates the key.
      const claimed = await tx.createQueryBuilder().update(WalletChallengeEntity)
        .set({ usedAt: this.clock.now() }).where('token_hash = :hash AND used_at IS NULL', { hash: challenge.tokenHash }).execute();
      if (!claimed.affected) throw new BadUserInputError('token', 'this challenge was already used; ask walletChallenge for a new one');

      const walletActor: Actor = { keyId: null, organizationId: null, scopes: PRESET_SCOPES[preset], isPlatformAdmin: false, inPlatformOrganization: false, ip };
      let organization = await tx.getRepository(OrganizationEntity).findOneBy({ walletAddress: address });
      if (!organization) {
        organization = await this.organizations.create(
          walletActor,
          { name: address, quotas: [...this.defaultQuotas] },
          { walletAddress: address, manager: tx },
        );
      }
      const actor: Actor = { ...walletActor, organizationId: organization.id };
      const result = await this.apiKeys.create(actor, { organizationId: organization.id, name, environment: input.environment ?? KeyEnvironment.LIVE, preset }, tx);
      await this.audit.record(tx, actor, {
        action: 'wallet.key_create', targetType: 'api_key', targetId: result.apiKey.id, organizationId: organization.id,
        metadata: { address, preset, hint: result.apiKey.hint },
      });
      return result;
    });
    this.apiKeys.announceCreated(created.apiKey);
    return created;
  }
}
