import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * usage_journal_segments: the usage journal segments (src/usage/usage-journal.ts) whose records
 * a usage batch has written, each inserted in that batch's transaction. A segment found here is
 * never replayed again after a crash; names are kept 30 days.
 */
export class UsageJournal1764700000000 implements MigrationInterface {
  name = 'UsageJournal1764700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(new Table({
      name: 'usage_journal_segments',
      columns: [
        { name: 'segment', type: 'varchar', length: '100', isPrimary: true },
        { name: 'applied_at', type: 'datetime', precision: 3 },
      ],
      indices: [new TableIndex({ name: 'idx_usage_journal_segments_applied', columnNames: ['applied_at'] })],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('usage_journal_segments');
  }
}
