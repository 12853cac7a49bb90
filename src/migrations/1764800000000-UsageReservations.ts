import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';

/**
 * Reserve-then-settle (reserveUsage / settleUsage / releaseUsage):
 * - usage_reservations: one row per hold, with what it holds where (JSON), so settling,
 *   releasing or expiring it gives exactly that back;
 * - quota_counters.held and sessions.tokens_held: what open reservations hold, beside what was
 *   used, so `used + held <= limit` is checked and taken in one conditional UPDATE;
 * - usage_events.tokens_estimated: whether an event's tokens are the characters / 4 estimate.
 */
export class UsageReservations1764800000000 implements MigrationInterface {
  name = 'UsageReservations1764800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('quota_counters', new TableColumn({ name: 'held', type: 'double', default: 0 }));
    await queryRunner.addColumn('sessions', new TableColumn({ name: 'tokens_held', type: 'bigint', default: 0 }));
    await queryRunner.addColumn('usage_events', new TableColumn({ name: 'tokens_estimated', type: 'boolean', default: false }));
    await queryRunner.createTable(new Table({
      name: 'usage_reservations',
      columns: [
        { name: 'id', type: 'varchar', length: '30', isPrimary: true },
        { name: 'organization_id', type: 'varchar', length: '30' },
        { name: 'api_key_id', type: 'varchar', length: '30' },
        { name: 'session_id', type: 'varchar', length: '30', isNullable: true },
        { name: 'idempotency_key', type: 'varchar', length: '200', isNullable: true },
        { name: 'request_hash', type: 'varchar', length: '64' },
        { name: 'model', type: 'varchar', length: '200', isNullable: true },
        { name: 'operation', type: 'varchar', length: '200', isNullable: true },
        { name: 'tokens', type: 'bigint', default: 0 },
        { name: 'cost_usd', type: 'double', default: 0 },
        { name: 'holds', type: 'text' },
        { name: 'status', type: 'varchar', length: '16' },
        { name: 'settle_hash', type: 'varchar', length: '64', isNullable: true },
        { name: 'created_at', type: 'datetime', precision: 3 },
        { name: 'expires_at', type: 'datetime', precision: 3 },
        { name: 'ended_at', type: 'datetime', precision: 3, isNullable: true },
      ],
      indices: [
        new TableIndex({ name: 'idx_usage_reservations_idempotency', columnNames: ['organization_id', 'idempotency_key'], isUnique: true }),
        new TableIndex({ name: 'idx_usage_reservations_status_expiry', columnNames: ['status', 'expires_at'] }),
      ],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('usage_reservations');
    await queryRunner.dropColumn('usage_events', 'tokens_estimated');
    await queryRunner.dropColumn('sessions', 'tokens_held');
    await queryRunner.dropColumn('quota_counters', 'held');
  }
}
