import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, nullableTimestamp, timestamp } from '../db/columns';

/** What an endpoint can subscribe to (the GraphQL enum WebhookEventType). */
export enum WebhookEventType {
  QUOTA_THRESHOLD = 'QUOTA_THRESHOLD',
  QUOTA_EXHAUSTED = 'QUOTA_EXHAUSTED',
  RATE_LIMIT_EXHAUSTED = 'RATE_LIMIT_EXHAUSTED',
  SESSION_EXHAUSTED = 'SESSION_EXHAUSTED',
  KEY_EXPIRING = 'KEY_EXPIRING',
  KEY_REVOKED = 'KEY_REVOKED',
  KEY_ROTATED = 'KEY_ROTATED',
  TEST = 'TEST',
}

/** The `type` of a delivered event, as receivers see it in the JSON body. */
export const WEBHOOK_TYPE_NAMES: Readonly<Record<WebhookEventType, string>> = {
  [WebhookEventType.QUOTA_THRESHOLD]: 'quota.threshold',
  [WebhookEventType.QUOTA_EXHAUSTED]: 'quota.exhausted',
  [WebhookEventType.RATE_LIMIT_EXHAUSTED]: 'rate_limit.exhausted',
  [WebhookEventType.SESSION_EXHAUSTED]: 'session.exhausted',
  [WebhookEventType.KEY_EXPIRING]: 'key.expiring',
  [WebhookEventType.KEY_REVOKED]: 'key.revoked',
  [WebhookEventType.KEY_ROTATED]: 'key.rotated',
  [WebhookEventType.TEST]: 'test',
};

/** Where an organization's events are POSTed, signed with the endpoint's secret (Standard Webhooks). */
@Entity('webhook_endpoints')
@Index('idx_webhook_endpoints_org', ['organizationId', 'id'])
export class WebhookEndpointEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  /** The platform organization's endpoints receive the events of every organization. */
  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH })
  organizationId!: string;

  /** http(s), at most 2,000 characters, no credentials (webhook-address.ts). */
  @Column({ type: 'varchar', length: 2000 })
  url!: string;

  @Column({ type: 'varchar', length: 500, nullable: true })
  description!: string | null;

  @Column({ name: 'event_types', type: 'simple-json' })
  eventTypes!: WebhookEventType[];

  /** Percentages 1–100, ascending; QUOTA_THRESHOLD fires once per quota period for each. */
  @Column({ name: 'quota_thresholds', type: 'simple-json' })
  quotaThresholds!: number[];

  /** KEY_EXPIRING fires once per key when its expiry is this many days away or fewer. */
  @Column({ name: 'expiry_notice_days', type: 'int' })
  expiryNoticeDays!: number;

  @Column({ type: 'boolean' })
  enabled!: boolean;

  /** The whsec_ signing secret, sealed with a key derived from the pepper (webhook-secret.ts); never listed. */
  @Column({ name: 'secret_sealed', type: 'varchar', length: 255 })
  secretSealed!: string;

  /** First failed attempt since the last delivered one; null while deliveries succeed. */
  @Column({ name: 'failing_since', ...nullableTimestamp })
  failingSince!: Date | null;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;

  @Column({ name: 'updated_at', ...timestamp })
  updatedAt!: Date;
}
