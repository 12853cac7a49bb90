import Redis from 'ioredis';
import type { Logger } from './logger';

/** The Redis connections of one instance: commands (rate limits), and a publisher/subscriber pair. */
export interface RedisConnections {
  client: Redis;
  publisher: Redis;
  subscriber: Redis;
  /** True when the command connection answers PING. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Connects to REDIS_URL. Commands fail fast while Redis is unreachable (no offline queue) so
 * a rate-limit check answers UNAVAILABLE (or falls back, when configured) instead of hanging;
 * ioredis keeps reconnecting in the background and resubscribes.
 */
export async function connectRedis(url: string, logger: Logger): Promise<RedisConnections> {
  const options = { maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: (times: number) => Math.min(times * 200, 2_000) };
  const client = new Redis(url, { ...options, enableOfflineQueue: false, lazyConnect: true });
  const publisher = new Redis(url, { ...options, lazyConnect: true });
  const subscriber = new Redis(url, { ...options, lazyConnect: true });
  for (const [name, connection] of [['client', client], ['publisher', publisher], ['subscriber', subscriber]] as const) {
    connection.on('error', (error) => logger.warn({ err: error, connection: name }, 'redis connection error'));
  }
  await Promise.all([client.connect(), publisher.connect(), subscriber.connect()]);
  return {
    client,
    publisher,
    subscriber,
    async ping() {
      try {
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      await Promise.all([client, publisher, subscriber].map((connection) => connection.quit().catch(() => connection.disconnect())));
    },
  };
}
