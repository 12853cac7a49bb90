import { Writable } from 'node:stream';
import { print } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parseConfig, Config } from '../../src/config';
import { ManualClock } from '../../src/clock';
import { createLogger } from '../../src/logger';
import { App, createApp } from '../../src/app';
import { createServer, KeywardServer } from '../../src/server';
import { initPlatform, PlatformCredentials } from '../../src/organizations/platform-bootstrap';
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

/**
 * A query as text (answers typed `any`), or one of the client's typed documents
 * (test/helpers/operations.ts), which types the variables and the answer.
 */
export type Operation<TData = any, TVariables = Record<string, unknown>> = string | TypedDocumentNode<TData, TVariables>;

export interface TestServer {
  /** http://127.0.0.1:<port>/graphql */
  url: string;
  /** ws://127.0.0.1:<port>/graphql (graphql-ws) */
  wsUrl: string;
  /** http://127.0.0.1:<port> */
  origin: string;
  clock: ManualClock;
  app: App;
  keywardServer: KeywardServer;
  /** The `*` key made by `keyward init`. */
  adminKey: string;
  platformOrganizationId: string;
  /** Everything the server logged, for "no secret in the logs" assertions. */
  logs: string[];
  gql<TData = any, TVariables = Record<string, unknown>>(query: Operation<TData, TVariables>, variables?: TVariables, options?: RequestOptions): Promise<GraphQLResponse<TData>>;
  /** GET a plain path (e.g. /readyz); the body parsed when it is JSON. */
  get(pathname: string): Promise<{ status: number; body: any }>;
  /** Stops the server, removes its data, and fails if a secret appeared in its log. */
  close(): Promise<void>;
}

const printed = new WeakMap<object, string>();

/** The text of a query (a typed document printed once). */
export function queryText(query: Operation<any, any>): string {
  if (typeof query === 'string') return query;
  let text = printed.get(query);
  if (text === undefined) printed.set(query, (text = print(query)));
  return text;
}

/**
 * POSTs one GraphQL request to `url`: the one implementation behind every `gql` of the tests
 * (in-process servers, scale-out instances, spawned server processes). `defaultKey` is sent
 * when `options.key` is undefined.
 */
export async function postGraphQL<TData = any, TVariables = Record<string, unknown>>(
  url: string,
  defaultKey: string | null,
  query: Operation<TData, TVariables>,
  variables?: TVariables,
  options: RequestOptions = {},
): Promise<GraphQLResponse<TData>> {
  const key = options.key === undefined ? defaultKey : options.key;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key !== null && { authorization: `Bearer ${key}` }),
      ...options.headers,
    },
    body: JSON.stringify({ query: queryText(query), variables }),
  });
  const text = await response.text();
  let body: GraphQLResponse<TData>['body'];
  try {
    body = JSON.parse(text) as GraphQLResponse<TData>['body'];
  } catch {
    throw new Error(`${url}: HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 300)}`);
  }
  return { status: response.status, headers: response.headers, body, code: body.errors?.[0]?.extensions?.code };
}

/** GETs `url`; the body parsed when it is JSON, else the text. */
export async function getPath(url: string): Promise<{ status: number; body: any }> {
  const response = await fetch(url);
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

/** Fails naming `who` when anything shaped like a secret is in `logs`: across a full run, no secret is ever logged. */
export function assertNoSecretLogged(logs: readonly string[], who: string): void {
  const leaked = logs.join('').match(/kw_(live|test)_[0-9A-Za-z]{10,}/);
  if (leaked) throw new Error(`a key secret appeared in the log of ${who}: ${leaked[0].slice(0, 12)}…`);
}

export interface KeywardOptions {
  /** Names the server in failures (e.g. "instance B"). */
  name: string;
  config: Config;
  clock: ManualClock;
  /** The platform admin, when another server on the same database already ran init; otherwise init runs here. */
  platform?: PlatformCredentials;
  /** Removes what the server's data lived in (its database, its data dir), after it stopped. */
  removeData(): Promise<void>;
}

/**
 * One real keyward (createApp + createServer: Express, Apollo, graphql-ws, TypeORM) on a free
 * port of 127.0.0.1, logging into memory. Used by startTestServer and by the scale-out instances.
 */
export async function startKeyward(options: KeywardOptions): Promise<TestServer> {
  const config: Config = { ...options.config, port: 0, host: '127.0.0.1' };
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(chunk.toString()); done(); } });
  const app = await createApp(config, createLogger(config.logLevel, sink), { clock: options.clock });
  const keywardServer = await createServer(app);
  const port = await keywardServer.listen(0, '127.0.0.1');
  const platform = options.platform ?? await initPlatform(app);
  const origin = `http://127.0.0.1:${port}`;
  const url = `${origin}/graphql`;

  return {
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    origin,
    clock: options.clock,
    app,
    keywardServer,
    adminKey: platform.secret,
    platformOrganizationId: platform.organizationId,
    logs,
    gql: (query, variables, requestOptions) => postGraphQL(url, platform.secret, query, variables, requestOptions),
    get: (pathname) => getPath(`${origin}${pathname}`),
    async close() {
      try {
        await keywardServer.stop();
      } finally {
        await options.removeData();
      }
      assertNoSecretLogged(logs, options.name);
    },
  };
}

export interface TestServerOptions {
  /** Extra environment on top of a minimal one (e.g. TRUST_PROXY). */
  env?: Record<string, string>;
  clockStart?: string;
  /** A database the test keeps (close() leaves it), e.g. for a second server on the same data; default a fresh one, dropped on close. */
  database?: TestDatabase;
  /** The platform admin of that database, when a server on it already ran init. */
  platform?: PlatformCredentials;
}

export const TEST_PEPPER = 'test-pepper-0123456789abcdef';

/**
 * Starts a real keyward on a free port with a fresh database (SQLite, or MariaDB when
 * DATABASE_URL is mysql://) and a manual clock, and runs `keyward init` on it.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database = options.database ?? await createTestDatabase();
  const config: Config = {
    ...parseConfig({ KEYWARD_DATA_DIR: database.dataDir, KEYWARD_PEPPER: TEST_PEPPER, LOG_LEVEL: 'info', ...options.env }),
    database: database.config,
  };
  return startKeyward({
    name: 'the test server',
    config,
    clock: new ManualClock(options.clockStart),
    platform: options.platform,
    removeData: async () => { if (!options.database) await database.drop(); },
  });
}

/** The platform admin of a running server, to start another one on the same database. */
export function platformOf(server: TestServer): PlatformCredentials {
  return { organizationId: server.platformOrganizationId, apiKeyId: '', secret: server.adminKey };
}

/** Closes every one of `closables` (in order), then fails with every error any of them raised. */
export async function closeAll(closables: Iterable<{ close(): Promise<void> } | null | undefined>): Promise<void> {
  const errors: unknown[] = [];
  for (const closable of closables) {
    if (!closable) continue;
    try {
      await closable.close();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} closes failed: ${errors.map((error) => (error as Error).message).join('; ')}`);
}
