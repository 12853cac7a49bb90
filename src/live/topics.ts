import type { QuotaStatus } from '../quotas/quota.entity';
import type { RateLimitState } from '../rate-limits/rate-limiter';
import type { OrganizationStatus } from '../organizations/organization.entity';
import type { ApiKeyEvent, SessionPayload } from './payloads';
import type { CacheInvalidation } from '../auth/key-cache';

/** Every live topic. Each is published per subject id (organization or key), never broadcast. */
export enum Topic {
  /** id: the quota's owner (organization or key id). */
  QUOTA_CHANGED = 'QUOTA_CHANGED',
  /** id: the key id. */
  RATE_LIMIT_CHANGED = 'RATE_LIMIT_CHANGED',
  /** id: the organization id. */
  SESSION_CHANGED = 'SESSION_CHANGED',
  /** id: the organization id. */
  API_KEY_CHANGED = 'API_KEY_CHANGED',
  /** id: the organization id — status changes, for closing its keys' sockets. */
  ORGANIZATION_CHANGED = 'ORGANIZATION_CHANGED',
  /** id: always ALL_INSTANCES — verification cache entries every instance must drop. */
  KEY_CACHE_INVALIDATED = 'KEY_CACHE_INVALIDATED',
  /** id: always ALL_INSTANCES — an organization whose webhook endpoints changed (webhook-subscriptions.ts). */
  WEBHOOK_SUBSCRIPTIONS_CHANGED = 'WEBHOOK_SUBSCRIPTIONS_CHANGED',
}

export const ALL_INSTANCES = 'all';

export interface WebhookSubscriptionsChange {
  organizationId: string;
}

export { ApiKeyEventType } from '../api-keys/api-key-events';

export interface OrganizationChange {
  organizationId: string;
  status: OrganizationStatus;
}

/** The payload of each topic (wire payloads, see payloads.ts); what subscription resolvers receive as their root value. */
export interface TopicPayloads {
  [Topic.QUOTA_CHANGED]: QuotaStatus;
  [Topic.RATE_LIMIT_CHANGED]: RateLimitState;
  [Topic.SESSION_CHANGED]: SessionPayload;
  [Topic.API_KEY_CHANGED]: ApiKeyEvent;
  [Topic.ORGANIZATION_CHANGED]: OrganizationChange;
  [Topic.KEY_CACHE_INVALIDATED]: CacheInvalidation;
  [Topic.WEBHOOK_SUBSCRIPTIONS_CHANGED]: WebhookSubscriptionsChange;
}
