import { DataSource } from 'typeorm';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { hashesEqual, hashSecret, isWellFormedSecret } from '../api-keys/key-format';
import { OrganizationEntity, OrganizationStatus } from '../organizations/organization.entity';
import { Meter, QuotaEntity } from '../quotas/quota.entity';
import { periodWindow } from '../quotas/quota-period';
import { QuotasService, QuotaStatus } from '../quotas/quotas.service';
import { RateLimiter, RateLimitWindowState, secondsUntil } from '../rate-limits/rate-limiter';
import { SessionEntity } from '../sessions/session.entity';
import { SessionsService } from '../sessions/sessions.service';
import { UsageBuffer } from '../usage/usage-buffer';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { CachedKey, KeyCache } from './key-cache';
import { ipAllowed } from './ip-allowlist';
import { holdsAny } from './scopes';
import { VerifyCode } from './verify-code';
import { ErrorCode, KeywardError } from '../errors';
import type { LiveEvents } from '../live/live-events';

export interface VerificationRequest {
  /** The secret as presented. */
  secret: string;
  /** Client address, checked against the key's ipAllowlist. */
  ip: string | null;
  /**
   * Every entry must be satisfied by holding one of its scopes. verifyKey(requiredScopes)
   * passes one entry per scope (all needed); a GraphQL operation one per root field's
   * @requireScope(anyOf).
   */
  scopeRequirements?: ReadonlyArray<readonly string[]>;
  /** Units taken from every rate limit and REQUESTS quota; default 1. */
  cost?: number;
  /** What is being accessed, for the rate-limit log and usage breakdowns. */
  operation?: string | null;
  /** Check step 10; the result then carries the active session. */
  requireSession?: boolean;
  /** Queue a usage event when VALID (verifyKey). GraphQL calls record theirs after executing. */
  recordUsageEvent?: boolean;
  /** Stop after step 6: authenticate without consuming anything (a WebSocket connecting). */
  authenticateOnly?: boolean;
  /** Only keys of this organization exist for this request (tenancy of verifyKey); null: any. */
  organizationId?: string | null;
}

type Refusal = Exclude<VerifyCode, VerifyCode.VALID>;

export type VerificationObserver = (code: VerifyCode | 'ERROR', seconds: number) => void;

export interface VerificationOutcome {
  valid: boolean;
  code: VerifyCode;
  /** Why it was refused, for error messages; empty when valid. */
  reason: string;
  key: ApiKeyEntity | null;
  organization: OrganizationEntity | null;
  /** State of every window after this request was counted (refusals: as it stands). */
  rateLimits: RateLimitWindowState[];
  quotas: QuotaStatus[];
  session: SessionEntity | null;
  /**
   * Whole seconds (at least 1) until retrying can succeed: RATE_LIMITED until the windows have
   * room for the same cost (null when the cost is above a window's limit), QUOTA_EXCEEDED until
   * a DAY / MONTH quota's period ends; otherwise null.
   */
  retryAfterSeconds: number | null;
}

class PipelineRefusal {
  constructor(readonly code: Refusal, readonly reason: string, readonly retryAt: Date | null = null) {}
}

/**
 * The verification pipeline (DESIGN.md), one function for verifyKey and every key-authenticated
 * GraphQL call. First failure wins; nothing is consumed by a refused request:
 *  1 format + checksum → NOT_FOUND        2 lookup by hash (cached) → NOT_FOUND
 *  3 deleted → NOT_FOUND; revoked, disabled, expired
 *  4 organization suspended               5 IP allowlist → FORBIDDEN_IP
 *  6 required scopes → INSUFFICIENT_SCOPE 7 cost above maxCostPerRequest → QUOTA_EXCEEDED
 *  8 rate limits take `cost` → RATE_LIMITED (all windows or none)
 *  9 quotas of the key and its organization → QUOTA_EXCEEDED (REQUESTS taken atomically)
 * 10 requireSession without an ACTIVE session → NO_ACTIVE_SESSION
 * 11 VALID: lastUsedAt / requestCount (batched), usage event queued.
 * Steps 9 and 10 run in one transaction; if either refuses, it rolls back and step 8's
 * units are given back.
 */
export class KeyVerifier {
  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly clock: Clock,
    private readonly pepper: string,
    private readonly cache: KeyCache,
    private readonly rateLimiter: RateLimiter,
    private readonly quotas: QuotasService,
    private readonly sessions: SessionsService,
    private readonly usage: UsageBuffer,
    private readonly live: LiveEvents,
  ) {}

  /** Told of every verification's code ('ERROR' when the pipeline threw) and duration in seconds (metrics). */
  observer: VerificationObserver | null = null;

  async verify(request: VerificationRequest): Promise<VerificationOutcome> {
    const started = performance.now();
    let code: VerifyCode | 'ERROR' = 'ERROR';
    try {
      const outcome = await this.pipeline(request);
      code = outcome.code;
      return outcome;
    } finally {
      this.observer?.(code, (performance.now() - started) / 1000);
    }
  }

  private async pipeline(request: VerificationRequest): Promise<VerificationOutcome> {
    const cost = request.cost ?? 1;
    // 1
    if (!isWellFormedSecret(request.secret)) return refused(VerifyCode.NOT_FOUND, 'The API key is malformed or its checksum is wrong');
    // 2
    const hash = hashSecret(this.pepper, request.secret);
    const cached = await this.lookup(hash);
    if (!cached || (request.organizationId && cached.key.organizationId !== request.organizationId)) {
      return refused(VerifyCode.NOT_FOUND, 'The API key does not exist');
    }
    const { key, organization, quotas } = cached;
    const known = (code: Refusal, reason: string, extra: Partial<VerificationOutcome> = {}) => refused(code, reason, { key, organization, ...extra });
    // 3
    const now = this.clock.now();
    if (key.deletedAt) return refused(VerifyCode.NOT_FOUND, 'The API key does not exist');
    if (key.revokedAt) return known(VerifyCode.REVOKED, 'The API key was revoked');
    if (key.disabled) return known(VerifyCode.DISABLED, 'The API key is disabled');
    if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) return known(VerifyCode.EXPIRED, `The API key expired at ${key.expiresAt.toISOString()}`);
    // 4
    if (organization.status === OrganizationStatus.SUSPENDED) return known(VerifyCode.ORGANIZATION_SUSPENDED, 'The organization of this API key is suspended');
    // 5
    if (!ipAllowed(key.ipAllowlist, request.ip)) {
      return known(VerifyCode.FORBIDDEN_IP, `Requests from ${request.ip ?? 'an unknown address'} are not allowed for this API key`);
    }
    // 6
    const missing = (request.scopeRequirements ?? []).find((anyOf) => !holdsAny(key.scopes, anyOf));
    if (missing) return known(VerifyCode.INSUFFICIENT_SCOPE, `The API key lacks a required scope (needs ${missing.length > 1 ? 'one of ' : ''}${missing.join(', ')})`);
    if (request.authenticateOnly) {
      return { valid: true, code: VerifyCode.VALID, reason: '', key, organization, rateLimits: [], quotas: [], session: null, retryAfterSeconds: null };
    }
    // 7
    if (key.maxCostPerRequest !== null && cost > key.maxCostPerRequest) {
      return known(VerifyCode.QUOTA_EXCEEDED, `cost ${cost} is above this key's maxCostPerRequest (${key.maxCostPerRequest})`);
    }
    // 8
    const subject = key.lineageId ?? key.id;
    const limited = await this.rateLimiter.consume(subject, key.rateLimits, cost, now).catch((error: unknown) => {
      // The shared rate-limit store is down and no fallback is configured: fail closed.
      throw new KeywardError(ErrorCode.UNAVAILABLE, `Rate limits cannot be checked right now (${(error as Error).message}); retry shortly`);
    });
    if (key.rateLimits.length > 0) this.live.rateLimits(key.id, limited.states);
    if (!limited.allowed) {
      const { refusedBy, retryAt } = limited;
      this.usage.refused({ apiKeyId: key.id, organizationId: key.organizationId, name: refusedBy.name, limit: refusedBy.limit, operation: request.operation ?? null, ip: request.ip });
      const window = `Rate limit "${refusedBy.name}" (${refusedBy.limit} per ${refusedBy.windowSeconds} s)`;
      return known(VerifyCode.RATE_LIMITED, retryAt
        ? `${window} has no room for cost ${cost}; it admits it again at ${retryAt.toISOString()}`
        : `${window} can never admit cost ${cost}`, {
        rateLimits: limited.states,
        retryAfterSeconds: retryAt ? secondsUntil(retryAt, now) : null,
      });
    }
    // 9 + 10
    let quotaStatuses: QuotaStatus[] = [];
    let session: SessionEntity | null = null;
    if (quotas.length > 0 || request.requireSession) {
      try {
        ({ quotaStatuses, session } = await this.consumeQuotasAndCheckSession(quotas, cost, key.organizationId, request.requireSession ?? false));
        // Only REQUESTS quotas moved; TOKENS / COST_USD change with recordUsage.
        this.live.quotas(quotaStatuses.filter((status) => status.meter === Meter.REQUESTS));
      } catch (error) {
        await this.rateLimiter.refund(subject, key.rateLimits, cost, now);
        if (!(error instanceof PipelineRefusal)) throw error;
        const states = await this.rateLimiter.peek(subject, key.rateLimits, now);
        if (key.rateLimits.length > 0) this.live.rateLimits(key.id, states);
        return known(error.code, error.reason, {
          rateLimits: states,
          quotas: await this.quotas.statusesOf(quotas),
          retryAfterSeconds: error.retryAt ? secondsUntil(error.retryAt, now) : null,
        });
      }
    }
    // 11
    this.usage.touchKey(key.id);
    if (request.recordUsageEvent) {
      this.usage.record({ organizationId: key.organizationId, apiKeyId: key.id, sessionId: session?.id ?? null, operation: request.operation ?? 'verifyKey', statusCode: 200, isError: false });
    }
    return { valid: true, code: VerifyCode.VALID, reason: '', key, organization, rateLimits: limited.states, quotas: quotaStatuses, session, retryAfterSeconds: null };
  }

  private async consumeQuotasAndCheckSession(quotas: QuotaEntity[], cost: number, organizationId: string, requireSession: boolean) {
    await this.quotas.prepareCounters(quotas);
    return this.transactions.run(async (tx) => {
      const refusing = await this.quotas.consume(tx, quotas, cost);
      if (refusing) {
        const owner = refusing.apiKeyId ? 'key' : 'organization';
        throw new PipelineRefusal(VerifyCode.QUOTA_EXCEEDED, `The ${owner}'s ${refusing.period} ${refusing.meter} quota (${refusing.limit}) is used up`,
          periodWindow(refusing.period, this.clock.now()).resetsAt);
      }
      const session = requireSession ? await this.sessions.active(organizationId, tx) : null;
      if (requireSession && !session) throw new PipelineRefusal(VerifyCode.NO_ACTIVE_SESSION, 'The organization has no active session');
      return { quotaStatuses: await this.quotas.statusesOf(quotas, tx), session };
    });
  }

  private async lookup(hash: string): Promise<CachedKey | null> {
    const cached = this.cache.get(hash);
    if (cached !== undefined) return cached;
    const key = await this.dataSource.getRepository(ApiKeyEntity).findOneBy({ secretHash: hash });
    if (!key || !hashesEqual(key.secretHash, hash)) {
      this.cache.set(hash, null);
      return null;
    }
    const organization = await this.dataSource.getRepository(OrganizationEntity).findOneBy({ id: key.organizationId });
    if (!organization) return null;
    const entry: CachedKey = { key, organization, quotas: await this.quotas.applicableTo(key) };
    this.cache.set(hash, entry);
    return entry;
  }
}

function refused(code: Refusal, reason: string, extra: Partial<VerificationOutcome> = {}): VerificationOutcome {
  return { valid: false, code, reason, key: null, organization: null, rateLimits: [], quotas: [], session: null, retryAfterSeconds: null, ...extra };
}
