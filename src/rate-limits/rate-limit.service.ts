import { DataSource } from 'typeorm';
import { RateLimiter, RateLimitEvents, RateLimitState } from './rate-limiter';
import { RateLimitEventEntity } from './rate-limit-event.entity';
import { ApiKeyService } from '../api-keys/api-key.service';
import { UsageBuffer } from '../usage/usage-buffer';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { AuditLogService } from '../audit-log/audit-log.service';
import { Actor } from '../auth/actor';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { BadUserInputError, ForbiddenError } from '../errors';
import { assertDominates, assertNotSuperseded } from '../auth/authorization';
import { OrganizationEntity } from '../organizations/organization.entity';
import { effectiveRateLimits, isOrganizationWindow } from './effective-limits';
import { LIMITS } from '../validation';

export type { RateLimitState };

/** What RateLimitService is built from (app.ts wires it). */
export interface RateLimitServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  audit: AuditLogService;
  apiKeys: ApiKeyService;
  limiter: RateLimiter;
  buffer: UsageBuffer;
  clock: Clock;
  events: RateLimitEvents;
}

/** Reading and resetting a key's windows, and its log of refused requests. */
export class RateLimitService {
  constructor(private readonly deps: RateLimitServiceDependencies) {}

  async status(actor: Actor, apiKeyId: string): Promise<RateLimitState[]> {
    const key = await this.deps.apiKeys.get(actor, apiKeyId);
    return this.statesOf(key);
  }

  /** Every window the key obeys: its own, then its organization's (`org:<name>`). */
  async statesOf(key: ApiKeyEntity): Promise<RateLimitState[]> {
    const windows = await this.windowsOf(key);
    const states = await this.deps.limiter.peek(key.lineageId ?? key.id, windows, this.deps.clock.now());
    return states.map((state) => ({ apiKeyId: key.id, ...state }));
  }

  private async windowsOf(key: ApiKeyEntity) {
    const organization = await this.deps.dataSource.getRepository(OrganizationEntity).findOneByOrFail({ id: key.organizationId });
    return effectiveRateLimits(key, organization);
  }

  /**
   * Starts the key's windows (one by name, or all) afresh. The organization's windows (`org:…`)
   * are the platform's: only a platform admin resets them (by name, or with all).
   */
  async reset(actor: Actor, apiKeyId: string, name?: string | null): Promise<RateLimitState[]> {
    assertNotSuperseded(actor, 'reset rate limits');
    const key = await this.deps.apiKeys.get(actor, apiKeyId);
    assertDominates(actor, key, 'reset the rate limits of');
    if (name != null && isOrganizationWindow(name) && !actor.isPlatformAdmin) {
      throw new ForbiddenError(`"${name}" is a window the platform sets for every key of the organization; only the platform can reset it`);
    }
    const windows = (await this.windowsOf(key)).filter((limit) => actor.isPlatformAdmin || !isOrganizationWindow(limit.name));
    const limits = name == null ? windows : windows.filter((limit) => limit.name === name);
    if (name != null && limits.length === 0) {
      throw new BadUserInputError('name', `the key has no rate limit named "${String(name).slice(0, 64)}" (it has: ${windows.map((limit) => limit.name).join(', ') || 'none'})`);
    }
    await this.deps.transactions.run((tx) => this.deps.audit.record(tx, actor, {
      action: 'rate_limit.reset', targetType: 'api_key', targetId: key.id, organizationId: key.organizationId,
      metadata: { names: limits.map((limit) => limit.name) },
    }));
    await this.deps.limiter.reset(key.lineageId ?? key.id, limits, this.deps.clock.now());
    const states = await this.statesOf(key);
    this.deps.events.rateLimits(key.id, states);
    return states;
  }

  /** Refused requests of the key, newest first (kept for 24 hours). */
  async log(actor: Actor, apiKeyId: string, first?: number | null): Promise<RateLimitEventEntity[]> {
    const size = first ?? 50;
    if (!Number.isInteger(size) || size < 1 || size > LIMITS.pageSize) throw new BadUserInputError('first', `must be between 1 and ${LIMITS.pageSize} (got ${size})`);
    const key = await this.deps.apiKeys.get(actor, apiKeyId);
    await this.deps.buffer.flush(); // refusals are buffered with usage; read what happened so far
    return this.deps.dataSource.getRepository(RateLimitEventEntity).find({ where: { apiKeyId: key.id }, order: { id: 'DESC' }, take: size });
  }
}
