import type { EntityManager } from 'typeorm';

/** One counter row: a quota in one period. */
export interface CounterRef {
  quotaId: string;
  periodKey: string;
}

/**
 * The quota_counters statements of the verification hot path (pipeline step 9, run on every
 * metered request), as prepared statements on the connection of the caller's transaction:
 * better-sqlite3 statements prepared once (SQLite has one connection, so they run inside the
 * transaction TypeORM opened on it), mysql2 `execute` on the transaction's own pooled connection
 * (or the pool outside one). TypeORM stays for everything else; building and parsing a query
 * through it costs more than the statement itself.
 */
export interface QuotaCounterStatements {
  /** `used += amount` if `used + amount <= limit`; true when the units were taken. */
  take(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean>;
  /** The counter row at 0, unless it exists. */
  ensure(manager: EntityManager, counter: CounterRef): Promise<void>;
  /** Whether the row exists. */
  exists(manager: EntityManager, counter: CounterRef): Promise<boolean>;
  /** `held += amount` if `used + held + amount <= limit` (reserveUsage); true when it was held. */
  hold(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean>;
  /** `used` and `held` of every counter that exists, by quota id. */
  used(manager: EntityManager, counters: readonly CounterRef[]): Promise<Map<string, CounterState>>;
}

export interface CounterState {
  used: number;
  held: number;
}

interface SqliteStatement {
  run(...values: unknown[]): { changes: number };
  get(...values: unknown[]): unknown;
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
}

const TAKE = 'UPDATE quota_counters SET used = used + ? WHERE quota_id = ? AND period_key = ? AND used + ? <= ?';
const HOLD = 'UPDATE quota_counters SET held = held + ? WHERE quota_id = ? AND period_key = ? AND used + held + ? <= ?';
const USED = 'SELECT used, held FROM quota_counters WHERE quota_id = ? AND period_key = ?';

/** The statements for the database behind `manager`. */
export function quotaCounterStatements(manager: EntityManager): QuotaCounterStatements {
  return manager.connection.options.type === 'better-sqlite3' ? new SqliteQuotaCounters() : new MysqlQuotaCounters();
}

class SqliteQuotaCounters implements QuotaCounterStatements {
  private statements: { db: SqliteDatabase; take: SqliteStatement; hold: SqliteStatement; ensure: SqliteStatement; used: SqliteStatement } | null = null;

  private on(manager: EntityManager) {
    const db = (manager.connection.driver as unknown as { databaseConnection: SqliteDatabase }).databaseConnection;
    if (this.statements?.db !== db) {
      this.statements = {
        db,
        take: db.prepare(TAKE),
        hold: db.prepare(HOLD),
        ensure: db.prepare('INSERT OR IGNORE INTO quota_counters (quota_id, period_key, used) VALUES (?, ?, 0)'),
        used: db.prepare(USED),
      };
    }
    return this.statements;
  }

  async take(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean> {
    return this.on(manager).take.run(amount, counter.quotaId, counter.periodKey, amount, limit).changes > 0;
  }

  async hold(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean> {
    return this.on(manager).hold.run(amount, counter.quotaId, counter.periodKey, amount, limit).changes > 0;
  }

  async ensure(manager: EntityManager, counter: CounterRef): Promise<void> {
    this.on(manager).ensure.run(counter.quotaId, counter.periodKey);
  }

  async exists(manager: EntityManager, counter: CounterRef): Promise<boolean> {
    return this.on(manager).used.get(counter.quotaId, counter.periodKey) !== undefined;
  }

  async used(manager: EntityManager, counters: readonly CounterRef[]): Promise<Map<string, CounterState>> {
    const statement = this.on(manager).used;
    const used = new Map<string, CounterState>();
    for (const counter of counters) {
      const row = statement.get(counter.quotaId, counter.periodKey) as CounterState | undefined;
      if (row) used.set(counter.quotaId, { used: row.used, held: row.held });
    }
    return used;
  }
}

type MysqlCallback = (error: Error | null, result: unknown) => void;
interface MysqlExecutor {
  execute(sql: string, values: unknown[], callback: MysqlCallback): void;
}

class MysqlQuotaCounters implements QuotaCounterStatements {
  /** The transaction's connection when `manager` belongs to one, else the pool. */
  private execute(manager: EntityManager, sql: string, values: unknown[]): Promise<unknown> {
    const connection = (manager.queryRunner as unknown as { databaseConnection?: MysqlExecutor } | undefined)?.databaseConnection
      ?? (manager.connection.driver as unknown as { pool: MysqlExecutor }).pool;
    return new Promise((resolve, reject) => {
      connection.execute(sql, values, (error, result) => (error ? reject(error) : resolve(result)));
    });
  }

  async take(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean> {
    const result = await this.execute(manager, TAKE, [amount, counter.quotaId, counter.periodKey, amount, limit]) as { affectedRows: number };
    return result.affectedRows > 0;
  }

  async hold(manager: EntityManager, counter: CounterRef, amount: number, limit: number): Promise<boolean> {
    const result = await this.execute(manager, HOLD, [amount, counter.quotaId, counter.periodKey, amount, limit]) as { affectedRows: number };
    return result.affectedRows > 0;
  }

  async ensure(manager: EntityManager, counter: CounterRef): Promise<void> {
    await this.execute(manager, 'INSERT IGNORE INTO quota_counters (quota_id, period_key, used) VALUES (?, ?, 0)', [counter.quotaId, counter.periodKey]);
  }

  async exists(manager: EntityManager, counter: CounterRef): Promise<boolean> {
    return ((await this.execute(manager, USED, [counter.quotaId, counter.periodKey])) as unknown[]).length > 0;
  }

  async used(manager: EntityManager, counters: readonly CounterRef[]): Promise<Map<string, CounterState>> {
    const used = new Map<string, CounterState>();
    if (counters.length === 0) return used;
    const rows = await this.execute(
      manager,
      `SELECT quota_id, used, held FROM quota_counters WHERE ${counters.map(() => '(quota_id = ? AND period_key = ?)').join(' OR ')}`,
      counters.flatMap((counter) => [counter.quotaId, counter.periodKey]),
    ) as Array<{ quota_id: string; used: number; held: number }>;
    for (const row of rows) used.set(row.quota_id, { used: Number(row.used), held: Number(row.held) });
    return used;
  }
}
