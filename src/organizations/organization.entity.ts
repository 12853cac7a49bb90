import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, timestamp } from '../db/columns';
import type { RateLimitSpec } from '../api-keys/api-key.entity';

/** JSON text; NULL (organizations from before the column) reads as an empty list. */
const rateLimitList = {
  to: (value: RateLimitSpec[] | null | undefined) => JSON.stringify(value ?? []),
  from: (value: string | null) => (value ? (JSON.parse(value) as RateLimitSpec[]) : []),
};

export enum OrganizationStatus {
  ACTIVE = 'ACTIVE',
  SUSPENDED = 'SUSPENDED',
}

@Entity('organizations')
@Index('uq_organizations_slug', ['slug'], { unique: true })
@Index('uq_organizations_wallet', ['walletAddress'], { unique: true })
export class OrganizationEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ type: 'varchar', length: 200 })
  name!: string;

  @Column({ type: 'varchar', length: 64 })
  slug!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: OrganizationStatus;

  /** Keys that are neither deleted nor revoked (nor replaced by rotation) may not exceed this. */
  @Column({ name: 'max_keys', type: 'int' })
  maxKeys!: number;

  /** The organization made by `keyward init`; its keys may verify keys of every organization. */
  @Column({ name: 'is_platform', type: 'boolean', default: false })
  isPlatform!: boolean;

  /** Set on organizations created by a wallet signature (checksummed address). */
  @Column({ name: 'wallet_address', type: 'varchar', length: 42, nullable: true })
  walletAddress!: string | null;

  /** Windows every key of the organization obeys on top of its own; set only by the platform. */
  @Column({ name: 'key_rate_limits', type: 'text', nullable: true, transformer: rateLimitList })
  keyRateLimits!: RateLimitSpec[];

  @Column({ name: 'sessions_purchased', type: 'int', default: 0 })
  sessionsPurchased!: number;

  @Column({ name: 'sessions_used', type: 'int', default: 0 })
  sessionsUsed!: number;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;

  @Column({ name: 'updated_at', ...timestamp })
  updatedAt!: Date;
}
