import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

/**
 * Organizations, API keys, quotas and the audit log.
 * Written with TypeORM's Table API so the same migration runs on SQLite and MySQL/MariaDB.
 */
const id = (name = 'id', nullable = false): TableColumnOptions => ({
  name, type: 'varchar', length: '30', isNullable: nullable, ...(name === 'id' ? { isPrimary: true } : {}),
});
const time = (name: string, nullable = false): TableColumnOptions => ({
  name, type: 'datetime', precision: 3, isNullable: nullable,
});
const text = (name: string, length: number, nullable = false): TableColumnOptions => ({
  name, type: 'varchar', length: String(length), isNullable: nullable,
});
const json = (name: string, nullable = false): TableColumnOptions => ({ name, type: 'text', isNullable: nullable });

export class Foundation1764000000000 implements MigrationInterface {
  name = 'Foundation1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(new Table({
      name: 'organizations',
      columns: [
        id(),
        text('name', 200),
        text('slug', 64),
        text('status', 16),
        { name: 'max_keys', type: 'int' },
        { name: 'is_platform', type: 'boolean', default: false },
        { name: 'sessions_purchased', type: 'int', default: 0 },
        { name: 'sessions_used', type: 'int', default: 0 },
        time('created_at'),
        time('updated_at'),
      ],
      indices: [new TableIndex({ name: 'uq_organizations_slug', columnNames: ['slug'], isUnique: true })],
    }));

    await queryRunner.createTable(new Table({
      name: 'api_keys',
      columns: [
        id(),
        id('organization_id'),
        text('name', 200),
        text('environment', 8),
        text('secret_hash', 64),
        text('hint', 16),
        json('scopes'),
        json('ip_allowlist'),
        json('rate_limits'),
        { name: 'max_cost_per_request', type: 'int', isNullable: true },
        json('meta', true),
        text('owner_email', 320, true),
        text('external_id', 200, true),
        time('expires_at', true),
        { name: 'disabled', type: 'boolean', default: false },
        time('revoked_at', true),
        text('revoked_reason', 500, true),
        id('revoked_by', true),
        id('rotated_from_id', true),
        id('replaced_by_id', true),
        time('deleted_at', true),
        time('last_used_at', true),
        { name: 'request_count', type: 'bigint', default: 0 },
        time('created_at'),
        time('updated_at'),
      ],
      indices: [
        new TableIndex({ name: 'uq_api_keys_secret_hash', columnNames: ['secret_hash'], isUnique: true }),
        new TableIndex({ name: 'idx_api_keys_org', columnNames: ['organization_id', 'id'] }),
      ],
    }));

    await queryRunner.createTable(new Table({
      name: 'quotas',
      columns: [
        id(),
        id('organization_id', true),
        id('api_key_id', true),
        text('meter', 16),
        text('period', 16),
        { name: 'limit_value', type: 'double' },
        time('created_at'),
      ],
      indices: [
        new TableIndex({ name: 'idx_quotas_org', columnNames: ['organization_id'] }),
        new TableIndex({ name: 'idx_quotas_key', columnNames: ['api_key_id'] }),
      ],
    }));

    await queryRunner.createTable(new Table({
      name: 'audit_log',
      columns: [
        id(),
        id('organization_id', true),
        id('actor_key_id', true),
        text('action', 64),
        text('target_type', 32),
        id('target_id', true),
        text('ip', 64, true),
        json('metadata', true),
        time('at'),
      ],
      indices: [new TableIndex({ name: 'idx_audit_log_org', columnNames: ['organization_id', 'id'] })],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('audit_log');
    await queryRunner.dropTable('quotas');
    await queryRunner.dropTable('api_keys');
    await queryRunner.dropTable('organizations');
  }
}
