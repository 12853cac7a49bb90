import { Column, Entity, PrimaryColumn } from 'typeorm';
import { nullableTimestamp, timestamp } from '../db/columns';

/** A sign-in challenge: single use, valid 5 minutes. Only the token's hash is stored. */
@Entity('wallet_challenges')
export class WalletChallengeEntity {
  @PrimaryColumn({ name: 'token_hash', type: 'varchar', length: 64 })
  tokenHash!: string;

  /** Checksummed (EIP-55). */
  @Column({ type: 'varchar', length: 42 })
  address!: string;

  /** The exact text the wallet signs. */
  @Column({ type: 'text' })
  message!: string;

  @Column({ name: 'expires_at', ...timestamp })
  expiresAt!: Date;

  @Column({ name: 'used_at', ...nullableTimestamp })
  usedAt!: Date | null;

  @Column({ name: 'created_at', ...timestamp })
  createdAt!: Date;
}
