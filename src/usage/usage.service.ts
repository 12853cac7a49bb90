import { createHash } from 'node:crypto';
import { DataSource, EntityManager, IsNull } from 'typeorm';
import { hourOf, UsageBuffer } from './usage-buffer';
import { UsageEventEntity } from './usage-event.entity';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { SessionEntity } from '../sessions/session.entity';
import { SessionEvents, SessionService } from '../sessions/session.service';
import { Meter } from '../quotas/quota.entity';
import { QuotaEvents, QuotaService, QuotaStatus } from '../quotas/quota.service';
import { QuotaAlerts, quotaMoves } from '../quotas/quota-alerts';
import { Actor } from '../auth/actor';
import { assertOrganizationAccess, canAccessOrganization } from '../auth/authorization';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { isDuplicateKey } from '../db/store-errors';
import { BadUserInputError, ErrorCode, KeywardError, NotFoundError } from '../errors';
import { requireInt, requireText } from '../validation';
import { VerifyCode } from '../auth/verify-code';

export interface RecordUsage {
  apiKeyId: string;
  sessionId?: string | null;
  operation: string;
  statusCode?: number | null;
  latencyMs?: number | null;
  tokens?: number | null;
  /** When tokens is absent, tokens are estimated as ceil(characters / 4). */
  characters?: number | null;
  costUsd?: number | null;
  idempotencyKey: string;
}

export interface UsageRecorded {
  /** False when this idempotencyKey was already recorded: nothing was counted twice. */
  recorded: boolean;
  quotas: QuotaStatus[];
  session: SessionEntity | null;
}

export interface UsageRange {
  organizationId?: string | null;
  apiKeyId?: string | null;
  from?: Date | null;
  to?: Date | null;
}

export interface UsageBucket {
  key: string;
  requests: number;
  errors: number;
  tokens: number;
  costUsd: number;
  avgLatencyMs: number | null;
}

export interface OutcomeCount {
  code: VerifyCode;
  count: number;
}

export interface UsageSummary extends Omit<UsageBucket, 'key'> {
  from: Date;
  to: Date;
  byOperation: UsageBucket[];
  byApiKey: UsageBucket[];
  byDay: UsageBucket[];
  /** Keyed by the hour's start, e.g. 2025-06-01T13:00:00.000Z. */
  byHour: UsageBucket[];
  /** verifyKey outcomes in the UTC hours the range touches, codes in VerifyCode order, none with 0. */
  byOutcome: OutcomeCount[];
}

/** How long an idempotency key protects against double counting. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;
const DAY_MS = 86_400_000;
const CODE_ORDER = Object.values(VerifyCode);

interface Sums { requests: number; errors: number; tokens: number; cost: number; latencySum: number; latencyCount: number }

/** What UsageService is built from (app.ts wires it). */
export interface UsageServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  quotas: QuotaService;
  sessions: SessionService;
  buffer: UsageBuffer;
  clock: Clock;
  events: QuotaEvents & SessionEvents;
  /** TOKENS / COST_USD thresholds crossed, into the webhook outbox inside the recording transaction. */
  alerts: QuotaAlerts;
}

export class UsageService {
  constructor(private readonly deps: UsageServiceDependencies) {}

  /**
   * recordUsage: charges TOKENS / COST_USD quotas and the session (never buffered) and queues
   * the usage event. The same idempotencyKey within 24 h is counted once; with different
   * parameters it is refused with IDEMPOTENCY_CONFLICT.
   */
  async record(actor: Actor, input: RecordUsage): Promise<UsageRecorded> {
    const operation = requireText('operation', input.operation, 200);
    const idempotencyKey = requireText('idempotencyKey', input.idempotencyKey, 200);
    const statusCode = input.statusCode == null ? null : requireInt('statusCode', input.statusCode, 100, 599);
    const latencyMs = input.latencyMs == null ? null : nonNegative('latencyMs', input.latencyMs, DAY_MS);
    const tokens = input.tokens != null
      ? requireInt('tokens', input.tokens, 0, Number.MAX_SAFE_INTEGER)
      : input.characters != null ? Math.ceil(requireInt('characters', input.characters, 0, Number.MAX_SAFE_INTEGER) / 4) : 0;
    const costUsd = input.costUsd == null ? 0 : nonNegative('costUsd', input.costUsd, 1_000_000);

    const key = await this.deps.dataSource.getRepository(ApiKeyEntity).findOneBy({ id: input.apiKeyId, deletedAt: IsNull() });
    // Platform-organization keys record for every organization; others only for their own.
    if (!key || !(actor.inPlatformOrganization || actor.organizationId === key.organizationId)) throw new NotFoundError('API key');

    const requestHash = createHash('sha256')
      .update(JSON.stringify([key.id, input.sessionId ?? null, operation, statusCode, latencyMs, tokens, costUsd]))
      .digest('hex');
    const scope = `${key.organizationId}:${idempotencyKey}`;
    const watcher = await this.deps.alerts.quotaWatcher(key.organizationId);
    const added = (quota: { meter: Meter }) => (quota.meter === Meter.TOKENS ? tokens : quota.meter === Meter.COST_USD ? costUsd : 0);

    const attempt = () => this.deps.transactions.run(async (tx) => {
      const now = this.deps.clock.now();
      const fresh = await this.claimIdempotencyKey(tx, scope, requestHash, now);
      const applicable = await this.deps.quotas.applicableTo(key, tx);
      let session: SessionEntity | null = null;
      if (input.sessionId !== undefined && input.sessionId !== null) {
        const found = await tx.getRepository(SessionEntity).findOneBy({ id: input.sessionId });
        if (!found || found.organizationId !== key.organizationId) throw new NotFoundError('Session');
        session = fresh ? await this.deps.sessions.charge(tx, found, tokens) : found;
      }
      if (fresh) {
        await this.deps.quotas.add(tx, applicable, Meter.TOKENS, tokens);
        await this.deps.quotas.add(tx, applicable, Meter.COST_USD, costUsd);
      }
      const quotas = await this.deps.quotas.statusesOf(applicable, tx);
      if (fresh && watcher) await watcher.moved(tx, key.id, quotaMoves(applicable, quotas, added));
      return { recorded: fresh, quotas, session };
    });

    let result: UsageRecorded;
    try {
      result = await attempt();
    } catch (error) {
      // A concurrent call with the same key won the insert (MySQL): now it is a repeat.
      if (!isDuplicateKey(error)) throw error;
      result = await attempt();
    }
    if (result.recorded) {
      this.deps.events.quotas(result.quotas.filter((status) => (status.meter === Meter.TOKENS && tokens > 0) || (status.meter === Meter.COST_USD && costUsd > 0)));
      if (result.session) this.deps.events.session(result.session);
      this.deps.buffer.record({
        organizationId: key.organizationId, apiKeyId: key.id, sessionId: input.sessionId ?? null, operation,
        statusCode, isError: statusCode !== null && statusCode >= 400, latencyMs, tokens, costUsd,
      });
    }
    return result;
  }

  /** True when the key is new (or older than 24 h); false for a repeat; conflict for a reuse. */
  private async claimIdempotencyKey(tx: EntityManager, scope: string, requestHash: string, now: Date): Promise<boolean> {
    const rows: Array<{ request_hash: string; created_at: string | Date }> = await tx.createQueryBuilder()
      .select(['request_hash', 'created_at']).from('usage_idempotency', 'i').where('scope = :scope', { scope }).getRawMany();
    const previous = rows[0];
    if (previous) {
      const createdAt = parseStoredDate(previous.created_at);
      if (now.getTime() - createdAt.getTime() < IDEMPOTENCY_WINDOW_MS) {
        if (previous.request_hash !== requestHash) {
          throw new KeywardError(ErrorCode.IDEMPOTENCY_CONFLICT, 'idempotencyKey was already used within 24 hours for a different usage record');
        }
        return false;
      }
      await tx.createQueryBuilder().update('usage_idempotency').set({ request_hash: requestHash, created_at: now }).where('scope = :scope', { scope }).execute();
      return true;
    }
    await tx.createQueryBuilder().insert().into('usage_idempotency').values({ scope, request_hash: requestHash, created_at: now }).execute();
    return true;
  }

  /**
   * Totals and breakdowns by operation, key and UTC day over [from, to] (both ends included,
   * so the default "to = now" counts what just happened). Whole days come from the daily
   * rollups, the partial days at either end from the events themselves.
   */
  async summary(actor: Actor, range: UsageRange = {}): Promise<UsageSummary> {
    const now = this.deps.clock.now();
    const to = range.to ?? now;
    const from = range.from ?? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    if (!(from.getTime() < to.getTime())) throw new BadUserInputError('range.from', 'must be before range.to');
    let organizationId = range.organizationId ?? actor.organizationId;
    let apiKeyId: string | null = null;
    if (range.apiKeyId) {
      const key = await this.deps.dataSource.getRepository(ApiKeyEntity).findOneBy({ id: range.apiKeyId });
      if (!key || !canAccessOrganization(actor, key.organizationId)) throw new NotFoundError('API key');
      if (range.organizationId && range.organizationId !== key.organizationId) throw new BadUserInputError('range.apiKeyId', 'belongs to another organization than range.organizationId');
      organizationId = key.organizationId;
      apiKeyId = key.id;
    }
    if (!organizationId) throw new BadUserInputError('range.organizationId', 'is required');
    assertOrganizationAccess(actor, organizationId);
    await this.deps.buffer.flush();

    const firstFullDay = Math.ceil(from.getTime() / DAY_MS) * DAY_MS;
    const endFullDays = Math.floor(to.getTime() / DAY_MS) * DAY_MS;
    type Row = { day: string; operation: string; apiKeyId: string } & Sums;
    const rows: Row[] = [];
    // Events of the partial days at either end give their hours too; whole days' hours come from usage_hourly.
    const events: Array<Row & { hour: string }> = [];
    const hourly: Array<{ hour: string } & Sums> = [];
    if (firstFullDay < endFullDays) {
      rows.push(...await this.rollupRows(organizationId, apiKeyId, isoDay(firstFullDay), isoDay(endFullDays)));
      events.push(...await this.eventRows(organizationId, apiKeyId, from, new Date(firstFullDay), false));
      events.push(...await this.eventRows(organizationId, apiKeyId, new Date(endFullDays), to, true));
      hourly.push(...await this.hourlyRows(organizationId, apiKeyId, hourOf(new Date(firstFullDay)), hourOf(new Date(endFullDays))));
    } else {
      events.push(...await this.eventRows(organizationId, apiKeyId, from, to, true));
    }
    rows.push(...events);

    const total = emptySums();
    const byOperation = new Map<string, Sums>();
    const byApiKey = new Map<string, Sums>();
    const byDay = new Map<string, Sums>();
    const byHour = new Map<string, Sums>();
    const add = (map: Map<string, Sums>, bucket: string, row: Sums) => {
      if (!map.has(bucket)) map.set(bucket, emptySums());
      addSums(map.get(bucket)!, row);
    };
    for (const row of rows) {
      add(byOperation, row.operation, row);
      add(byApiKey, row.apiKeyId, row);
      add(byDay, row.day, row);
      addSums(total, row);
    }
    for (const row of [...events, ...hourly]) add(byHour, `${row.hour}:00:00.000Z`, row);
    const buckets = (map: Map<string, Sums>) => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, sums]) => ({ key, ...present(sums) }));
    return {
      from, to, ...present(total),
      byOperation: buckets(byOperation), byApiKey: buckets(byApiKey), byDay: buckets(byDay), byHour: buckets(byHour),
      byOutcome: await this.outcomes(organizationId, apiKeyId, from, to),
    };
  }

  /** usage_hourly rows of the hours in [fromHour, toHour). */
  private async hourlyRows(organizationId: string, apiKeyId: string | null, fromHour: string, toHour: string) {
    const query = this.deps.dataSource.createQueryBuilder()
      .select(['hour', 'requests', 'errors', 'tokens', 'cost_usd', 'latency_sum_ms', 'latency_count'])
      .from('usage_hourly', 'h')
      .where('organization_id = :organizationId AND hour >= :fromHour AND hour < :toHour', { organizationId, fromHour, toHour });
    if (apiKeyId) query.andWhere('api_key_id = :apiKeyId', { apiKeyId });
    const raw: Array<Record<string, string | number>> = await query.getRawMany();
    return raw.map((row) => ({
      hour: String(row.hour), requests: Number(row.requests), errors: Number(row.errors), tokens: Number(row.tokens), cost: Number(row.cost_usd),
      latencySum: Number(row.latency_sum_ms), latencyCount: Number(row.latency_count),
    }));
  }

  /**
   * verifyKey outcomes per code, counted per UTC hour: every hour that [from, to] touches counts
   * whole. With apiKeyId, only that key's (refusals naming no key are the organization's).
   */
  private async outcomes(organizationId: string, apiKeyId: string | null, from: Date, to: Date): Promise<OutcomeCount[]> {
    const query = this.deps.dataSource.createQueryBuilder()
      .select('code', 'code').addSelect('SUM(count)', 'count')
      .from('verification_outcomes', 'o')
      .where('organization_id = :organizationId AND hour >= :fromHour AND hour <= :toHour', { organizationId, fromHour: hourOf(from), toHour: hourOf(to) })
      .groupBy('code');
    if (apiKeyId) query.andWhere('api_key_id = :apiKeyId', { apiKeyId });
    const raw: Array<{ code: string; count: string | number }> = await query.getRawMany();
    const counts = new Map(raw.map((row) => [row.code, Number(row.count)]));
    return CODE_ORDER.filter((code) => (counts.get(code) ?? 0) > 0).map((code) => ({ code, count: counts.get(code)! }));
  }

  private async rollupRows(organizationId: string, apiKeyId: string | null, fromDay: string, toDay: string) {
    const query = this.deps.dataSource.createQueryBuilder()
      .select(['day', 'operation', 'api_key_id AS api_key_id', 'requests', 'errors', 'tokens', 'cost_usd', 'latency_sum_ms', 'latency_count'])
      .from('usage_daily', 'd')
      .where('organization_id = :organizationId AND day >= :fromDay AND day < :toDay', { organizationId, fromDay, toDay });
    if (apiKeyId) query.andWhere('api_key_id = :apiKeyId', { apiKeyId });
    const raw: Array<Record<string, string | number>> = await query.getRawMany();
    return raw.map((row) => ({
      day: String(row.day), operation: String(row.operation), apiKeyId: String(row.api_key_id),
      requests: Number(row.requests), errors: Number(row.errors), tokens: Number(row.tokens), cost: Number(row.cost_usd),
      latencySum: Number(row.latency_sum_ms), latencyCount: Number(row.latency_count),
    }));
  }

  private async eventRows(organizationId: string, apiKeyId: string | null, from: Date, to: Date, includeTo: boolean) {
    if (from.getTime() > to.getTime() || (from.getTime() === to.getTime() && !includeTo)) return [];
    const query = this.deps.dataSource.getRepository(UsageEventEntity).createQueryBuilder('e')
      .where(`e.organization_id = :organizationId AND e.at >= :from AND e.at ${includeTo ? '<=' : '<'} :to`, { organizationId, from, to });
    if (apiKeyId) query.andWhere('e.api_key_id = :apiKeyId', { apiKeyId });
    const events = await query.getMany();
    return events.map((event) => ({
      day: event.at.toISOString().slice(0, 10), hour: hourOf(event.at), operation: event.operation, apiKeyId: event.apiKeyId,
      requests: 1, errors: event.isError ? 1 : 0, tokens: event.tokens, cost: event.costUsd,
      latencySum: event.latencyMs ?? 0, latencyCount: event.latencyMs === null ? 0 : 1,
    }));
  }
}


function nonNegative(field: string, value: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new BadUserInputError(field, 'must be a finite number');
  if (value < 0 || value > max) throw new BadUserInputError(field, `must be between 0 and ${max} (got ${value})`);
  return value;
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** SQLite returns stored datetimes as "YYYY-MM-DD HH:MM:SS.SSS" (UTC) in raw rows; MySQL as Date. */
function parseStoredDate(value: string | Date): Date {
  if (value instanceof Date) return value;
  return new Date(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
}

function emptySums(): Sums {
  return { requests: 0, errors: 0, tokens: 0, cost: 0, latencySum: 0, latencyCount: 0 };
}

function addSums(into: Sums, from: Sums): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.tokens += from.tokens;
  into.cost += from.cost;
  into.latencySum += from.latencySum;
  into.latencyCount += from.latencyCount;
}

function present(sums: Sums): Omit<UsageBucket, 'key'> {
  return {
    requests: sums.requests,
    errors: sums.errors,
    tokens: sums.tokens,
    costUsd: Math.round(sums.cost * 1e9) / 1e9,
    avgLatencyMs: sums.latencyCount === 0 ? null : sums.latencySum / sums.latencyCount,
  };
}
