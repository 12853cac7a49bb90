import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, timestamp } from '../db/columns';

/** One refused request, kept for the rate-limit log (bounded retention). */
@Entity('rate_limit_events')
@Index('idx_rate_limit_events_key', ['apiKeyId', 'id'])
export class RateLimitEventEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'api_key_id', type: 'varchar', length: ID_LENGTH })
  apiKeyId!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH })
  organizationId!: string;

  @Column({ type: 'varchar', length: 64 })
  name!: string;

  @Column({ name: 'limit_value', type: 'int' })
  limit!: number;

  @Column({ type: 'varchar', length: 200, nullable: true })
  operation!: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  ip!: string | null;

  @Column({ ...timestamp })
  at!: Date;
}
