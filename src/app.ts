import { DataSource } from 'typeorm';
import { Config } from './config';
import { Clock, systemClock } from './clock';
import { Logger } from './logger';
import { openDatabase, Transactions } from './db/data-source';
import { resolvePepper } from './auth/pepper';
import { KeyCache } from './auth/key-cache';
import { KeyVerifier } from './auth/key-verifier';
import { VerifyKeyService } from './auth/verify-key.service';
import { AuditLogService } from './audit-log/audit-log.service';
import { QuotasService } from './quotas/quotas.service';
import { OrganizationsService } from './organizations/organizations.service';
import { ApiKeysService } from './api-keys/api-keys.service';
import { RateLimiter } from './rate-limits/rate-limiter';
import { MemoryRateLimiter } from './rate-limits/memory-rate-limiter';
import { RedisRateLimiter } from './rate-limits/redis-rate-limiter';
import { RateLimitsService } from './rate-limits/rate-limits.service';
import { SessionsService } from './sessions/sessions.service';
import { UsageBuffer } from './usage/usage-buffer';
import { UsageService } from './usage/usage.service';
import { LiveEvents } from './live/live-events';
import { WalletsService } from './wallets/wallets.service';
import { inProcessPubSub, LivePubSub, redisPubSub } from './live/pub-sub';
import { connectRedis, RedisConnections } from './redis';
import { ALL_INSTANCES, Topic } from './live/topics';

/** Every long-lived piece of a running keyward, built once from the config. */
export interface App {
  config: Config;
  clock: Clock;
  logger: Logger;
  dataSource: DataSource;
  transactions: Transactions;
  keyCache: KeyCache;
  rateLimiter: RateLimiter;
  /** Failed authentications per client address; limits from memory while Redis is down. */
  authFailureLimiter: RateLimiter;
  usageBuffer: UsageBuffer;
  verifier: KeyVerifier;
  verifyKey: VerifyKeyService;
  audit: AuditLogService;
  quotas: QuotasService;
  organizations: OrganizationsService;
  apiKeys: ApiKeysService;
  rateLimits: RateLimitsService;
  sessions: SessionsService;
  usage: UsageService;
  pubSub: LivePubSub;
  /** Null in embedded mode (no REDIS_URL). */
  redis: RedisConnections | null;
  live: LiveEvents;
  wallets: WalletsService;
  /** Flushes buffered usage and closes the database. */
  close(): Promise<void>;
}

export interface AppOptions {
  clock?: Clock;
}

/** How often ACTIVE sessions past their end are marked EXPIRED (they are also checked on every read). */
const SESSION_SWEEP_MS = 30_000;

/** Opens the database (applying migrations) and wires the services. */
export async function createApp(config: Config, logger: Logger, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? systemClock;
  const pepper = resolvePepper(config);
  const dataSource = await openDatabase(config.database);
  const transactions = new Transactions(dataSource);
  const keyCache = new KeyCache();
  // Scale-out: rate limits, live events and cache invalidations go through Redis.
  const redis = config.redisUrl ? await connectRedis(config.redisUrl, logger) : null;
  const rateLimiter = redis
    ? new RedisRateLimiter(redis.client, config.rateLimitFailOpen ? new MemoryRateLimiter() : null)
    : new MemoryRateLimiter();
  // Failed authentications stay limited while Redis is down: each instance then counts in its own memory.
  const authFailureLimiter = redis ? new RedisRateLimiter(redis.client, new MemoryRateLimiter()) : rateLimiter;
  const usageBuffer = new UsageBuffer(dataSource, transactions, clock, logger);
  const pubSub = redis
    ? redisPubSub(redis.publisher, redis.subscriber, (error, command) => logger.warn({ err: error, command }, 'redis pub/sub command failed'))
    : inProcessPubSub();
  const invalidations = redis ? pubSub.subscribe(Topic.KEY_CACHE_INVALIDATED, ALL_INSTANCES)[Symbol.asyncIterator]() : null;
  if (invalidations) {
    keyCache.broadcastTo((change) => pubSub.publish(Topic.KEY_CACHE_INVALIDATED, ALL_INSTANCES, change));
    void (async () => {
      for (let next = await invalidations.next(); !next.done; next = await invalidations.next()) keyCache.applyRemote(next.value);
    })();
  }
  const live = new LiveEvents(pubSub, clock);
  const audit = new AuditLogService(dataSource, clock);
  const quotas = new QuotasService(dataSource, clock);
  const sessions = new SessionsService(dataSource, transactions, audit, clock, config.sessionPriceUsd, live);
  const apiKeys = new ApiKeysService(dataSource, transactions, audit, quotas, clock, pepper, keyCache, live);
  const organizations = new OrganizationsService(dataSource, transactions, audit, quotas, clock, keyCache, live);
  const wallets = new WalletsService(dataSource, transactions, organizations, apiKeys, audit, clock, config.walletDefaultQuotas);
  const verifier = new KeyVerifier(dataSource, transactions, clock, pepper, keyCache, rateLimiter, quotas, sessions, usageBuffer, live);
  usageBuffer.start();
  const sweeper = setInterval(() => {
    sessions.sweep().catch((error) => logger.warn({ err: error }, 'session sweep failed'));
  }, SESSION_SWEEP_MS);
  sweeper.unref();

  return {
    config,
    clock,
    logger,
    dataSource,
    transactions,
    keyCache,
    rateLimiter,
    authFailureLimiter,
    usageBuffer,
    verifier,
    verifyKey: new VerifyKeyService(verifier),
    audit,
    quotas,
    organizations,
    wallets,
    apiKeys,
    pubSub,
    redis,
    live,
    rateLimits: new RateLimitsService(dataSource, transactions, audit, apiKeys, rateLimiter, usageBuffer, clock, live),
    sessions,
    usage: new UsageService(dataSource, transactions, quotas, sessions, usageBuffer, clock, live),
    async close() {
      clearInterval(sweeper);
      live.flush();
      await usageBuffer.stop();
      await invalidations?.return?.();
      await redis?.close();
      if (dataSource.isInitialized) await dataSource.destroy();
    },
  };
}
