import { createHash, randomBytes } from 'node:crypto';
import { getAddress, isAddress, isHex, verifyMessage } from 'viem';
import { DataSource } from 'typeorm';
import { WalletChallengeEntity } from './wallet-challenge.entity';
import { OrganizationEntity } from '../organizations/organization.entity';
import { OrganizationService } from '../organizations/organization.service';
import { ApiKeyService, CreatedApiKey } from '../api-keys/api-key.service';
import { KeyEnvironment } from '../api-keys/api-key.entity';
import { AuditLogService } from '../audit-log/audit-log.service';
import { Actor } from '../auth/actor';
import { assertGrantable } from '../auth/authorization';
import { PRESET_SCOPES, ScopePreset } from '../auth/scopes';
import { RateLimiter } from '../rate-limits/rate-limiter';
import { Transactions } from '../db/data-source';
import { Clock, secondsUntil } from '../clock';
import { BadUserInputError, ErrorCode, KeywardError } from '../errors';
import { QuotaSpec } from '../quotas/quota.service';
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

/** What wallet sign-in offers, from the configuration. */
export interface WalletPolicy {
  /** Where users reach this keyward; its host is the sign-in domain (never the request's Host). */
  publicUrl: URL;
  /** Quotas of a new wallet organization. */
  defaultQuotas: readonly QuotaSpec[];
  /** The most an anonymous signature may get. */
  maxPreset: ScopePreset;
  /** New wallet organizations per client address per hour. */
  organizationsPerHour: number;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

function checksummed(field: string, address: string): `0x${string}` {
  if (typeof address !== 'string' || !isAddress(address, { strict: false })) {
    throw new BadUserInputError(field, `"${String(address).slice(0, 60)}" is not an Ethereum address (0x followed by 40 hex digits)`);
  }
  return getAddress(address);
}

/** What WalletService is built from (app.ts wires it). */
export interface WalletServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  organizations: OrganizationService;
  apiKeys: ApiKeyService;
  audit: AuditLogService;
  clock: Clock;
  rateLimiter: RateLimiter;
  policy: WalletPolicy;
}

/**
 * Key creation by wallet signature: a challenge message (domain, address, nonce, issued and
 * expiry time) is signed with EIP-191 personal_sign and checked with viem. The first key of an
 * address creates its organization (named after the checksummed address, with the configured
 * default quotas); later keys join it.
 */
export class WalletService {
  constructor(private readonly deps: WalletServiceDependencies) {}

  async challenge(addressInput: string): Promise<WalletChallenge> {
    const address = checksummed('address', addressInput);
    const domain = this.deps.policy.publicUrl.host;
    const now = this.deps.clock.now();
    const token = randomBytes(32).toString('base64url');
    const nonce = randomBytes(12).toString('hex');
    const expiresAt = new Date(now.getTime() + CHALLENGE_TTL_MS);
    const message = [
      `${domain} wants you to sign in with your Ethereum account:`,
      address,
      '',
      'Sign this message to create a keyward API key for this wallet. It costs nothing and sends no transaction.',
      '',
      `URI: ${this.deps.policy.publicUrl.origin}`,
      `Domain: ${domain}`,
      `Nonce: ${nonce}`,
      `Issued At: ${now.toISOString()}`,
      `Expiration Time: ${expiresAt.toISOString()}`,
    ].join('\n');
    await this.deps.dataSource.getRepository(WalletChallengeEntity).insert({ tokenHash: hashToken(token), address, message, expiresAt, usedAt: null, createdAt: now });
    return { token, message, expiresAt };
  }

  async createKey(input: CreateApiKeyWithWallet, ip: string | null): Promise<CreatedApiKey> {
    const address = checksummed('address', input.address);
    const token = requireText('token', input.token, 200);
    const name = requireText('name', input.name, LIMITS.nameLength);
    if (typeof input.signature !== 'string' || !isHex(input.signature) || input.signature.length !== 132) {
      throw new BadUserInputError('signature', 'must be a 65-byte hex signature (0x followed by 130 hex digits) from personal_sign');
    }
    const preset = input.preset ?? this.deps.policy.maxPreset;
    // An anonymous signature gets at most the configured preset.
    const walletActor: Actor = {
      keyId: null, organizationId: null, scopes: PRESET_SCOPES[this.deps.policy.maxPreset], isPlatformAdmin: false, inPlatformOrganization: false, superseded: false, ip,
    };
    assertGrantable(walletActor, PRESET_SCOPES[preset]);
    const signup = await this.takeSignup(address, ip);

    const created = await this.deps.transactions.run(async (tx) => {
      const challenge = await tx.getRepository(WalletChallengeEntity).findOneBy({ tokenHash: hashToken(token) });
      if (!challenge) throw new BadUserInputError('token', 'unknown challenge token; ask walletChallenge for a new one');
      if (challenge.usedAt) throw new BadUserInputError('token', 'this challenge was already used; ask walletChallenge for a new one');
      if (challenge.expiresAt.getTime() <= this.deps.clock.now().getTime()) throw new BadUserInputError('token', 'this challenge expired; ask walletChallenge for a new one');
      if (challenge.address !== address) throw new BadUserInputError('address', 'the challenge was issued for another address');
      const valid = await verifyMessage({ address, message: challenge.message, signature: input.signature as `0x${string}` }).catch(() => false);
      if (!valid) throw new BadUserInputError('signature', `the signature was not made by ${address} over the challenge message`);
      // Single use: claimed in the same transaction that creates the key.
      const claimed = await tx.createQueryBuilder().update(WalletChallengeEntity)
        .set({ usedAt: this.deps.clock.now() }).where('token_hash = :hash AND used_at IS NULL', { hash: challenge.tokenHash }).execute();
      if (!claimed.affected) throw new BadUserInputError('token', 'this challenge was already used; ask walletChallenge for a new one');

      let organization = await tx.getRepository(OrganizationEntity).findOneBy({ walletAddress: address });
      if (!organization) {
        organization = await this.deps.organizations.create(
          walletActor,
          { name: address, quotas: [...this.deps.policy.defaultQuotas] },
          { walletAddress: address, manager: tx },
        );
      }
      const actor: Actor = { ...walletActor, organizationId: organization.id };
      const result = await this.deps.apiKeys.create(actor, { organizationId: organization.id, name, environment: input.environment ?? KeyEnvironment.LIVE, preset }, tx);
      await this.deps.audit.record(tx, actor, {
        action: 'wallet.key_create', targetType: 'api_key', targetId: result.apiKey.id, organizationId: organization.id,
        metadata: { address, preset, hint: result.apiKey.hint },
      });
      return result;
    }).catch(async (error: unknown) => {
      await signup?.giveBack();
      throw error;
    });
    this.deps.apiKeys.announceCreated(created.apiKey);
    return created;
  }

  /**
   * A signature for an address without an organization creates one (with free quotas): at most
   * `organizationsPerHour` per client address. Keys for an existing wallet organization are not counted.
   */
  private async takeSignup(address: string, ip: string | null): Promise<{ giveBack(): Promise<void> } | null> {
    if (await this.deps.dataSource.getRepository(OrganizationEntity).existsBy({ walletAddress: address })) return null;
    const window = { name: 'wallet-organizations', limit: this.deps.policy.organizationsPerHour, windowSeconds: 3600 };
    const subject = `wallet-signup:${ip ?? 'unknown'}`;
    const now = this.deps.clock.now();
    const result = await this.deps.rateLimiter.consume(subject, [window], 1, now);
    if (!result.allowed) {
      const retryAfterSeconds = secondsUntil(result.retryAt!, now);
      throw new KeywardError(ErrorCode.RATE_LIMITED,
        `This address created ${window.limit} wallet organizations in the last hour (WALLET_ORGANIZATIONS_PER_HOUR); retry in ${retryAfterSeconds} s`,
        {}, { retryAfterSeconds });
    }
    return { giveBack: () => this.deps.rateLimiter.refund(subject, [window], 1, now) };
  }
}
