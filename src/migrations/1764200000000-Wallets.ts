import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';

/** Wallet sign-in: single-use challenges, and the wallet address an organization belongs to. */
export class Wallets1764200000000 implements MigrationInterface {
  name = 'Wallets1764200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn('organizations', new TableColumn({ name: 'wallet_address', type: 'varchar', length: '42', isNullable: true }));
    await queryRunner.createIndex('organizations', new TableIndex({ name: 'uq_organizations_wallet', columnNames: ['wallet_address'], isUnique: true }));
    await queryRunner.createTable(new Table({
      name: 'wallet_challenges',
      columns: [
        { name: 'token_hash', type: 'varchar', length: '64', isPrimary: true },
        { name: 'address', type: 'varchar', length: '42' },
        { name: 'message', type: 'text' },
        { name: 'expires_at', type: 'datetime', precision: 3 },
        { name: 'used_at', type: 'datetime', precision: 3, isNullable: true },
        { name: 'created_at', type: 'datetime', precision: 3 },
      ],
      indices: [new TableIndex({ name: 'idx_wallet_challenges_expires', columnNames: ['expires_at'] })],
    }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('wallet_challenges');
    await queryRunner.dropIndex('organizations', 'uq_organizations_wallet');
    await queryRunner.dropColumn('organizations', 'wallet_address');
  }
}
