import { DataSource, EntityManager, In } from 'typeorm';
import { Meter, QuotaEntity, QuotaPeriod, QuotaSpec, QuotaStatus } from './quota.entity';
import { periodKey, periodWindow } from './quota-period';
import { QuotaCounterEntity } from './quota-counter.entity';
import { CounterState, QuotaCounterStatements, quotaCounterStatements } from './quota-counters';
import type { HeldCounter } from '../usage/usage-reservation.entity';
import { insertOrIncrement } from '../db/upsert';
import { Clock } from '../clock';
import { newId } from '../ids';
import { BadUserInputError } from '../errors';
import { isStoreUnreachable } from '../db/store-errors';
import type { Logger } from '../logger';
import { LIMITS, requirePositiveNumber, requireUnique } from '../validation';


export type { QuotaSpec, QuotaStatus };

export type QuotaOwner = { organizationId: string } | { apiKeyId: string };

/**
 * Gives back the holds of reservations whose TTL has passed (implemented by the reservation
 * service). Quota reads call it when they see something held, so an expired hold never shows.
 */
export interface ExpiredHolds {
  releaseExpired(): Promise<void>;
}

/** Who hears of quotas that moved (live subscribers; coalesced there). */
export interface QuotaEvents {
  quotas(statuses: readonly QuotaStatus[]): void;
}

export function validateQuotas(field: string, quotas: readonly QuotaSpec[]): QuotaSpec[] {
  if (quotas.length > LIMITS.quotasPerOwner) {
    throw new BadUserInputError(field, `at most ${LIMITS.quotasPerOwner} quotas (got ${quotas.length})`);
  }
  requireUnique(field, quotas.map((quota) => `${quota.meter}/${quota.period}`));
  return quotas.map((quota, index) => ({
    meter: quota.meter,
    period: quota.period,
    limit: requirePositiveNumber(`${field}[${index}].limit`, quota.limit, 1e15),
  }));
}

/** How often REQUESTS units owed back are offered to the database again while it is away (ms). */
const GIVE_BACK_RETRY_MS = 1_000;

export class QuotaService {
  /** Counter rows (quota|period) known to exist; see prepareCounters. */
  private readonly knownCounters = new Set<string>();
  private readonly counters: QuotaCounterStatements;
  /** Set once the reservation service exists (app.ts). */
  expiredHolds: ExpiredHolds | null = null;
  /** REQUESTS units to give back that the database did not take yet, per counter row (quota|period). */
  private readonly owed = new Map<string, { quotaId: string; periodKey: string; requests: number }>();
  private retry: NodeJS.Timeout | null = null;
  private givingBack: Promise<void> | null = null;

  constructor(private readonly dataSource: DataSource, private readonly clock: Clock, private readonly logger: Logger) {
    this.counters = quotaCounterStatements(dataSource.manager);
  }

  /**
   * Sets the owner's quotas to exactly `quotas`, inside the caller's transaction. A quota that
   * stays (same meter and period) keeps its row, so what its current period used stays counted:
   * lowering a limit below usage refuses at once, raising it gives no fresh allowance.
   */
  async replace(manager: EntityManager, owner: QuotaOwner, quotas: readonly QuotaSpec[]): Promise<void> {
    const existing = await this.list(owner, manager);
    const slot = (quota: { meter: Meter; period: QuotaPeriod }) => `${quota.meter}|${quota.period}`;
    const wanted = new Map(quotas.map((quota) => [slot(quota), quota]));
    const gone = existing.filter((quota) => !wanted.has(slot(quota)));
    if (gone.length > 0) await manager.delete(QuotaEntity, gone.map((quota) => quota.id));
    for (const quota of existing) {
      const next = wanted.get(slot(quota));
      if (next && next.limit !== quota.limit) await manager.update(QuotaEntity, { id: quota.id }, { limit: next.limit });
    }
    const kept = new Set(existing.map(slot));
    const added = quotas.filter((quota) => !kept.has(slot(quota)));
    if (added.length === 0) return;
    const now = this.clock.now();
    await manager.insert(QuotaEntity, added.map((quota) => ({
      id: newId('qta', now),
      organizationId: 'organizationId' in owner ? owner.organizationId : null,
      apiKeyId: 'apiKeyId' in owner ? owner.apiKeyId : null,
      meter: quota.meter,
      period: quota.period,
      limit: quota.limit,
      createdAt: now,
    })));
  }

  /** Moves a key's quotas to the key that replaced it (rotation keeps counting on them). */
  async transfer(manager: EntityManager, fromKeyId: string, toKeyId: string): Promise<void> {
    await manager.update(QuotaEntity, { apiKeyId: fromKeyId }, { apiKeyId: toKeyId });
  }

  async list(owner: QuotaOwner, manager: EntityManager = this.dataSource.manager): Promise<QuotaEntity[]> {
    return manager.getRepository(QuotaEntity).find({
      where: 'organizationId' in owner ? { organizationId: owner.organizationId } : { apiKeyId: owner.apiKeyId },
      order: { id: 'ASC' },
    });
  }

  /**
   * Every quota that applies to requests made with `key`: its organization's, and its own —
   * which rotation moves to the newest key of the lineage, so an old secret still in its
   * grace period keeps counting on them.
   */
  async applicableTo(key: { id: string; organizationId: string; lineageId: string | null }, manager: EntityManager = this.dataSource.manager): Promise<QuotaEntity[]> {
    return manager.getRepository(QuotaEntity).createQueryBuilder('q')
      .where('q.organization_id = :organizationId', { organizationId: key.organizationId })
      .orWhere('q.api_key_id IN (SELECT k.id FROM api_keys k WHERE k.lineage_id = :lineageId)', { lineageId: key.lineageId ?? key.id })
      .orderBy('q.api_key_id IS NULL', 'ASC')
      .addOrderBy('q.id', 'ASC')
      .getMany();
  }

  /** Current status of each quota of the owner, with what the current period has used. */
  async statuses(owner: QuotaOwner): Promise<QuotaStatus[]> {
    const quotas = await this.list(owner);
    const statuses = await this.statusesOf(quotas);
    return (await this.releasedExpiredHolds(statuses)) ? this.statusesOf(quotas) : statuses;
  }

  /** `statuses` of many owners in two queries (quotas, then counters), in the order of `owners`. */
  async statusesOfOwners(owners: readonly QuotaOwner[]): Promise<QuotaStatus[][]> {
    const organizationIds = owners.flatMap((owner) => ('organizationId' in owner ? [owner.organizationId] : []));
    const apiKeyIds = owners.flatMap((owner) => ('apiKeyId' in owner ? [owner.apiKeyId] : []));
    const where = [
      ...(organizationIds.length ? [{ organizationId: In([...new Set(organizationIds)]) }] : []),
      ...(apiKeyIds.length ? [{ apiKeyId: In([...new Set(apiKeyIds)]) }] : []),
    ];
    const quotas = where.length ? await this.dataSource.getRepository(QuotaEntity).find({ where, order: { id: 'ASC' } }) : [];
    let statuses = await this.statusesOf(quotas);
    if (await this.releasedExpiredHolds(statuses)) statuses = await this.statusesOf(quotas);
    return owners.map((owner) => statuses.filter((status) => ('organizationId' in owner
      ? status.apiKeyId === null && status.organizationId === owner.organizationId
      : status.apiKeyId === owner.apiKeyId)));
  }

  async statusesOf(quotas: readonly QuotaEntity[], manager: EntityManager = this.dataSource.manager): Promise<QuotaStatus[]> {
    if (quotas.length === 0) return [];
    const now = this.clock.now();
    const used = await this.usedIn(manager, quotas, now);
    return quotas.map((quota) => toStatus(quota, used.get(quota.id) ?? EMPTY_COUNTER, now));
  }

  /** Lazy expiry, for reads outside transactions: true when something was held (and may have been given back). */
  private async releasedExpiredHolds(statuses: readonly QuotaStatus[]): Promise<boolean> {
    if (!this.expiredHolds || !statuses.some((status) => status.held > 0)) return false;
    await this.expiredHolds.releaseExpired();
    return true;
  }

  /**
   * Creates the current period's counter rows, outside any transaction, once per process and
   * period: concurrent first uses of a quota then only contend on a row UPDATE (InnoDB can
   * deadlock on concurrent INSERT IGNOREs of one key inside transactions).
   */
  async prepareCounters(quotas: readonly QuotaEntity[]): Promise<void> {
    const now = this.clock.now();
    const missing = quotas.filter((quota) => !this.knownCounters.has(`${quota.id}|${periodKey(quota.period, now)}`));
    if (missing.length === 0) return;
    await this.dataSource.createQueryBuilder().insert().into(QuotaCounterEntity)
      .values(missing.map((quota) => ({ quotaId: quota.id, periodKey: periodKey(quota.period, now), used: 0 })))
      .orIgnore().updateEntity(false).execute();
    if (this.knownCounters.size > 100_000) this.knownCounters.clear();
    for (const quota of missing) this.knownCounters.add(`${quota.id}|${periodKey(quota.period, now)}`);
  }

  /**
   * Step 9 of the verification pipeline, inside the caller's transaction. REQUESTS quotas take
   * `requests` with a conditional UPDATE (`used + cost <= limit`, a prepared statement: quota-counters.ts), so concurrent requests and
   * other instances can never be admitted past the limit; TOKENS and COST_USD refuse once
   * used + held >= limit. Returns the first quota that refuses, having taken nothing from it; the
   * caller rolls the transaction back so earlier quotas give their units back too.
   */
  async consume(manager: EntityManager, quotas: readonly QuotaEntity[], requests: number): Promise<QuotaEntity | null> {
    if (quotas.length === 0) return null;
    const now = this.clock.now();
    const used = await this.usedIn(manager, quotas.filter((quota) => quota.meter !== Meter.REQUESTS), now);
    for (const quota of quotas) {
      if (quota.meter !== Meter.REQUESTS) {
        const state = used.get(quota.id) ?? EMPTY_COUNTER;
        if (state.used + state.held >= quota.limit) return quota;
        continue;
      }
      const counter = { quotaId: quota.id, periodKey: periodKey(quota.period, now) };
      if (await this.counters.take(manager, counter, requests, quota.limit)) continue;
      // Nothing taken: either the limit is reached, or this period has no counter yet.
      if (await this.counters.exists(manager, counter)) return quota;
      await this.counters.ensure(manager, counter);
      if (!(await this.counters.take(manager, counter, requests, quota.limit))) return quota;
    }
    return null;
  }

  /**
   * reserveUsage, in the pipeline's transaction right after `consume`: holds `tokens` on every
   * TOKENS quota and `costUsd` on every COST_USD quota with one conditional UPDATE each
   * (`used + held + amount <= limit`), like REQUESTS. Returns the first quota that refuses (the
   * caller rolls back, giving back what earlier quotas held) or what was held where.
   */
  async hold(manager: EntityManager, quotas: readonly QuotaEntity[], amounts: { tokens: number; costUsd: number }): Promise<{ refusing: QuotaEntity | null; held: HeldCounter[] }> {
    const now = this.clock.now();
    const held: HeldCounter[] = [];
    for (const quota of quotas) {
      const amount = quota.meter === Meter.TOKENS ? amounts.tokens : quota.meter === Meter.COST_USD ? amounts.costUsd : 0;
      if (amount <= 0) continue;
      const counter = { quotaId: quota.id, periodKey: periodKey(quota.period, now) };
      if (!(await this.counters.hold(manager, counter, amount, quota.limit))) {
        if (await this.counters.exists(manager, counter)) return { refusing: quota, held };
        await this.counters.ensure(manager, counter);
        if (!(await this.counters.hold(manager, counter, amount, quota.limit))) return { refusing: quota, held };
      }
      held.push({ ...counter, amount });
    }
    return { refusing: null, held };
  }

  /** Gives back what a reservation held (settled, released or expired), inside the caller's transaction. */
  async unhold(manager: EntityManager, counters: readonly HeldCounter[]): Promise<void> {
    for (const counter of counters) {
      // Never below 0 (floating-point COST_USD sums); the same SQL on SQLite and MySQL.
      await manager.query('UPDATE quota_counters SET held = CASE WHEN held > ? THEN held - ? ELSE 0 END WHERE quota_id = ? AND period_key = ?',
        [counter.amount, counter.amount, counter.quotaId, counter.periodKey]);
    }
  }

  /**
   * Gives back the REQUESTS units `consume` took at `takenAt` for a request whose answer says it
   * did not happen (503 UNAVAILABLE). The database is likely away then: what it does not take is
   * kept and offered again every second until it does (lost only if this process dies meanwhile).
   */
  giveBack(quotas: readonly QuotaEntity[], requests: number, takenAt: Date): Promise<void> {
    for (const quota of quotas) {
      if (quota.meter !== Meter.REQUESTS) continue;
      const key = periodKey(quota.period, takenAt);
      const id = `${quota.id}|${key}`;
      const owed = this.owed.get(id);
      if (owed) owed.requests += requests;
      else this.owed.set(id, { quotaId: quota.id, periodKey: key, requests });
    }
    return this.payOwed();
  }

  /** No more retries (shutdown, after a last `payOwed`). */
  stopGivingBack(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  /** Tries to write every owed give-back now; concurrent calls share one attempt. */
  payOwed(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.givingBack ??= this.writeOwed().finally(() => {
      this.givingBack = null;
    });
    return this.givingBack;
  }

  private async writeOwed(): Promise<void> {
    for (const [id, owed] of [...this.owed]) {
      // More may be owed by the time the UPDATE returns: only what it wrote is settled.
      const { quotaId, periodKey: key, requests } = owed;
      try {
        await this.dataSource.createQueryBuilder().update(QuotaCounterEntity)
          .set({ used: () => 'CASE WHEN used > :requests THEN used - :requests ELSE 0 END' })
          .where('quota_id = :quotaId AND period_key = :key', { quotaId, key, requests })
          .execute();
        owed.requests -= requests;
        if (owed.requests === 0) this.owed.delete(id);
      } catch (error) {
        if (!isStoreUnreachable(error)) {
          this.owed.delete(id);
          this.logger.error({ err: error, quotaId }, 'quota give-back refused by the database; dropped');
          continue;
        }
        this.retry = setTimeout(() => void this.payOwed(), GIVE_BACK_RETRY_MS);
        this.retry.unref();
        return;
      }
    }
  }

  /** recordUsage: TOKENS / COST_USD consumption, added whole (the work already happened). */
  async add(manager: EntityManager, quotas: readonly QuotaEntity[], meter: Meter, amount: number): Promise<void> {
    const matching = quotas.filter((quota) => quota.meter === meter);
    if (matching.length === 0 || amount <= 0) return;
    const now = this.clock.now();
    await insertOrIncrement(manager, 'quota_counters', ['quota_id', 'period_key'], ['used'],
      matching.map((quota) => ({ quota_id: quota.id, period_key: periodKey(quota.period, now), used: amount })));
  }

  private async usedIn(manager: EntityManager, quotas: readonly QuotaEntity[], now: Date): Promise<Map<string, CounterState>> {
    return this.counters.used(manager, quotas.map((quota) => ({ quotaId: quota.id, periodKey: periodKey(quota.period, now) })));
  }
}

/**
 * 0–100 with two decimals (0.007 → 0.01, not 0.006999999999999999). 100 means used up: a quota
 * with anything left shows at most 99.99, however close it is.
 */
export function percentUsed(used: number, limit: number): number {
  if (used >= limit) return 100;
  return Math.min(99.99, Math.round((used / limit) * 10_000) / 100);
}

const EMPTY_COUNTER: CounterState = { used: 0, held: 0 };

export function toStatus(quota: QuotaEntity, { used, held }: CounterState, now: Date): QuotaStatus {
  const remaining = Math.max(0, quota.limit - used - held);
  return {
    organizationId: quota.organizationId,
    apiKeyId: quota.apiKeyId,
    meter: quota.meter,
    period: quota.period,
    limit: quota.limit,
    used,
    held,
    remaining,
    percentUsed: percentUsed(used, quota.limit),
    resetsAt: periodWindow(quota.period, now).resetsAt,
  };
}
