import { DataSource } from 'typeorm';
import { Config } from './config';
import { Clock, systemClock } from './clock';
import { Logger } from './logger';
import { openDatabase, Transactions } from './db/data-source';
import { resolvePepper } from './auth/pepper';
import { KeyVerifier } from './auth/key-verifier';
import { AuditLogService } from './audit-log/audit-log.service';
import { QuotasService } from './quotas/quotas.service';
import { OrganizationsService } from './organizations/organizations.service';
import { ApiKeysService } from './api-keys/api-keys.service';

/** Every long-lived piece of a running keyward, built once from the config. */
export interface App {
  config: Config;
  clock: Clock;
  logger: Logger;
  dataSource: DataSource;
  transactions: Transactions;
  verifier: KeyVerifier;
  audit: AuditLogService;
  quotas: QuotasService;
  organizations: OrganizationsService;
  apiKeys: ApiKeysService;
  close(): Promise<void>;
}

export interface AppOptions {
  clock?: Clock;
}

/** Opens the database (applying migrations) and wires the services. */
export async function createApp(config: Config, logger: Logger, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? systemClock;
  const pepper = resolvePepper(config);
  const dataSource = await openDatabase(config.database);
  const transactions = new Transactions(dataSource);
  const audit = new AuditLogService(dataSource, clock);
  const quotas = new QuotasService(dataSource, clock);
  return {
    config,
    clock,
    logger,
    dataSource,
    transactions,
    verifier: new KeyVerifier(dataSource, clock, pepper),
    audit,
    quotas,
    organizations: new OrganizationsService(dataSource, transactions, audit, quotas, clock),
    apiKeys: new ApiKeysService(dataSource, transactions, audit, quotas, clock, pepper),
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
    },
  };
}
