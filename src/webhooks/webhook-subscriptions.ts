import { DataSource, EntityManager } from 'typeorm';
import { WebhookEndpointEntity, WebhookEventType } from './webhook-endpoint.entity';
import { OrganizationEntity } from '../organizations/organization.entity';

/** What the outbox needs of an enabled endpoint to decide whether an event goes to it. */
export interface Subscription {
  endpointId: string;
  organizationId: string;
  eventTypes: ReadonlySet<WebhookEventType>;
  quotaThresholds: readonly number[];
  expiryNoticeDays: number;
}

export interface SubscriptionsInvalidation {
  organizationId: string;
}

const NONE: readonly Subscription[] = [];

/**
 * Enabled endpoints per organization, in memory, so that asking "does anyone listen to this
 * organization?" on the verification hot path costs a map lookup — one database read per
 * organization and process the first time, and again after a change. Services call
 * `invalidate` after an endpoint change commits; in scale-out mode the same call arrives from
 * other instances through Redis (app.ts), so another instance may miss an event for a moment
 * after an endpoint was created there.
 */
export class WebhookSubscriptions {
  private readonly byOrganization = new Map<string, readonly Subscription[]>();
  /** The platform organization's endpoints, which receive the events of every organization. */
  private platform: { organizationId: string; subscriptions: readonly Subscription[] } | null = null;
  /** Bumped on every invalidation: a read that began before one is not cached. */
  private generation = 0;
  private broadcast: ((change: SubscriptionsInvalidation) => void) | null = null;

  constructor(private readonly dataSource: DataSource, private readonly maxOrganizations = 100_000) {}

  broadcastTo(send: (change: SubscriptionsInvalidation) => void): void {
    this.broadcast = send;
  }

  /** Every enabled endpoint that receives `organizationId`'s events: its own and the platform's. */
  async of(organizationId: string, manager: EntityManager = this.dataSource.manager): Promise<readonly Subscription[]> {
    const own = this.byOrganization.get(organizationId) ?? await this.load(organizationId, manager);
    const platform = this.platform ?? await this.loadPlatform(manager);
    if (!platform || platform.subscriptions.length === 0 || platform.organizationId === organizationId) return own;
    return own.length === 0 ? platform.subscriptions : [...own, ...platform.subscriptions];
  }

  /** After a change to an endpoint of `organizationId` committed. */
  invalidate(organizationId: string): void {
    this.applyRemote({ organizationId });
    this.broadcast?.({ organizationId });
  }

  /** An invalidation made on another instance: applied here, not passed on again. */
  applyRemote(change: SubscriptionsInvalidation): void {
    this.generation += 1;
    this.byOrganization.delete(change.organizationId);
    if (this.platform?.organizationId === change.organizationId) this.platform = null;
  }

  private async load(organizationId: string, manager: EntityManager): Promise<readonly Subscription[]> {
    const generation = this.generation;
    const endpoints = await manager.getRepository(WebhookEndpointEntity).findBy({ organizationId, enabled: true });
    const subscriptions = endpoints.length === 0 ? NONE : endpoints.map(subscriptionOf);
    if (generation === this.generation) {
      if (this.byOrganization.size >= this.maxOrganizations) this.byOrganization.clear();
      this.byOrganization.set(organizationId, subscriptions);
    }
    return subscriptions;
  }

  /** Null until `keyward init` made the platform organization. */
  private async loadPlatform(manager: EntityManager): Promise<{ organizationId: string; subscriptions: readonly Subscription[] } | null> {
    const generation = this.generation;
    const organization = await manager.getRepository(OrganizationEntity).findOne({ where: { isPlatform: true }, select: { id: true } });
    if (!organization) return null;
    const subscriptions = await this.load(organization.id, manager);
    const platform = { organizationId: organization.id, subscriptions };
    if (generation === this.generation) this.platform = platform;
    return platform;
  }
}

export function subscriptionOf(endpoint: WebhookEndpointEntity): Subscription {
  return {
    endpointId: endpoint.id,
    organizationId: endpoint.organizationId,
    eventTypes: new Set(endpoint.eventTypes),
    quotaThresholds: [...endpoint.quotaThresholds],
    expiryNoticeDays: endpoint.expiryNoticeDays,
  };
}
