import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import type { DatabaseConfig } from '../../src/config';

/**
 * A fresh, empty database for one test server: a SQLite file in a temp dir, or — when
 * DATABASE_URL is a mysql:// URL — a new database on that server, dropped afterwards.
 */
export interface TestDatabase {
  config: DatabaseConfig;
  dataDir: string;
  drop(): Promise<void>;
}

export const USING_MYSQL = /^(mysql|mariadb):\/\//.test(process.env.DATABASE_URL ?? '');

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-test-'));
  const removeDir = () => fs.rmSync(dataDir, { recursive: true, force: true });
  if (!USING_MYSQL) {
    return { config: { kind: 'sqlite', path: path.join(dataDir, 'keyward.sqlite') }, dataDir, drop: async () => removeDir() };
  }
  const base = new URL(process.env.DATABASE_URL!.replace(/^mariadb:/, 'mysql:'));
  const name = `kw_test_${randomBytes(6).toString('hex')}`;
  const admin = await createConnection({ host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username), password: decodeURIComponent(base.password) });
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await admin.end();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  return {
    config: { kind: 'mysql', url: url.toString() },
    dataDir,
    async drop() {
      const connection = await createConnection({ host: base.hostname, port: Number(base.port || 3306), user: decodeURIComponent(base.username), password: decodeURIComponent(base.password) });
      await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await connection.end();
      removeDir();
    },
  };
}
