import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintAsNumber, ID_LENGTH, nullableTimestamp, timestamp } from '../db/columns';

export enum KeyEnvironment {
  LIVE = 'LIVE',
  TEST = 'TEST',
}

export enum ApiKeyStatus {
  ACTIVE = 'ACTIVE',
  DISABLED = 'DISABLED',
  EXPIRED = 'EXPIRED',
  REVOKED = 'REVOKED',
}

export interface RateLimitSpec {
  /** Unique per key, e.g. "per-minute". */
  name: string;
  limit: number;
  windowSeconds: number;
  /**
   * What the window counts: absent, requests (their cost); 'TOKENS', tokens held by reserveUsage
   * (a TPM limit). Stored windows only ever have 'TOKENS' or nothing (validateRateLimits).
   */
  meter?: string | null;
}

@Entity('api_keys')
@Index('idx_api_keys_org', ['organizationId', 'id'])
@Index('uq_api_keys_secret_hash', ['secretHash'], { unique: true })
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH })
  organizationId!: string;

  @Column({ type: 'varchar', length: 200 })
  name!: string;

  @Column({ type: 'varchar', length: 8 })
  environment!: KeyEnvironment;

  /** HMAC-SHA256(pepper, secret) in hex; the secret itself is never stored. */
  @Column({ name: 'secret_hash', type: 'varchar', length: 64 })
  secretHash!: string;

  @Column({ type: 'varchar', length: 16 })
  hint!: string;

  @Column({ type: 'simple-json' })
  scopes!: string[];

  /** Canonical CIDR blocks; empty means any address. */
  @Column({ name: 'ip_allowlist', type: 'simple-json' })
  ipAllowlist!: string[];

  @Column({ name: 'rate_limits', type: 'simple-json' })
  rateLimits!: RateLimitSpec[];

  @Column({ name: 'max_cost_per_request', type: 'int', nullable: true })
  maxCostPerRequest!: number | null;

  @Column({ type: 'simple-json', nullable: true })
  meta!: Record<string, any> | null;

  @Column({ name: 'owner_email', type: 'varchar', length: 320, nullable: true })
  ownerEmail!: string | null;

  @Column({ name: 'external_id', type: 'varchar', length: 200, nullable: true })
  externalId!: string | null;

  @Column({ name: 'expires_at', ...nullableTimestamp })
  expiresAt!: Date | null;

  @Column({ type: 'boolean', default: false })
  disabled!: boolean;

  @Column({ name: 'revoked_at', ...nullableTimestamp })
  revokedAt!: Date | null;

  @Column({ name: 'revoked_reason', type: 'varchar', length: 500, nullable: true })
  revokedReason!: string | null;

  @Column({ name: 'revoked_by', type: 'varchar', length: ID_LENGTH, nullable: true })
  revokedBy!: string | null;

  @Column({ name: 'rotated_from_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  rotatedFromId!: string | null;

  /** The first key of a rotation chain; rate-limit windows are shared along it. */
  @Column({ name: 'lineage_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  lineageId!: string | null;

  /** Set on the old key by rotateApiKey; such a key no longer counts towards maxKeys. */
  @Column({ name: 'replaced_by_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  replacedById!: string | null;

  /** Soft delete: the key stops working and leaves listings; its history stays. */
  @Column({ name: 'deleted_at', ...nullableTimestamp })
  deletedAt!: Date | null;

  @Column({ name: 'last_used_at', ...nullableTimestamp })
  lastUsedAt!: Date | null;

  @Column({ name: 'request_count', type: 'bigint', default: 0, transformer: bigintAsNumber })
  requestCount!: number;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;

  @Column({ name: 'updated_at', ...timestamp })
  updatedAt!: Date;
}

/** A key's state: the one rule the pipeline, the API and open WebSockets all read. */
export type KeyState = 'DELETED' | 'REVOKED' | 'DISABLED' | 'EXPIRED' | 'ACTIVE';

export function keyState(key: Pick<ApiKeyEntity, 'deletedAt' | 'revokedAt' | 'disabled' | 'expiresAt'>, now: Date): KeyState {
  if (key.deletedAt) return 'DELETED';
  if (key.revokedAt) return 'REVOKED';
  if (key.disabled) return 'DISABLED';
  if (key.expiresAt && key.expiresAt.getTime() <= now.getTime()) return 'EXPIRED';
  return 'ACTIVE';
}

/** The status a client sees; deleted keys are never shown at all. */
export function apiKeyStatus(key: Pick<ApiKeyEntity, 'revokedAt' | 'disabled' | 'expiresAt'>, now: Date): ApiKeyStatus {
  return ApiKeyStatus[keyState({ ...key, deletedAt: null }, now) as Exclude<KeyState, 'DELETED'>];
}
