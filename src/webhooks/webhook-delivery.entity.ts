import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, nullableTimestamp, timestamp } from '../db/columns';
import { WebhookEventType } from './webhook-endpoint.entity';

export enum WebhookDeliveryStatus {
  PENDING = 'PENDING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
}

/**
 * The outbox: one event for one endpoint, written in the transaction of the change that caused
 * it and delivered at least once by the dispatcher (webhook-dispatcher.ts). An attempt is taken
 * by claiming the row with a lease (`leaseToken` until `leaseUntil`), so two instances never
 * make the same attempt. `dedupKey` makes "once per period / window / key" hold across
 * instances: an endpoint never gets two deliveries with the same key.
 */
@Entity('webhook_deliveries')
@Index('idx_webhook_deliveries_endpoint', ['endpointId', 'id'])
@Index('idx_webhook_deliveries_due', ['status', 'nextAttemptAt'])
@Index('uq_webhook_deliveries_dedup', ['endpointId', 'dedupKey'], { unique: true })
export class WebhookDeliveryEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'endpoint_id', type: 'varchar', length: ID_LENGTH })
  endpointId!: string;

  /** The webhook-id header: the same on every attempt (and for every endpoint the event went to). */
  @Column({ name: 'event_id', type: 'varchar', length: ID_LENGTH })
  eventId!: string;

  @Column({ name: 'event_type', type: 'varchar', length: 32 })
  eventType!: WebhookEventType;

  @Column({ name: 'dedup_key', type: 'varchar', length: 190, nullable: true })
  dedupKey!: string | null;

  /** The exact JSON body sent (and signed) on every attempt. */
  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: WebhookDeliveryStatus;

  /** Attempts made so far (counted when an attempt is claimed). */
  @Column({ type: 'int', default: 0 })
  attempts!: number;

  /** When the next attempt is due; null once SUCCEEDED or FAILED. */
  @Column({ name: 'next_attempt_at', ...nullableTimestamp })
  nextAttemptAt!: Date | null;

  @Column({ name: 'lease_until', ...nullableTimestamp })
  leaseUntil!: Date | null;

  @Column({ name: 'lease_token', type: 'varchar', length: 32, nullable: true })
  leaseToken!: string | null;

  @Column({ name: 'last_status_code', type: 'int', nullable: true })
  lastStatusCode!: number | null;

  @Column({ name: 'last_error', type: 'varchar', length: 500, nullable: true })
  lastError!: string | null;

  @Column({ name: 'delivered_at', ...nullableTimestamp })
  deliveredAt!: Date | null;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;
}
