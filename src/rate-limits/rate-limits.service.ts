import { DataSource } from 'typeorm';
import { RateLimiter, RateLimitWindowState } from './rate-limiter';
import { RateLimitEventEntity } from './rate-limit-event.entity';
import { ApiKeysService } from '../api-keys/api-keys.service';
import { UsageBuffer } from '../usage/usage-buffer';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { AuditLogService } from '../audit-log/audit-log.service';
import { Actor } from '../auth/actor';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { BadUserInputError } from '../errors';
import { LIMITS } from '../validation';
import type { LiveEvents } from '../live/live-events';

export interface RateLimitState extends RateLimitWindowState {
  apiKeyId: string;
}

/** Reading and resetting a key's windows, and its log of refused requests. */
export class RateLimitsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly audit: AuditLogService,
    private readonly apiKeys: ApiKeysService,
    private readonly limiter: RateLimiter,
    private readonly buffer: UsageBuffer,
    private readonly clock: Clock,
    private readonly live: LiveEvents,
  ) {}

  async status(actor: Actor, apiKeyId: string): Promise<RateLimitState[]> {
    const key = await this.apiKeys.get(actor, apiKeyId);
    return this.statesOf(key);
  }

  async statesOf(key: ApiKeyEntity): Promise<RateLimitState[]> {
    const states = await this.limiter.peek(key.lineageId ?? key.id, key.rateLimits, this.clock.now());
    return states.map((state) => ({ apiKeyId: key.id, ...state }));
  }

  /** Starts the key's windows (one by name, or all) afresh. */
  async reset(actor: Actor, apiKeyId: string, name?: string | null): Promise<RateLimitState[]> {
    const key = await this.apiKeys.get(actor, apiKeyId);
    const limits = name == null ? key.rateLimits : key.rateLimits.filter((limit) => limit.name === name);
    if (name != null && limits.length === 0) {
      throw new BadUserInputError('name', `the key has no rate limit named "${name}" (it has: ${key.rateLimits.map((limit) => limit.name).join(', ') || 'none'})`);
    }
    await this.transactions.run((tx) => this.audit.record(tx, actor, {
      action: 'rate_limit.reset', targetType: 'api_key', targetId: key.id, organizationId: key.organizationId,
      metadata: { names: limits.map((limit) => limit.name) },
    }));
    await this.limiter.reset(key.lineageId ?? key.id, limits, this.clock.now());
    const states = await this.statesOf(key);
    this.live.rateLimits(key.id, states);
    return states;
  }

  /** Refused requests of the key, newest first (kept for 24 hours). */
  async log(actor: Actor, apiKeyId: string, first?: number | null): Promise<RateLimitEventEntity[]> {
    const size = first ?? 50;
    if (!Number.isInteger(size) || size < 1 || size > LIMITS.pageSize) throw new BadUserInputError('first', `must be between 1 and ${LIMITS.pageSize} (got ${size})`);
    const key = await this.apiKeys.get(actor, apiKeyId);
    await this.buffer.flush(); // refusals are buffered with usage; read what happened so far
    return this.dataSource.getRepository(RateLimitEventEntity).find({ where: { apiKeyId: key.id }, order: { id: 'DESC' }, take: size });
  }
}
