import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { parseConfig, Config } from '../../src/config';
import { ManualClock } from '../../src/clock';
import { createLogger } from '../../src/logger';
import { App, createApp } from '../../src/app';
import { createServer, KeywardServer } from '../../src/server';
import { initPlatform, PlatformCredentials } from '../../src/organizations/platform-bootstrap';
import type { GraphQLResponse, RequestOptions, TestServer } from './server';

/**
 * Scale-out helpers: several keyward instances in this process sharing one MariaDB database,
 * one Redis and one ManualClock, and a TCP proxy that can play "the service went away".
 * Owned by test/scale-out.test.ts.
 */

export const PEPPER = 'test-pepper-0123456789abcdef';
const DEFAULT_MYSQL_URL = 'mysql://keyward:keyward@127.0.0.1:3306/keyward';

/** The MariaDB server the instances share: TEST_MYSQL_URL, else DATABASE_URL when it is mysql, else the CI default. */
export function mysqlServerUrl(): URL {
  const fromEnv = process.env.TEST_MYSQL_URL
    ?? (/^(mysql|mariadb):\/\//.test(process.env.DATABASE_URL ?? '') ? process.env.DATABASE_URL! : DEFAULT_MYSQL_URL);
  return new URL(fromEnv.replace(/^mariadb:/, 'mysql:'));
}

/** TEST_REDIS_URL, or a clear failure: these tests need Redis and never skip. */
export function redisServerUrl(): URL {
  const raw = process.env.TEST_REDIS_URL;
  if (!raw) {
    throw new Error('TEST_REDIS_URL is not set: the scale-out tests need a Redis server (CI exports TEST_REDIS_URL=redis://127.0.0.1:6379; run e.g. `TEST_REDIS_URL=redis://127.0.0.1:6379 npx jest test/scale-out.test.ts`)');
  }
  return new URL(raw);
}

/** Fails with a message naming the service when Redis does not answer PING. */
export async function assertRedisReachable(url: URL): Promise<void> {
  const client = new Redis(url.toString(), { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => {});
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
  } catch (error) {
    throw new Error(`Redis at ${url.host} (TEST_REDIS_URL) is unreachable (${(error as Error).message.replace(/\.+$/, '')}). The scale-out tests need Redis running.`);
  } finally {
    client.disconnect();
  }
}

export interface SharedDatabase {
  /** mysql:// URL of the fresh database. */
  url: URL;
  name: string;
  /** Runs one statement on the database directly (not through any instance); returns its rows. */
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

/** A new empty database kw_test_* on the MariaDB server, for every instance to share. */
export async function createSharedDatabase(server: URL): Promise<SharedDatabase> {
  const name = `kw_test_${randomBytes(6).toString('hex')}`;
  let admin;
  try {
    admin = await adminConnection(server);
  } catch (error) {
    throw new Error(`MariaDB at ${server.host} (TEST_MYSQL_URL, default ${DEFAULT_MYSQL_URL}) is unreachable (${(error as Error).message.replace(/\.+$/, '')}). The scale-out tests always need MariaDB, also in the SQLite pass.`);
  }
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await admin.end();
  }
  const url = new URL(server.toString());
  url.pathname = `/${name}`;
  return {
    url,
    name,
    async query<T>(sql: string, params: unknown[] = []) {
      const connection = await adminConnection(server);
      try {
        await connection.query(`USE \`${name}\``);
        const [rows] = await connection.query(sql, params);
        return rows as T[];
      } finally {
        await connection.end();
      }
    },
    async drop() {
      const connection = await adminConnection(server);
      try {
        await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}

/**
 * A TCP proxy in front of a service. `stop()` plays the service going away: every open
 * connection is reset and new ones are reset as soon as they arrive; `resume()` forwards again.
 */
export class TcpProxy {
  private readonly connections = new Set<net.Socket>();
  private forwarding = true;

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const server = net.createServer((client) => {
      if (!proxy.forwarding) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(target.port, target.host);
      proxy.track(client);
      proxy.track(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
    proxy = new TcpProxy(server, port);
    return proxy;
  }

  get isForwarding(): boolean {
    return this.forwarding;
  }

  /** The service "goes away": every current connection is reset, new ones are refused. */
  stop(): void {
    this.forwarding = false;
    for (const socket of this.connections) socket.resetAndDestroy();
    this.connections.clear();
  }

  /** The service "comes back". */
  resume(): void {
    this.forwarding = true;
  }

  async close(): Promise<void> {
    this.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: net.Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
  }
}

export interface Instance extends TestServer {
  name: string;
  /** ws:// URL of /graphql (graphql-ws). */
  wsUrl: string;
  /** http://127.0.0.1:<port> */
  origin: string;
  keywardServer: KeywardServer;
  /** GET a plain path (e.g. /readyz). */
  get(pathname: string): Promise<{ status: number; body: any }>;
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

/** One keyward (createApp + createServer) on a free port, as test/helpers/server.ts starts one. */
export async function startInstance(options: InstanceOptions): Promise<Instance> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `keyward-${options.name}-`));
  const config: Config = {
    ...parseConfig({
      KEYWARD_DATA_DIR: dataDir,
      KEYWARD_PEPPER: PEPPER,
      DATABASE_URL: options.databaseUrl.toString(),
      REDIS_URL: options.redisUrl.toString(),
      LOG_LEVEL: 'info',
      ...options.env,
    }),
    port: 0,
    host: '127.0.0.1',
  };
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(chunk.toString()); done(); } });
  const app: App = await createApp(config, createLogger(config.logLevel, sink), { clock: options.clock });
  const keywardServer = await createServer(app);
  const port = await keywardServer.listen(0, '127.0.0.1');
  const platform = options.platform ?? await initPlatform(app);
  const origin = `http://127.0.0.1:${port}`;
  const url = `${origin}/graphql`;

  return {
    name: options.name,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    origin,
    clock: options.clock,
    app,
    keywardServer,
    adminKey: platform.secret,
    platformOrganizationId: platform.organizationId,
    logs,
    async gql<T = any>(query: string, variables?: Record<string, unknown>, requestOptions: RequestOptions = {}): Promise<GraphQLResponse<T>> {
      const key = requestOptions.key === undefined ? platform.secret : requestOptions.key;
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(key !== null && { authorization: `Bearer ${key}` }),
          ...requestOptions.headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const text = await response.text();
      let body: GraphQLResponse<T>['body'];
      try {
        body = JSON.parse(text) as GraphQLResponse<T>['body'];
      } catch {
        throw new Error(`${options.name}: HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 300)}`);
      }
      return { status: response.status, headers: response.headers, body, code: body.errors?.[0]?.extensions?.code };
    },
    async get(pathname: string) {
      const response = await fetch(`${origin}${pathname}`);
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch { /* not JSON: keep the text */ }
      return { status: response.status, body };
    },
    async close() {
      await keywardServer.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function platformOf(instance: Instance): PlatformCredentials {
  return { organizationId: instance.platformOrganizationId, apiKeyId: '', secret: instance.adminKey };
}
