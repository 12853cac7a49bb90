import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ID_LENGTH, timestamp } from '../db/columns';

/** One purchase of sessions (the payment hook); the idempotency key makes retries safe. */
@Entity('session_credits')
@Index('uq_session_credits_idempotency', ['organizationId', 'idempotencyKey'], { unique: true })
export class SessionCreditEntity {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH })
  organizationId!: string;

  @Column({ type: 'int' })
  sessions!: number;

  @Column({ name: 'idempotency_key', type: 'varchar', length: 200 })
  idempotencyKey!: string;

  @Column({ name: 'actor_key_id', type: 'varchar', length: ID_LENGTH, nullable: true })
  actorKeyId!: string | null;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;
}
