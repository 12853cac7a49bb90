import { Column, Entity, PrimaryColumn } from 'typeorm';
import { ID_LENGTH } from '../db/columns';

/** Consumption of one quota in one period (`periodKey` from quota-period.ts). Never buffered. */
@Entity('quota_counters')
export class QuotaCounterEntity {
  @PrimaryColumn({ name: 'quota_id', type: 'varchar', length: ID_LENGTH })
  quotaId!: string;

  @PrimaryColumn({ name: 'period_key', type: 'varchar', length: 16 })
  periodKey!: string;

  @Column({ type: 'double', default: 0 })
  used!: number;

  /** What open reservations hold (reserveUsage); `used + held` never passes the limit when reserving. */
  @Column({ type: 'double', default: 0 })
  held!: number;
}
