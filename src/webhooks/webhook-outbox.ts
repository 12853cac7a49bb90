import { And, DataSource, EntityManager, In, IsNull, LessThanOrEqual, MoreThan } from 'typeorm';
import { WEBHOOK_TYPE_NAMES, WebhookEndpointEntity, WebhookEventType } from './webhook-endpoint.entity';
import { WebhookDeliveryEntity, WebhookDeliveryStatus } from './webhook-delivery.entity';
import { Subscription, subscriptionOf, WebhookSubscriptions } from './webhook-subscriptions';
import { ApiKeyEntity } from '../api-keys/api-key.entity';
import type { ApiKeyAlerts } from '../api-keys/api-key-events';
import { OrganizationEntity } from '../organizations/organization.entity';
import type { QuotaEntity, QuotaStatus } from '../quotas/quota.entity';
import type { QuotaMove, QuotaWatcher } from '../quotas/quota-alerts';
import { periodKey } from '../quotas/quota-period';
import { QuotaService } from '../quotas/quota.service';
import type { RateLimitWindowState } from '../rate-limits/rate-limiter';
import type { SessionEntity } from '../sessions/session.entity';
import type { SessionAlerts } from '../sessions/session.service';
import type { VerificationAlerts } from '../auth/verification-sinks';
import { sessionPayload } from '../live/payloads';
import { Transactions } from '../db/data-source';
import type { Logger } from '../logger';
import { Clock } from '../clock';
import { newId } from '../ids';

const DAY_MS = 86_400_000;
/** Keys looked at per expiry scan (soonest expiry first); the rest are noticed by the next scans. */
const EXPIRY_SCAN_LIMIT = 1000;

/** One event, before it is addressed to endpoints. */
interface OutboxEvent {
  type: WebhookEventType;
  /** Names the organization, and the key where there is one. */
  data: { organizationId: string; apiKeyId?: string | null; [field: string]: unknown };
  /** Once per endpoint: an endpoint never gets two deliveries with the same key. Null: every time. */
  dedupKey: string | null;
}

/** What WebhookOutbox is built from (app.ts wires it). */
export interface WebhookOutboxDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  clock: Clock;
  subscriptions: WebhookSubscriptions;
  quotas: QuotaService;
  logger: Logger;
  /** Told after rows were written, so that the dispatcher looks soon (it also polls). */
  wake: () => void;
}

/**
 * Writes webhook events into the outbox (webhook_deliveries), one row per event and endpoint,
 * in the transaction of the change that caused the event where there is one: revocation,
 * rotation, a quota threshold crossed, a session used up. Events that follow a refusal (whose
 * transaction rolled back: quota exhausted) or a store outside the database (a rate-limit
 * window) are written on their own, right after. Endpoints of the platform organization get the
 * events of every organization. Which endpoint wants what comes from WebhookSubscriptions, so an
 * organization nobody listens to costs a map lookup.
 */
export class WebhookOutbox implements VerificationAlerts, SessionAlerts, ApiKeyAlerts {
  /** `endpoint|dedupKey` of rows known to be committed, so repeats skip the database (bounded). */
  private readonly written = new Set<string>();

  constructor(private readonly deps: WebhookOutboxDependencies) {}

  async quotaWatcher(organizationId: string): Promise<QuotaWatcher | null> {
    const listening = await this.deps.subscriptions.of(organizationId);
    if (listening.length === 0) return null;
    const thresholds = listening.filter((subscription) => subscription.eventTypes.has(WebhookEventType.QUOTA_THRESHOLD));
    const exhausted = listening.filter((subscription) => subscription.eventTypes.has(WebhookEventType.QUOTA_EXHAUSTED));
    if (thresholds.length === 0 && exhausted.length === 0) return null;
    return {
      moved: (tx, apiKeyId, moves) => this.thresholdsCrossed(tx, organizationId, apiKeyId, thresholds, moves),
      refused: (apiKeyId, quota) => this.quotaRefused(organizationId, apiKeyId, exhausted, quota),
    };
  }

  /** Each threshold (a percentage of the limit) that this move carried the quota across, for each endpoint that set it. */
  private async thresholdsCrossed(tx: EntityManager, organizationId: string, apiKeyId: string, subscriptions: readonly Subscription[], moves: readonly QuotaMove[]): Promise<void> {
    if (subscriptions.length === 0) return;
    const now = this.deps.clock.now();
    for (const { quota, status, amount } of moves) {
      const before = status.used - amount;
      const crossed = (threshold: number) => before * 100 < threshold * quota.limit && status.used * 100 >= threshold * quota.limit;
      const thresholds = [...new Set(subscriptions.flatMap((subscription) => subscription.quotaThresholds.filter(crossed)))];
      for (const threshold of thresholds) {
        await this.enqueue(tx, subscriptions.filter((subscription) => subscription.quotaThresholds.includes(threshold)), {
          type: WebhookEventType.QUOTA_THRESHOLD,
          data: { organizationId, apiKeyId, threshold, quota: quotaState(status) },
          dedupKey: `quota.threshold:${quotaPeriodOf(quota, now)}:${threshold}`,
        });
      }
    }
  }

  private async quotaRefused(organizationId: string, apiKeyId: string, subscriptions: readonly Subscription[], quota: QuotaEntity): Promise<void> {
    const dedupKey = `quota.exhausted:${quotaPeriodOf(quota, this.deps.clock.now())}`;
    const due = this.notYetWritten(subscriptions, dedupKey);
    if (due.length === 0) return;
    await this.enqueueAlone(due, async () => {
      const [status] = await this.deps.quotas.statusesOf([quota]);
      return { type: WebhookEventType.QUOTA_EXHAUSTED, data: { organizationId, apiKeyId, quota: quotaState(status) }, dedupKey };
    });
  }

  async windowsRanOut(key: { id: string; organizationId: string }, subject: string, windows: readonly RateLimitWindowState[], now: Date): Promise<void> {
    const listening = await this.deps.subscriptions.of(key.organizationId);
    if (listening.length === 0) return;
    const subscriptions = listening.filter((subscription) => subscription.eventTypes.has(WebhookEventType.RATE_LIMIT_EXHAUSTED));
    for (const window of windows) {
      // Sliding windows have no fixed start: "once per window" is once per window length.
      const dedupKey = `rate_limit.exhausted:${subject}:${window.name}:${Math.floor(now.getTime() / (window.windowSeconds * 1000))}`;
      const due = this.notYetWritten(subscriptions, dedupKey);
      if (due.length === 0) continue;
      await this.enqueueAlone(due, async () => ({
        type: WebhookEventType.RATE_LIMIT_EXHAUSTED,
        data: { organizationId: key.organizationId, apiKeyId: key.id, rateLimit: { ...window } },
        dedupKey,
      }));
    }
  }

  async sessionExhausted(tx: EntityManager, session: SessionEntity): Promise<void> {
    const subscriptions = await this.listening(tx, session.organizationId, WebhookEventType.SESSION_EXHAUSTED);
    await this.enqueue(tx, subscriptions, {
      type: WebhookEventType.SESSION_EXHAUSTED,
      data: { organizationId: session.organizationId, apiKeyId: session.apiKeyId, session: sessionPayload(session) },
      dedupKey: `session.exhausted:${session.id}`,
    });
  }

  async keyRevoked(tx: EntityManager, key: ApiKeyEntity): Promise<void> {
    const subscriptions = await this.listening(tx, key.organizationId, WebhookEventType.KEY_REVOKED);
    await this.enqueue(tx, subscriptions, {
      type: WebhookEventType.KEY_REVOKED,
      data: { organizationId: key.organizationId, apiKeyId: key.id, apiKey: keyState(key) },
      dedupKey: null,
    });
  }

  async keyRotated(tx: EntityManager, key: ApiKeyEntity, rotatedFromId: string, previousKeyExpiresAt: Date): Promise<void> {
    const subscriptions = await this.listening(tx, key.organizationId, WebhookEventType.KEY_ROTATED);
    await this.enqueue(tx, subscriptions, {
      type: WebhookEventType.KEY_ROTATED,
      data: { organizationId: key.organizationId, apiKeyId: key.id, rotatedFromId, previousKeyExpiresAt, apiKey: keyState(key) },
      dedupKey: null,
    });
  }

  /** sendTestWebhook: a TEST event to one endpoint, whatever it subscribed to. */
  async test(tx: EntityManager, endpoint: WebhookEndpointEntity): Promise<WebhookDeliveryEntity> {
    const [delivery] = await this.enqueue(tx, [subscriptionOf(endpoint)], {
      type: WebhookEventType.TEST,
      data: { organizationId: endpoint.organizationId, endpointId: endpoint.id, message: 'A test event from keyward: this endpoint receives and verifies deliveries.' },
      dedupKey: null,
    });
    return delivery;
  }

  /**
   * KEY_EXPIRING for every key whose expiry is within an endpoint's expiryNoticeDays: once per
   * key and expiry (moving a key's expiry gives a new notice). Keys replaced by rotation are
   * left out (their end is the rotation's grace, announced by key.rotated). Run by the dispatcher.
   */
  async expiryNotices(): Promise<void> {
    const endpoints = (await this.deps.dataSource.getRepository(WebhookEndpointEntity).findBy({ enabled: true }))
      .filter((endpoint) => endpoint.eventTypes.includes(WebhookEventType.KEY_EXPIRING));
    if (endpoints.length === 0) return;
    const platform = await this.deps.dataSource.getRepository(OrganizationEntity).findOne({ where: { isPlatform: true }, select: { id: true } });
    const everyOrganization = endpoints.some((endpoint) => endpoint.organizationId === platform?.id);
    const now = this.deps.clock.now();
    const horizon = new Date(now.getTime() + Math.max(...endpoints.map((endpoint) => endpoint.expiryNoticeDays)) * DAY_MS);
    const keys = await this.deps.dataSource.getRepository(ApiKeyEntity).find({
      where: {
        deletedAt: IsNull(), revokedAt: IsNull(), replacedById: IsNull(), expiresAt: And(MoreThan(now), LessThanOrEqual(horizon)),
        ...(everyOrganization ? {} : { organizationId: In([...new Set(endpoints.map((endpoint) => endpoint.organizationId))]) }),
      },
      order: { expiresAt: 'ASC' },
      take: EXPIRY_SCAN_LIMIT,
    });
    for (const key of keys) {
      if (!key.expiresAt || key.expiresAt <= now) continue;
      const dedupKey = `key.expiring:${key.id}:${key.expiresAt.getTime()}`;
      const within = endpoints
        .filter((endpoint) => endpoint.organizationId === key.organizationId || endpoint.organizationId === platform?.id)
        .filter((endpoint) => key.expiresAt!.getTime() - now.getTime() <= endpoint.expiryNoticeDays * DAY_MS)
        .map(subscriptionOf);
      const due = this.notYetWritten(within, dedupKey);
      if (due.length === 0) continue;
      await this.enqueueAlone(due, async () => ({
        type: WebhookEventType.KEY_EXPIRING,
        data: { organizationId: key.organizationId, apiKeyId: key.id, expiresAt: key.expiresAt, apiKey: keyState(key) },
        dedupKey,
      }));
    }
  }

  private async listening(manager: EntityManager, organizationId: string, type: WebhookEventType): Promise<Subscription[]> {
    const listening = await this.deps.subscriptions.of(organizationId, manager);
    return listening.length === 0 ? [] : listening.filter((subscription) => subscription.eventTypes.has(type));
  }

  private notYetWritten(subscriptions: readonly Subscription[], dedupKey: string): Subscription[] {
    return subscriptions.filter((subscription) => !this.written.has(`${subscription.endpointId}|${dedupKey}`));
  }

  /**
   * An event that has no transaction to join: written on its own, remembered once committed.
   * A failure is logged, never thrown (it must not change a verification's answer); the next
   * occurrence writes it again.
   */
  private async enqueueAlone(subscriptions: readonly Subscription[], event: () => Promise<OutboxEvent>): Promise<void> {
    try {
      const built = await event();
      await this.deps.transactions.run((tx) => this.enqueue(tx, subscriptions, built));
      if (this.written.size >= 100_000) this.written.clear();
      for (const subscription of subscriptions) this.written.add(`${subscription.endpointId}|${built.dedupKey}`);
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'a webhook event could not be written to the outbox; it is written again when it happens again');
    }
  }

  /** One row per endpoint, inside `tx`; a dedupKey an endpoint already has is skipped. */
  private async enqueue(tx: EntityManager, subscriptions: readonly Subscription[], event: OutboxEvent): Promise<WebhookDeliveryEntity[]> {
    if (subscriptions.length === 0) return [];
    const now = this.deps.clock.now();
    const payload = JSON.stringify({ type: WEBHOOK_TYPE_NAMES[event.type], timestamp: now.toISOString(), data: event.data });
    const eventId = newId('msg', now);
    const rows = subscriptions.map((subscription) => tx.create(WebhookDeliveryEntity, {
      id: newId('dlv', now),
      endpointId: subscription.endpointId,
      eventId,
      eventType: event.type,
      dedupKey: event.dedupKey,
      payload,
      status: WebhookDeliveryStatus.PENDING,
      attempts: 0,
      nextAttemptAt: now,
      leaseUntil: null,
      leaseToken: null,
      lastStatusCode: null,
      lastError: null,
      deliveredAt: null,
      createdAt: now,
    }));
    const insert = tx.createQueryBuilder().insert().into(WebhookDeliveryEntity).values(rows).updateEntity(false);
    await (event.dedupKey === null ? insert : insert.orIgnore()).execute();
    this.deps.wake();
    return rows;
  }
}

/**
 * "Once per quota period" is once per quota, period and limit: a quota whose limit changes
 * keeps its counters, and its thresholds and exhaustion are then new ones.
 */
function quotaPeriodOf(quota: QuotaEntity, now: Date): string {
  return `${quota.id}:${periodKey(quota.period, now)}:${quota.limit}`;
}

function quotaState(status: QuotaStatus) {
  return {
    organizationId: status.organizationId, apiKeyId: status.apiKeyId, meter: status.meter, period: status.period,
    limit: status.limit, used: status.used, remaining: status.remaining, percentUsed: status.percentUsed, resetsAt: status.resetsAt,
  };
}

/** What a backend needs of a key to act on an event about it (never its hash, scopes or meta). */
function keyState(key: ApiKeyEntity) {
  return {
    id: key.id, organizationId: key.organizationId, name: key.name, hint: key.hint, environment: key.environment,
    ownerEmail: key.ownerEmail, externalId: key.externalId, expiresAt: key.expiresAt, revokedAt: key.revokedAt,
    revokedReason: key.revokedReason, rotatedFromId: key.rotatedFromId, createdAt: key.createdAt,
  };
}
