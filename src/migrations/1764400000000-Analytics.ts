import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

/**
 * Hourly analytics, written with the usage buffer:
 * - usage_hourly: per (UTC hour, organization, key) sums of usage events (UsageSummary.byHour);
 *   filled here from the events already recorded, so past hours have buckets too.
 * - verification_outcomes: per (UTC hour, organization, key, code) counts of verifyKey outcomes
 *   (UsageSummary.byOutcome). api_key_id is '' when no key is known (NOT_FOUND). Outcomes
 *   were not kept before, so nothing is filled in for past hours.
 * Hours are 'YYYY-MM-DDTHH' strings (UTC), compared as text like usage_daily's days.
 */
const hour: TableColumnOptions = { name: 'hour', type: 'varchar', length: '13', isPrimary: true };
const id = (name: string): TableColumnOptions => ({ name, type: 'varchar', length: '30', isPrimary: true });
const counter = (name: string, type: 'bigint' | 'double' = 'bigint'): TableColumnOptions => ({ name, type, default: 0 });

export class Analytics1764400000000 implements MigrationInterface {
  name = 'Analytics1764400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(new Table({
      name: 'usage_hourly',
      columns: [
        hour, id('organization_id'), id('api_key_id'),
        counter('requests'), counter('errors'), counter('tokens'), counter('cost_usd', 'double'),
        counter('latency_sum_ms', 'double'), counter('latency_count'),
      ],
      indices: [new TableIndex({ name: 'idx_usage_hourly_org_hour', columnNames: ['organization_id', 'hour'] })],
    }));
    await queryRunner.createTable(new Table({
      name: 'verification_outcomes',
      columns: [hour, id('organization_id'), id('api_key_id'), { name: 'code', type: 'varchar', length: '32', isPrimary: true }, counter('count')],
      indices: [new TableIndex({ name: 'idx_verification_outcomes_org_hour', columnNames: ['organization_id', 'hour'] })],
    }));

    // SQLite keeps datetimes as 'YYYY-MM-DD HH:MM:SS.SSS' (UTC) text; MySQL as DATETIME(3).
    const hourOf = queryRunner.connection.options.type === 'better-sqlite3' ? "replace(substr(at, 1, 13), ' ', 'T')" : "DATE_FORMAT(at, '%Y-%m-%dT%H')";
    await queryRunner.query(
      `INSERT INTO usage_hourly (hour, organization_id, api_key_id, requests, errors, tokens, cost_usd, latency_sum_ms, latency_count)
       SELECT ${hourOf}, organization_id, api_key_id, COUNT(*), SUM(CASE WHEN is_error THEN 1 ELSE 0 END), SUM(tokens), SUM(cost_usd),
              SUM(COALESCE(latency_ms, 0)), SUM(CASE WHEN latency_ms IS NULL THEN 0 ELSE 1 END)
       FROM usage_events GROUP BY ${hourOf}, organization_id, api_key_id`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('verification_outcomes');
    await queryRunner.dropTable('usage_hourly');
  }
}
