import { DataSource, EntityManager } from 'typeorm';
import { Meter, QuotaEntity, QuotaPeriod, QuotaSpec, QuotaStatus } from './quota.entity';
import { periodKey, periodWindow } from './quota-period';
import { QuotaCounterEntity } from './quota-counter.entity';
import { insertOrIncrement } from '../db/upsert';
import { Clock } from '../clock';
import { newId } from '../ids';
import { BadUserInputError } from '../errors';
import { isStoreUnreachable } from '../db/store-errors';
import type { Logger } from '../logger';
import { LIMITS, requirePositiveNumber, requireUnique } from '../validation';


export type { QuotaSpec, QuotaStatus };

export type QuotaOwner = { organizationId: string } | { apiKeyId: string };

/** What clients see of one quota: limit, consumption in the current period and when it resets. */

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
  /** REQUESTS units to give back that the database did not take yet, per counter row (quota|period). */
  private readonly owed = new Map<string, { quotaId: string; periodKey: string; requests: number }>();
  private retry: NodeJS.Timeout | null = null;
  private givingBack: Promise<void> | null = null;

  constructor(private readonly dataSource: DataSource, private readonly clock: Clock, private readonly logger: Logger) {}

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
  async statuses(owner: QuotaOwner, manager: EntityManager = this.dataSource.manager): Promise<QuotaStatus[]> {
    return this.statusesOf(await this.list(owner, manager), manager);
  }

  async statusesOf(quotas: readonly QuotaEntity[], manager: EntityManager = this.dataSource.manager): Promise<QuotaStatus[]> {
    if (quotas.length === 0) return [];
    const now = this.clock.now();
    const used = await this.usedIn(manager, quotas, now);
    return quotas.map((quota) => toStatus(quota, used.get(quota.id) ?? 0, now));
  }

  /**
   * Step 9 of the verification pipeline, inside the caller's transaction. REQUESTS quotas take
   * `requests` with a conditional UPDATE (`used + cost <= limit`), so concurrent requests and
   * other instances can never be admitted past the limit; TOKENS and COST_USD refuse once
   * used >= limit. Returns the first quota that refuses, having taken nothing from it; the
   * caller rolls the transaction back so earlier quotas give their units back too.
   */
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

  async consume(manager: EntityManager, quotas: readonly QuotaEntity[], requests: number): Promise<QuotaEntity | null> {
    if (quotas.length === 0) return null;
    const now = this.clock.now();
    const used = await this.usedIn(manager, quotas.filter((quota) => quota.meter !== Meter.REQUESTS), now);
    for (const quota of quotas) {
      if (quota.meter !== Meter.REQUESTS) {
        if ((used.get(quota.id) ?? 0) >= quota.limit) return quota;
        continue;
      }
      if (await this.takeRequests(manager, quota, requests, now)) continue;
      // Nothing taken: either the limit is reached, or this period has no counter yet.
      const counter = await manager.getRepository(QuotaCounterEntity).findOneBy({ quotaId: quota.id, periodKey: periodKey(quota.period, now) });
      if (counter) return quota;
      await manager.createQueryBuilder().insert().into(QuotaCounterEntity)
        .values({ quotaId: quota.id, periodKey: periodKey(quota.period, now), used: 0 }).orIgnore().execute();
      if (!(await this.takeRequests(manager, quota, requests, now))) return quota;
    }
    return null;
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

  /** The conditional UPDATE that makes REQUESTS exact: true when the units were taken. */
  private async takeRequests(manager: EntityManager, quota: QuotaEntity, requests: number, now: Date): Promise<boolean> {
    const result = await manager.createQueryBuilder()
      .update(QuotaCounterEntity)
      .set({ used: () => 'used + :requests' })
      .where('quota_id = :quotaId AND period_key = :periodKey AND used + :requests <= :limit', {
        quotaId: quota.id, periodKey: periodKey(quota.period, now), requests, limit: quota.limit,
      })
      .execute();
    return Boolean(result.affected);
  }

  private async usedIn(manager: EntityManager, quotas: readonly QuotaEntity[], now: Date): Promise<Map<string, number>> {
    const used = new Map<string, number>();
    if (quotas.length === 0) return used;
    const counters = await manager.getRepository(QuotaCounterEntity).find({
      where: quotas.map((quota) => ({ quotaId: quota.id, periodKey: periodKey(quota.period, now) })),
    });
    for (const counter of counters) used.set(counter.quotaId, counter.used);
    return used;
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

export function toStatus(quota: QuotaEntity, used: number, now: Date): QuotaStatus {
  const remaining = Math.max(0, quota.limit - used);
  return {
    organizationId: quota.organizationId,
    apiKeyId: quota.apiKeyId,
    meter: quota.meter,
    period: quota.period,
    limit: quota.limit,
    used,
    remaining,
    percentUsed: percentUsed(used, quota.limit),
    resetsAt: periodWindow(quota.period, now).resetsAt,
  };
}
