import { DataSource, EntityManager } from 'typeorm';
import { WebhookEndpointEntity, WebhookEventType } from './webhook-endpoint.entity';
import { WebhookDeliveryEntity, WebhookDeliveryStatus } from './webhook-delivery.entity';
import { WebhookSubscriptions } from './webhook-subscriptions';
import { WebhookOutbox } from './webhook-outbox';
import { generateWebhookSecret, sealSecret } from './webhook-secret';
import { validateWebhookUrl } from './webhook-address';
import { Actor } from '../auth/actor';
import { assertNotSuperseded, assertOrganizationAccess, assertPlatformAdmin, canAccessOrganization } from '../auth/authorization';
import { AuditLogService } from '../audit-log/audit-log.service';
import { lockOrganization } from '../organizations/organization-lock';
import { Transactions } from '../db/data-source';
import { Clock } from '../clock';
import { newId } from '../ids';
import { BadUserInputError, NotFoundError } from '../errors';
import { Page, pageRequest, toPage } from '../pagination';
import { optionalText, requireInt } from '../validation';

/** What an organization may have, and what an endpoint gets when its input leaves it out. */
export const WEBHOOK_LIMITS = {
  endpointsPerOrganization: 20,
  descriptionLength: 500,
  defaultQuotaThresholds: [80, 100],
  maxQuotaThresholds: 10,
  defaultExpiryNoticeDays: 7,
  maxExpiryNoticeDays: 365,
} as const;

export interface CreateWebhookEndpoint {
  organizationId?: string | null;
  url: string;
  eventTypes: WebhookEventType[];
  description?: string | null;
  quotaThresholds?: number[] | null;
  expiryNoticeDays?: number | null;
}

/** Absent (undefined or null) leaves a field alone; `description: null` clears it. */
export interface UpdateWebhookEndpoint {
  url?: string | null;
  eventTypes?: WebhookEventType[] | null;
  description?: string | null;
  quotaThresholds?: number[] | null;
  expiryNoticeDays?: number | null;
  enabled?: boolean | null;
}

export interface CreatedWebhookEndpoint {
  endpoint: WebhookEndpointEntity;
  /** whsec_…, shown once (create, rotate); keyward keeps it sealed to sign with. */
  secret: string;
}

/** What WebhookService is built from (app.ts wires it). */
export interface WebhookServiceDependencies {
  dataSource: DataSource;
  transactions: Transactions;
  clock: Clock;
  audit: AuditLogService;
  pepper: string;
  subscriptions: WebhookSubscriptions;
  outbox: WebhookOutbox;
  /** WEBHOOK_ALLOW_PRIVATE: endpoint URLs may name private, loopback and link-local addresses. */
  allowPrivate: boolean;
  /** Tells the dispatcher that a delivery is due now (retry, test). */
  wake: () => void;
}

const EVENT_ORDER = Object.values(WebhookEventType);

function validateEventTypes(field: string, types: readonly WebhookEventType[]): WebhookEventType[] {
  if (!Array.isArray(types) || types.length === 0) throw new BadUserInputError(field, `needs at least one of ${EVENT_ORDER.join(', ')}`);
  const unknown = types.find((type) => !EVENT_ORDER.includes(type));
  if (unknown !== undefined) throw new BadUserInputError(field, `"${String(unknown).slice(0, 40)}" is not one of ${EVENT_ORDER.join(', ')}`);
  return EVENT_ORDER.filter((type) => types.includes(type));
}

function validateThresholds(field: string, thresholds: readonly number[]): number[] {
  if (thresholds.length === 0 || thresholds.length > WEBHOOK_LIMITS.maxQuotaThresholds) {
    throw new BadUserInputError(field, `needs 1 to ${WEBHOOK_LIMITS.maxQuotaThresholds} percentages (got ${thresholds.length})`);
  }
  const percentages = thresholds.map((threshold, index) => requireInt(`${field}[${index}]`, threshold, 1, 100));
  return [...new Set(percentages)].sort((a, b) => a - b);
}

function validateNoticeDays(field: string, days: number): number {
  return requireInt(field, days, 1, WEBHOOK_LIMITS.maxExpiryNoticeDays);
}

/**
 * Webhook endpoints and their deliveries. Who may act on what (auth/authorization.ts): a
 * superseded secret changes no webhook (FORBIDDEN); another organization's endpoint or delivery
 * does not exist (NOT_FOUND); the platform organization's endpoints receive every organization's
 * events, so only platform admins create or change them or read their deliveries
 * (INSUFFICIENT_SCOPE); then the input (BAD_USER_INPUT). Every change is audited in its transaction;
 * the subscriptions cache is told once it committed.
 */
export class WebhookService {
  constructor(private readonly deps: WebhookServiceDependencies) {}

  /** The caller's organization's endpoints (every organization's for platform admins), newest first. */
  async list(actor: Actor, organizationId?: string | null): Promise<WebhookEndpointEntity[]> {
    const scope = organizationId ?? (actor.isPlatformAdmin ? null : actor.organizationId);
    if (scope) assertOrganizationAccess(actor, scope);
    return this.deps.dataSource.getRepository(WebhookEndpointEntity).find({ where: scope ? { organizationId: scope } : {}, order: { id: 'DESC' } });
  }

  async create(actor: Actor, input: CreateWebhookEndpoint): Promise<CreatedWebhookEndpoint> {
    assertNotSuperseded(actor, 'change webhooks');
    const organizationId = input.organizationId ?? actor.organizationId;
    if (!organizationId) throw new BadUserInputError('organizationId', 'is required');
    assertOrganizationAccess(actor, organizationId);
    this.assertMayManage(actor, 'Creating one');
    const url = validateWebhookUrl('url', input.url, this.deps.allowPrivate);
    const eventTypes = validateEventTypes('eventTypes', input.eventTypes);
    const description = optionalText('description', input.description, WEBHOOK_LIMITS.descriptionLength) ?? null;
    const quotaThresholds = input.quotaThresholds == null ? [...WEBHOOK_LIMITS.defaultQuotaThresholds] : validateThresholds('quotaThresholds', input.quotaThresholds);
    const expiryNoticeDays = input.expiryNoticeDays == null ? WEBHOOK_LIMITS.defaultExpiryNoticeDays : validateNoticeDays('expiryNoticeDays', input.expiryNoticeDays);

    const created = await this.deps.transactions.run(async (tx) => {
      const organization = await lockOrganization(tx, organizationId);
      const count = await tx.getRepository(WebhookEndpointEntity).countBy({ organizationId: organization.id });
      if (count >= WEBHOOK_LIMITS.endpointsPerOrganization) {
        throw new BadUserInputError('organizationId', `the organization already has ${count} webhook endpoints (at most ${WEBHOOK_LIMITS.endpointsPerOrganization}); delete one first`);
      }
      const now = this.deps.clock.now();
      const secret = generateWebhookSecret();
      const endpoint = tx.getRepository(WebhookEndpointEntity).create({
        id: newId('whk', now),
        organizationId: organization.id,
        url,
        description,
        eventTypes,
        quotaThresholds,
        expiryNoticeDays,
        enabled: true,
        secretSealed: sealSecret(this.deps.pepper, secret),
        failingSince: null,
        createdAt: now,
        updatedAt: now,
      });
      await tx.insert(WebhookEndpointEntity, endpoint);
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_endpoint.create',
        targetType: 'webhook_endpoint',
        targetId: endpoint.id,
        organizationId: organization.id,
        metadata: { host: new URL(url).host, eventTypes },
      });
      return { endpoint, secret };
    });
    this.deps.subscriptions.invalidate(organizationId);
    return created;
  }

  async update(actor: Actor, id: string, input: UpdateWebhookEndpoint): Promise<WebhookEndpointEntity> {
    assertNotSuperseded(actor, 'change webhooks');
    const updated = await this.deps.transactions.run(async (tx) => {
      const endpoint = await this.manageable(actor, id, tx, 'Changing one');
      const changes: Partial<WebhookEndpointEntity> = {};
      if (input.url != null) changes.url = validateWebhookUrl('url', input.url, this.deps.allowPrivate);
      if (input.eventTypes != null) changes.eventTypes = validateEventTypes('eventTypes', input.eventTypes);
      if (input.description !== undefined) changes.description = optionalText('description', input.description, WEBHOOK_LIMITS.descriptionLength) ?? null;
      if (input.quotaThresholds != null) changes.quotaThresholds = validateThresholds('quotaThresholds', input.quotaThresholds);
      if (input.expiryNoticeDays != null) changes.expiryNoticeDays = validateNoticeDays('expiryNoticeDays', input.expiryNoticeDays);
      if (input.enabled != null) {
        changes.enabled = input.enabled;
        // Enabled again: its failures so far no longer count towards disabling it.
        if (input.enabled && !endpoint.enabled) changes.failingSince = null;
      }
      Object.assign(endpoint, changes, { updatedAt: this.deps.clock.now() });
      await tx.save(endpoint);
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_endpoint.update',
        targetType: 'webhook_endpoint',
        targetId: endpoint.id,
        organizationId: endpoint.organizationId,
        metadata: { changed: Object.keys(changes).filter((field) => field !== 'failingSince').sort() },
      });
      return endpoint;
    });
    this.deps.subscriptions.invalidate(updated.organizationId);
    if (input.enabled) this.deps.wake();
    return updated;
  }

  /** Deletes the endpoint with its delivery log; deliveries not yet made are dropped. */
  async delete(actor: Actor, id: string): Promise<boolean> {
    assertNotSuperseded(actor, 'change webhooks');
    const organizationId = await this.deps.transactions.run(async (tx) => {
      const endpoint = await this.manageable(actor, id, tx, 'Deleting one');
      await tx.delete(WebhookDeliveryEntity, { endpointId: endpoint.id });
      await tx.delete(WebhookEndpointEntity, { id: endpoint.id });
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_endpoint.delete', targetType: 'webhook_endpoint', targetId: endpoint.id, organizationId: endpoint.organizationId,
      });
      return endpoint.organizationId;
    });
    this.deps.subscriptions.invalidate(organizationId);
    return true;
  }

  /** A new signing secret, shown once; every attempt from now on (retries too) is signed with it. */
  async rotateSecret(actor: Actor, id: string): Promise<CreatedWebhookEndpoint> {
    assertNotSuperseded(actor, 'change webhooks');
    return this.deps.transactions.run(async (tx) => {
      const endpoint = await this.manageable(actor, id, tx, 'Rotating its secret');
      const secret = generateWebhookSecret();
      endpoint.secretSealed = sealSecret(this.deps.pepper, secret);
      endpoint.updatedAt = this.deps.clock.now();
      await tx.update(WebhookEndpointEntity, { id: endpoint.id }, { secretSealed: endpoint.secretSealed, updatedAt: endpoint.updatedAt });
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_endpoint.rotate_secret', targetType: 'webhook_endpoint', targetId: endpoint.id, organizationId: endpoint.organizationId,
      });
      return { endpoint, secret };
    });
  }

  /** A TEST event to the endpoint now (whatever it subscribed to); the delivery, still PENDING. */
  async sendTest(actor: Actor, id: string): Promise<WebhookDeliveryEntity> {
    assertNotSuperseded(actor, 'change webhooks');
    const delivery = await this.deps.transactions.run(async (tx) => {
      const endpoint = await this.manageable(actor, id, tx, 'Sending it a test');
      if (!endpoint.enabled) throw new BadUserInputError('id', 'the endpoint is disabled; enable it first (updateWebhookEndpoint with enabled: true)');
      const test = await this.deps.outbox.test(tx, endpoint);
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_endpoint.test', targetType: 'webhook_endpoint', targetId: endpoint.id, organizationId: endpoint.organizationId,
        metadata: { deliveryId: test.id, eventId: test.eventId },
      });
      return test;
    });
    this.deps.wake();
    return delivery;
  }

  /** An endpoint's deliveries, newest first, optionally of one status. */
  async deliveries(actor: Actor, endpointId: string, status: WebhookDeliveryStatus | null | undefined, first?: number | null, after?: string | null): Promise<Page<WebhookDeliveryEntity>> {
    const request = pageRequest(first, after);
    const endpoint = await this.visible(actor, endpointId);
    this.assertMayManage(actor, 'Reading their deliveries');
    const query = this.deps.dataSource.getRepository(WebhookDeliveryEntity).createQueryBuilder('d').where('d.endpoint_id = :endpointId', { endpointId: endpoint.id });
    if (status) query.andWhere('d.status = :status', { status });
    const totalCount = await query.clone().getCount();
    if (request.afterId) query.andWhere('d.id < :after', { after: request.afterId });
    const rows = await query.orderBy('d.id', 'DESC').limit(request.first + 1).getMany();
    return toPage(rows, request, totalCount);
  }

  /**
   * Makes a delivery due now, whatever its status. Its attempts continue the retry schedule
   * where they stood: one that used up its retries gets this one attempt; the webhook-id stays.
   */
  async retry(actor: Actor, deliveryId: string): Promise<WebhookDeliveryEntity> {
    assertNotSuperseded(actor, 'change webhooks');
    const delivery = await this.deps.transactions.run(async (tx) => {
      const found = await tx.getRepository(WebhookDeliveryEntity).findOneBy({ id: deliveryId });
      const endpoint = found ? await tx.getRepository(WebhookEndpointEntity).findOneBy({ id: found.endpointId }) : null;
      if (!found || !endpoint || !canAccessOrganization(actor, endpoint.organizationId)) throw new NotFoundError('Webhook delivery');
      this.assertMayManage(actor, 'Retrying their deliveries');
      if (!endpoint.enabled) throw new BadUserInputError('id', 'its endpoint is disabled; enable it first (updateWebhookEndpoint with enabled: true)');
      const now = this.deps.clock.now();
      const changed = await tx.createQueryBuilder().update(WebhookDeliveryEntity)
        .set({ status: WebhookDeliveryStatus.PENDING, nextAttemptAt: now })
        .where('id = :id AND (lease_until IS NULL OR lease_until <= :now)', { id: found.id, now })
        .execute();
      if (!changed.affected) throw new BadUserInputError('id', 'the delivery is being attempted right now; look again in a few seconds');
      await this.deps.audit.record(tx, actor, {
        action: 'webhook_delivery.retry', targetType: 'webhook_delivery', targetId: found.id, organizationId: endpoint.organizationId,
        metadata: { endpointId: endpoint.id, eventId: found.eventId, previousStatus: found.status },
      });
      return Object.assign(found, { status: WebhookDeliveryStatus.PENDING, nextAttemptAt: now });
    });
    this.deps.wake();
    return delivery;
  }

  /** Tenancy: another organization's endpoint does not exist for the caller. */
  private async visible(actor: Actor, id: string, manager: EntityManager = this.deps.dataSource.manager): Promise<WebhookEndpointEntity> {
    const endpoint = await manager.getRepository(WebhookEndpointEntity).findOneBy({ id });
    if (!endpoint || !canAccessOrganization(actor, endpoint.organizationId)) throw new NotFoundError('Webhook endpoint');
    return endpoint;
  }

  private async manageable(actor: Actor, id: string, tx: EntityManager, what: string): Promise<WebhookEndpointEntity> {
    const endpoint = await this.visible(actor, id, tx);
    this.assertMayManage(actor, what);
    return endpoint;
  }

  /**
   * A caller sees only its own organization's endpoints unless it is a platform admin; inside the
   * platform organization those endpoints get every organization's events, which only platform
   * admins may direct or read.
   */
  private assertMayManage(actor: Actor, what: string): void {
    if (actor.inPlatformOrganization) assertPlatformAdmin(actor, `Endpoints of the platform organization receive every organization's events. ${what}`);
  }
}
