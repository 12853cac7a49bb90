import { MigrationInterface, QueryRunner, Table, TableColumn, TableColumnOptions, TableIndex } from 'typeorm';

/**
 * Rate-limit log, quota counters, metered sessions and session credits, usage events with
 * daily rollups, recordUsage idempotency; api_keys.lineage_id (shared by a key and the keys
 * rotated from it: rate-limit windows follow the lineage).
 */
const id = (name = 'id', nullable = false): TableColumnOptions => ({
  name, type: 'varchar', length: '30', isNullable: nullable, ...(name === 'id' ? { isPrimary: true } : {}),
});
const time = (name: string, nullable = false): TableColumnOptions => ({ name, type: 'datetime', precision: 3, isNullable: nullable });
const text = (name: string, length: number, nullable = false): TableColumnOptions => ({ name, type: 'varchar', length: String(length), isNullable: nullable });
const counter = (name: string, type: 'int' | 'bigint' | 'double' = 'bigint'): TableColumnOptions => ({ name, type, default: 0 });

export class Metering1764100000000 implements MigrationInterface {
  name = 'Metering1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('api_keys', new TableColumn(id('lineage_id', true)));
    await queryRunner.query('UPDATE api_keys SET lineage_id = id WHERE lineage_id IS NULL');

    await queryRunner.createTable(new Table({
      name: 'quota_counters',
      columns: [
        { ...id('quota_id'), isPrimary: true },
        { ...text('period_key', 16), isPrimary: true },
        counter('used', 'double'),
      ],
    }));

    await queryRunner.createTable(new Table({
      name: 'rate_limit_events',
      columns: [id(), id('api_key_id'), id('organization_id'), text('name', 64), { name: 'limit_value', type: 'int' }, text('operation', 200, true), text('ip', 64, true), time('at')],
      indices: [new TableIndex({ name: 'idx_rate_limit_events_key', columnNames: ['api_key_id', 'id'] })],
    }));

    await queryRunner.createTable(new Table({
      name: 'sessions',
      columns: [
        id(), id('organization_id'), id('api_key_id'), text('status', 16),
        counter('token_limit'), counter('tokens_used'), counter('request_count', 'int'), counter('price_usd', 'double'),
        time('started_at'), time('expires_at'), time('ended_at', true),
      ],
      indices: [
        new TableIndex({ name: 'idx_sessions_org_status', columnNames: ['organization_id', 'status'] }),
        new TableIndex({ name: 'idx_sessions_org', columnNames: ['organization_id', 'id'] }),
      ],
    }));

    await queryRunner.createTable(new Table({
      name: 'session_credits',
      columns: [id(), id('organization_id'), { name: 'sessions', type: 'int' }, text('idempotency_key', 200), id('actor_key_id', true), time('created_at')],
      indices: [new TableIndex({ name: 'uq_session_credits_idempotency', columnNames: ['organization_id', 'idempotency_key'], isUnique: true })],
    }));

    await queryRunner.createTable(new Table({
      name: 'usage_events',
      columns: [
        id(), id('organization_id'), id('api_key_id'), id('session_id', true), text('operation', 200),
        { name: 'status_code', type: 'int', isNullable: true }, { name: 'is_error', type: 'boolean', default: false },
        { name: 'latency_ms', type: 'double', isNullable: true }, counter('tokens'), counter('cost_usd', 'double'), time('at'),
      ],
      indices: [
        new TableIndex({ name: 'idx_usage_events_org_at', columnNames: ['organization_id', 'at'] }),
        new TableIndex({ name: 'idx_usage_events_key_at', columnNames: ['api_key_id', 'at'] }),
      ],
    }));

    await queryRunner.createTable(new Table({
      name: 'usage_daily',
      columns: [
        { ...text('day', 10), isPrimary: true }, { ...id('organization_id'), isPrimary: true }, { ...id('api_key_id'), isPrimary: true },
        { ...text('operation', 200), isPrimary: true },
        counter('requests'), counter('errors'), counter('tokens'), counter('cost_usd', 'double'),
        counter('latency_sum_ms', 'double'), counter('latency_count'),
      ],
      indices: [new TableIndex({ name: 'idx_usage_daily_org_day', columnNames: ['organization_id', 'day'] })],
    }));

    await queryRunner.createTable(new Table({
      name: 'usage_idempotency',
      columns: [{ ...text('scope', 240), isPrimary: true }, text('request_hash', 64), time('created_at')],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['usage_idempotency', 'usage_daily', 'usage_events', 'session_credits', 'sessions', 'rate_limit_events', 'quota_counters']) {
      await queryRunner.dropTable(table);
    }
    await queryRunner.dropColumn('api_keys', 'lineage_id');
  }
}
