import { DataSource, EntityManager } from 'typeorm';
import { UsageEventEntity } from './usage-event.entity';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { RateLimitEventEntity } from '../rate-limits/rate-limit-event.entity';
import { insertOrIncrement } from '../db/upsert';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { newId } from '../ids';
import type { Logger } from '../logger';
import { isStoreUnreachable } from '../db/store-errors';
import type { VerifyCode } from '../auth/verify-code';

/** A usage event: one GraphQL operation, verified request or recordUsage. */
export interface UsageEventInput {
  organizationId: string;
  apiKeyId: string;
  sessionId?: string | null;
  operation: string;
  statusCode?: number | null;
  isError: boolean;
  latencyMs?: number | null;
  tokens?: number;
  costUsd?: number;
}

/** A request a rate-limit window refused, for the key's rate-limit log. */
export interface RateLimitRefusal {
  apiKeyId: string;
  organizationId: string;
  name: string;
  limit: number;
  operation: string | null;
  ip: string | null;
}


export const USAGE_BUFFER_DEFAULTS = {
  /** Flush at least this often (milliseconds). */
  flushIntervalMs: 1_000,
  /** …or as soon as this many events wait. */
  maxEvents: 500,
  /** Refusals kept in the rate-limit log per key per flush; the rest are only counted. */
  maxRefusalsPerKeyPerFlush: 20,
  /** Rate-limit log retention (milliseconds). */
  rateLimitLogRetentionMs: 24 * 3600_000,
  /** Above this many waiting events (database down), the oldest are dropped and logged. */
  maxBacklog: 200_000,
} as const;

/** Stored for outcomes whose key is unknown (NOT_FOUND): part of the primary key, so not NULL. */
export const NO_KEY = '';

interface OutcomeCount {
  hour: string;
  organizationId: string;
  apiKeyId: string;
  code: VerifyCode;
  count: number;
}

/**
 * Analytics that may lag by up to a second: usage events (with their daily and hourly
 * rollups), verification outcome counts, each key's lastUsedAt / requestCount, and the
 * rate-limit log. Buffered in memory and written in one transaction per flush; `stop()`
 * flushes what is left. Quota counters are NOT here: they are written before a request is
 * admitted (a crash cannot give back spent quota).
 */
export class UsageBuffer {
  private events: UsageEventEntity[] = [];
  private keyStats = new Map<string, { count: number; lastUsedAt: Date }>();
  private refusals: RateLimitEventEntity[] = [];
  private refusalsPerKey = new Map<string, number>();
  private outcomes = new Map<string, OutcomeCount>();
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;

  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options = USAGE_BUFFER_DEFAULTS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes everything still waiting, including what arrives meanwhile. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (let round = 0; round < 10 && (!this.isEmpty() || this.flushing); round++) {
      await this.flush();
    }
  }

  get depth(): number {
    return this.events.length + this.refusals.length;
  }

  private isEmpty(): boolean {
    return this.depth === 0 && this.keyStats.size === 0 && this.outcomes.size === 0;
  }

  /** A usage event; also counts as a use of the key (lastUsedAt, requestCount). */
  record(input: UsageEventInput): void {
    const at = this.clock.now();
    this.events.push(Object.assign(new UsageEventEntity(), {
      id: newId('evt', at),
      organizationId: input.organizationId,
      apiKeyId: input.apiKeyId,
      sessionId: input.sessionId ?? null,
      operation: input.operation.slice(0, 200),
      statusCode: input.statusCode ?? null,
      isError: input.isError,
      latencyMs: input.latencyMs ?? null,
      tokens: input.tokens ?? 0,
      costUsd: input.costUsd ?? 0,
      at,
    }));
    if (this.events.length >= this.options.maxEvents && !this.flushing) void this.flush();
  }

  /** Step 11 of the pipeline: a verified use of a key. */
  touchKey(apiKeyId: string): void {
    const at = this.clock.now();
    const stats = this.keyStats.get(apiKeyId);
    if (stats) {
      stats.count += 1;
      if (at > stats.lastUsedAt) stats.lastUsedAt = at;
    } else {
      this.keyStats.set(apiKeyId, { count: 1, lastUsedAt: at });
    }
  }

  refused(refusal: RateLimitRefusal): void {
    const seen = this.refusalsPerKey.get(refusal.apiKeyId) ?? 0;
    this.refusalsPerKey.set(refusal.apiKeyId, seen + 1);
    if (seen >= this.options.maxRefusalsPerKeyPerFlush) return;
    const at = this.clock.now();
    this.refusals.push(Object.assign(new RateLimitEventEntity(), {
      id: newId('evt', at), ...refusal, operation: refusal.operation?.slice(0, 200) ?? null, ip: refusal.ip?.slice(0, 64) ?? null, at,
    }));
  }

  /**
   * One verifyKey outcome, counted per UTC hour, organization, key (NO_KEY when none is
   * known) and code: a counter increment, however many verifications there are.
   */
  countOutcome(organizationId: string, apiKeyId: string | null, code: VerifyCode): void {
    const hour = hourOf(this.clock.now());
    const key = apiKeyId ?? NO_KEY;
    const id = `${hour}\u0000${organizationId}\u0000${key}\u0000${code}`;
    const counted = this.outcomes.get(id);
    if (counted) counted.count += 1;
    else this.outcomes.set(id, { hour, organizationId, apiKeyId: key, code, count: 1 });
  }

  /** Writes what is waiting; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.isEmpty() ? undefined : this.flush()));
    if (this.isEmpty()) return Promise.resolve();
    this.flushing = this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    const events = this.events;
    const keyStats = this.keyStats;
    const refusals = this.refusals;
    const outcomes = this.outcomes;
    this.events = [];
    this.keyStats = new Map();
    this.refusals = [];
    this.refusalsPerKey = new Map();
    this.outcomes = new Map();
    try {
      await this.transactions.run(async (tx) => {
        const sqlite = sqliteConnection(tx);
        if (sqlite) {
          // Chunks, yielding in between, so no request waits on more than one chunk's write.
          for (let i = 0; i < events.length; i += SQLITE_CHUNK) {
            if (i > 0) await new Promise((resolve) => setImmediate(resolve));
            insertEventsSqlite(sqlite, events.slice(i, i + SQLITE_CHUNK));
          }
        } else {
          for (let i = 0; i < events.length; i += 100) {
            await tx.createQueryBuilder().insert().into(UsageEventEntity).values(events.slice(i, i + 100)).updateEntity(false).execute();
          }
        }
        await insertOrIncrement(tx, 'usage_daily', ['day', 'organization_id', 'api_key_id', 'operation'],
          ['requests', 'errors', 'tokens', 'cost_usd', 'latency_sum_ms', 'latency_count'], rollup(events));
        await insertOrIncrement(tx, 'usage_hourly', ['hour', 'organization_id', 'api_key_id'],
          ['requests', 'errors', 'tokens', 'cost_usd', 'latency_sum_ms', 'latency_count'], hourlyRollup(events));
        await insertOrIncrement(tx, 'verification_outcomes', ['hour', 'organization_id', 'api_key_id', 'code'], ['count'],
          [...outcomes.values()].map((o) => ({ hour: o.hour, organization_id: o.organizationId, api_key_id: o.apiKeyId, code: o.code, count: o.count })));
        for (const [id, stats] of keyStats) {
          await tx.createQueryBuilder().update(ApiKeyEntity)
            .set({ requestCount: () => 'request_count + :count', lastUsedAt: stats.lastUsedAt })
            .where('id = :id', { id, count: stats.count })
            .execute();
        }
        for (let i = 0; i < refusals.length; i += 100) {
          await tx.createQueryBuilder().insert().into(RateLimitEventEntity).values(refusals.slice(i, i + 100)).updateEntity(false).execute();
        }
      });
    } catch (error) {
      if (!isStoreUnreachable(error)) {
        // The database refused this batch itself: retrying it would block every later flush.
        this.logger.error({ err: error, events: events.length, refusals: refusals.length, outcomes: outcomes.size }, 'usage batch refused by the database; dropped');
        return;
      }
      // Keep the data for the next attempt (bounded), so a database blip loses nothing.
      this.events = [...events, ...this.events];
      for (const [id, stats] of keyStats) {
        const newer = this.keyStats.get(id);
        this.keyStats.set(id, newer ? { count: newer.count + stats.count, lastUsedAt: newer.lastUsedAt > stats.lastUsedAt ? newer.lastUsedAt : stats.lastUsedAt } : stats);
      }
      this.refusals = [...refusals, ...this.refusals];
      for (const [id, counted] of outcomes) {
        const newer = this.outcomes.get(id);
        if (newer) newer.count += counted.count;
        else this.outcomes.set(id, counted);
      }
      if (this.events.length > this.options.maxBacklog) {
        const dropped = this.events.length - this.options.maxBacklog;
        this.events = this.events.slice(dropped);
        this.logger.error({ dropped }, 'usage buffer over its backlog limit; oldest events dropped');
      }
      this.logger.error({ err: error, waiting: this.depth }, 'usage flush failed; will retry');
      return;
    }
    await this.pruneRateLimitLog();
  }

  private async pruneRateLimitLog(): Promise<void> {
    const now = this.clock.now().getTime();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    await this.dataSource.createQueryBuilder().delete().from(RateLimitEventEntity)
      .where('at < :before', { before: new Date(now - this.options.rateLimitLogRetentionMs) })
      .execute();
  }
}

interface SqliteDatabase {
  prepare(sql: string): { run(...values: unknown[]): unknown };
}

/** The better-sqlite3 handle behind a SQLite EntityManager (one connection), or null on MySQL. */
function sqliteConnection(manager: EntityManager): SqliteDatabase | null {
  if (manager.connection.options.type !== 'better-sqlite3') return null;
  return (manager.connection.driver as unknown as { databaseConnection: SqliteDatabase }).databaseConnection;
}

/** How TypeORM stores datetimes in SQLite (UTC, milliseconds). */
function sqliteDate(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** Rows per synchronous SQLite write (≈ 0.2 ms): the longest any request waits on a flush. */
const SQLITE_CHUNK = 25;

const statements = new WeakMap<SqliteDatabase, { run(...values: unknown[]): unknown }>();

/**
 * SQLite fast path, run inside the open transaction on the same connection. better-sqlite3 is
 * synchronous, so the flush blocks the event loop while it runs: one prepared statement for
 * the whole batch takes a fraction of what TypeORM's query building does.
 */
function insertEventsSqlite(db: SqliteDatabase, events: readonly UsageEventEntity[]): void {
  let insert = statements.get(db);
  if (!insert) {
    insert = db.prepare('INSERT INTO usage_events (id, organization_id, api_key_id, session_id, operation, status_code, is_error, latency_ms, tokens, cost_usd, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    statements.set(db, insert);
  }
  for (const e of events) {
    insert.run(e.id, e.organizationId, e.apiKeyId, e.sessionId, e.operation, e.statusCode, e.isError ? 1 : 0, e.latencyMs, e.tokens, e.costUsd, sqliteDate(e.at));
  }
}

/** The UTC hour a moment falls in, as stored in usage_hourly and verification_outcomes: 'YYYY-MM-DDTHH'. */
export function hourOf(at: Date): string {
  return at.toISOString().slice(0, 13);
}

/** Per (day, organization, key, operation) sums of a batch: what usage_daily adds. */
function rollup(events: readonly UsageEventEntity[]): Array<Record<string, string | number>> {
  return sums(events, (event) => {
    const day = event.at.toISOString().slice(0, 10);
    return [`${day}\u0000${event.organizationId}\u0000${event.apiKeyId}\u0000${event.operation}`,
      { day, organization_id: event.organizationId, api_key_id: event.apiKeyId, operation: event.operation }];
  });
}

/** Per (hour, organization, key) sums of a batch: what usage_hourly adds. */
function hourlyRollup(events: readonly UsageEventEntity[]): Array<Record<string, string | number>> {
  return sums(events, (event) => {
    const hour = hourOf(event.at);
    return [`${hour}\u0000${event.organizationId}\u0000${event.apiKeyId}`, { hour, organization_id: event.organizationId, api_key_id: event.apiKeyId }];
  });
}

/** Requests, errors, tokens, cost and latency of `events`, summed per the bucket `bucketOf` names. */
function sums(events: readonly UsageEventEntity[], bucketOf: (event: UsageEventEntity) => [string, Record<string, string>]): Array<Record<string, string | number>> {
  const rows = new Map<string, Record<string, string | number>>();
  for (const event of events) {
    const [id, columns] = bucketOf(event);
    let row = rows.get(id);
    if (!row) {
      row = { ...columns, requests: 0, errors: 0, tokens: 0, cost_usd: 0, latency_sum_ms: 0, latency_count: 0 };
      rows.set(id, row);
    }
    (row.requests as number) += 1;
    (row.errors as number) += event.isError ? 1 : 0;
    (row.tokens as number) += event.tokens;
    (row.cost_usd as number) += event.costUsd;
    if (event.latencyMs !== null) {
      (row.latency_sum_ms as number) += event.latencyMs;
      (row.latency_count as number) += 1;
    }
  }
  return [...rows.values()];
}
