import fs from 'node:fs';
import path from 'node:path';
import { DataSource, EntityManager } from 'typeorm';
import { driverErrorCode } from './store-errors';
import { OrganizationEntity } from '../organizations/organization.entity';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import { QuotaEntity } from '../quotas/quota.entity';
import { AuditEntryEntity } from '../audit-log/audit-entry.entity';
import { QuotaCounterEntity } from '../quotas/quota-counter.entity';
import { RateLimitEventEntity } from '../rate-limits/rate-limit-event.entity';
import { SessionEntity } from '../sessions/session.entity';
import { SessionCreditEntity } from '../sessions/session-credit.entity';
import { UsageEventEntity } from '../usage/usage-event.entity';
import { Foundation1764000000000 } from '../migrations/1764000000000-Foundation';
import { Metering1764100000000 } from '../migrations/1764100000000-Metering';
import { Wallets1764200000000 } from '../migrations/1764200000000-Wallets';
import { KeyRateLimits1764300000000 } from '../migrations/1764300000000-KeyRateLimits';
import { Analytics1764400000000 } from '../migrations/1764400000000-Analytics';
import { UsageJournal1764700000000 } from '../migrations/1764700000000-UsageJournal';
import { UsageReservations1764800000000 } from '../migrations/1764800000000-UsageReservations';
import { UsageReservationEntity } from '../usage/usage-reservation.entity';
import { WalletChallengeEntity } from '../wallets/wallet-challenge.entity';
import { WebhookEndpointEntity } from '../webhooks/webhook-endpoint.entity';
import { WebhookDeliveryEntity } from '../webhooks/webhook-delivery.entity';
import { Webhooks1764500000000 } from '../migrations/1764500000000-Webhooks';

/** Where the data lives: a SQLite file (embedded) or a MySQL/MariaDB database. */
export type DatabaseConfig =
  | { kind: 'sqlite'; path: string }
  | { kind: 'mysql'; url: string };

export const ENTITIES = [
  OrganizationEntity, ApiKeyEntity, QuotaEntity, AuditEntryEntity, QuotaCounterEntity, RateLimitEventEntity,
  SessionEntity, SessionCreditEntity, UsageEventEntity, WalletChallengeEntity, WebhookEndpointEntity, WebhookDeliveryEntity, UsageReservationEntity,
];
/** In order; never `synchronize`. */
export const MIGRATIONS = [
  Foundation1764000000000, Metering1764100000000, Wallets1764200000000, KeyRateLimits1764300000000, Analytics1764400000000, Webhooks1764500000000,
  UsageJournal1764700000000, UsageReservations1764800000000,
];

/**
 * The SQLite file holds every key hash, audit entry and usage record: only keyward's user may read
 * it. A directory created for it is 0700, the file 0600 (made stricter if it was not), and SQLite
 * gives its -wal and -shm files the database file's permissions.
 */
function createPrivately(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const companion of [file, `${file}-wal`, `${file}-shm`]) {
    if (fs.existsSync(companion) && (fs.statSync(companion).mode & 0o077) !== 0) fs.chmodSync(companion, 0o600);
  }
}

export function createDataSource(database: DatabaseConfig): DataSource {
  if (database.kind === 'sqlite') {
    createPrivately(database.path);
    return new DataSource({
      type: 'better-sqlite3',
      database: database.path,
      enableWAL: true,
      // WAL + NORMAL: a commit survives a crash of the process (it is in the WAL), only an OS
      // crash or power loss can lose the last ones; FULL would fsync every commit, and the
      // event loop waits for each (better-sqlite3 is synchronous).
      prepareDatabase: (db: { pragma(source: string): unknown }) => {
        db.pragma('synchronous = NORMAL');
      },
      // Concurrent writers wait for the lock instead of failing with SQLITE_BUSY.
      timeout: 5_000,
      entities: ENTITIES,
      migrations: MIGRATIONS,
      migrationsRun: false,
      synchronize: false,
    });
  }
  return new DataSource({
    type: 'mysql',
    url: database.url,
    timezone: 'Z',
    charset: 'utf8mb4_unicode_ci',
    bigNumberStrings: false,
    supportBigNumbers: true,
    poolSize: 10,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: false,
    synchronize: false,
  });
}

/** Opens the connection and applies pending migrations. */
export async function openDatabase(database: DatabaseConfig): Promise<DataSource> {
  const dataSource = createDataSource(database);
  await dataSource.initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  return dataSource;
}

/**
 * Runs `work` in one transaction. SQLite has a single connection in TypeORM, so
 * transactions there are queued one at a time instead of nesting by accident.
 */
export class Transactions {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly dataSource: DataSource) {}

  run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    if (this.dataSource.options.type !== 'better-sqlite3') return this.withDeadlockRetry(work);
    const result = this.queue.then(() => this.dataSource.transaction(work));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * InnoDB may pick a transaction as a deadlock victim under contention (e.g. many requests
   * taking the same quota). The whole transaction was rolled back, so running it again is safe.
   */
  private async withDeadlockRetry<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction(work);
      } catch (error) {
        const code = driverErrorCode(error);
        if (attempt >= 10 || (code !== 'ER_LOCK_DEADLOCK' && code !== 'ER_LOCK_WAIT_TIMEOUT')) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
      }
    }
  }

  get isSqlite(): boolean {
    return this.dataSource.options.type === 'better-sqlite3';
  }
}
