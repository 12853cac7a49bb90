/**
 * keyward for workload (g) and the soak of `npm run bench`: bench/keyward-server.ts unchanged,
 * plus one IPC message, 'gc', that runs a full garbage collection (the process is started with
 * --expose-gc) and answers { type: 'gc-done', memory: process.memoryUsage() }, so memory is
 * read after garbage, not before.
 */
import './keyward-server';

process.on('message', (message) => {
  if (message !== 'gc') return;
  (globalThis as { gc?: () => void }).gc?.();
  process.send?.({ type: 'gc-done', memory: process.memoryUsage() });
});
