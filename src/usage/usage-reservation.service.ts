import { createHash } from 'node:crypto';
import { DataSource, In, LessThanOrEqual } from 'typeorm';
import { HeldCounter, ReservationStatus, UsageReservationEntity } from './usage-reservation.entity';
import { UsageBuffer } from './usage-buffer';
import { IDEMPOTENCY_WINDOW_MS, nonNegative, UsageRecorded } from './usage.service';
import { ModelPrices, priceOf } from './model-prices';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { admittedOutcome, Authenticated, KeyVerifier, VerificationOutcome } from '../auth/key-verifier';
import { VerifyKey, VerifyKeyResult, VerifyKeyService } from '../auth/verify-key.service';
import { Actor } from '../auth/actor';
import { Meter, QuotaEntity } from '../quotas/quota.entity';
import { ExpiredHolds, QuotaEvents, QuotaService } from '../quotas/quota.service';
import { SessionEntity, SessionStatus } from '../sessions/session.entity';
import { SessionEvents, SessionService } from '../sessions/session.service';
import { RateLimiter } from '../rate-limits/rate-limiter';
import { Transactions } from '../db/data-source';
import { isDuplicateKey } from '../db/store-errors';
import { Clock } from '../clock';
import { newId } from '../ids';
import { ErrorCode, KeywardError, NotFoundError } from '../errors';
import { optionalText, requireInt, requireText } from '../validation';
import { QuotaAlerts, quotaMoves } from '../quotas/quota-alerts';

export interface ReserveUsage extends Omit<VerifyKey, 'recordEvent'> {
  tokens?: number | null;
  costUsd?: number | null;
  model?: string | null;
  ttlSeconds?: number | null;
  idempotencyKey: string;
}

export interface UsageReservation {
  /** Null when the key was refused: then nothing is held. */
  id: string | null;
  verify: VerifyKeyResult;
  tokens: number;
  costUsd: number;
  expiresAt: Date | null;
}

export interface SettleUsage {
  reservationId: string;
  inputTokens?: number | null;
  outputTokens?: number | null;
  tokens?: number | null;
  costUsd?: number | null;
  statusCode?: number | null;
  latencyMs?: number | null;
}

export const RESERVATION_TTL = { defaultSeconds: 300, minSeconds: 10, maxSeconds: 3600 } as const;
/** Expired reservations given back per sweep pass (a pass repeats while it finds a full page). */
const RELEASE_PAGE = 100;
/** Reserves look for expired holds at most this often (clock time); the sweep and quota reads also do. */
const RESERVE_EXPIRY_CHECK_MS = 1_000;
const DAY_MS = 86_400_000;

/** What UsageReservationService is built from (app.ts wires it). */
export interface UsageReservationServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  clock: Clock;
  verifier: KeyVerifier;
  verifyKey: VerifyKeyService;
  quotas: QuotaService;
  sessions: SessionService;
  rateLimiter: RateLimiter;
  buffer: UsageBuffer;
  prices: ModelPrices;
  events: QuotaEvents & SessionEvents;
  /** TOKENS / COST_USD thresholds the settled usage crossed, into the webhook outbox inside the settling transaction. */
  alerts: QuotaAlerts;
}

/**
 * Reserve-then-settle budgets. `reserve` runs verifyKey's pipeline and, in the same atomic step
 * as its REQUESTS charge, holds the estimated tokens / dollars on the key's and organization's
 * TOKENS / COST_USD quotas, its TOKENS windows and (requireSession) the active session, so
 * concurrent callers on any number of instances can never hold past a limit. `settle` replaces
 * the hold with what the provider reported; `release` and the TTL give it back.
 */
export class UsageReservationService implements ExpiredHolds {
  private lastExpiryCheckMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: UsageReservationServiceDependencies) {}

  async reserve(actor: Actor, input: ReserveUsage): Promise<UsageReservation> {
    const idempotencyKey = requireText('idempotencyKey', input.idempotencyKey, 200);
    const ttlSeconds = requireInt('ttlSeconds', input.ttlSeconds ?? RESERVATION_TTL.defaultSeconds, RESERVATION_TTL.minSeconds, RESERVATION_TTL.maxSeconds);
    const tokens = input.tokens == null ? 0 : requireInt('tokens', input.tokens, 0, Number.MAX_SAFE_INTEGER);
    const model = optionalText('model', input.model, 200) ?? null;
    const costUsd = input.costUsd != null ? nonNegative('costUsd', input.costUsd, 1_000_000)
      : model !== null ? priceOf(this.deps.prices, model, { tokens }) : 0;
    // The request's usage event is the settle's (with its tokens), so a reserved call counts once.
    const { credentials, consumption } = this.deps.verifyKey.request(actor, { ...input, recordEvent: false });

    const authentication = await this.deps.verifier.authenticate(credentials);
    if (authentication.refused) return this.refused(actor, authentication.refused);
    const authenticated = authentication.authenticated;
    const key = authenticated.outcome.key;
    const requestHash = hashOf([key.id, consumption.cost, tokens, costUsd, model]);
    const previous = await this.previous(key.organizationId, idempotencyKey);
    if (previous) return this.repeat(actor, previous, requestHash, authenticated);
    if (this.deps.clock.now().getTime() - this.lastExpiryCheckMs >= RESERVE_EXPIRY_CHECK_MS) await this.releaseExpired();

    const now = this.deps.clock.now();
    const id = newId('rsv', now);
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    let outcome: VerificationOutcome;
    try {
      outcome = await this.deps.verifier.consume(authenticated, {
        ...consumption,
        operation: consumption.operation ?? 'reserveUsage',
        hold: {
          tokens,
          costUsd,
          write: async (tx, holds, session) => {
            await tx.insert(UsageReservationEntity, {
              id, organizationId: key.organizationId, apiKeyId: key.id, sessionId: session?.id ?? null, idempotencyKey, requestHash,
              model, operation: consumption.operation ?? null, tokens, costUsd, holds, status: ReservationStatus.HELD, settleHash: null,
              createdAt: now, expiresAt, endedAt: null,
            });
          },
        },
      });
    } catch (error) {
      // A concurrent reserve with the same idempotencyKey won; this one took nothing.
      if (!isDuplicateKey(error)) throw error;
      const winner = await this.previous(key.organizationId, idempotencyKey);
      if (!winner) throw error;
      return this.repeat(actor, winner, requestHash, authenticated);
    }
    this.deps.verifyKey.count(actor, outcome);
    if (!outcome.valid) return this.refused(actor, outcome, false);
    if (outcome.session) this.deps.events.session(outcome.session);
    return { id, verify: this.deps.verifyKey.result(outcome), tokens, costUsd, expiresAt };
  }

  /**
   * Replaces the hold with what was used: the held amounts go back, the actual ones are charged
   * whole (more or less than held), the session is charged and the usage event recorded. The
   * same reservation settled again with the same amounts changes nothing (recorded false); with
   * others it is IDEMPOTENCY_CONFLICT. A reservation released or expired before its settle
   * still has its usage charged: the work happened.
   */
  async settle(actor: Actor, input: SettleUsage): Promise<UsageRecorded> {
    const reservation = await this.visible(actor, input.reservationId);
    const inputTokens = input.inputTokens == null ? null : requireInt('inputTokens', input.inputTokens, 0, Number.MAX_SAFE_INTEGER);
    const outputTokens = input.outputTokens == null ? null : requireInt('outputTokens', input.outputTokens, 0, Number.MAX_SAFE_INTEGER);
    const tokens = input.tokens != null ? requireInt('tokens', input.tokens, 0, Number.MAX_SAFE_INTEGER) : (inputTokens ?? 0) + (outputTokens ?? 0);
    const costUsd = input.costUsd != null ? nonNegative('costUsd', input.costUsd, 1_000_000)
      : reservation.model !== null ? priceOf(this.deps.prices, reservation.model, { inputTokens, outputTokens, tokens }, 'costUsd') : 0;
    const statusCode = input.statusCode == null ? null : requireInt('statusCode', input.statusCode, 100, 599);
    const latencyMs = input.latencyMs == null ? null : nonNegative('latencyMs', input.latencyMs, DAY_MS);
    const settleHash = hashOf([tokens, inputTokens, outputTokens, costUsd, statusCode, latencyMs]);
    const key = await this.deps.dataSource.getRepository(ApiKeyEntity).findOneByOrFail({ id: reservation.apiKeyId });
    const applicable = await this.deps.quotas.applicableTo(key);
    await this.deps.quotas.prepareCounters(applicable);
    const watcher = await this.deps.alerts.quotaWatcher(key.organizationId);
    const added = (quota: { meter: Meter }) => (quota.meter === Meter.TOKENS ? tokens : quota.meter === Meter.COST_USD ? costUsd : 0);

    const attempt = () => this.deps.transactions.run(async (tx) => {
      const current = await tx.getRepository(UsageReservationEntity).findOneByOrFail({ id: reservation.id });
      if (current.status === ReservationStatus.SETTLED) {
        if (current.settleHash !== settleHash) throw new KeywardError(ErrorCode.IDEMPOTENCY_CONFLICT, 'the reservation was already settled with different usage');
        const session = current.sessionId ? await tx.getRepository(SessionEntity).findOneBy({ id: current.sessionId }) : null;
        return { recorded: false, wasHeld: false, quotas: await this.deps.quotas.statusesOf(applicable, tx), session };
      }
      const now = this.deps.clock.now();
      // Conditional on the status read: a concurrent settle, release or sweep makes this one retry.
      const claimed = await tx.update(UsageReservationEntity, { id: current.id, status: current.status }, { status: ReservationStatus.SETTLED, settleHash, endedAt: now });
      if (!claimed.affected) throw new ConcurrentChange();
      const wasHeld = current.status === ReservationStatus.HELD;
      if (wasHeld) await this.deps.quotas.unhold(tx, current.holds.counters);
      await this.deps.quotas.add(tx, applicable, Meter.TOKENS, tokens);
      await this.deps.quotas.add(tx, applicable, Meter.COST_USD, costUsd);
      let session: SessionEntity | null = null;
      if (current.holds.sessionId) {
        session = wasHeld ? await this.deps.sessions.unhold(tx, current.holds.sessionId, current.tokens)
          : await tx.getRepository(SessionEntity).findOneBy({ id: current.holds.sessionId });
        // A session that ended meanwhile is not charged; the quotas still are.
        if (session && session.status === SessionStatus.ACTIVE && session.expiresAt.getTime() > now.getTime()) {
          session = await this.deps.sessions.charge(tx, session, tokens);
        }
      }
      const quotas = await this.deps.quotas.statusesOf(applicable, tx);
      if (watcher) await watcher.moved(tx, key.id, quotaMoves(applicable, quotas, added));
      return { recorded: true, wasHeld, quotas, session };
    });

    let result: Awaited<ReturnType<typeof attempt>>;
    try {
      result = await attempt();
    } catch (error) {
      if (!(error instanceof ConcurrentChange)) throw error;
      result = await attempt();
    }
    if (result.recorded) {
      await this.correctWindows(reservation, tokens, result.wasHeld);
      this.deps.events.quotas(result.quotas.filter((status) => status.meter !== Meter.REQUESTS));
      if (result.session) this.deps.events.session(result.session);
      this.deps.buffer.record({
        organizationId: reservation.organizationId, apiKeyId: reservation.apiKeyId, sessionId: reservation.holds.sessionId,
        operation: reservation.operation ?? 'settleUsage', statusCode, isError: statusCode !== null && statusCode >= 400, latencyMs,
        tokens, tokensEstimated: false, costUsd,
      });
    }
    return { recorded: result.recorded, quotas: result.quotas, session: result.session };
  }

  /** Gives the hold back; false when nothing was held any more (settled, released or expired). */
  async release(actor: Actor, reservationId: string): Promise<boolean> {
    const reservation = await this.visible(actor, reservationId);
    return this.giveBack(reservation, ReservationStatus.RELEASED);
  }

  /**
   * Gives back the holds of every reservation past its TTL. Run by the sweep, before each
   * reserve, and by quota reads that see something held (QuotaService), so an expired hold
   * neither blocks nor shows for long.
   */
  async releaseExpired(): Promise<void> {
    this.lastExpiryCheckMs = this.deps.clock.now().getTime();
    for (;;) {
      const due = await this.deps.dataSource.getRepository(UsageReservationEntity).find({
        where: { status: ReservationStatus.HELD, expiresAt: LessThanOrEqual(this.deps.clock.now()) },
        order: { expiresAt: 'ASC' },
        take: RELEASE_PAGE,
      });
      for (const reservation of due) await this.giveBack(reservation, ReservationStatus.EXPIRED);
      if (due.length < RELEASE_PAGE) return;
    }
  }

  /** Tenancy: another organization's reservation does not exist (platform-organization callers see all, as recordUsage). */
  private async visible(actor: Actor, id: string): Promise<UsageReservationEntity> {
    const reservation = typeof id === 'string' ? await this.deps.dataSource.getRepository(UsageReservationEntity).findOneBy({ id }) : null;
    if (!reservation || !(actor.inPlatformOrganization || actor.organizationId === reservation.organizationId)) throw new NotFoundError('Reservation');
    return reservation;
  }

  private async giveBack(reservation: UsageReservationEntity, status: ReservationStatus.RELEASED | ReservationStatus.EXPIRED): Promise<boolean> {
    const session = await this.deps.transactions.run(async (tx) => {
      const claimed = await tx.update(UsageReservationEntity, { id: reservation.id, status: ReservationStatus.HELD }, { status, endedAt: this.deps.clock.now() });
      if (!claimed.affected) return false;
      await this.deps.quotas.unhold(tx, reservation.holds.counters);
      return reservation.holds.sessionId ? this.deps.sessions.unhold(tx, reservation.holds.sessionId, reservation.tokens) : null;
    });
    if (session === false) return false;
    const windows = reservation.holds.windows;
    if (windows) await this.deps.rateLimiter.refund(windows.subject, windows.limits, windows.tokens, new Date(windows.takenAtMs));
    await this.announce(reservation.holds.counters, session);
    return true;
  }

  /**
   * TOKENS windows held the estimate at reserve time: settling for fewer gives the difference
   * back (as of then), for more takes the rest now; after a release or expiry (estimate given
   * back) all of it is taken now.
   */
  private async correctWindows(reservation: UsageReservationEntity, tokens: number, wasHeld: boolean): Promise<void> {
    const windows = reservation.holds.windows;
    if (!windows) return;
    const now = this.deps.clock.now();
    const held = wasHeld ? windows.tokens : 0;
    if (tokens < held) await this.deps.rateLimiter.refund(windows.subject, windows.limits, held - tokens, new Date(windows.takenAtMs));
    else if (tokens > held) await this.deps.rateLimiter.charge(windows.subject, windows.limits, tokens - held, now);
  }

  private async announce(counters: readonly HeldCounter[], session: SessionEntity | null): Promise<void> {
    if (counters.length > 0) {
      const quotas = await this.deps.dataSource.getRepository(QuotaEntity).findBy({ id: In(counters.map((counter) => counter.quotaId)) });
      this.deps.events.quotas(await this.deps.quotas.statusesOf(quotas));
    }
    if (session) this.deps.events.session(session);
  }

  /** The organization's reservation under this idempotency key within the last 24 h; an older one lets the key go. */
  private async previous(organizationId: string, idempotencyKey: string): Promise<UsageReservationEntity | null> {
    const repository = this.deps.dataSource.getRepository(UsageReservationEntity);
    const found = await repository.findOneBy({ organizationId, idempotencyKey });
    if (!found) return null;
    if (this.deps.clock.now().getTime() - found.createdAt.getTime() < IDEMPOTENCY_WINDOW_MS) return found;
    await repository.update({ id: found.id, idempotencyKey }, { idempotencyKey: null });
    return null;
  }

  /**
   * The same idempotencyKey again: the first reservation, its key described as it authenticates
   * now (nothing consumed again); different amounts are a conflict.
   */
  private async repeat(actor: Actor, previous: UsageReservationEntity, requestHash: string, authenticated: Authenticated): Promise<UsageReservation> {
    if (previous.requestHash !== requestHash) {
      throw new KeywardError(ErrorCode.IDEMPOTENCY_CONFLICT, 'idempotencyKey was already used within 24 hours for a reservation of different amounts');
    }
    const { key, organization } = authenticated.outcome;
    const session = previous.sessionId ? await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id: previous.sessionId }) : null;
    const outcome = admittedOutcome({ key, organization, quotas: await this.deps.quotas.statusesOf(authenticated.quotas), session });
    return { id: previous.id, verify: this.deps.verifyKey.result(outcome), tokens: previous.tokens, costUsd: previous.costUsd, expiresAt: previous.expiresAt };
  }

  private refused(actor: Actor, outcome: VerificationOutcome, count = true): UsageReservation {
    if (count) this.deps.verifyKey.count(actor, outcome);
    return { id: null, verify: this.deps.verifyKey.result(outcome), tokens: 0, costUsd: 0, expiresAt: null };
  }
}

/** The reservation changed between reading and claiming it: the attempt is made once more. */
class ConcurrentChange extends Error {}

function hashOf(values: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(values)).digest('hex');
}
