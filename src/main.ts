import 'reflect-metadata';
import { loadDotEnv, parseConfig, ConfigError } from './config';
import { createLogger } from './logger';
import { createApp } from './app';
import { createServer, GRAPHQL_PATH } from './server';
import { CONSOLE_PATH } from './console/console';
import type { App } from './app';
import { OrganizationEntity } from './organizations/organization.entity';

/** One line for the listen errors people meet on their first start. */
function listenProblem(error: unknown, port: number, host: string): string | null {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') return `port ${port} is in use; set PORT (e.g. PORT=${port + 1} npm start)`;
  if (code === 'EACCES') return `port ${port} needs more privileges than this process has; set PORT above 1023`;
  if (code === 'EADDRNOTAVAIL') return `HOST ${host} is not an address of this machine; set HOST (default 0.0.0.0)`;
  return null;
}

/** Whether `keyward init` has run on this database (the platform organization exists). */
async function isInitialized(app: App): Promise<boolean> {
  return (await app.dataSource.getRepository(OrganizationEntity).countBy({ isPlatform: true })) > 0;
}

/** `npm start`: config → database (migrations applied) → server → listen; stops cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  loadDotEnv();
  let config;
  try {
    config = parseConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const startedAt = process.hrtime.bigint();
  const app = await createApp(config, logger);
  const server = await createServer(app);
  let port: number;
  try {
    port = await server.listen(config.port, config.host);
  } catch (error) {
    const why = listenProblem(error, config.port, config.host);
    if (!why) throw error;
    console.error(`keyward: ${why}`);
    await app.close();
    process.exit(1);
  }
  const ms = Number(process.hrtime.bigint() - startedAt) / 1e6;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const origin = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  logger.info({ port, database: config.database.kind, startupMs: Math.round(ms) }, `keyward listening on ${origin}${GRAPHQL_PATH}`);
  // What to do next, for whoever just ran `npm start` (a log line like the others).
  const initialized = await isInitialized(app);
  logger.info(
    { console: `${origin}${CONSOLE_PATH}`, initialized },
    initialized
      ? `console: ${origin}${CONSOLE_PATH} (sign in with an API key); GraphiQL: ${origin}${GRAPHQL_PATH}`
      : `next: run \`npx keyward init\` in another terminal, then open ${origin}${CONSOLE_PATH} and paste the key it prints`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    try {
      await server.stop();
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error) => {
  console.error('keyward failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
