import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

/**
 * Webhooks (issue 15): endpoints, and the outbox of deliveries written in the same transaction
 * as the change that caused each event (webhooks/webhook-delivery.entity.ts).
 */
const id = (name: string, primary = false): TableColumnOptions => ({ name, type: 'varchar', length: '30', isPrimary: primary });
const time = (name: string, nullable = false): TableColumnOptions => ({ name, type: 'datetime', precision: 3, isNullable: nullable });
const text = (name: string, length: number, nullable = false): TableColumnOptions => ({ name, type: 'varchar', length: String(length), isNullable: nullable });

export class Webhooks1764500000000 implements MigrationInterface {
  name = 'Webhooks1764500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(new Table({
      name: 'webhook_endpoints',
      columns: [
        id('id', true),
        id('organization_id'),
        text('url', 2000),
        text('description', 500, true),
        { name: 'event_types', type: 'text' },
        { name: 'quota_thresholds', type: 'text' },
        { name: 'expiry_notice_days', type: 'int' },
        { name: 'enabled', type: 'boolean' },
        text('secret_sealed', 255),
        time('failing_since', true),
        time('created_at'),
        time('updated_at'),
      ],
      indices: [new TableIndex({ name: 'idx_webhook_endpoints_org', columnNames: ['organization_id', 'id'] })],
    }));
    await queryRunner.createTable(new Table({
      name: 'webhook_deliveries',
      columns: [
        id('id', true),
        id('endpoint_id'),
        id('event_id'),
        text('event_type', 32),
        text('dedup_key', 190, true),
        { name: 'payload', type: 'text' },
        text('status', 16),
        { name: 'attempts', type: 'int', default: 0 },
        time('next_attempt_at', true),
        time('lease_until', true),
        text('lease_token', 32, true),
        { name: 'last_status_code', type: 'int', isNullable: true },
        text('last_error', 500, true),
        time('delivered_at', true),
        time('created_at'),
      ],
      indices: [
        new TableIndex({ name: 'idx_webhook_deliveries_endpoint', columnNames: ['endpoint_id', 'id'] }),
        new TableIndex({ name: 'idx_webhook_deliveries_due', columnNames: ['status', 'next_attempt_at'] }),
        new TableIndex({ name: 'uq_webhook_deliveries_dedup', columnNames: ['endpoint_id', 'dedup_key'], isUnique: true }),
      ],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('webhook_deliveries');
    await queryRunner.dropTable('webhook_endpoints');
  }
}
