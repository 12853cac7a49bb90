import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config';
import type { ManualClock } from '../../src/clock';
import type { PlatformCredentials } from '../../src/organizations/platform-bootstrap';
import { platformOf, startKeyward, TEST_PEPPER, TestServer } from './server';

/**
 * Scale-out: several keyward instances in this process sharing one MariaDB database
 * (createMysqlDatabase on mysqlServerUrl()), one Redis and one ManualClock. Services going
 * away are played with a TcpProxy (processes.ts). Owned by test/scale-out.test.ts.
 */

export interface Instance extends TestServer {
  name: string;
}

export interface InstanceOptions {
  name: string;
  databaseUrl: URL;
  redisUrl: URL;
  clock: ManualClock;
  /** Extra environment (e.g. RATE_LIMIT_FAIL_OPEN). */
  env?: Record<string, string>;
  /** The platform admin, when another instance already ran init; otherwise this one runs it. */
  platform?: PlatformCredentials;
}

/** One keyward on a free port, as startTestServer starts one, on the shared database and Redis. */
export async function startInstance(options: InstanceOptions): Promise<Instance> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `keyward-${options.name}-`));
  const config = parseConfig({
    KEYWARD_DATA_DIR: dataDir,
    KEYWARD_PEPPER: TEST_PEPPER,
    DATABASE_URL: options.databaseUrl.toString(),
    REDIS_URL: options.redisUrl.toString(),
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const server = await startKeyward({
    name: `instance ${options.name}`,
    config,
    clock: options.clock,
    platform: options.platform,
    removeData: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
  });
  return { ...server, name: options.name };
}

/** Instances A and B on the same database and Redis; B joins the platform organization A's init made. */
export async function startPair(options: Omit<InstanceOptions, 'name' | 'platform'>): Promise<[Instance, Instance]> {
  const a = await startInstance({ ...options, name: 'A' });
  try {
    return [a, await startInstance({ ...options, name: 'B', platform: platformOf(a) })];
  } catch (error) {
    await a.close();
    throw error;
  }
}
