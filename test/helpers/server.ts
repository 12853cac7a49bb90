import { Writable } from 'node:stream';
import { parseConfig, Config } from '../../src/config';
import { ManualClock } from '../../src/clock';
import { createLogger } from '../../src/logger';
import { App, createApp } from '../../src/app';
import { createServer, KeywardServer } from '../../src/server';
import { initPlatform } from '../../src/organizations/platform-bootstrap';
import { createTestDatabase, TestDatabase } from './database';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; [k: string]: unknown } }> };
  /** `body.errors[0].extensions.code`, for short assertions. */
  code: string | undefined;
}

export interface RequestOptions {
  /** Sent as `Authorization: Bearer <key>`; null sends no key. Defaults to the platform admin key. */
  key?: string | null;
  headers?: Record<string, string>;
}

export interface TestServer {
  url: string;
  clock: ManualClock;
  app: App;
  /** The `*` key made by `keyward init`. */
  adminKey: string;
  platformOrganizationId: string;
  /** Everything the server logged, for "no secret in the logs" assertions. */
  logs: string[];
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: RequestOptions): Promise<GraphQLResponse<T>>;
  /** POST of a JSON body (a string is sent as it is) to a path of the server, e.g. the data plane's /v1/verify. */
  post<T = any>(path: string, body: unknown, options?: RequestOptions): Promise<HttpResponse<T>>;
  close(): Promise<void>;
}

export interface HttpResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestServerOptions {
  /** Extra environment on top of a minimal one (e.g. TRUST_PROXY). */
  env?: Record<string, string>;
  clockStart?: string;
}

/** POST of `body` (JSON; a string is sent as it is) to `path` resolved against `base`, with `key` as Bearer. */
export async function postJson<T = any>(base: string, path: string, body: unknown, key: string | null, headers: Record<string, string> = {}): Promise<HttpResponse<T>> {
  const response = await fetch(new URL(path, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key !== null && { authorization: `Bearer ${key}` }), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // kept as text: the test shows what came back
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

/**
 * Starts a real keyward (Express + Apollo + TypeORM) on a free port with a fresh database
 * and a manual clock, and runs `keyward init` on it.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database: TestDatabase = await createTestDatabase();
  const base: Config = parseConfig({
    KEYWARD_DATA_DIR: database.dataDir,
    KEYWARD_PEPPER: 'test-pepper-0123456789abcdef',
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const config: Config = { ...base, database: database.config, port: 0, host: '127.0.0.1' };
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(chunk.toString()); done(); } });
  const clock = new ManualClock(options.clockStart);
  const app = await createApp(config, createLogger(config.logLevel, sink), { clock });
  const server: KeywardServer = await createServer(app);
  const port = await server.listen(0, '127.0.0.1');
  const platform = await initPlatform(app);
  const url = `http://127.0.0.1:${port}/graphql`;

  return {
    url,
    clock,
    app,
    adminKey: platform.secret,
    platformOrganizationId: platform.organizationId,
    logs,
    async gql(query, variables, requestOptions = {}) {
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
      const body = (await response.json()) as GraphQLResponse["body"];
      return { status: response.status, headers: response.headers, body, code: body.errors?.[0]?.extensions?.code };
    },
    post: (path, body, requestOptions = {}) => postJson(url, path, body, requestOptions.key === undefined ? platform.secret : requestOptions.key, requestOptions.headers),
    async close() {
      await server.stop();
      await database.drop();
      // Every test server checks its own log output: across a full run, no secret is ever logged.
      const leaked = logs.join('').match(/kw_(live|test)_[0-9A-Za-z]{10,}/);
      if (leaked) throw new Error(`a key secret appeared in the server log: ${leaked[0].slice(0, 12)}…`);
    },
  };
}
