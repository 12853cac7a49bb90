import { randomBytes } from 'node:crypto';
import { DataSource, IsNull } from 'typeorm';
import { WebhookEndpointEntity } from './webhook-endpoint.entity';
import { WebhookDeliveryEntity, WebhookDeliveryStatus } from './webhook-delivery.entity';
import { AttemptFailure, AttemptResult, WebhookSender } from './webhook-sender';
import { WebhookSubscriptions } from './webhook-subscriptions';
import { WebhookOutbox } from './webhook-outbox';
import { openSecret } from './webhook-secret';
import { AuditLogService } from '../audit-log/audit-log.service';
import { SYSTEM_ACTOR } from '../auth/actor';
import { Transactions } from '../db/data-source';
import type { Logger } from '../logger';
import { Clock } from '../clock';

/** How often every instance looks for due deliveries (besides being woken by new events). */
const POLL_MS = 1_000;
/** A new event is looked at this soon after it was written (its transaction has committed by then, or the next poll finds it). */
const WAKE_MS = 20;
/** Deliveries claimed at a time; a pass claims batches until nothing is due. */
const BATCH = 20;
/** How long a claimed attempt is this instance's alone: well above the 10 s an attempt may take. */
const LEASE_MS = 60_000;
/** An endpoint whose deliveries all failed this long is disabled. */
export const DISABLE_AFTER_MS = 5 * 86_400_000;
/** How often keys are scanned for expiry notices (by the injected clock). */
const EXPIRY_SCAN_MS = 60_000;

/** One attempt, for /metrics. */
export interface AttemptObservation {
  result: 'delivered' | AttemptFailure;
  seconds: number;
  /** The delivery used up its retries with this attempt (it is FAILED now). */
  gaveUp: boolean;
}

/** What WebhookDispatcher is built from (app.ts wires it). */
export interface WebhookDispatcherDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  clock: Clock;
  logger: Logger;
  audit: AuditLogService;
  pepper: string;
  subscriptions: WebhookSubscriptions;
  outbox: WebhookOutbox;
  sender: WebhookSender;
  /** Waits before each retry, in milliseconds (WEBHOOK_RETRY_SCHEDULE); then FAILED. */
  retrySchedule: readonly number[];
}

/** The claimed row: its attempt number and the token that proves the lease is still ours. */
type Claimed = WebhookDeliveryEntity & { leaseToken: string };

/**
 * Delivers the outbox, at least once, from every instance: a pass claims due deliveries of
 * enabled endpoints one row at a time (a conditional UPDATE taking a lease, so two instances
 * never make the same attempt), POSTs each (webhook-sender.ts), and records the answer — 2xx:
 * SUCCEEDED; otherwise the next attempt after the retry schedule's next wait, or FAILED once it
 * is used up. The webhook-id is the event's and never changes. An endpoint all of whose attempts
 * failed for 5 days is disabled (audited as webhook_endpoint.disable by no key); its deliveries
 * wait until it is enabled again. A process that dies mid-attempt leaves a lease that runs out:
 * another pass makes the attempt again. Passes run every second, soon after new events, and on
 * `tick()` (tests drive it with the manual clock).
 */
export class WebhookDispatcher {
  /** Told of every attempt (metrics). */
  observer: ((attempt: AttemptObservation) => void) | null = null;

  private timer: NodeJS.Timeout | null = null;
  private wakeTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  /** A pass waiting for the running one; more ticks meanwhile join it. */
  private queued: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private lastExpiryScan: number | null = null;

  constructor(private readonly deps: WebhookDispatcherDependencies) {}

  /** Passes every second and soon after new events, until `stop()`. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    this.timer.unref();
  }

  /** New events were written: look soon (once started). */
  wake(): void {
    if (!this.started || this.stopped || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      void this.tick();
    }, WAKE_MS);
    this.wakeTimer.unref();
  }

  /** Runs a pass that starts after the one running (if any); resolves when it is done. */
  tick(): Promise<void> {
    if (this.queued) return this.queued;
    const pass = this.running.then(async () => {
      this.queued = null;
      if (this.stopped) return;
      await this.pass().catch((error: unknown) => this.deps.logger.warn({ err: error }, 'webhook delivery pass failed; the next one retries'));
    });
    this.queued = pass;
    this.running = pass;
    return pass;
  }

  /** No more passes; waits for the running one (its attempts take at most their timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.running;
  }

  private async pass(): Promise<void> {
    const now = this.deps.clock.now();
    if (this.lastExpiryScan === null || Math.abs(now.getTime() - this.lastExpiryScan) >= EXPIRY_SCAN_MS) {
      this.lastExpiryScan = now.getTime();
      await this.deps.outbox.expiryNotices();
    }
    for (;;) {
      const claimed = await this.claimDue(now);
      await Promise.all(claimed.map((delivery) => this.attempt(delivery)));
      if (claimed.length < BATCH || this.stopped) return;
    }
  }

  /** Due deliveries of enabled endpoints, each claimed with a lease; rows another instance claimed first are skipped. */
  private async claimDue(now: Date): Promise<Claimed[]> {
    const due = await this.deps.dataSource.getRepository(WebhookDeliveryEntity).createQueryBuilder('d')
      .innerJoin(WebhookEndpointEntity, 'e', 'e.id = d.endpoint_id')
      .where('d.status = :pending AND d.next_attempt_at <= :now AND (d.lease_until IS NULL OR d.lease_until <= :now) AND e.enabled = :enabled', {
        pending: WebhookDeliveryStatus.PENDING, now, enabled: true,
      })
      .orderBy('d.next_attempt_at', 'ASC')
      .limit(BATCH)
      .getMany();
    const claimed: Claimed[] = [];
    for (const delivery of due) {
      const leaseToken = randomBytes(12).toString('hex');
      const result = await this.deps.transactions.run((tx) => tx.createQueryBuilder().update(WebhookDeliveryEntity)
        .set({ leaseToken, leaseUntil: new Date(now.getTime() + LEASE_MS), attempts: () => 'attempts + 1' })
        .where('id = :id AND status = :pending AND (lease_until IS NULL OR lease_until <= :now)', { id: delivery.id, pending: WebhookDeliveryStatus.PENDING, now })
        .execute());
      if (result.affected) claimed.push({ ...delivery, leaseToken, attempts: delivery.attempts + 1 });
    }
    return claimed;
  }

  private async attempt(delivery: Claimed): Promise<void> {
    const endpoint = await this.deps.dataSource.getRepository(WebhookEndpointEntity).findOneBy({ id: delivery.endpointId });
    // Deleted since it was claimed: its deliveries went with it.
    if (!endpoint) return;
    const started = performance.now();
    const result = await this.deps.sender.send({
      url: endpoint.url, secret: openSecret(this.deps.pepper, endpoint.secretSealed), eventId: delivery.eventId, body: delivery.payload,
    });
    const seconds = (performance.now() - started) / 1000;
    const gaveUp = await this.record(delivery, endpoint, result);
    this.observer?.({ result: result.delivered ? 'delivered' : result.failure, seconds, gaveUp });
  }

  /** Writes the attempt's outcome, if the lease is still ours; true when the delivery is FAILED now. */
  private async record(delivery: Claimed, endpoint: WebhookEndpointEntity, result: AttemptResult): Promise<boolean> {
    const now = this.deps.clock.now();
    const ours = { id: delivery.id, leaseToken: delivery.leaseToken };
    const released = { leaseToken: null, leaseUntil: null, lastStatusCode: result.statusCode };
    if (result.delivered) {
      await this.deps.transactions.run(async (tx) => {
        const updated = await tx.update(WebhookDeliveryEntity, ours, { ...released, status: WebhookDeliveryStatus.SUCCEEDED, deliveredAt: now, nextAttemptAt: null, lastError: null });
        if (updated.affected && endpoint.failingSince) await tx.update(WebhookEndpointEntity, { id: endpoint.id }, { failingSince: null });
      });
      return false;
    }
    const gaveUp = delivery.attempts > this.deps.retrySchedule.length;
    const failingSince = endpoint.failingSince ?? now;
    const recorded = await this.deps.transactions.run(async (tx) => {
      const updated = await tx.update(WebhookDeliveryEntity, ours, {
        ...released,
        status: gaveUp ? WebhookDeliveryStatus.FAILED : WebhookDeliveryStatus.PENDING,
        nextAttemptAt: gaveUp ? null : new Date(now.getTime() + this.deps.retrySchedule[delivery.attempts - 1]),
        lastError: result.error.slice(0, 500),
      });
      if (updated.affected && !endpoint.failingSince) await tx.update(WebhookEndpointEntity, { id: endpoint.id, failingSince: IsNull() }, { failingSince: now });
      return Boolean(updated.affected);
    });
    if (recorded && now.getTime() - failingSince.getTime() >= DISABLE_AFTER_MS) await this.disable(endpoint, failingSince, now);
    return gaveUp;
  }

  private async disable(endpoint: WebhookEndpointEntity, failingSince: Date, now: Date): Promise<void> {
    const disabled = await this.deps.transactions.run(async (tx) => {
      const updated = await tx.update(WebhookEndpointEntity, { id: endpoint.id, enabled: true }, { enabled: false, updatedAt: now });
      if (!updated.affected) return false;
      // By no key: keyward itself decided (SYSTEM_ACTOR has no key and no address).
      await this.deps.audit.record(tx, SYSTEM_ACTOR, {
        action: 'webhook_endpoint.disable',
        targetType: 'webhook_endpoint',
        targetId: endpoint.id,
        organizationId: endpoint.organizationId,
        metadata: { reason: 'every delivery attempt failed for 5 days', failingSince: failingSince.toISOString() },
      });
      return true;
    });
    if (!disabled) return;
    this.deps.subscriptions.invalidate(endpoint.organizationId);
    this.deps.logger.warn({ endpointId: endpoint.id, organizationId: endpoint.organizationId, failingSince }, 'webhook endpoint disabled: every delivery attempt failed for 5 days');
  }
}
