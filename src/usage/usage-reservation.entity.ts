import { Column, Entity, Index } from 'typeorm';
import { bigintAsNumber, ID_LENGTH, KeyOwnedRow, nullableTimestamp, timestamp } from '../db/columns';
import type { RateLimitSpec } from '../api-keys/api-key.entity';

export enum ReservationStatus {
  HELD = 'HELD',
  SETTLED = 'SETTLED',
  RELEASED = 'RELEASED',
  EXPIRED = 'EXPIRED',
}

/** One quota counter a reservation holds on, and how much. */
export interface HeldCounter {
  quotaId: string;
  periodKey: string;
  amount: number;
}

/**
 * Everything a reservation holds, so settling, releasing or expiring it gives back exactly
 * that (the key's quotas or windows may have changed meanwhile).
 */
export interface ReservationHolds {
  counters: HeldCounter[];
  /** The session whose budget holds `tokens`, when the reservation required one. */
  sessionId: string | null;
  /** Tokens taken from TOKENS windows at `takenAtMs` (the reserve's clock). */
  windows: { subject: string; limits: RateLimitSpec[]; tokens: number; takenAtMs: number } | null;
}

const holdsColumn = {
  to: (value: ReservationHolds) => JSON.stringify(value),
  from: (value: string) => JSON.parse(value) as ReservationHolds,
};

/** reserveUsage's hold, until settleUsage, releaseUsage or its TTL ends it. */
@Entity('usage_reservations')
@Index('idx_usage_reservations_idempotency', ['organizationId', 'idempotencyKey'], { unique: true })
@Index('idx_usage_reservations_status_expiry', ['status', 'expiresAt'])
export class UsageReservationEntity extends KeyOwnedRow {
  @Column({ name: 'session_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  sessionId!: string | null;

  /** Null once older than the idempotency window, so the same key can reserve anew. */
  @Column({ name: 'idempotency_key', type: 'varchar', length: 200, nullable: true })
  idempotencyKey!: string | null;

  /** What was asked (key and amounts): a repeat with another hash is IDEMPOTENCY_CONFLICT. */
  @Column({ name: 'request_hash', type: 'varchar', length: 64 })
  requestHash!: string;

  @Column({ type: 'varchar', length: 200, nullable: true })
  model!: string | null;

  @Column({ type: 'varchar', length: 200, nullable: true })
  operation!: string | null;

  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  tokens!: number;

  @Column({ name: 'cost_usd', type: 'double', default: 0 })
  costUsd!: number;

  @Column({ type: 'text', transformer: holdsColumn })
  holds!: ReservationHolds;

  @Column({ type: 'varchar', length: 16 })
  status!: ReservationStatus;

  /** The settle's parameters: settling again with others is IDEMPOTENCY_CONFLICT. */
  @Column({ name: 'settle_hash', type: 'varchar', length: 64, nullable: true })
  settleHash!: string | null;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;

  @Column({ name: 'expires_at', ...timestamp })
  expiresAt!: Date;

  @Column({ name: 'ended_at', ...nullableTimestamp })
  endedAt!: Date | null;
}
