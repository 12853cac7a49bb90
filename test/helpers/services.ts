import fs from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { mysqlUrl } from './database';

/**
 * What some suites need beyond Node: a Redis server, a MariaDB server of their own (the
 * scale-out instances share one, also in the SQLite pass), Chromium. `npm test` on a machine
 * with only Node passes: a suite declared with `describeWith([REDIS], …)` is skipped with one
 * line saying what to set. In CI (CI=true, as .ci/run exports) nothing may be skipped: the same
 * suite fails with that line instead.
 *
 * jest's globalSetup probes Redis and MariaDB once per run (probeServices) and hands the
 * result to the test files through KEYWARD_TEST_SERVICES; Chromium is a file on disk.
 */

export interface Service {
  /** How the service is named in skip lines and failures. */
  name: string;
  /** What to set (or install) to run the suites that need it. */
  howToProvide: string;
  /** null when available, else why not (one line). */
  unavailable(): string | null;
}

const PROBES_VARIABLE = 'KEYWARD_TEST_SERVICES';
const DEFAULT_MYSQL_URL = 'mysql://keyward:keyward@127.0.0.1:3306/keyward';
const PROBE_TIMEOUT_MS = 2_000;

type ProbeResults = Record<'redis' | 'mariadb', string | null>;

/** TEST_REDIS_URL, or null when it is not set. */
function redisUrlFromEnv(): URL | null {
  const raw = process.env.TEST_REDIS_URL;
  return raw ? new URL(raw) : null;
}

/** The MariaDB server the scale-out instances share: TEST_MYSQL_URL, else DATABASE_URL when it is mysql, else the CI default. */
export function mysqlServerUrl(): URL {
  const fromDatabaseUrl = /^(mysql|mariadb):\/\//.test(process.env.DATABASE_URL ?? '') ? process.env.DATABASE_URL : undefined;
  return mysqlUrl(process.env.TEST_MYSQL_URL || fromDatabaseUrl || DEFAULT_MYSQL_URL);
}

/** The Redis server of TEST_REDIS_URL; only inside a suite declared with describeWith([REDIS], …). */
export function redisServerUrl(): URL {
  const url = redisUrlFromEnv();
  if (!url) throw new Error('redisServerUrl() outside describeWith([REDIS], …): TEST_REDIS_URL is not set');
  return url;
}

function reason(error: unknown): string {
  const { message, code } = error as { message?: string; code?: string };
  return (message || code || String(error)).replace(/\.+$/, '');
}

async function probeRedis(url: URL | null): Promise<string | null> {
  if (!url) return 'TEST_REDIS_URL is not set';
  const client = new Redis(url.toString(), {
    lazyConnect: true, connectTimeout: PROBE_TIMEOUT_MS, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
  });
  // ioredis rejects with "Connection is closed"; the socket's own error says why.
  let socketError: unknown = null;
  client.on('error', (error) => { socketError = error; });
  try {
    await client.connect();
    const pong = await client.ping();
    return pong === 'PONG' ? null : `Redis at ${url.host} (TEST_REDIS_URL) answered PING with ${pong}`;
  } catch (error) {
    return `Redis at ${url.host} (TEST_REDIS_URL) is unreachable: ${reason(socketError ?? error)}`;
  } finally {
    client.disconnect();
  }
}

async function probeMariaDb(url: URL): Promise<string | null> {
  const where = `MariaDB at ${url.host} (${process.env.TEST_MYSQL_URL ? 'TEST_MYSQL_URL' : 'the default of TEST_MYSQL_URL'})`;
  try {
    const connection = await createConnection({
      host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), connectTimeout: PROBE_TIMEOUT_MS,
    });
    try {
      await connection.query('SELECT 1');
      return null;
    } finally {
      await connection.end();
    }
  } catch (error) {
    return `${where} is unreachable: ${reason(error)}`;
  }
}

/** Called once per run by jest's globalSetup: the test files read the outcome synchronously. */
export async function probeServices(): Promise<void> {
  const [redis, mariadb] = await Promise.all([probeRedis(redisUrlFromEnv()), probeMariaDb(mysqlServerUrl())]);
  const results: ProbeResults = { redis, mariadb };
  process.env[PROBES_VARIABLE] = JSON.stringify(results);
}

function probed(service: keyof ProbeResults): string | null {
  const raw = process.env[PROBES_VARIABLE];
  if (!raw) throw new Error(`${PROBES_VARIABLE} is missing: run the tests through jest.config.js, whose globalSetup probes the services`);
  return (JSON.parse(raw) as ProbeResults)[service];
}

export const REDIS: Service = {
  name: 'Redis',
  howToProvide: 'set TEST_REDIS_URL=redis://127.0.0.1:6379 (a running Redis)',
  unavailable: () => probed('redis'),
};

export const MARIADB: Service = {
  name: 'MariaDB',
  howToProvide: `set TEST_MYSQL_URL=mysql://user:password@host:port/db, a user who may create kw_test_* databases (default ${DEFAULT_MYSQL_URL})`,
  unavailable: () => probed('mariadb'),
};

/** Debian's chromium; the GraphiQL test never downloads a browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM: Service = {
  name: 'Chromium',
  howToProvide: `install Debian's chromium package (apt-get install chromium) at ${CHROMIUM_PATH}`,
  unavailable: () => (fs.existsSync(CHROMIUM_PATH) ? null : `${CHROMIUM_PATH} is missing`),
};

/** CI=true (or 1): skipping a suite there is a failure. */
export function inCi(): boolean {
  const value = (process.env.CI ?? '').trim().toLowerCase();
  return value !== '' && value !== 'false' && value !== '0';
}

/**
 * `describe(title, body)` when every one of `services` is available. Otherwise, outside CI:
 * the suite is skipped and one line on stderr says why and what to set; in CI: one test
 * fails with that line, so a CI run can never pass with a suite silently skipped.
 */
export function describeWith(services: readonly Service[], title: string, body: () => void): void {
  const missing = services.flatMap((service) => {
    const why = service.unavailable();
    return why === null ? [] : [`${service.name}: ${why}; ${service.howToProvide}`];
  });
  if (missing.length === 0) {
    describe(title, body);
    return;
  }
  const where = path.relative(process.cwd(), expect.getState().testPath ?? '');
  const line = `${where} "${title}" needs ${missing.join(' — and ')}`;
  if (inCi()) {
    describe(title, () => {
      it(`has ${services.map((service) => service.name).join(' and ')} (CI skips nothing)`, () => {
        throw new Error(`CI must run every suite: ${line}`);
      });
    });
    return;
  }
  process.stderr.write(`skipped: ${line}\n`);
  describe.skip(`${title} [skipped: needs ${services.map((service) => service.name).join(' and ')}]`, body);
}
