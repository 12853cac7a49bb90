import type { CliIo } from './context';
import type { App } from '../app';
import type { Config } from '../config';

/**
 * Where a command working on the database directly (init, migrate, keys create --direct) is
 * working, for its output: the SQLite file, or the MySQL/MariaDB host and database (never the
 * password).
 */
export function describeDatabase(config: Config): string {
  if (config.database.kind === 'sqlite') return `SQLite database ${config.database.path} (data directory ${config.dataDir})`;
  const url = new URL(config.database.url);
  return `MySQL/MariaDB database ${url.pathname.replace(/^\//, '')} on ${url.hostname}:${url.port || 3306}`;
}

/**
 * Opens the database of this environment (DATABASE_URL, KEYWARD_DATA_DIR, KEYWARD_PEPPER;
 * migrations applied), runs `work` with the services, and closes it. The server modules are
 * loaded here, so commands that talk to a server do not load them.
 */
export async function withDatabase<T>(io: CliIo, work: (app: App, config: Config) => Promise<T>): Promise<T> {
  const { parseConfig } = await import('../config');
  const { createLogger } = await import('../logger');
  const { createApp } = await import('../app');
  const config = parseConfig(io.env);
  const app = await createApp(config, createLogger('silent'));
  try {
    return await work(app, config);
  } finally {
    await app.close();
  }
}
