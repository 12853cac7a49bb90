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

/** A mysql:// or mariadb:// URL as the mysql:// URL the driver and the config read. */
export function mysqlUrl(raw: string): URL {
  return new URL(raw.replace(/^mariadb:/, 'mysql:'));
}

export interface MysqlDatabase {
  /** mysql:// URL of the fresh database. */
  url: URL;
  name: string;
  /** Runs one statement on this database directly (not through any keyward); returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

function adminConnection(server: URL) {
  return createConnection({
    host: server.hostname,
    port: Number(server.port || 3306),
    user: decodeURIComponent(server.username),
    password: decodeURIComponent(server.password),
    connectTimeout: 3_000,
  });
}

/** Runs `sql` as the URL's user on the server, without a database selected. */
async function administer(server: URL, sql: string): Promise<void> {
  const connection = await adminConnection(server);
  try {
    await connection.query(sql);
  } finally {
    await connection.end();
  }
}

/** A new empty database kw_test_* on the MySQL/MariaDB server of `server` (its user may create them). */
export async function createMysqlDatabase(server: URL): Promise<MysqlDatabase> {
  const name = `kw_test_${randomBytes(6).toString('hex')}`;
  await administer(server, `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const url = new URL(server.toString());
  url.pathname = `/${name}`;
  return {
    url,
    name,
    async query<T>(sql: string, params: unknown[] = []) {
      const connection = await createConnection({ uri: url.toString(), connectTimeout: 3_000 });
      try {
        const [rows] = await connection.query(sql, params);
        return rows as T[];
      } finally {
        await connection.end();
      }
    },
    drop: () => administer(server, `DROP DATABASE IF EXISTS \`${name}\``),
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-test-'));
  const removeDir = () => fs.rmSync(dataDir, { recursive: true, force: true });
  if (!USING_MYSQL) {
    return { config: { kind: 'sqlite', path: path.join(dataDir, 'keyward.sqlite') }, dataDir, drop: async () => removeDir() };
  }
  const database = await createMysqlDatabase(mysqlUrl(process.env.DATABASE_URL!));
  return {
    config: { kind: 'mysql', url: database.url.toString() },
    dataDir,
    async drop() {
      try {
        await database.drop();
      } finally {
        removeDir();
      }
    },
  };
}
