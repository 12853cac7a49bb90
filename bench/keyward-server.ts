/**
 * keyward for `npm run bench`, in its own process: the same composition as `npm start`
 * (src/main.ts: config → app with migrations → server) from the environment
 * (KEYWARD_DATA_DIR, LOG_LEVEL, …), except that it listens on an ephemeral port of 127.0.0.1
 * and reports it to the parent over IPC: { type: 'ready', port }. Stops cleanly (usage
 * buffer flushed, database closed, a --cpu-prof profile written) on the 'stop' message,
 * SIGTERM/SIGINT or when the parent goes away.
 */
import 'reflect-metadata';
import { parseConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createApp } from '../src/app';
import { createServer } from '../src/server';

async function main(): Promise<void> {
  const config = parseConfig(process.env);
  const logger = createLogger(config.logLevel);
  const app = await createApp(config, logger);
  const server = await createServer(app);
  const port = await server.listen(0, '127.0.0.1');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await server.stop();
      process.exit(0);
    } catch (error) {
      console.error('keyward-server: shutdown failed:', error);
      process.exit(1);
    }
  };
  process.on('message', (message) => {
    if (message === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.send?.({ type: 'ready', port });
}

main().catch((error) => {
  console.error('keyward-server failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
