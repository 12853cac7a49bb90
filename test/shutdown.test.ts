import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import WebSocket from 'ws';
import { createTestDatabase, TestDatabase } from './helpers/database';

/**
 * Graceful shutdown of the real process (`node dist/src/main.js`): on SIGTERM / SIGINT while a
 * burst of recordUsage calls is in flight, the server closes live sockets with 1001, finishes
 * what it accepted, flushes buffered usage and exits 0 within ~10 s. Every call answered 200
 * has its usage event in the database (checked from a fresh process on the same database);
 * calls refused during shutdown see a connection error or a 503, never a 500.
 * jest's globalSetup rebuilds dist/ when it is stale.
 */
const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'keyward.js');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
const PEPPER = 'shutdown-test-pepper-0123456789abcdef';
const STARTUP_TIMEOUT_MS = 20_000;
/** The server must be gone this long after the signal. */
const EXIT_WITHIN_MS = 10_000;
const BURST = 300;
/** The signal goes out once this many calls of the burst were answered. */
const SIGNAL_AFTER_ANSWERS = 25;

jest.setTimeout(120_000);

const children: ChildProcess[] = [];
const databases: TestDatabase[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  for (const database of databases.splice(0)) await database.drop();
});

/** REDIS_URL for the case with Redis: CI exports TEST_REDIS_URL; without it that case fails. */
function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error('TEST_REDIS_URL is not set: this test needs Redis (e.g. TEST_REDIS_URL=redis://127.0.0.1:6379)');
  return url;
}

/**
 * A fresh database (SQLite file, or a new MariaDB database when DATABASE_URL is mysql://) and
 * the environment of a production process: NODE_ENV is removed, as `npm start` has it (jest sets
 * NODE_ENV=test, and libraries such as Apollo Server behave differently under it).
 */
async function freshEnvironment(redisUrl: string | null): Promise<{ env: NodeJS.ProcessEnv; dataDir: string }> {
  const database = await createTestDatabase();
  databases.push(database);
  const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_DATA_DIR: database.dataDir, LOG_LEVEL: 'info' };
  for (const name of ['NODE_ENV', 'DATABASE_URL', 'KEYWARD_PEPPER', 'PORT', 'HOST', 'REDIS_URL', 'TRUST_PROXY', 'INTROSPECTION', 'SESSION_PRICE_USD']) delete env[name];
  if (database.config.kind === 'mysql') {
    env.DATABASE_URL = database.config.url;
    env.KEYWARD_PEPPER = PEPPER;
  }
  if (redisUrl) env.REDIS_URL = redisUrl;
  return { env, dataDir: database.dataDir };
}

function run(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): ChildProcess {
  const child = spawn(process.execPath, [script, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

async function init(env: NodeJS.ProcessEnv, cwd: string): Promise<{ secret: string; organizationId: string }> {
  const child = run(BIN, ['init', '--json'], env, cwd);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => { stdout += chunk; });
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`keyward init exited ${code}: ${stderr}`);
  return JSON.parse(stdout);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** Starts `node dist/src/main.js` on a free port and waits until /healthz answers. */
async function startServer(env: NodeJS.ProcessEnv, cwd: string): Promise<ServerProcess> {
  const port = await freePort();
  const child = run(MAIN, [], { ...env, PORT: String(port), HOST: '127.0.0.1' }, cwd);
  let output = '';
  child.stdout!.on('data', (chunk) => { output += chunk; });
  child.stderr!.on('data', (chunk) => { output += chunk; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited during start (code ${child.exitCode}):\n${output}`);
    try {
      const response = await fetch(`${base}/healthz`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the server did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, url: `${base}/graphql`, output: () => output, exited };
}

async function gql(url: string, secret: string, query: string, variables: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.json() };
}

async function ok(url: string, secret: string, query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const response = await gql(url, secret, query, variables);
  if (response.status !== 200 || response.body.errors) throw new Error(`unexpected response ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body.data;
}

/** A graphql-transport-ws socket subscribed to quotaChanged of one organization. */
class Subscription {
  readonly socket: WebSocket;
  readonly events: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private firstEvent!: () => void;
  readonly subscribed = new Promise<void>((resolve) => { this.firstEvent = resolve; });

  constructor(url: string, secret: string, organizationId: string) {
    this.socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    this.closed = new Promise((resolve) => {
      this.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.socket.on('error', () => {});
    this.socket.once('open', () => this.socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${secret}` } })));
    this.socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === 'connection_ack') {
        this.socket.send(JSON.stringify({
          id: 'quotas',
          type: 'subscribe',
          payload: {
            query: 'subscription($organizationId: ID) { quotaChanged(organizationId: $organizationId) { organizationId meter period used } }',
            variables: { organizationId },
          },
        }));
      } else if (message.type === 'next') {
        this.events.push(message.payload);
        this.firstEvent();
      }
    });
  }
}

type Outcome =
  | { kind: 'response'; status: number; body: any }
  | { kind: 'connection-error'; message: string };

const RECORD_USAGE = `mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }`;

async function recordUsage(url: string, secret: string, apiKeyId: string, idempotencyKey: string): Promise<Outcome> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
      body: JSON.stringify({ query: RECORD_USAGE, variables: { input: { apiKeyId, operation: 'shutdown.burst', statusCode: 200, tokens: 1, idempotencyKey } } }),
    });
    const text = await response.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // kept as text for the failure message
    }
    return { kind: 'response', status: response.status, body };
  } catch (error) {
    // fetch rejects with a TypeError ("fetch failed") whose cause is the socket error.
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { kind: 'connection-error', message: `${(error as Error).message}: ${cause?.code ?? cause?.message ?? 'unknown'}` };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or `fallback()` after `ms` (the timer is cleared either way, so jest can exit). */
async function within<T, F>(promise: Promise<T>, ms: number, fallback: () => F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve, reject) => {
      timer = setTimeout(() => {
        try {
          resolve(fallback());
        } catch (error) {
          reject(error);
        }
      }, ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

describe('graceful shutdown of the server process', () => {
  beforeAll(() => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (jest's globalSetup should have built it)`);
  });

  it.each([
    ['SIGTERM', 'embedded (no REDIS_URL)'],
    ['SIGINT', 'embedded (no REDIS_URL)'],
    ['SIGTERM', 'with REDIS_URL'],
  ] as const)(
    'on %s during a burst of recordUsage, %s: closes live sockets with 1001, exits 0 within 10 s, loses no answered usage event and never answers 500',
    async (signal, mode) => {
      const { env, dataDir } = await freshEnvironment(mode === 'with REDIS_URL' ? testRedisUrl() : null);
      const { secret: adminKey } = await init(env, dataDir);
      const startedAt = new Date(Date.now() - 60_000);
      const server = await startServer(env, dataDir);

      // A tenant whose key is only ever the subject of recordUsage (its usage is exactly the burst),
      // with a TOKENS quota so every recorded call is also a live quota event.
      const tenant = (await ok(server.url, adminKey, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
        input: { name: `Shutdown ${signal}`, quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1e9 }] },
      })).createOrganization.id as string;
      const subject = (await ok(server.url, adminKey, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', {
        input: { organizationId: tenant, name: 'subject', preset: 'INFERENCE' },
      })).createApiKey.apiKey.id as string;
      // The metering service: platform organization, usage:write, no rate limits.
      const service = (await ok(server.url, adminKey, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { rateLimits { name } scopes } } }', {
        input: { name: 'metering service', scopes: ['usage:write'], rateLimits: [] },
      })).createApiKey;
      expect(service.apiKey).toEqual({ rateLimits: [], scopes: ['usage:write'] });

      const subscription = new Subscription(server.url, adminKey, tenant);
      await within(subscription.subscribed, 5_000, () => { throw new Error(`no quotaChanged event within 5 s:\n${server.output()}`); });
      expect(subscription.events[0]).toEqual({ data: { quotaChanged: { organizationId: tenant, meter: 'TOKENS', period: 'MONTH', used: 0 } } });

      // The burst: 10 calls every 5 ms, so part of it is still being sent when the signal goes out.
      let answered = 0;
      let signalledAt = 0;
      let signalSent!: () => void;
      const signalled = new Promise<void>((resolve) => { signalSent = resolve; });
      const calls: Array<Promise<Outcome>> = [];
      const burst = (async () => {
        for (let i = 0; i < BURST; i++) {
          if (i > 0 && i % 10 === 0) await sleep(5);
          calls.push(recordUsage(server.url, service.secret, subject, `burst-${signal}-${mode}-${i}`).then((outcome) => {
            answered += 1;
            if (answered === SIGNAL_AFTER_ANSWERS) {
              signalledAt = performance.now();
              server.child.kill(signal);
              signalSent();
            }
            return outcome;
          }));
        }
      })();
      await within(signalled, 30_000, () => { throw new Error(`fewer than ${SIGNAL_AFTER_ANSWERS} calls were answered within 30 s:\n${server.output()}`); });
      await burst;
      const outcomes = await Promise.all(calls);
      const exit = await within(server.exited, EXIT_WITHIN_MS + 5_000, () => null);
      const closed = await within(subscription.closed, 1_000, () => null);

      // The process: exit code 0, within 10 s of the signal.
      expect(exit === null ? `still running ${EXIT_WITHIN_MS + 5_000} ms after ${signal}; its output:\n${server.output()}` : { code: exit.code, signal: exit.signal })
        .toEqual({ code: 0, signal: null });
      expect(exit!.at - signalledAt).toBeLessThan(EXIT_WITHIN_MS);
      expect(server.output()).toContain('shutting down');
      expect(server.output()).not.toMatch(/shutdown failed|unexpected error|unhandled/i);

      // The live socket: 1001 Going Away.
      expect(closed).toEqual({ code: 1001, reason: 'Server shutting down' });

      // Every call: recorded (200), or refused with a connection error or a 503 — nothing else.
      const recorded = outcomes.filter((outcome) => outcome.kind === 'response' && outcome.status === 200);
      const unexpected = outcomes.filter((outcome) => !(outcome.kind === 'connection-error'
        || (outcome.kind === 'response' && outcome.status === 200 && outcome.body?.data?.recordUsage?.recorded === true && !outcome.body.errors)
        || (outcome.kind === 'response' && outcome.status === 503 && outcome.body?.errors?.[0]?.extensions?.code === 'UNAVAILABLE')));
      expect(unexpected).toEqual([]);
      expect(recorded.length).toBeGreaterThanOrEqual(SIGNAL_AFTER_ANSWERS);
      expect(outcomes).toHaveLength(BURST);

      // The database, read by a fresh process: exactly the answered calls, none lost.
      const again = await startServer(env, dataDir);
      const usageOf = async () => (await ok(again.url, adminKey, 'query($range: UsageRange) { usage(range: $range) { requests tokens byOperation { key requests } } }', {
        range: { apiKeyId: subject, from: startedAt.toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
      })).usage;
      const usage = await usageOf();
      // Retrying every refused call with its idempotency key tells which ones the first server
      // recorded anyway (recorded: false): a call answered with an error must not have counted.
      const retried = await Promise.all(outcomes.map(async (outcome, i) => {
        if (outcome.kind === 'response' && outcome.status === 200) return null;
        const retry = await recordUsage(again.url, service.secret, subject, `burst-${signal}-${mode}-${i}`);
        if (retry.kind !== 'response' || retry.status !== 200) throw new Error(`retry of call ${i} failed: ${JSON.stringify(retry)}`);
        return retry.body.data.recordUsage.recorded ? null : { call: i, firstOutcome: outcome };
      }));
      const recordedWithoutAnswer = retried.filter((entry) => entry !== null);
      expect({ usage, recordedWithoutAnswer }).toEqual({
        usage: { requests: recorded.length, tokens: recorded.length, byOperation: [{ key: 'shutdown.burst', requests: recorded.length }] },
        recordedWithoutAnswer: [],
      });
      // …and after the retries every call of the burst counts exactly once.
      expect((await usageOf()).requests).toBe(BURST);
      again.child.kill('SIGTERM');
      const againExit = await within(again.exited, EXIT_WITHIN_MS + 5_000, () => null);
      expect(againExit && { code: againExit.code, signal: againExit.signal }).toEqual({ code: 0, signal: null });
    },
  );
});

const VERIFY_KEY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
/** Concurrent keep-alive callers during the crash test. */
const CRASH_CALLERS = 20;
/** SIGKILL goes out once this many verifications were answered VALID. */
const KILL_AFTER_ANSWERS = 300;

type CrashCall = { operation: string; outcome: 'valid' | 'cut' | 'other'; detail?: string };

describe('a crash of the server process (SIGKILL)', () => {
  beforeAll(() => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (jest's globalSetup should have built it)`);
  });

  it('under verifyKey load loses no answered usage: after a restart every answered VALID call is a usage event, every event an admitted call, and events equal requestCount', async () => {
    const { env, dataDir } = await freshEnvironment(null);
    const { secret: adminKey } = await init(env, dataDir);
    const startedAt = new Date(Date.now() - 60_000);
    const server = await startServer(env, dataDir);

    const tenant = (await ok(server.url, adminKey, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
      input: { name: 'Crash', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1e9 }] },
    })).createOrganization.id as string;
    const subject = (await ok(server.url, adminKey, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }', {
      input: { organizationId: tenant, name: 'subject', preset: 'INFERENCE', rateLimits: [] },
    })).createApiKey;
    const service = (await ok(server.url, adminKey, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', {
      input: { name: 'verifier', scopes: ['keys:verify'], rateLimits: [] },
    })).createApiKey.secret as string;

    // Each call names itself in `operation`, so the usage events say which calls were counted.
    const calls: CrashCall[] = [];
    let answered = 0;
    let killed = false;
    const caller = async (id: number) => {
      for (let n = 0; ; n++) {
        const operation = `crash.${id}.${n}`;
        let call: CrashCall;
        try {
          const response = await gql(server.url, service, VERIFY_KEY, { input: { key: subject.secret, operation } });
          const valid = response.status === 200 && response.body.data?.verifyKey?.code === 'VALID';
          call = valid ? { operation, outcome: 'valid' } : { operation, outcome: 'other', detail: `${response.status} ${JSON.stringify(response.body)}` };
        } catch (error) {
          call = { operation, outcome: 'cut', detail: String((error as { cause?: { code?: string } }).cause?.code ?? error) };
        }
        calls.push(call);
        if (call.outcome === 'valid' && ++answered === KILL_AFTER_ANSWERS) {
          killed = true;
          server.child.kill('SIGKILL');
        }
        if (call.outcome !== 'valid') return;
      }
    };
    await Promise.all(Array.from({ length: CRASH_CALLERS }, (_, id) => caller(id)));
    const exit = await within(server.exited, 5_000, () => null);
    expect({ killed, exit: exit && { code: exit.code, signal: exit.signal } }).toEqual({ killed: true, exit: { code: null, signal: 'SIGKILL' } });

    // A fresh process on the same data: it replays the journal before it serves.
    const again = await startServer(env, dataDir);
    try {
      const data = await ok(again.url, adminKey, 'query($id: ID!, $range: UsageRange) { apiKey(id: $id) { requestCount } usage(range: $range) { requests byOperation { key requests } } }', {
        id: subject.apiKey.id, range: { apiKeyId: subject.apiKey.id, from: startedAt.toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
      });
      const recorded = new Map<string, number>(data.usage.byOperation.map((bucket: { key: string; requests: number }) => [bucket.key, bucket.requests]));
      const validCalls = calls.filter((call) => call.outcome === 'valid').map((call) => call.operation);
      const cutCalls = new Set(calls.filter((call) => call.outcome === 'cut').map((call) => call.operation));
      const missing = validCalls.filter((operation) => recorded.get(operation) !== 1);
      const unexplained = [...recorded.keys()].filter((operation) => recorded.get(operation) !== 1 || !(validCalls.includes(operation) || cutCalls.has(operation)));
      expect({ missing, unexplained, others: calls.filter((call) => call.outcome === 'other') }).toEqual({ missing: [], unexplained: [], others: [] });
      expect(validCalls.length).toBeGreaterThanOrEqual(KILL_AFTER_ANSWERS);
      // Events and requestCount come from the same records: always equal. Beyond the answered
      // calls, only calls the kill cut off (admitted, never answered) may have been counted.
      expect(data.apiKey.requestCount).toBe(data.usage.requests);
      expect(data.usage.requests - validCalls.length).toBeGreaterThanOrEqual(0);
      expect(data.usage.requests - validCalls.length).toBeLessThanOrEqual(cutCalls.size);
      // …and the kill did leave usage that only the journal held.
      expect(again.output()).toContain('usage journal replayed');
    } finally {
      again.child.kill('SIGTERM');
      await within(again.exited, EXIT_WITHIN_MS + 5_000, () => null);
    }
  });
});
