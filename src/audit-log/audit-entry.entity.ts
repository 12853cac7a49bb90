import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, timestamp } from '../db/columns';

@Entity('audit_log')
@Index('idx_audit_log_org', ['organizationId', 'id'])
export class AuditEntryEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  organizationId!: string | null;

  /** Null for public calls and the CLI's direct bootstrap. */
  @Column({ name: 'actor_key_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  actorKeyId!: string | null;

  /**
   * Dotted verb (docs/behaviour.md "Audit actions"): organization.create|update|suspend|activate,
   * api_key.create|update|enable|disable|revoke|rotate|delete, rate_limit.reset,
   * session.create|terminate, session_credits.add, wallet.key_create,
   * webhook_endpoint.create|update|delete|rotate_secret|test|disable (disable: by no key, every
   * delivery attempt failed for 5 days), webhook_delivery.retry, and
   * auth.failures_exceeded (target 'ip', no organization: an address used up its failed
   * authentications for a window; metadata { failures, windowSeconds }).
   */
  @Column({ type: 'varchar', length: 64 })
  action!: string;

  @Column({ name: 'target_type', type: 'varchar', length: 32 })
  targetType!: string;

  @Column({ name: 'target_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  targetId!: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  ip!: string | null;

  /** Never holds a secret. */
  @Column({ type: 'simple-json', nullable: true })
  metadata!: Record<string, any> | null;

  @Column({ ...timestamp })
  at!: Date;
}
