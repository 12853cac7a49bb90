import { Column, Entity, Index } from 'typeorm';
import { bigintAsNumber, KeyOwnedRow, nullableTimestamp, timestamp } from '../db/columns';

export enum SessionStatus {
  ACTIVE = 'ACTIVE',
  EXHAUSTED = 'EXHAUSTED',
  EXPIRED = 'EXPIRED',
  TERMINATED = 'TERMINATED',
}

/** A metered, pay-per-session budget of tokens with a lifetime. One ACTIVE per organization. */
@Entity('sessions')
@Index('idx_sessions_org_status', ['organizationId', 'status'])
@Index('idx_sessions_org', ['organizationId', 'id'])
export class SessionEntity extends KeyOwnedRow {
  @Column({ type: 'varchar', length: 16 })
  status!: SessionStatus;

  @Column({ name: 'token_limit', type: 'bigint', transformer: bigintAsNumber })
  tokenLimit!: number;

  @Column({ name: 'tokens_used', type: 'bigint', default: 0, transformer: bigintAsNumber })
  tokensUsed!: number;

  @Column({ name: 'request_count', type: 'int', default: 0 })
  requestCount!: number;

  @Column({ name: 'price_usd', type: 'double', default: 0 })
  priceUsd!: number;

  @Column({ name: 'started_at', ...timestamp })
  startedAt!: Date;

  @Column({ name: 'expires_at', ...timestamp })
  expiresAt!: Date;

  @Column({ name: 'ended_at', ...nullableTimestamp })
  endedAt!: Date | null;
}
