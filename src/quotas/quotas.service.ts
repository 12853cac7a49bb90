import { DataSource, EntityManager } from 'typeorm';
import { Meter, QuotaEntity, QuotaPeriod } from './quota.entity';
import { periodWindow } from './quota-period';
import { Clock } from '../clock';
import { newId } from '../ids';
import { BadUserInputError } from '../errors';
import { LIMITS, requirePositiveNumber, requireUnique } from '../validation';

export interface QuotaSpec {
  meter: Meter;
  period: QuotaPeriod;
  limit: number;
}

export type QuotaOwner = { organizationId: string } | { apiKeyId: string };

/** What clients see of one quota: limit, consumption in the current period and when it resets. */
export interface QuotaStatus {
  organizationId: string | null;
  apiKeyId: string | null;
  meter: Meter;
  period: QuotaPeriod;
  limit: number;
  used: number;
  remaining: number;
  /** 0-100. */
  percentUsed: number;
  resetsAt: Date | null;
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

export class QuotasService {
  constructor(private readonly dataSource: DataSource, private readonly clock: Clock) {}

  /** Replaces every quota of the owner, inside the caller's transaction. */
  async replace(manager: EntityManager, owner: QuotaOwner, quotas: readonly QuotaSpec[]): Promise<void> {
    await manager.delete(QuotaEntity, 'organizationId' in owner ? { organizationId: owner.organizationId } : { apiKeyId: owner.apiKeyId });
    if (quotas.length === 0) return;
    const now = this.clock.now();
    await manager.insert(QuotaEntity, quotas.map((quota) => ({
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

  async list(owner: QuotaOwner): Promise<QuotaEntity[]> {
    return this.dataSource.getRepository(QuotaEntity).find({
      where: 'organizationId' in owner ? { organizationId: owner.organizationId } : { apiKeyId: owner.apiKeyId },
      order: { id: 'ASC' },
    });
  }

  /**
   * Current status of each quota of the owner. Consumption is metered by the verification
   * pipeline; until a quota has been counted against, `used` is 0.
   */
  async statuses(owner: QuotaOwner): Promise<QuotaStatus[]> {
    const now = this.clock.now();
    const quotas = await this.list(owner);
    return quotas.map((quota) => toStatus(quota, 0, now));
  }
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
    percentUsed: Math.min(100, (used / quota.limit) * 100),
    resetsAt: periodWindow(quota.period, now).resetsAt,
  };
}
