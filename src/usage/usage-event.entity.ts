import { Column, Entity, Index } from 'typeorm';
import { bigintAsNumber, ID_LENGTH, KeyOwnedRow, timestamp } from '../db/columns';

/** One GraphQL operation, verified request or recordUsage call. Written in batches. */
@Entity('usage_events')
@Index('idx_usage_events_org_at', ['organizationId', 'at'])
@Index('idx_usage_events_key_at', ['apiKeyId', 'at'])
export class UsageEventEntity extends KeyOwnedRow {
  @Column({ name: 'session_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  sessionId!: string | null;

  @Column({ type: 'varchar', length: 200 })
  operation!: string;

  @Column({ name: 'status_code', type: 'int', nullable: true })
  statusCode!: number | null;

  @Column({ name: 'is_error', type: 'boolean', default: false })
  isError!: boolean;

  @Column({ name: 'latency_ms', type: 'double', nullable: true })
  latencyMs!: number | null;

  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  tokens!: number;

  @Column({ name: 'cost_usd', type: 'double', default: 0 })
  costUsd!: number;

  @Column({ ...timestamp })
  at!: Date;
}
