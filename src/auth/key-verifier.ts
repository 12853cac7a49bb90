import { DataSource, EntityManager } from 'typeorm';
import { ApiKeyEntity, keyState, KeyState, RateLimitSpec } from '../api-keys/api-key.entity';
import type { ReservationHolds } from '../usage/usage-reservation.entity';
import { hashesEqual, hashSecret, isWellFormedSecret } from './key-format';
import { OrganizationEntity, OrganizationStatus } from '../organizations/organization.entity';
import { Meter, QuotaEntity } from '../quotas/quota.entity';
import { periodWindow } from '../quotas/quota-period';
import { QuotaService, QuotaStatus } from '../quotas/quota.service';
import { RateLimiter, RateLimitWindowState } from '../rate-limits/rate-limiter';
import { effectiveRateLimits } from '../rate-limits/effective-limits';
import { SessionEntity } from '../sessions/session.entity';
import { SessionService } from '../sessions/session.service';
import { Transactions } from '../db/data-source';
import { Clock, secondsUntil } from '../clock';
import { CachedKey, KeyCache } from './key-cache';
import { ipAllowed } from './ip-allowlist';
import { holdsAny } from './scopes';
import { VerifyCode } from './verify-code';
import { ErrorCode, KeywardError } from '../errors';
import type { VerificationAlerts, VerificationEvents, VerificationRecorder } from './verification-sinks';
import { quotaMoves } from '../quotas/quota-alerts';

/** Who presents a key, and where from: what steps 1–5 look at. */
export interface Credentials {
  /** The secret as presented. */
  secret: string;
  /** Client address, checked against the key's ipAllowlist. */
  ip: string | null;
  /** Only keys of this organization exist for this request (tenancy of verifyKey); null: any. */
  organizationId?: string | null;
}

/** What a request asks of an authenticated key: what steps 6–11 look at and take. */
export interface Consumption {
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
  /** Queue a usage event when VALID (verifyKey). */
  recordUsageEvent?: boolean;
  /**
   * Step 11 is left to the caller, once its answer is certain: a GraphQL call records its use
   * (requestCount, usage event) after executing, or — answered 503 — gives back what it took
   * (`giveBack`) and records nothing.
   */
  recordsLater?: boolean;
  /** reserveUsage: amounts to hold in the same atomic step as the REQUESTS charge. */
  hold?: HoldRequest | null;
}

/**
 * What reserveUsage holds: `tokens` against TOKENS quotas, TOKENS windows and (with
 * requireSession) the active session's budget, `costUsd` against COST_USD quotas. Taken with the
 * same conditional UPDATEs and in the same transaction as the REQUESTS charge (steps 8–10), so
 * a refusal holds nothing and concurrent reservations never hold past a limit.
 */
export interface HoldRequest {
  tokens: number;
  costUsd: number;
  /** Writes the reservation in the pipeline's transaction, once everything is held. */
  write(tx: EntityManager, holds: ReservationHolds, session: SessionEntity | null): Promise<void>;
}

export type VerificationRequest = Credentials & Consumption;

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

/** A key that passed steps 1–5: what the consuming steps need, without reading it again. */
export interface Authenticated {
  outcome: VerificationOutcome & { valid: true; key: ApiKeyEntity; organization: OrganizationEntity };
  /** The key's and its organization's quotas, from the verification cache. */
  quotas: readonly QuotaEntity[];
  ip: string | null;
}

export type Authentication = { authenticated: Authenticated; refused: null } | { authenticated: null; refused: VerificationOutcome };

/** The one way a refusal is written down (also for refusals made outside the pipeline). */
export function refusedOutcome(code: Refusal, reason: string, extra: Partial<VerificationOutcome> = {}): VerificationOutcome {
  return { valid: false, code, reason, key: null, organization: null, rateLimits: [], quotas: [], session: null, retryAfterSeconds: null, ...extra };
}

/** …and an admission. */
export function admittedOutcome<T extends Partial<VerificationOutcome>>(extra: T): VerificationOutcome & T & { valid: true } {
  return { valid: true, code: VerifyCode.VALID, reason: '', key: null, organization: null, rateLimits: [], quotas: [], session: null, retryAfterSeconds: null, ...extra };
}

export interface KeyVerifierDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  clock: Clock;
  pepper: string;
  cache: KeyCache;
  rateLimiter: RateLimiter;
  quotas: QuotaService;
  sessions: SessionService;
  /** Where verified uses, usage events and rate-limit refusals go (the usage buffer). */
  recorder: VerificationRecorder;
  /** Who hears of windows and quotas that moved (live subscribers). */
  events: VerificationEvents;
  /** Thresholds crossed, quotas and windows exhausted, for backends (the webhook outbox). */
  alerts: VerificationAlerts;
}

class StepRefusal {
  constructor(readonly code: Refusal, readonly reason: string, readonly retryAt: Date | null = null) {}
}

const KEY_STATE_REFUSALS: Record<Exclude<KeyState, 'ACTIVE'>, { code: Refusal; reason: (key: ApiKeyEntity) => string }> = {
  DELETED: { code: VerifyCode.NOT_FOUND, reason: () => 'The API key does not exist' },
  REVOKED: { code: VerifyCode.REVOKED, reason: () => 'The API key was revoked' },
  DISABLED: { code: VerifyCode.DISABLED, reason: () => 'The API key is disabled' },
  EXPIRED: { code: VerifyCode.EXPIRED, reason: (key) => `The API key expired at ${key.expiresAt!.toISOString()}` },
};

/**
 * The verification pipeline, one for verifyKey and every key-authenticated GraphQL call or
 * WebSocket. Named steps over one outcome; the first refusal wins and nothing is consumed by a
 * refused request:
 *
 *   authenticate (what a request's context and a WebSocket connect run)
 *     lookup        1 format + checksum, 2 by hash (cached)       → NOT_FOUND
 *     status        3 deleted → NOT_FOUND; revoked, disabled, expired
 *     organization  4 suspended                                   → ORGANIZATION_SUSPENDED
 *     network       5 IP allowlist                                → FORBIDDEN_IP
 *   consume (once the operation is known)
 *     scopes        6 required scopes                             → INSUFFICIENT_SCOPE
 *     cost          7 above maxCostPerRequest                     → QUOTA_EXCEEDED
 *     rateLimits    8 every window takes `cost` (all or none)     → RATE_LIMITED
 *     quotas        9 the key's and its organization's            → QUOTA_EXCEEDED
 *     session      10 requireSession without an ACTIVE session    → NO_ACTIVE_SESSION
 *     record       11 VALID: lastUsedAt / requestCount (batched), usage event queued
 * Steps 9 and 10 run in one transaction; if either refuses it rolls back and step 8's units are
 * given back.
 */
export class KeyVerifier {
  constructor(private readonly deps: KeyVerifierDependencies) {}

  /** Told of every verification's code ('ERROR' when the pipeline threw) and duration in seconds (metrics). */
  observer: VerificationObserver | null = null;

  /** Steps 1–11: verifyKey. */
  async verify(request: VerificationRequest): Promise<VerificationOutcome> {
    return this.observed(async () => {
      const authentication = await this.authenticateSteps(request);
      return authentication.refused ?? this.consumeSteps(authentication.authenticated, request);
    });
  }

  /** Steps 1–5: who the caller is. Consumes nothing, so a refusal costs nothing either. */
  async authenticate(credentials: Credentials): Promise<Authentication> {
    const started = performance.now();
    try {
      const authentication = await this.authenticateSteps(credentials);
      if (authentication.refused) this.observer?.(authentication.refused.code, (performance.now() - started) / 1000);
      return authentication;
    } catch (error) {
      this.observer?.('ERROR', (performance.now() - started) / 1000);
      throw error;
    }
  }

  /** Steps 6–11 for a key that authenticated: what the operation needs and takes. */
  async consume(authenticated: Authenticated, consumption: Consumption): Promise<VerificationOutcome> {
    return this.observed(() => this.consumeSteps(authenticated, consumption));
  }

  /**
   * Undoes an admission (`consume` with `recordsLater`, at or after `takenAt`) whose request was
   * answered 503 UNAVAILABLE: its rate-limit units and REQUESTS quota units are given back (the
   * quota ones once the database takes them), so a request the client must retry costs nothing.
   */
  async giveBack(authenticated: Authenticated, cost: number, takenAt: Date): Promise<void> {
    const { key, organization } = authenticated.outcome;
    const windows = effectiveRateLimits(key, organization);
    // A rate-limit store that is away too keeps the units: they expire with their window.
    await this.deps.rateLimiter.refund(key.lineageId ?? key.id, windows, cost, takenAt).catch(() => undefined);
    await this.deps.quotas.giveBack(authenticated.quotas, cost, takenAt);
  }

  private async observed(run: () => Promise<VerificationOutcome>): Promise<VerificationOutcome> {
    const started = performance.now();
    let code: VerifyCode | 'ERROR' = 'ERROR';
    try {
      const outcome = await run();
      code = outcome.code;
      return outcome;
    } finally {
      this.observer?.(code, (performance.now() - started) / 1000);
    }
  }

  private async authenticateSteps(credentials: Credentials): Promise<Authentication> {
    let found: CachedKey | null = null;
    try {
      found = await this.lookup(credentials);
      this.status(found.key);
      this.organizationStatus(found.organization);
      this.network(found.key, credentials.ip);
    } catch (error) {
      if (!(error instanceof StepRefusal)) throw error;
      // An unknown or deleted key is not described at all.
      const known = found && error.code !== VerifyCode.NOT_FOUND ? { key: found.key, organization: found.organization } : {};
      return { authenticated: null, refused: refusedOutcome(error.code, error.reason, known) };
    }
    const { key, organization, quotas } = found;
    return { authenticated: { outcome: admittedOutcome({ key, organization }), quotas, ip: credentials.ip }, refused: null };
  }

  private async consumeSteps(authenticated: Authenticated, consumption: Consumption): Promise<VerificationOutcome> {
    const { key, organization } = authenticated.outcome;
    const cost = consumption.cost ?? 1;
    const now = this.deps.clock.now();
    const known = (refusal: StepRefusal, extra: Partial<VerificationOutcome> = {}) => refusedOutcome(refusal.code, refusal.reason, {
      key, organization, retryAfterSeconds: refusal.retryAt ? secondsUntil(refusal.retryAt, now) : null, ...extra,
    });
    try {
      this.scopes(key, organization, consumption.scopeRequirements ?? []);
      this.cost(key, cost);
    } catch (error) {
      if (error instanceof StepRefusal) return known(error);
      throw error;
    }
    const everyWindow = effectiveRateLimits(key, organization);
    // TOKENS windows (TPM) count what reserveUsage holds; every other call takes `cost` from the rest.
    const windows = everyWindow.filter((window) => window.meter !== 'TOKENS');
    const hold = consumption.hold ?? null;
    const tokenWindows = hold && hold.tokens > 0 ? everyWindow.filter((window) => window.meter === 'TOKENS') : [];
    const subject = key.lineageId ?? key.id;
    const limited = await this.rateLimits(key, subject, windows, cost, 'cost', consumption.operation ?? null, authenticated.ip, now);
    if (!limited.allowed) return known(limited.refusal, { rateLimits: limited.states });
    let rateLimits = limited.states;
    if (tokenWindows.length > 0) {
      const tokensLimited = await this.rateLimits(key, subject, tokenWindows, hold!.tokens, 'tokens', consumption.operation ?? null, authenticated.ip, now);
      if (!tokensLimited.allowed) {
        await this.deps.rateLimiter.refund(subject, windows, cost, now);
        return known(tokensLimited.refusal, { rateLimits: [...await this.deps.rateLimiter.peek(subject, windows, now), ...tokensLimited.states] });
      }
      rateLimits = [...rateLimits, ...tokensLimited.states];
    }
    let quotas: QuotaStatus[] = [];
    let session: SessionEntity | null = null;
    if (authenticated.quotas.length > 0 || consumption.requireSession || hold) {
      const heldWindows = tokenWindows.length > 0 ? { subject, limits: tokenWindows, tokens: hold!.tokens, takenAtMs: now.getTime() } : null;
      try {
        ({ quotas, session } = await this.quotasAndSession(authenticated.quotas, cost, key, consumption.requireSession ?? false, hold, heldWindows));
      } catch (error) {
        await this.deps.rateLimiter.refund(subject, windows, cost, now);
        if (heldWindows) await this.deps.rateLimiter.refund(subject, tokenWindows, heldWindows.tokens, now);
        if (!(error instanceof StepRefusal)) throw error;
        const states = [...await this.deps.rateLimiter.peek(subject, windows, now), ...await this.deps.rateLimiter.peek(subject, tokenWindows, now)];
        if (states.length > 0) this.deps.events.rateLimits(key.id, states);
        return known(error, { rateLimits: states, quotas: await this.deps.quotas.statusesOf(authenticated.quotas) });
      }
    }
    this.record(key, session, consumption);
    return admittedOutcome({ key, organization, rateLimits, quotas, session });
  }

  /** Steps 1 and 2: a well-formed secret whose hash is known (through the cache). */
  private async lookup(credentials: Credentials): Promise<CachedKey> {
    if (!isWellFormedSecret(credentials.secret)) throw new StepRefusal(VerifyCode.NOT_FOUND, 'The API key is malformed or its checksum is wrong');
    const hash = hashSecret(this.deps.pepper, credentials.secret);
    const cached = this.deps.cache.get(hash);
    const found = cached === undefined ? await this.load(hash) : cached;
    if (!found || (credentials.organizationId && found.key.organizationId !== credentials.organizationId)) {
      throw new StepRefusal(VerifyCode.NOT_FOUND, 'The API key does not exist');
    }
    return found;
  }

  private async load(hash: string): Promise<CachedKey | null> {
    const key = await this.deps.dataSource.getRepository(ApiKeyEntity).findOneBy({ secretHash: hash });
    if (!key || !hashesEqual(key.secretHash, hash)) {
      this.deps.cache.set(hash, null);
      return null;
    }
    const organization = await this.deps.dataSource.getRepository(OrganizationEntity).findOneBy({ id: key.organizationId });
    if (!organization) return null;
    const entry: CachedKey = { key, organization, quotas: await this.deps.quotas.applicableTo(key) };
    this.deps.cache.set(hash, entry);
    return entry;
  }

  /** Step 3: only an ACTIVE key goes on. */
  private status(key: ApiKeyEntity): void {
    const state = keyState(key, this.deps.clock.now());
    if (state === 'ACTIVE') return;
    const refusal = KEY_STATE_REFUSALS[state];
    throw new StepRefusal(refusal.code, refusal.reason(key));
  }

  /** Step 4. */
  private organizationStatus(organization: OrganizationEntity): void {
    if (organization.status === OrganizationStatus.SUSPENDED) {
      throw new StepRefusal(VerifyCode.ORGANIZATION_SUSPENDED, 'The organization of this API key is suspended');
    }
  }

  /** Step 5. */
  private network(key: ApiKeyEntity, ip: string | null): void {
    if (!ipAllowed(key.ipAllowlist, ip)) {
      throw new StepRefusal(VerifyCode.FORBIDDEN_IP, `Requests from ${ip ?? 'an unknown address'} are not allowed for this API key`);
    }
  }

  /** Step 6: scopes are organization-bound (a customer's `*` never reaches `platform:` scopes). */
  private scopes(key: ApiKeyEntity, organization: OrganizationEntity, requirements: ReadonlyArray<readonly string[]>): void {
    const missing = requirements.find((anyOf) => !holdsAny(key.scopes, anyOf, organization.isPlatform));
    if (missing) throw new StepRefusal(VerifyCode.INSUFFICIENT_SCOPE, `The API key lacks a required scope (needs ${missing.length > 1 ? 'one of ' : ''}${missing.join(', ')})`);
  }

  /** Step 7. */
  private cost(key: ApiKeyEntity, cost: number): void {
    if (key.maxCostPerRequest !== null && cost > key.maxCostPerRequest) {
      throw new StepRefusal(VerifyCode.QUOTA_EXCEEDED, `cost ${cost} is above this key's maxCostPerRequest (${key.maxCostPerRequest})`);
    }
  }

  /** Step 8: every window of the key and its organization takes `cost`, or none does. */
  private async rateLimits(key: ApiKeyEntity, subject: string, windows: readonly RateLimitSpec[], cost: number, unit: 'cost' | 'tokens', operation: string | null, ip: string | null, now: Date) {
    const limited = await this.deps.rateLimiter.consume(subject, windows, cost, now).catch((error: unknown) => {
      // The shared rate-limit store is down and no fallback is configured: fail closed.
      throw new KeywardError(ErrorCode.UNAVAILABLE, `Rate limits cannot be checked right now (${(error as Error).message}); retry shortly`);
    });
    if (windows.length > 0) this.deps.events.rateLimits(key.id, limited.states);
    if (limited.allowed && limited.states.some((state) => state.remaining === 0)) {
      await this.deps.alerts.windowsRanOut(key, subject, limited.states.filter((state) => state.remaining === 0), now);
    }
    if (limited.allowed) return { allowed: true as const, states: limited.states };
    const { refusedBy, retryAt } = limited;
    this.deps.recorder.refused({ apiKeyId: key.id, organizationId: key.organizationId, name: refusedBy.name, limit: refusedBy.limit, operation, ip });
    const window = `Rate limit "${refusedBy.name}" (${refusedBy.limit} per ${refusedBy.windowSeconds} s)`;
    // retryAt: when the windows have room for this cost again; null when the cost never fits.
    const refusal = new StepRefusal(VerifyCode.RATE_LIMITED, retryAt
      ? `${window} has no room for ${unit} ${cost}; it admits it again at ${retryAt.toISOString()}`
      : `${window} can never admit ${unit} ${cost}`, retryAt);
    return { allowed: false as const, states: limited.states, refusal };
  }

  /**
   * Steps 9 and 10 (with reserveUsage's holds), in one transaction; thresholds crossed go into the
   * webhook outbox inside it, a quota's refusal after it rolled back (the watcher is null, and
   * nothing else happens, when no endpoint listens to the organization). A hold is not usage: only
   * the REQUESTS cost moves thresholds here; the settle's usage moves the others.
   */
  private async quotasAndSession(quotas: readonly QuotaEntity[], cost: number, key: ApiKeyEntity, requireSession: boolean,
    hold: HoldRequest | null, windows: ReservationHolds['windows']) {
    await this.deps.quotas.prepareCounters(quotas);
    const watcher = await this.deps.alerts.quotaWatcher(key.organizationId);
    const refuseQuota = (refusing: QuotaEntity, what: string) => {
      const owner = refusing.apiKeyId ? 'key' : 'organization';
      return new StepRefusal(VerifyCode.QUOTA_EXCEEDED, `The ${owner}'s ${refusing.period} ${refusing.meter} quota (${refusing.limit}) ${what}`,
        periodWindow(refusing.period, this.deps.clock.now()).resetsAt);
    };
    let exhausted: QuotaEntity | null = null;
    const result = await this.deps.transactions.run(async (tx) => {
      exhausted = await this.deps.quotas.consume(tx, quotas, cost);
      if (exhausted) throw refuseQuota(exhausted, 'is used up');
      const held = hold ? await this.deps.quotas.hold(tx, quotas, hold) : null;
      exhausted = held?.refusing ?? null;
      if (held?.refusing) throw refuseQuota(held.refusing, `has no room for ${held.refusing.meter === Meter.COST_USD ? `$${hold!.costUsd}` : `${hold!.tokens} tokens`} beside what is used and held`);
      const session = requireSession ? await this.deps.sessions.active(key.organizationId, tx) : null;
      if (requireSession && !session) throw new StepRefusal(VerifyCode.NO_ACTIVE_SESSION, 'The organization has no active session');
      if (hold && session && !(await this.deps.sessions.hold(tx, session, hold.tokens))) {
        throw new StepRefusal(VerifyCode.QUOTA_EXCEEDED, `The active session's token budget has no room for ${hold.tokens} tokens beside what is used and held`);
      }
      if (hold) await hold.write(tx, { counters: held!.held, sessionId: session?.id ?? null, windows }, session);
      const statuses = await this.deps.quotas.statusesOf(quotas, tx);
      if (watcher) await watcher.moved(tx, key.id, quotaMoves(quotas, statuses, (quota) => (quota.meter === Meter.REQUESTS ? cost : 0)));
      return { quotas: statuses, session };
    }).catch(async (error: unknown) => {
      if (watcher && exhausted) await watcher.refused(key.id, exhausted);
      throw error;
    });
    // REQUESTS quotas moved, and with a hold the TOKENS / COST_USD ones it held on.
    this.deps.events.quotas(result.quotas.filter((status) => status.meter === Meter.REQUESTS || (hold && status.held > 0)));
    return result;
  }

  /** Step 11. */
  private record(key: ApiKeyEntity, session: SessionEntity | null, consumption: Consumption): void {
    if (consumption.recordsLater) return;
    this.deps.recorder.touchKey(key.id);
    if (consumption.recordUsageEvent) {
      this.deps.recorder.record({
        organizationId: key.organizationId, apiKeyId: key.id, sessionId: session?.id ?? null,
        operation: consumption.operation ?? 'verifyKey', statusCode: 200, isError: false,
      });
    }
  }
}
