import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, timestamp } from '../db/columns';

export enum Meter {
  REQUESTS = 'REQUESTS',
  TOKENS = 'TOKENS',
  COST_USD = 'COST_USD',
}

/** A quota as given on create / update: what is counted, per which period, up to what. */
export interface QuotaSpec {
  meter: Meter;
  period: QuotaPeriod;
  limit: number;
}

/** A quota with what its current period has used. */
export interface QuotaStatus {
  organizationId: string | null;
  apiKeyId: string | null;
  meter: Meter;
  period: QuotaPeriod;
  limit: number;
  used: number;
  /** What open reservations hold; `remaining` = limit − used − held. */
  held: number;
  remaining: number;
  /** 0-100. */
  percentUsed: number;
  resetsAt: Date | null;
}

export enum QuotaPeriod {
  DAY = 'DAY',
  MONTH = 'MONTH',
  LIFETIME = 'LIFETIME',
}

/** A limit on one meter over one period, owned by exactly one organization or one key. */
@Entity('quotas')
@Index('idx_quotas_org', ['organizationId'])
@Index('idx_quotas_key', ['apiKeyId'])
export class QuotaEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  organizationId!: string | null;

  @Column({ name: 'api_key_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  apiKeyId!: string | null;

  @Column({ type: 'varchar', length: 16 })
  meter!: Meter;

  @Column({ type: 'varchar', length: 16 })
  period!: QuotaPeriod;

  @Column({ name: 'limit_value', type: 'double' })
  limit!: number;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;
}
