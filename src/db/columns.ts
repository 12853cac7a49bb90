import { Column, PrimaryColumn, ValueTransformer } from 'typeorm';

/**
 * Column options shared by every entity so SQLite and MySQL store the same thing.
 * Times are millisecond-precision UTC; ids are 30-character sortable strings (src/ids.ts).
 */
export const ID_LENGTH = 30;

export const timestamp = { type: 'datetime', precision: 3 } as const;
export const nullableTimestamp = { ...timestamp, nullable: true } as const;

/** MySQL returns BIGINT as a string; counters are safe integers (< 2^53). */
export const bigintAsNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null ? null : Number(value)),
};

/** The columns of a row about one key of one organization (a session, a usage event). */
export abstract class KeyOwnedRow {
  @PrimaryColumn({ type: 'varchar', length: ID_LENGTH })
  id!: string;

  @Column({ name: 'organization_id', type: 'varchar', length: ID_LENGTH })
  organizationId!: string;

  @Column({ name: 'api_key_id', type: 'varchar', length: ID_LENGTH })
  apiKeyId!: string;
}
