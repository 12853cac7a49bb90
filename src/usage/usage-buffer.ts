import { DataSource, EntityManager } from 'typeorm';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { newId } from '../ids';
import type { Logger } from '../logger';
import { isStoreUnreachable } from '../db/store-errors';
import { OutageLog } from '../outage-log';
import type { VerifyCode } from '../auth/verify-code';
import { UsageJournal } from './usage-journal';

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
  /** True when `tokens` is the characters / 4 estimate. */
  tokensEstimated?: boolean;
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
  /** How long the names of applied journal segments are kept (milliseconds). */
  journalMarkerRetentionMs: 30 * 86_400_000,
  /** Above this many waiting events (database down), the oldest are dropped and logged. */
  maxBacklog: 200_000,
} as const;

/** Stored for outcomes whose key is unknown (NOT_FOUND): part of the primary key, so not NULL. */
export const NO_KEY = '';

interface UsageEvent {
  id: string;
  organizationId: string;
  apiKeyId: string;
  sessionId: string | null;
  operation: string;
  statusCode: number | null;
  isError: boolean;
  latencyMs: number | null;
  tokens: number;
  costUsd: number;
  /** Milliseconds since the epoch. */
  at: number;
  tokensEstimated: boolean;
}

interface Refusal extends RateLimitRefusal {
  id: string;
  at: number;
}

interface OutcomeCount {
  hour: string;
  organizationId: string;
  apiKeyId: string;
  code: VerifyCode;
  count: number;
}

/**
 * One journal line per record, a JSON array led by its kind:
 *   ["e", id, organizationId, apiKeyId, sessionId, operation, statusCode, isError, latencyMs, tokens, costUsd, at, tokensEstimated]
 *       (tokensEstimated 0/1; absent in journals written before it existed: 0)
 *   ["k", apiKeyId, at]                         a verified use of a key (requestCount, lastUsedAt)
 *   ["o", hour, organizationId, apiKeyId, code]  a verifyKey outcome
 *   ["r", id, apiKeyId, organizationId, name, limit, operation, ip, at]   a rate-limit refusal
 */
type JournalRecord =
  | ['e', string, string, string, string | null, string, number | null, 0 | 1, number | null, number, number, number, (0 | 1)?]
  | ['k', string, number]
  | ['o', string, string, string, VerifyCode]
  | ['r', string, string, string, string, number, string | null, string | null, number];

/** What one flush writes: everything recorded since the last one. */
class Batch {
  events: UsageEvent[] = [];
  keyStats = new Map<string, { count: number; lastUsedAt: number }>();
  refusals: Refusal[] = [];
  outcomes = new Map<string, OutcomeCount>();

  get isEmpty(): boolean {
    return this.events.length === 0 && this.keyStats.size === 0 && this.refusals.length === 0 && this.outcomes.size === 0;
  }

  apply(record: JournalRecord): void {
    switch (record[0]) {
      case 'e': {
        const [, id, organizationId, apiKeyId, sessionId, operation, statusCode, isError, latencyMs, tokens, costUsd, at, tokensEstimated] = record;
        this.events.push({ id, organizationId, apiKeyId, sessionId, operation, statusCode, isError: isError === 1, latencyMs, tokens, costUsd, at, tokensEstimated: tokensEstimated === 1 });
        break;
      }
      case 'k': {
        const [, apiKeyId, at] = record;
        const stats = this.keyStats.get(apiKeyId);
        if (!stats) this.keyStats.set(apiKeyId, { count: 1, lastUsedAt: at });
        else {
          stats.count += 1;
          if (at > stats.lastUsedAt) stats.lastUsedAt = at;
        }
        break;
      }
      case 'o': {
        const [, hour, organizationId, apiKeyId, code] = record;
        const id = `${hour}\u0000${organizationId}\u0000${apiKeyId}\u0000${code}`;
        const counted = this.outcomes.get(id);
        if (counted) counted.count += 1;
        else this.outcomes.set(id, { hour, organizationId, apiKeyId, code, count: 1 });
        break;
      }
      case 'r': {
        const [, id, apiKeyId, organizationId, name, limit, operation, ip, at] = record;
        this.refusals.push({ id, apiKeyId, organizationId, name, limit, operation, ip, at });
        break;
      }
    }
  }

  /** `older`'s content put before this one's (a batch the database could not take, kept for the next try). */
  prepend(older: Batch): void {
    this.events = [...older.events, ...this.events];
    this.refusals = [...older.refusals, ...this.refusals];
    for (const [id, stats] of older.keyStats) {
      const newer = this.keyStats.get(id);
      this.keyStats.set(id, newer ? { count: newer.count + stats.count, lastUsedAt: Math.max(newer.lastUsedAt, stats.lastUsedAt) } : stats);
    }
    for (const [id, counted] of older.outcomes) {
      const newer = this.outcomes.get(id);
      if (newer) newer.count += counted.count;
      else this.outcomes.set(id, counted);
    }
  }
}

/**
 * Analytics written in batches: usage events (with their daily and hourly rollups), verification
 * outcome counts, each key's lastUsedAt / requestCount, and the rate-limit log. Quota counters are
 * NOT here: they are written before a request is admitted (a crash cannot give back spent quota).
 *
 * Durable before answered: every record goes to the usage journal (usage-journal.ts) as it is
 * taken, and the server persists the journal before any response leaves (server.ts), so a crash
 * of the process loses nothing that was answered; the next start replays what the database had
 * not yet taken (`recover`). A batch is written in one transaction, together with the name of the
 * journal segment(s) holding it, so a replay never counts anything twice.
 *
 * Fast: a record is an in-memory aggregate and one line appended to a string; the database sees
 * one transaction per flush (every second or 500 events) of prepared statements (SQLite) or
 * multi-row statements (MySQL).
 */
export class UsageBuffer {
  private batch = new Batch();
  private refusalsPerKey = new Map<string, number>();
  /** Segments holding records of the current batch that a failed flush kept (written with it). */
  private pendingSegments: string[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  private readonly writer: BatchWriter;

  constructor(
    private readonly dataSource: DataSource,
    private readonly transactions: Transactions,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly journal: UsageJournal,
    /** The database's outages, logged once each (a flush that fails and the next that succeeds say when). */
    private readonly outages: OutageLog = new OutageLog('database', logger),
    private readonly options = USAGE_BUFFER_DEFAULTS,
  ) {
    this.writer = dataSource.options.type === 'better-sqlite3' ? new SqliteBatchWriter() : new MysqlBatchWriter();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes everything still waiting, including what arrives meanwhile. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (let round = 0; round < 10 && (!this.batch.isEmpty || this.flushing); round++) {
      await this.flush();
    }
  }

  /** stop(), then closes the journal (what the database could not take stays in it for the next start). */
  async close(): Promise<void> {
    await this.stop();
    this.journal.close();
  }

  /** Hands every record taken so far to the operating system: called before any response is sent. */
  persist(): void {
    this.journal.persist();
  }

  get depth(): number {
    return this.batch.events.length + this.batch.refusals.length;
  }

  /** A usage event. */
  record(input: UsageEventInput): void {
    const at = this.clock.now();
    this.take(['e', newId('evt', at), input.organizationId, input.apiKeyId, input.sessionId ?? null, input.operation.slice(0, 200),
      input.statusCode ?? null, input.isError ? 1 : 0, input.latencyMs ?? null, input.tokens ?? 0, input.costUsd ?? 0, at.getTime(),
      input.tokensEstimated ? 1 : 0]);
    if (this.batch.events.length >= this.options.maxEvents && !this.flushing) void this.flush();
  }

  /** Step 11 of the pipeline: a verified use of a key. */
  touchKey(apiKeyId: string): void {
    this.take(['k', apiKeyId, this.clock.now().getTime()]);
  }

  refused(refusal: RateLimitRefusal): void {
    const seen = this.refusalsPerKey.get(refusal.apiKeyId) ?? 0;
    this.refusalsPerKey.set(refusal.apiKeyId, seen + 1);
    if (seen >= this.options.maxRefusalsPerKeyPerFlush) return;
    const at = this.clock.now();
    this.take(['r', newId('evt', at), refusal.apiKeyId, refusal.organizationId, refusal.name, refusal.limit,
      refusal.operation?.slice(0, 200) ?? null, refusal.ip?.slice(0, 64) ?? null, at.getTime()]);
  }

  /**
   * One verifyKey outcome, counted per UTC hour, organization, key (NO_KEY when none is
   * known) and code: a counter increment, however many verifications there are.
   */
  countOutcome(organizationId: string, apiKeyId: string | null, code: VerifyCode): void {
    this.take(['o', hourOf(this.clock.now()), organizationId, apiKeyId ?? NO_KEY, code]);
  }

  private take(record: JournalRecord): void {
    this.journal.append(JSON.stringify(record));
    this.batch.apply(record);
  }

  /** Writes what is waiting; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.batch.isEmpty ? undefined : this.flush()));
    if (this.batch.isEmpty) return Promise.resolve();
    this.flushing = this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  /**
   * Replays the journal segments that processes now gone left behind (a crash): each one the
   * database has not taken yet is written, once; then the files go. Run at start, before serving.
   */
  async recover(): Promise<{ segments: number; replayed: number }> {
    const leftovers = this.journal.leftovers();
    if (leftovers.length === 0) return { segments: 0, replayed: 0 };
    const applied = await this.writer.appliedSegments(this.dataSource.manager, leftovers.map((leftover) => leftover.segment));
    const batch = new Batch();
    const replaying: string[] = [];
    for (const { segment, lines } of leftovers) {
      if (applied.has(segment)) continue;
      replaying.push(segment);
      for (const line of lines) batch.apply(JSON.parse(line) as JournalRecord);
    }
    if (replaying.length > 0) {
      await this.transactions.run((tx) => this.writer.write(tx, batch, replaying, this.clock.now()));
      this.logger.warn({ segments: replaying.length, events: batch.events.length }, 'usage journal replayed: usage recorded before a crash was written');
    }
    this.journal.release(leftovers.map((leftover) => leftover.segment));
    return { segments: leftovers.length, replayed: replaying.length };
  }

  private async write(): Promise<void> {
    const batch = this.batch;
    const segments = [...this.pendingSegments, this.journal.rotate()];
    this.batch = new Batch();
    this.pendingSegments = [];
    this.refusalsPerKey = new Map();
    try {
      await this.transactions.run((tx) => this.writer.write(tx, batch, segments, this.clock.now()));
    } catch (error) {
      if (!isStoreUnreachable(error)) {
        // The database refused this batch itself: retrying it would block every later flush.
        this.logger.error({ err: error, events: batch.events.length, refusals: batch.refusals.length, outcomes: batch.outcomes.size }, 'usage batch refused by the database; dropped');
        this.journal.release(segments);
        return;
      }
      // Keep it for the next attempt (bounded), so a database blip loses nothing.
      this.batch.prepend(batch);
      this.pendingSegments = segments;
      if (this.batch.events.length > this.options.maxBacklog) {
        const dropped = this.batch.events.length - this.options.maxBacklog;
        this.batch.events = this.batch.events.slice(dropped);
        this.logger.error({ dropped }, 'usage buffer over its backlog limit; oldest events dropped');
      }
      this.outages.down(error, { waiting: this.depth });
      return;
    }
    this.outages.up();
    this.journal.release(segments);
    await this.prune();
  }

  /** The rate-limit log's retention and old journal markers, once a minute. */
  private async prune(): Promise<void> {
    const now = this.clock.now().getTime();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    await this.dataSource.createQueryBuilder().delete().from('rate_limit_events')
      .where('at < :before', { before: new Date(now - this.options.rateLimitLogRetentionMs) })
      .execute();
    await this.dataSource.createQueryBuilder().delete().from('usage_journal_segments')
      .where('applied_at < :before', { before: new Date(now - this.options.journalMarkerRetentionMs) })
      .execute();
  }
}

/** The UTC hour a moment falls in, as stored in usage_hourly and verification_outcomes: 'YYYY-MM-DDTHH'. */
export function hourOf(at: Date): string {
  return at.toISOString().slice(0, 13);
}

type Row = Array<string | number | null>;

const SUM_COLUMNS = ['requests', 'errors', 'tokens', 'cost_usd', 'latency_sum_ms', 'latency_count'] as const;
const EVENT_COLUMNS = ['id', 'organization_id', 'api_key_id', 'session_id', 'operation', 'status_code', 'is_error', 'latency_ms', 'tokens', 'cost_usd', 'at', 'tokens_estimated'];
const REFUSAL_COLUMNS = ['id', 'api_key_id', 'organization_id', 'name', 'limit_value', 'operation', 'ip', 'at'];

/** The rows one batch adds to each table; dates in the database's own text form. */
function rowsOf(batch: Batch, segments: readonly string[], now: Date, date: (ms: number) => string | Date) {
  return {
    events: batch.events.map((e): Row => [e.id, e.organizationId, e.apiKeyId, e.sessionId, e.operation, e.statusCode, e.isError ? 1 : 0, e.latencyMs, e.tokens, e.costUsd, date(e.at) as string, e.tokensEstimated ? 1 : 0]),
    daily: sums(batch.events, (e) => {
      const day = new Date(e.at).toISOString().slice(0, 10);
      return [`${day}\u0000${e.organizationId}\u0000${e.apiKeyId}\u0000${e.operation}`, [day, e.organizationId, e.apiKeyId, e.operation]];
    }),
    hourly: sums(batch.events, (e) => {
      const hour = hourOf(new Date(e.at));
      return [`${hour}\u0000${e.organizationId}\u0000${e.apiKeyId}`, [hour, e.organizationId, e.apiKeyId]];
    }),
    outcomes: [...batch.outcomes.values()].map((o): Row => [o.hour, o.organizationId, o.apiKeyId, o.code, o.count]),
    keyStats: [...batch.keyStats].map(([id, stats]): Row => [stats.count, date(stats.lastUsedAt) as string, id]),
    refusals: batch.refusals.map((r): Row => [r.id, r.apiKeyId, r.organizationId, r.name, r.limit, r.operation, r.ip, date(r.at) as string]),
    segments: segments.map((segment): Row => [segment, date(now.getTime()) as string]),
  };
}

/** Key columns, then requests, errors, tokens, cost, latency sum and count of `events`, per bucket. */
function sums(events: readonly UsageEvent[], bucketOf: (event: UsageEvent) => [string, string[]]): Row[] {
  const rows = new Map<string, Row>();
  for (const event of events) {
    const [id, key] = bucketOf(event);
    let row = rows.get(id);
    if (!row) rows.set(id, (row = [...key, 0, 0, 0, 0, 0, 0]));
    const at = key.length;
    (row[at] as number) += 1;
    (row[at + 1] as number) += event.isError ? 1 : 0;
    (row[at + 2] as number) += event.tokens;
    (row[at + 3] as number) += event.costUsd;
    if (event.latencyMs !== null) {
      (row[at + 4] as number) += event.latencyMs;
      (row[at + 5] as number) += 1;
    }
  }
  return [...rows.values()];
}

/** Writes one batch inside the caller's transaction, with the names of its journal segments. */
interface BatchWriter {
  write(tx: EntityManager, batch: Batch, segments: readonly string[], now: Date): Promise<void>;
  /** Which of `segments` the database already took. */
  appliedSegments(manager: EntityManager, segments: readonly string[]): Promise<Set<string>>;
}

interface SqliteStatement {
  run(...values: unknown[]): unknown;
  all(...values: unknown[]): unknown[];
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
}

/** Event rows per INSERT statement on SQLite, and per synchronous slice of a flush (≈ 0.2 ms). */
const SQLITE_CHUNK = 25;

/** How TypeORM stores datetimes in SQLite (UTC, milliseconds). */
function sqliteDate(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/**
 * SQLite: prepared statements on TypeORM's own connection, inside the transaction it opened.
 * better-sqlite3 is synchronous, so the event rows go in slices of 25 (one statement each),
 * yielding to the event loop in between: no request waits on more than one slice.
 */
class SqliteBatchWriter implements BatchWriter {
  private readonly statements = new Map<string, SqliteStatement>();

  private statement(db: SqliteDatabase, sql: string): SqliteStatement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = db.prepare(sql)));
    return statement;
  }

  async write(tx: EntityManager, batch: Batch, segments: readonly string[], now: Date): Promise<void> {
    const db = (tx.connection.driver as unknown as { databaseConnection: SqliteDatabase }).databaseConnection;
    const rows = rowsOf(batch, segments, now, sqliteDate);
    for (let i = 0; i < rows.events.length; i += SQLITE_CHUNK) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      const slice = rows.events.slice(i, i + SQLITE_CHUNK);
      this.statement(db, insertSql(sqliteName, 'usage_events', EVENT_COLUMNS, slice.length)).run(...slice.flat());
    }
    const upsert = (table: string, keys: readonly string[], increments: readonly string[], list: Row[]) => {
      const q = sqliteName;
      const statement = this.statement(db, `${insertSql(q, table, [...keys, ...increments], 1)} ON CONFLICT (${keys.map(q).join(', ')}) DO UPDATE SET ${increments.map((c) => `${q(c)} = ${q(c)} + excluded.${q(c)}`).join(', ')}`);
      for (const row of list) statement.run(...row);
    };
    upsert('usage_daily', ['day', 'organization_id', 'api_key_id', 'operation'], SUM_COLUMNS, rows.daily);
    upsert('usage_hourly', ['hour', 'organization_id', 'api_key_id'], SUM_COLUMNS, rows.hourly);
    upsert('verification_outcomes', ['hour', 'organization_id', 'api_key_id', 'code'], ['count'], rows.outcomes);
    const touch = this.statement(db, 'UPDATE api_keys SET request_count = request_count + ?, last_used_at = ? WHERE id = ?');
    for (const row of rows.keyStats) touch.run(...row);
    const refuse = this.statement(db, insertSql(sqliteName, 'rate_limit_events', REFUSAL_COLUMNS, 1));
    for (const row of rows.refusals) refuse.run(...row);
    const mark = this.statement(db, insertSql(sqliteName, 'usage_journal_segments', ['segment', 'applied_at'], 1));
    for (const row of rows.segments) mark.run(...row);
  }

  async appliedSegments(manager: EntityManager, segments: readonly string[]): Promise<Set<string>> {
    const db = (manager.connection.driver as unknown as { databaseConnection: SqliteDatabase }).databaseConnection;
    const found = db.prepare(`SELECT segment FROM usage_journal_segments WHERE segment IN (${segments.map(() => '?').join(', ')})`).all(...segments) as Array<{ segment: string }>;
    return new Set(found.map((row) => row.segment));
  }
}

/** MySQL / MariaDB: one multi-row statement per table per flush (one round trip each). */
class MysqlBatchWriter implements BatchWriter {
  async write(tx: EntityManager, batch: Batch, segments: readonly string[], now: Date): Promise<void> {
    const rows = rowsOf(batch, segments, now, (ms) => new Date(ms));
    const insert = async (table: string, columns: readonly string[], list: Row[], tail = '') => {
      if (list.length > 0) await tx.query(`${insertSql(mysqlName, table, columns, list.length)}${tail}`, list.flat());
    };
    const q = mysqlName;
    const increment = (columns: readonly string[]) => ` ON DUPLICATE KEY UPDATE ${columns.map((c) => `${q(c)} = ${q(c)} + VALUES(${q(c)})`).join(', ')}`;
    await insert('usage_events', EVENT_COLUMNS, rows.events);
    await insert('usage_daily', ['day', 'organization_id', 'api_key_id', 'operation', ...SUM_COLUMNS], rows.daily, increment(SUM_COLUMNS));
    await insert('usage_hourly', ['hour', 'organization_id', 'api_key_id', ...SUM_COLUMNS], rows.hourly, increment(SUM_COLUMNS));
    await insert('verification_outcomes', ['hour', 'organization_id', 'api_key_id', 'code', 'count'], rows.outcomes, increment(['count']));
    if (rows.keyStats.length > 0) {
      // One statement for every key touched: CASE per column, keyed by id.
      const cases = (otherwise: string) => `${rows.keyStats.map(() => 'WHEN ? THEN ?').join(' ')} ELSE ${otherwise} END`;
      await tx.query(
        `UPDATE api_keys SET request_count = request_count + CASE id ${cases('0')}, last_used_at = CASE id ${cases('last_used_at')} WHERE id IN (${rows.keyStats.map(() => '?').join(', ')})`,
        [...rows.keyStats.flatMap(([count, , id]) => [id, count]), ...rows.keyStats.flatMap(([, at, id]) => [id, at]), ...rows.keyStats.map(([, , id]) => id)],
      );
    }
    await insert('rate_limit_events', REFUSAL_COLUMNS, rows.refusals);
    await insert('usage_journal_segments', ['segment', 'applied_at'], rows.segments);
  }

  async appliedSegments(manager: EntityManager, segments: readonly string[]): Promise<Set<string>> {
    const found: Array<{ segment: string }> = await manager.query(`SELECT segment FROM usage_journal_segments WHERE segment IN (${segments.map(() => '?').join(', ')})`, [...segments]);
    return new Set(found.map((row) => row.segment));
  }
}

/** `INSERT INTO table (columns) VALUES (?, …), …` for `rows` rows; names quoted by `quote`. */
function insertSql(quote: (name: string) => string, table: string, columns: readonly string[], rows: number): string {
  const row = `(${columns.map(() => '?').join(', ')})`;
  return `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`;
}

const sqliteName = (name: string) => `"${name}"`;
const mysqlName = (name: string) => `\`${name}\``;
