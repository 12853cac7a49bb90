import { DataSource } from 'typeorm';
import { Config } from './config';
import { Clock, systemClock } from './clock';
import { Logger } from './logger';
import { OutageLog } from './outage-log';
import { openDatabase, Transactions } from './db/data-source';
import { resolvePepper } from './auth/pepper';
import { KeyCache } from './auth/key-cache';
import { KeyVerifier } from './auth/key-verifier';
import { VerifyKeyService } from './auth/verify-key.service';
import { AuditLogService } from './audit-log/audit-log.service';
import { QuotaService } from './quotas/quota.service';
import { OrganizationService } from './organizations/organization.service';
import { ApiKeyService } from './api-keys/api-key.service';
import { RateLimiter } from './rate-limits/rate-limiter';
import { MemoryRateLimiter } from './rate-limits/memory-rate-limiter';
import { RedisRateLimiter } from './rate-limits/redis-rate-limiter';
import { RateLimitService } from './rate-limits/rate-limit.service';
import { SessionService } from './sessions/session.service';
import { UsageBuffer } from './usage/usage-buffer';
import { FileUsageJournal } from './usage/usage-journal';
import { UsageService } from './usage/usage.service';
import { UsageReservationService } from './usage/usage-reservation.service';
import { LiveEvents } from './live/live-events';
import { WalletService } from './wallets/wallet.service';
import { inProcessPubSub, LivePubSub, redisPubSub } from './live/pub-sub';
import { connectRedis, RedisConnections } from './redis';
import { ALL_INSTANCES, Topic } from './live/topics';
import { ClientAddressOf, clientAddressResolver } from './auth/client-address';
import { ExecutionBudget } from './auth/execution-budget';
import { WebhookSubscriptions } from './webhooks/webhook-subscriptions';
import { WebhookOutbox } from './webhooks/webhook-outbox';
import { WEBHOOK_TIMEOUT_MS, WebhookSender } from './webhooks/webhook-sender';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher';
import { WebhookService } from './webhooks/webhook.service';

/** Every long-lived piece of a running keyward, built once from the config. */
export interface App {
  config: Config;
  clock: Clock;
  logger: Logger;
  dataSource: DataSource;
  /** The database's outage log: requests that fail on an unreachable store report here, not one line each. */
  databaseOutages: OutageLog;
  transactions: Transactions;
  keyCache: KeyCache;
  rateLimiter: RateLimiter;
  /** Failed authentications per client address; limits from memory while Redis is down. */
  authFailureLimiter: RateLimiter;
  usageBuffer: UsageBuffer;
  /** Cost of the GraphQL operations executing per key on this instance (MAX_CONCURRENT_COST_PER_KEY). */
  executionBudget: ExecutionBudget;
  verifier: KeyVerifier;
  verifyKey: VerifyKeyService;
  audit: AuditLogService;
  quotas: QuotaService;
  organizations: OrganizationService;
  apiKeys: ApiKeyService;
  rateLimits: RateLimitService;
  sessions: SessionService;
  usage: UsageService;
  /** reserveUsage / settleUsage / releaseUsage. */
  reservations: UsageReservationService;
  pubSub: LivePubSub;
  /** Null in embedded mode (no REDIS_URL). */
  redis: RedisConnections | null;
  /** The client address of an HTTP request or WebSocket upgrade (TRUST_PROXY applied). */
  clientAddressOf: ClientAddressOf;
  live: LiveEvents;
  wallets: WalletService;
  webhooks: WebhookService;
  /** Delivers the webhook outbox; started by the server (createServer), driven by `tick()` in tests. */
  webhookDispatcher: WebhookDispatcher;
  /** Stops webhook deliveries, flushes buffered usage (closing its journal) and closes the database. */
  close(): Promise<void>;
}

export interface AppOptions {
  clock?: Clock;
}

/** How often ACTIVE sessions past their end are marked EXPIRED (they are also checked on every read). */
const SESSION_SWEEP_MS = 30_000;

/** How often reservations past their TTL give their holds back (also before each reserve and on quota reads). */
const RESERVATION_SWEEP_MS = 10_000;

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
  // One line when the database becomes unreachable and one when it answers again, whatever fails meanwhile.
  const databaseOutages = new OutageLog('database', logger);
  const usageBuffer = new UsageBuffer(dataSource, transactions, clock, logger, new FileUsageJournal(config.dataDir), databaseOutages);
  // Usage a crashed process had answered but not written: before anything new is counted.
  await usageBuffer.recover();
  // While Redis is away its outage is logged once (redis.ts), not every PUBLISH that fails.
  const pubSub = redis
    ? redisPubSub(redis.publisher, redis.subscriber, (error, command) => {
      if (redis.isUp) logger.warn({ err: error, command }, 'redis pub/sub command failed');
    })
    : inProcessPubSub();
  const invalidations = redis ? pubSub.subscribe(Topic.KEY_CACHE_INVALIDATED, ALL_INSTANCES)[Symbol.asyncIterator]() : null;
  if (redis && invalidations) {
    keyCache.broadcastTo((change) => pubSub.publish(Topic.KEY_CACHE_INVALIDATED, ALL_INSTANCES, change));
    redis.onAvailability((up) => (up ? keyCache.invalidationsResumed() : keyCache.invalidationsLost()));
    void (async () => {
      for (let next = await invalidations.next(); !next.done; next = await invalidations.next()) keyCache.applyRemote(next.value);
    })();
  }
  const subscriptions = new WebhookSubscriptions(dataSource);
  const subscriptionChanges = redis ? pubSub.subscribe(Topic.WEBHOOK_SUBSCRIPTIONS_CHANGED, ALL_INSTANCES)[Symbol.asyncIterator]() : null;
  if (subscriptionChanges) {
    subscriptions.broadcastTo((change) => pubSub.publish(Topic.WEBHOOK_SUBSCRIPTIONS_CHANGED, ALL_INSTANCES, change));
    void (async () => {
      for (let next = await subscriptionChanges.next(); !next.done; next = await subscriptionChanges.next()) subscriptions.applyRemote(next.value);
    })();
  }
  const live = new LiveEvents(pubSub, clock);
  const audit = new AuditLogService(dataSource, clock);
  const quotas = new QuotaService(dataSource, clock, logger);
  const stores = { dataSource, transactions, clock };
  // The outbox wakes the dispatcher, which is built from it: the call comes only once both exist.
  const wake = () => webhookDispatcher.wake();
  const outbox = new WebhookOutbox({ ...stores, subscriptions, quotas, logger, wake });
  const webhookDispatcher = new WebhookDispatcher({
    ...stores, logger, audit, pepper, subscriptions, outbox,
    sender: new WebhookSender({ allowPrivate: config.webhookAllowPrivate, timeoutMs: WEBHOOK_TIMEOUT_MS, wallClock: systemClock }),
    retrySchedule: config.webhookRetrySchedule,
  });
  const sessions = new SessionService({ ...stores, audit, priceUsd: config.sessionPriceUsd, events: live, alerts: outbox });
  const apiKeys = new ApiKeyService({ ...stores, audit, quotas, pepper, keyCache, events: live, alerts: outbox });
  const organizations = new OrganizationService({ ...stores, audit, quotas, keyCache, events: live });
  const wallets = new WalletService({
    ...stores, organizations, apiKeys, audit, rateLimiter,
    policy: { publicUrl: config.publicUrl, defaultQuotas: config.walletDefaultQuotas, maxPreset: config.walletKeyPreset, organizationsPerHour: config.walletOrganizationsPerHour },
  });
  const verifier = new KeyVerifier({ ...stores, pepper, cache: keyCache, rateLimiter, quotas, sessions, recorder: usageBuffer, events: live, alerts: outbox });
  const verifyKey = new VerifyKeyService(verifier, usageBuffer);
  const reservations = new UsageReservationService({
    ...stores, verifier, verifyKey, quotas, sessions, rateLimiter, buffer: usageBuffer, prices: config.modelPrices, events: live, alerts: outbox,
  });
  quotas.expiredHolds = reservations;
  usageBuffer.start();
  const sweeper = setInterval(() => {
    sessions.sweep().catch((error) => logger.warn({ err: error }, 'session sweep failed'));
  }, SESSION_SWEEP_MS);
  sweeper.unref();
  const reservationSweeper = setInterval(() => {
    reservations.releaseExpired().catch((error) => logger.warn({ err: error }, 'reservation sweep failed'));
  }, RESERVATION_SWEEP_MS);
  reservationSweeper.unref();

  return {
    config,
    clock,
    logger,
    databaseOutages,
    dataSource,
    transactions,
    keyCache,
    rateLimiter,
    authFailureLimiter,
    usageBuffer,
    executionBudget: new ExecutionBudget(config.maxConcurrentCostPerKey),
    verifier,
    verifyKey,
    reservations,
    audit,
    quotas,
    organizations,
    wallets,
    apiKeys,
    pubSub,
    redis,
    clientAddressOf: clientAddressResolver(config.trustProxy),
    live,
    webhooks: new WebhookService({ ...stores, audit, pepper, subscriptions, outbox, allowPrivate: config.webhookAllowPrivate, wake }),
    webhookDispatcher,
    rateLimits: new RateLimitService({ ...stores, audit, apiKeys, limiter: rateLimiter, buffer: usageBuffer, events: live }),
    sessions,
    usage: new UsageService({ ...stores, quotas, sessions, buffer: usageBuffer, events: live, alerts: outbox, prices: config.modelPrices }),
    async close() {
      clearInterval(sweeper);
      clearInterval(reservationSweeper);
      await webhookDispatcher.stop();
      live.flush();
      await usageBuffer.close();
      await quotas.payOwed();
      quotas.stopGivingBack();
      await invalidations?.return?.();
      await subscriptionChanges?.return?.();
      await redis?.close();
      if (dataSource.isInitialized) await dataSource.destroy();
    },
  };
}

/**
 * A request failed because a backing store is unreachable: logged once per outage. A Redis
 * outage has its own log (redis.ts); anything else is the database's.
 */
export function reportUnreachable(app: App, error: unknown): void {
  if (app.redis && !app.redis.isUp) return;
  app.databaseOutages.down(error);
}
