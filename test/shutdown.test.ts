import http from 'node:http';
import { ok } from './helpers/expect';
import { KeywardProcesses } from './helpers/processes';
import { describeWith, REDIS, redisServerUrl } from './helpers/services';
import { RawSocket } from './helpers/ws';

/**
 * Graceful shutdown of the real process (`node dist/src/main.js`): on SIGTERM / SIGINT while a
 * burst of recordUsage calls is in flight, the server closes live sockets with 1001, finishes
 * what it accepted, flushes buffered usage and exits 0 within ~10 s. Every call answered 200
 * has its usage event in the database (checked from a fresh process on the same database);
 * calls refused during shutdown see a connection error or a 503, never a 500.
 * The case with REDIS_URL needs Redis (TEST_REDIS_URL). jest's globalSetup rebuilds dist/ when it is stale.
 */

/** The server must be gone this long after the signal. */
const EXIT_WITHIN_MS = 10_000;
const BURST = 300;
/** The signal goes out once this many calls of the burst were answered. */
const SIGNAL_AFTER_ANSWERS = 25;

jest.setTimeout(120_000);

const processes = new KeywardProcesses();
afterEach(() => processes.cleanup());

const QUOTA_CHANGED = 'subscription($organizationId: ID) { quotaChanged(organizationId: $organizationId) { organizationId meter period used } }';

/** `keyward init --json` on the process environment `env`: the platform admin. */
async function init(env: NodeJS.ProcessEnv, cwd: string): Promise<{ secret: string; organizationId: string }> {
  const result = await processes.cli(['init', '--json'], env, cwd);
  if (result.code !== 0) throw new Error(`keyward init exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout);
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

const TITLE = 'on %s during a burst of recordUsage, %s: closes live sockets with 1001, exits 0 within 10 s, loses no answered usage event and never answers 500';

/** The whole scenario: a server process, a live socket, a burst of recordUsage, `signal` in the middle of it. */
async function shutdownDuringBurst(signal: 'SIGTERM' | 'SIGINT', mode: 'embedded (no REDIS_URL)' | 'with REDIS_URL'): Promise<void> {
  const { env, dataDir } = await processes.environment({ production: true, redisUrl: mode === 'with REDIS_URL' ? redisServerUrl().toString() : undefined });
  const { secret: adminKey } = await init(env, dataDir);
  const startedAt = new Date(Date.now() - 60_000);
  const server = await processes.startServer(env, dataDir);

  // A tenant whose key is only ever the subject of recordUsage (its usage is exactly the burst),
  // with a TOKENS quota so every recorded call is also a live quota event.
  const tenant = ok(await server.gql('mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
    input: { name: `Shutdown ${signal}`, quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1e9 }] },
  }, { key: adminKey })).createOrganization.id as string;
  const subject = ok(await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', {
    input: { organizationId: tenant, name: 'subject', preset: 'INFERENCE' },
  }, { key: adminKey })).createApiKey.apiKey.id as string;
  // The metering service: platform organization, usage:write, no rate limits.
  const service = ok(await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { rateLimits { name } scopes } } }', {
    input: { name: 'metering service', scopes: ['usage:write'], rateLimits: [] },
  }, { key: adminKey })).createApiKey;
  expect(service.apiKey).toEqual({ rateLimits: [], scopes: ['usage:write'] });

  const socket = new RawSocket(server.url.replace(/^http/, 'ws'));
  expect(await socket.init({ authorization: `Bearer ${adminKey}` })).toBe('ack');
  socket.subscribe('quotas', QUOTA_CHANGED, { organizationId: tenant });
  await socket.until(() => socket.nextsOf('quotas').length > 0, 5_000, 'the first quotaChanged event')
    .catch((error: Error) => { throw new Error(`${error.message}\n${server.output()}`); });
  expect(socket.nextsOf('quotas')[0]).toEqual({ data: { quotaChanged: { organizationId: tenant, meter: 'TOKENS', period: 'MONTH', used: 0 } } });

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
  const closed = await within(socket.closed, 1_000, () => null);

  // The process: exit code 0, within 10 s of the signal.
  expect(exit === null ? `still running ${EXIT_WITHIN_MS + 5_000} ms after ${signal}; its output:\n${server.output()}` : { code: exit.code, signal: exit.signal })
    .toEqual({ code: 0, signal: null });
  expect(exit!.at - signalledAt).toBeLessThan(EXIT_WITHIN_MS);
  expect(server.output()).toContain('shutting down');
  expect(server.output()).not.toMatch(/shutdown failed|unexpected error|unhandled/i);

  // The live socket: 1001 Going Away.
  expect(closed && { code: closed.code, reason: closed.reason }).toEqual({ code: 1001, reason: 'Server shutting down' });

  // Every call: recorded (200), or refused with a connection error or a 503 — nothing else.
  const recorded = outcomes.filter((outcome) => outcome.kind === 'response' && outcome.status === 200);
  const unexpected = outcomes.filter((outcome) => !(outcome.kind === 'connection-error'
    || (outcome.kind === 'response' && outcome.status === 200 && outcome.body?.data?.recordUsage?.recorded === true && !outcome.body.errors)
    || (outcome.kind === 'response' && outcome.status === 503 && outcome.body?.errors?.[0]?.extensions?.code === 'UNAVAILABLE')));
  expect(unexpected).toEqual([]);
  expect(recorded.length).toBeGreaterThanOrEqual(SIGNAL_AFTER_ANSWERS);
  expect(outcomes).toHaveLength(BURST);

  // The database, read by a fresh process: exactly the answered calls, none lost.
  const again = await processes.startServer(env, dataDir);
  const usageOf = async () => ok(await again.gql('query($range: UsageRange) { usage(range: $range) { requests tokens byOperation { key requests } } }', {
    range: { apiKeyId: subject, from: startedAt.toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
  }, { key: adminKey })).usage;
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
}

/** What one keep-alive call got: an answer (with its Connection header), or the socket error's code. */
type KeepAliveOutcome = { status: number; connection: string | undefined } | { error: string };

/** POST `body` to `url` through `agent` (a keep-alive pool). */
function postThrough(agent: http.Agent, url: string, secret: string, body: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` } }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode!, connection: response.headers.connection }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

it('on SIGTERM under load from 20 keep-alive clients: every client is answered and told Connection: close, and none sees its connection reset', async () => {
  const { env, dataDir } = await processes.environment({ production: true });
  const { secret } = await init(env, dataDir);
  const server = await processes.startServer(env, dataDir);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const body = JSON.stringify({ query: 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid } }', variables: { input: { key: secret } } });
  let calls = 0;
  let signalledAt = 0;
  // Each client calls until the server is gone (a refused connection) or sends it elsewhere (503).
  const clients = Array.from({ length: 20 }, async () => {
    const outcomes: KeepAliveOutcome[] = [];
    for (;;) {
      try {
        const answer = await postThrough(agent, server.url, secret, body);
        outcomes.push(answer);
        if (answer.status === 503) return outcomes;
      } catch (error) {
        outcomes.push({ error: (error as NodeJS.ErrnoException).code ?? String(error) });
        return outcomes;
      }
      calls += 1;
      if (calls === 400) {
        signalledAt = performance.now();
        server.child.kill('SIGTERM');
      }
    }
  });
  const perClient = await Promise.all(clients);
  agent.destroy();
  const exit = await within(server.exited, EXIT_WITHIN_MS + 5_000, () => null);
  expect(exit && { code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(exit!.at - signalledAt).toBeLessThan(EXIT_WITHIN_MS);

  for (const outcomes of perClient) {
    const answers = outcomes.filter((outcome): outcome is Extract<KeepAliveOutcome, { status: number }> => 'status' in outcome);
    expect(answers.filter((answer) => answer.status !== 200 && answer.status !== 503)).toEqual([]);
    // The last answer on the client's socket told it to close; the socket was then closed by the
    // server, so a further call found the listener gone (refused), never a reset.
    expect(answers.at(-1)?.connection).toBe('close');
    const last = outcomes.at(-1)!;
    if ('error' in last) expect(last.error).toBe('ECONNREFUSED');
    expect(outcomes.slice(0, -1).filter((outcome) => 'error' in outcome)).toEqual([]);
  }
});

describe('graceful shutdown of the server process', () => {
  it.each([
    ['SIGTERM', 'embedded (no REDIS_URL)'],
    ['SIGINT', 'embedded (no REDIS_URL)'],
  ] as const)(TITLE, shutdownDuringBurst);

  describeWith([REDIS], 'with Redis (TEST_REDIS_URL)', () => {
    it.each([['SIGTERM', 'with REDIS_URL']] as const)(TITLE, shutdownDuringBurst);
  });
});

const VERIFY_KEY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
/** Concurrent keep-alive callers during the crash test. */
const CRASH_CALLERS = 20;
/** SIGKILL goes out once this many verifications were answered VALID. */
const KILL_AFTER_ANSWERS = 300;

type CrashCall = { operation: string; outcome: 'valid' | 'cut' | 'other'; detail?: string };

describe('a crash of the server process (SIGKILL)', () => {
  it('under verifyKey load loses no answered usage: after a restart every answered VALID call is a usage event, every event an admitted call, and events equal requestCount', async () => {
    const { env, dataDir } = await processes.environment({ production: true });
    const { secret: adminKey } = await init(env, dataDir);
    const startedAt = new Date(Date.now() - 60_000);
    const server = await processes.startServer(env, dataDir);

    const tenant = ok(await server.gql('mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
      input: { name: 'Crash', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 1e9 }] },
    }, { key: adminKey })).createOrganization.id as string;
    const subject = ok(await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }', {
      input: { organizationId: tenant, name: 'subject', preset: 'INFERENCE', rateLimits: [] },
    }, { key: adminKey })).createApiKey;
    const service = ok(await server.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', {
      input: { name: 'verifier', scopes: ['keys:verify'], rateLimits: [] },
    }, { key: adminKey })).createApiKey.secret as string;

    // Each call names itself in `operation`, so the usage events say which calls were counted.
    const calls: CrashCall[] = [];
    let answered = 0;
    let killed = false;
    const caller = async (id: number) => {
      for (let n = 0; ; n++) {
        const operation = `crash.${id}.${n}`;
        let call: CrashCall;
        try {
          const response = await server.gql(VERIFY_KEY, { input: { key: subject.secret, operation } }, { key: service });
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
    const again = await processes.startServer(env, dataDir);
    try {
      const data = ok(await again.gql('query($id: ID!, $range: UsageRange) { apiKey(id: $id) { requestCount } usage(range: $range) { requests byOperation { key requests } } }', {
        id: subject.apiKey.id, range: { apiKeyId: subject.apiKey.id, from: startedAt.toISOString(), to: new Date(Date.now() + 60_000).toISOString() },
      }, { key: adminKey }));
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
