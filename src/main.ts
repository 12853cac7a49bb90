import 'reflect-metadata';
import { loadDotEnv, parseConfig, ConfigError } from './config';
import { createLogger } from './logger';
import { createApp } from './app';
import { createServer, GRAPHQL_PATH } from './server';

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
  const port = await server.listen(config.port, config.host);
  const ms = Number(process.hrtime.bigint() - startedAt) / 1e6;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  logger.info({ port, database: config.database.kind, startupMs: Math.round(ms) }, `keyward listening on http://${shownHost}:${port}${GRAPHQL_PATH}`);

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
