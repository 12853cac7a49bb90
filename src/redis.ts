import Redis from 'ioredis';
import type { Logger } from './logger';
import { OutageLog } from './outage-log';

/** The Redis connections of one instance: commands (rate limits), and a publisher/subscriber pair. */
export interface RedisConnections {
  client: Redis;
  publisher: Redis;
  subscriber: Redis;
  /** False from the moment any of the three connections is lost until all three are ready again. */
  readonly isUp: boolean;
  /**
   * Told when Redis becomes unreachable (false) and when every connection is ready again (true;
   * the subscriber has re-sent its SUBSCRIBEs by then). Returns a function that stops telling.
   */
  onAvailability(listener: (up: boolean) => void): () => void;
  /** True when the command connection answers PING. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * How long ioredis waits before reconnecting (ms): 100, 200, … at most 500, so an instance is
 * back on Redis within half a second of Redis answering again.
 */
export const REDIS_RECONNECT_MAX_MS = 500;

/**
 * Connects to REDIS_URL. Commands fail fast while Redis is unreachable (no offline queue) so
 * a rate-limit check answers UNAVAILABLE (or falls back, when configured) instead of hanging;
 * ioredis keeps reconnecting in the background and resubscribes. An outage is logged once when
 * it starts (with the error) and once when it ends, not for every reconnection attempt.
 */
export async function connectRedis(url: string, logger: Logger): Promise<RedisConnections> {
  const options = { maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: (times: number) => Math.min(times * 100, REDIS_RECONNECT_MAX_MS) };
  const client = new Redis(url, { ...options, enableOfflineQueue: false, lazyConnect: true });
  const publisher = new Redis(url, { ...options, lazyConnect: true });
  const subscriber = new Redis(url, { ...options, lazyConnect: true });
  const connections = [['client', client], ['publisher', publisher], ['subscriber', subscriber]] as const;
  const outages = new OutageLog('redis', logger);
  const listeners = new Set<(up: boolean) => void>();
  const ready = new Set<string>(connections.map(([name]) => name));
  let closing = false;

  const lost = (name: string, error: unknown) => {
    if (closing) return;
    const wasUp = ready.size === connections.length;
    ready.delete(name);
    outages.down(error, { connection: name });
    if (wasUp) for (const listener of [...listeners]) listener(false);
  };
  for (const [name, connection] of connections) {
    connection.on('error', (error) => lost(name, error));
    connection.on('close', () => lost(name, new Error('connection closed')));
    connection.on('ready', () => {
      ready.add(name);
      if (ready.size < connections.length || closing) return;
      outages.up();
      for (const listener of [...listeners]) listener(true);
    });
  }
  await Promise.all([client.connect(), publisher.connect(), subscriber.connect()]);
  return {
    client,
    publisher,
    subscriber,
    get isUp() {
      return ready.size === connections.length;
    },
    onAvailability(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async ping() {
      try {
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      closing = true;
      listeners.clear();
      await Promise.all([client, publisher, subscriber].map((connection) => connection.quit().catch(() => connection.disconnect())));
    },
  };
}
