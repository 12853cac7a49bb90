import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Organization `keyRateLimits`: windows the platform imposes on every key of an organization,
 * on top of each key's own. NULL (rows from before) reads as no windows.
 */
export class KeyRateLimits1764300000000 implements MigrationInterface {
  name = 'KeyRateLimits1764300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('organizations', new TableColumn({ name: 'key_rate_limits', type: 'text', isNullable: true }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('organizations', 'key_rate_limits');
  }
}
