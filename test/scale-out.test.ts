import fs from 'node:fs';
import type { Client } from 'graphql-ws';
import { ManualClock } from '../src/clock';
import { generateSecret } from '../src/auth/key-format';
import { createKey, createOrganization, quotaStatus } from './helpers/fixtures';
import { closeAll, platformOf } from './helpers/server';
import { Instance, startInstance, startPair } from './helpers/cluster';
import { createMysqlDatabase, MysqlDatabase } from './helpers/database';
import { ok } from './helpers/expect';
import { TcpProxy } from './helpers/processes';
import { describeWith, MARIADB, mysqlServerUrl, REDIS, redisServerUrl } from './helpers/services';
import { Feed, LiveClients } from './helpers/ws';
import { QuotaChangedDocument, QuotaFieldsFragment, QuotasDocument } from './helpers/operations';
import { Admission, busiestSpan, randomBetween, seededRandom } from './helpers/sliding-windows';

/**
 * Scale-out (REDIS_URL): several instances sharing one MariaDB database and one Redis agree on
 * REQUESTS quotas and rate limits, carry live events and cache invalidations to each other, and
 * report (and survive) Redis or the database going away. Always on MariaDB (a SQLite file shared
 * by two processes is not a supported deployment), also in the SQLite pass: skipped without
 * Redis (TEST_REDIS_URL) or MariaDB (TEST_MYSQL_URL, default the CI server), failed in CI.
 */

const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
const RATE_LIMIT_STATUS = 'query($id: ID!) { rateLimitStatus(apiKeyId: $id) { name limit remaining windowSeconds resetAt } }';
const REVOKE = 'mutation($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { id status } }';
const VIEWER = '{ viewer { apiKey { id } } }';
const VERIFY_COST = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';

/** A revoked key must be refused by every instance, and its sockets closed, within this long. */
const EVERYWHERE_WITHIN_MS = 1_000;
const POLL_MS = 20;
/** ioredis reconnects with a backoff of up to 0.5 s; the database pool reconnects on demand. */
const RECOVERY_WITHIN_MS = 10_000;
/** Once the proxy resets every connection, each instance notices at its next use. */
const DOWN_WITHIN_MS = 3_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every POLL_MS until `done` holds; fails after `timeoutMs` showing the last value. */
async function pollUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<{ value: T; elapsedMs: number }> {
  const started = performance.now();
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (done(last)) return { value: last, elapsedMs: performance.now() - started };
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(POLL_MS);
  }
}

describeWith([REDIS, MARIADB], 'scale-out: instances sharing one MariaDB database and one Redis', () => {
  // One clock for every instance, so their rate-limit windows and quota periods agree.
  const clock = new ManualClock('2026-01-15T12:00:00.000Z');
  let redisUrl: URL;
  let database: MysqlDatabase | null = null;
  const instances: Instance[] = [];
  const proxies: TcpProxy[] = [];
  const clients = new LiveClients();
  /** A and B: direct connections to both services. */
  let a: Instance;
  let b: Instance;

  beforeAll(async () => {
    redisUrl = redisServerUrl();
    database = await createMysqlDatabase(mysqlServerUrl());
    [a, b] = await startPair({ databaseUrl: database.url, redisUrl, clock });
    instances.push(a, b);
  }, 120_000);

  afterEach(async () => {
    await clients.disposeAll();
    // A failed test must not leave a service "down" for the next one.
    for (const proxy of proxies) proxy.resume();
  });

  afterAll(async () => {
    for (const proxy of proxies) proxy.resume();
    // SCALE_OUT_LOGS=<file> keeps what the instances logged, for diagnosing a failure.
    if (process.env.SCALE_OUT_LOGS) {
      fs.writeFileSync(process.env.SCALE_OUT_LOGS, instances.map((instance) => instance.logs.map((line) => `${instance.name} ${line}`).join('')).join(''));
    }
    try {
      await closeAll([...instances].reverse());
    } finally {
      await closeAll(proxies);
      await database?.drop();
    }
  }, 60_000);

  /**
   * Another instance whose Redis (and, if asked, database) connections go through proxies this
   * test controls; `redisProxy` puts it behind the Redis proxy of another such instance.
   */
  async function startProxiedInstance(name: string, options: { proxyDatabase: boolean; env?: Record<string, string>; redisProxy?: TcpProxy }) {
    const redisProxy = options.redisProxy ?? await TcpProxy.start({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    if (!options.redisProxy) proxies.push(redisProxy);
    const proxiedRedis = new URL(redisUrl.toString());
    proxiedRedis.host = `127.0.0.1:${redisProxy.port}`;
    let databaseProxy: TcpProxy | null = null;
    const databaseUrl = new URL(database!.url.toString());
    if (options.proxyDatabase) {
      databaseProxy = await TcpProxy.start({ host: database!.url.hostname, port: Number(database!.url.port || 3306) });
      proxies.push(databaseProxy);
      databaseUrl.host = `127.0.0.1:${databaseProxy.port}`;
    }
    const instance = await startInstance({ name, databaseUrl, redisUrl: proxiedRedis, clock, platform: platformOf(a), env: options.env });
    instances.push(instance);
    return { instance, redisProxy, databaseProxy };
  }

  function connect(instance: Instance, secret: string, onClosed?: (event: { code: number; reason: string }) => void): Client {
    return clients.connect(instance.wsUrl, secret, { on: { closed: (event) => onClosed?.(event as { code: number; reason: string }) } });
  }

  async function verifyOn(instance: Instance, secret: string): Promise<{ status: number; code: string | undefined; result: { valid: boolean; code: string } | undefined }> {
    const response = await instance.gql(VERIFY, { input: { key: secret } });
    return { status: response.status, code: response.code, result: response.body.data?.verifyKey };
  }

  function readyz(instance: Instance): Promise<{ status: number; body: any }> {
    return instance.get('/readyz');
  }

  function watchQuotas(client: Client, organizationId: string): Feed<QuotaFieldsFragment> {
    return Feed.watch(client, QuotaChangedDocument, { organizationId }, 'quotaChanged');
  }

  describe('shared counters', () => {
    it('admits exactly 50 of 200 concurrent verifications split across two instances against a REQUESTS DAY quota of 50', async () => {
      const organization = await createOrganization(a, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 50 }] });
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [] });

      const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key.secret)));

      expect(responses.filter((r) => r.status !== 200)).toEqual([]);
      const codes = responses.map((r) => r.result!.code);
      expect(codes.filter((code) => code === 'VALID')).toHaveLength(50);
      expect(codes.filter((code) => code === 'QUOTA_EXCEEDED')).toHaveLength(150);
      // Both instances admitted some: the split really crossed instances.
      expect(responses.filter((r, i) => i % 2 === 0 && r.result!.valid).length).toBeGreaterThan(0);
      expect(responses.filter((r, i) => i % 2 === 1 && r.result!.valid).length).toBeGreaterThan(0);

      const expected = [{
        organizationId: organization.id, apiKeyId: null, meter: 'REQUESTS', period: 'DAY', limit: 50, used: 50, held: 0, remaining: 0, percentUsed: 100,
        resetsAt: '2026-01-16T00:00:00.000Z',
      }];
      expect(ok(await a.gql(QuotasDocument, { organizationId: organization.id })).quotas).toEqual(expected);
      expect(ok(await b.gql(QuotasDocument, { organizationId: organization.id })).quotas).toEqual(expected);
    });

    it('admits exactly 5 of 40 concurrent verifications split across two instances against a 5-per-minute rate limit, and both admit 5 again a minute later', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 5, windowSeconds: 60 }] });
      const start = clock.now();
      try {
        const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key.secret)));
        expect(responses.filter((r) => r.status !== 200)).toEqual([]);
        const codes = responses.map((r) => r.result!.code);
        expect(codes.filter((code) => code === 'VALID')).toHaveLength(5);
        expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(35);

        const exhausted = [{ name: 'per-minute', limit: 5, remaining: 0, windowSeconds: 60, resetAt: '2026-01-15T12:01:00.000Z' }];
        expect(ok(await a.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus).toEqual(exhausted);
        expect(ok(await b.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus).toEqual(exhausted);

        // A minute later the five have left the window: again exactly 5 across both.
        clock.advance(60_000);
        const next = await Promise.all(Array.from({ length: 20 }, (_, i) => verifyOn(i % 2 === 0 ? b : a, key.secret)));
        expect(next.map((r) => r.result!.code).filter((code) => code === 'VALID')).toHaveLength(5);
        expect(next.map((r) => r.result!.code).filter((code) => code === 'RATE_LIMITED')).toHaveLength(15);
      } finally {
        clock.set(start);
      }
    });
  });

  describe('sliding windows across instances: no span of windowSeconds admits more than limit', () => {
    /** Runs `body` on the shared clock, then puts the clock back. */
    async function onClock(body: (start: number) => Promise<void>): Promise<void> {
      const start = clock.now();
      try {
        await body(start.getTime());
      } finally {
        clock.set(start);
      }
    }

    async function verifyCost(instance: Instance, secret: string, cost: number): Promise<string> {
      const response = await instance.gql(VERIFY_COST, { input: { key: secret, cost } });
      if (response.status !== 200) throw new Error(`${instance.name}: HTTP ${response.status}: ${JSON.stringify(response.body)}`);
      return response.body.data.verifyKey.code;
    }

    it('refuses, on A and B together, a burst across what used to be a window boundary (5 per 2 s: 5 at 1.9 s, none of 5 more at 2.1 s) and admits again exactly at resetAt', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'burst', limit: 5, windowSeconds: 2 }] });
      await onClock(async (start) => {
        clock.set(new Date(start + 1_900));
        const first = await Promise.all(Array.from({ length: 5 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key.secret)));
        expect(first.map((r) => r.result!.code)).toEqual(Array(5).fill('VALID'));
        clock.set(new Date(start + 2_100));
        const second = await Promise.all(Array.from({ length: 5 }, (_, i) => verifyOn(i % 2 === 0 ? b : a, key.secret)));
        expect(second.map((r) => r.result!.code)).toEqual(Array(5).fill('RATE_LIMITED'));

        const resetAt = new Date(start + 3_900).toISOString();
        for (const instance of [a, b]) {
          expect(ok(await instance.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus).toEqual([{ name: 'burst', limit: 5, remaining: 0, windowSeconds: 2, resetAt }]);
        }
        clock.set(new Date(start + 3_899));
        expect((await verifyOn(b, key.secret)).result!.code).toBe('RATE_LIMITED');
        clock.set(resetAt);
        const third = await Promise.all(Array.from({ length: 6 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key.secret)));
        expect(third.map((r) => r.result!.code).sort()).toEqual([...Array(1).fill('RATE_LIMITED'), ...Array(5).fill('VALID')]);
      });
    });

    it.each([7, 8])('never admits more than 5 in any 2 s over pseudo-random clock steps and concurrent bursts of random costs split across A and B (seed %i)', async (seed) => {
      const random = seededRandom(seed);
      const limit = 5;
      const windowMs = 2_000;
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'burst', limit, windowSeconds: windowMs / 1000 }] });
      const admissions: Admission[] = [];
      let refusals = 0;
      await onClock(async () => {
        for (let step = 0; step < 40; step++) {
          clock.advance(randomBetween(random, 0, 900));
          const now = clock.now().getTime();
          const requests = Array.from({ length: randomBetween(random, 1, 5) }, () => ({ instance: random() < 0.5 ? a : b, cost: randomBetween(random, 1, 3) }));
          const codes = await Promise.all(requests.map((request) => verifyCost(request.instance, key.secret, request.cost)));
          requests.forEach((request, i) => {
            if (codes[i] === 'VALID') admissions.push({ at: now, cost: request.cost });
          });
          const used = admissions.filter((admission) => admission.at > now - windowMs).reduce((sum, admission) => sum + admission.cost, 0);
          // Whatever the order the burst ran in, a refused request did not fit even at the end of it.
          requests.forEach((request, i) => {
            if (codes[i] !== 'VALID') {
              refusals += 1;
              expect({ step, code: codes[i], fitsAfterBurst: used + request.cost <= limit }).toEqual({ step, code: 'RATE_LIMITED', fitsAfterBurst: false });
            }
          });
          const status = ok(await (step % 2 === 0 ? a : b).gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus;
          expect({ step, remaining: status[0].remaining }).toEqual({ step, remaining: limit - used });
        }
      });
      expect(busiestSpan(admissions, windowMs).units).toBeLessThanOrEqual(limit);
      expect(admissions.length).toBeGreaterThan(10);
      expect(refusals).toBeGreaterThan(10);
    });

    it('admits exactly 10 of 50 concurrent requests split across A and B against a limit of 10', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 10, windowSeconds: 60 }] });
      const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key.secret)));
      const codes = responses.map((r) => r.result!.code);
      expect(codes.filter((code) => code === 'VALID')).toHaveLength(10);
      expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(40);
      expect(ok(await b.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus[0].remaining).toBe(0);
    });
  });

  describe('live events and invalidations across instances', () => {
    it('delivers quotaChanged to a subscriber on instance A for verifications made on instance B', async () => {
      const organization = await createOrganization(a, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const watcher = await createKey(a, { organizationId: organization.id, scopes: ['usage:read'], rateLimits: [] });
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      const feed = watchQuotas(connect(a, watcher.secret), organization.id);
      const status = (used: number) => quotaStatus({ organizationId: organization.id }, 'REQUESTS', 'DAY', 100, used, '2026-01-16T00:00:00.000Z');

      expect(await feed.take(1)).toEqual([status(0)]);
      // The subscription's Redis SUBSCRIBE is sent right after the snapshot: give it a moment.
      await sleep(100);

      expect((await verifyOn(b, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      await feed.take(2, 2_000);
      expect(feed.data[1]).toEqual(status(1));

      expect((await verifyOn(b, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(b, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      await feed.until(() => feed.data.at(-1)?.used === 3, 2_000, 'used 3 (coalesced)');
      expect(feed.data.at(-1)).toEqual(status(3));
      expect(feed.errors).toEqual([]);
    });

    it('refuses on instance B, within 1 s, a key revoked on instance A (verifyKey REVOKED and 401 KEY_REVOKED)', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      // B has the key in its verification cache.
      expect((await verifyOn(b, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      const before = await b.gql(VIEWER, {}, { key: key.secret });
      expect(before.status).toBe(200);
      expect(before.body.data.viewer.apiKey.id).toBe(key.id);

      expect(ok(await a.gql(REVOKE, { id: key.id, reason: 'scale-out test' })).revokeApiKey).toEqual({ id: key.id, status: 'REVOKED' });
      const revokedAt = performance.now();

      const verified = await pollUntil(() => verifyOn(b, key.secret), (r) => r.result?.code === 'REVOKED', 3_000, 'B to answer REVOKED');
      expect(verified.value).toEqual({ status: 200, code: undefined, result: { valid: false, code: 'REVOKED' } });
      const called = await pollUntil(() => b.gql(VIEWER, {}, { key: key.secret }), (r) => r.status === 401, 3_000, 'B to refuse the key with 401');
      expect(called.value.code).toBe('KEY_REVOKED');
      expect(called.value.body.data ?? null).toBeNull();
      const refusedAfterMs = performance.now() - revokedAt;
      expect(refusedAfterMs).toBeLessThan(EVERYWHERE_WITHIN_MS);
    });

    it('closes, within 1 s and with 4403, a socket on instance B whose key is revoked on instance A', async () => {
      const organization = await createOrganization(a, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      let closed: { code: number; reason: string; at: number } | null = null;
      const client = connect(b, key.secret, (event) => { closed = { code: event.code, reason: event.reason, at: performance.now() }; });
      const feed = watchQuotas(client, organization.id);
      await feed.take(1);
      expect(closed).toBeNull();
      // B's watch of the organization's key events is subscribed in Redis by now; leave it a moment anyway.
      await sleep(100);

      expect(ok(await a.gql(REVOKE, { id: key.id, reason: 'scale-out test' })).revokeApiKey.status).toBe('REVOKED');
      const revokedAt = performance.now();
      await feed.until(() => closed !== null, 3_000, 'the socket on B to close');

      const { code, reason, at } = closed!;
      expect(code).toBe(4403);
      expect(reason).toMatch(/revoked/);
      expect(at - revokedAt).toBeLessThan(EVERYWHERE_WITHIN_MS);
    });
  });

  /*
   * An instance that leaves a rejected promise unhandled while a service is away would crash
   * a real keyward process (Node's default); jest fails the test (or the describe whose
   * beforeAll created the instance) with that rejection.
   */
  describe('Redis or the database going away (fail-closed instance)', () => {
    let c: Instance;
    let redisProxy: TcpProxy;
    let databaseProxy: TcpProxy;

    beforeAll(async () => {
      const started = await startProxiedInstance('C', { proxyDatabase: true });
      ({ instance: c, redisProxy } = started);
      databaseProxy = started.databaseProxy!;
    }, 60_000);

    it('reports Redis down on /readyz (503) while it is unreachable, and ready again once it returns', async () => {
      expect(await readyz(c)).toEqual({ status: 200, body: { status: 'ready', database: 'up', redis: 'up' } });

      redisProxy.stop();
      const down = await pollUntil(() => readyz(c), (r) => r.status !== 200, DOWN_WITHIN_MS, '/readyz to report Redis down');
      expect(down.value).toEqual({ status: 503, body: { status: 'unavailable', database: 'up', redis: 'down' } });
      // It stays down while Redis is away (ioredis keeps retrying in the background).
      await sleep(500);
      expect(await readyz(c)).toEqual({ status: 503, body: { status: 'unavailable', database: 'up', redis: 'down' } });

      redisProxy.resume();
      const up = await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, '/readyz to report Redis up again');
      expect(up.value).toEqual({ status: 200, body: { status: 'ready', database: 'up', redis: 'up' } });
    });

    it('reports the database down on /readyz (503) while it is unreachable, and ready again (and serving) once it returns; one log line for the outage and one for its end', async () => {
      const organization = await createOrganization(a);
      const logsBefore = c.logs.length;
      const ORGANIZATION = 'query($id: ID!) { organization(id: $id) { id } }';
      expect(await readyz(c)).toEqual({ status: 200, body: { status: 'ready', database: 'up', redis: 'up' } });
      expect(ok(await c.gql(ORGANIZATION, { id: organization.id })).organization).toEqual({ id: organization.id });

      databaseProxy.stop();
      const down = await pollUntil(() => readyz(c), (r) => r.status !== 200, DOWN_WITHIN_MS, '/readyz to report the database down');
      expect(down.value).toEqual({ status: 503, body: { status: 'unavailable', database: 'down', redis: 'up' } });
      await sleep(500);
      expect(await readyz(c)).toEqual({ status: 503, body: { status: 'unavailable', database: 'down', redis: 'up' } });

      databaseProxy.resume();
      const up = await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, '/readyz to report the database up again');
      expect(up.value).toEqual({ status: 200, body: { status: 'ready', database: 'up', redis: 'up' } });
      expect(ok(await c.gql(ORGANIZATION, { id: organization.id })).organization).toEqual({ id: organization.id });
      const lines = c.logs.slice(logsBefore).join('').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string; level: number });
      expect(lines.filter((line) => line.msg.startsWith('database unreachable: '))).toHaveLength(1);
      expect(lines.filter((line) => line.msg === 'database reachable again')).toHaveLength(1);
    });

    it('answers every key-authenticated call 503 UNAVAILABLE with Retry-After while the database is cut under 20 keep-alive clients, and charges only what was answered', async () => {
      // One organization-wide REQUESTS quota counts both the service key's own calls and the
      // verifications of the target key: every VALID answer takes 2 of it.
      const organization = await createOrganization(a, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1_000_000 }] });
      const service = await createKey(a, { organizationId: organization.id, scopes: ['keys:verify'], rateLimits: [{ name: 'per-minute', limit: 1_000_000, windowSeconds: 60 }] });
      const target = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 1_000_000, windowSeconds: 60 }] });
      // Both keys in C's verification cache: during the outage the pipeline reaches the quota step.
      expect(ok(await c.gql(VERIFY, { input: { key: target.secret } }, { key: service.secret })).verifyKey).toEqual({ valid: true, code: 'VALID' });

      /** Quota transactions that may have been committing when the connection was cut (20 clients: each may hold one). */
      const IN_DOUBT = 2;
      const answers: Array<{ status: number; code?: string; retryAfter: string | null; valid?: boolean }> = [];
      const failures: string[] = [];
      let running = true;
      // 20 clients, each on its own keep-alive connection (fetch pools them), calling in a loop.
      const callers = Array.from({ length: 20 }, async () => {
        while (running) {
          try {
            const response = await c.gql(VERIFY, { input: { key: target.secret } }, { key: service.secret });
            answers.push({ status: response.status, code: response.code, retryAfter: response.headers.get('retry-after'), valid: response.body.data?.verifyKey?.valid });
          } catch (error) {
            failures.push(String((error as Error).cause ?? error));
          }
        }
      });
      await sleep(300);
      databaseProxy.stop();
      await sleep(1_000);
      databaseProxy.resume();
      await sleep(300);
      running = false;
      await Promise.all(callers);

      expect(failures).toEqual([]);
      const unavailable = answers.filter((answer) => answer.status === 503);
      expect(unavailable.length).toBeGreaterThan(0);
      for (const answer of unavailable) expect(answer).toEqual({ status: 503, code: 'UNAVAILABLE', retryAfter: '1', valid: undefined });
      const valid = answers.filter((answer) => answer.status === 200);
      for (const answer of valid) expect(answer).toEqual({ status: 200, code: undefined, retryAfter: null, valid: true });
      expect(answers.filter((answer) => answer.status !== 200 && answer.status !== 503)).toEqual([]);

      // Once the database is back and the buffers are written: quota, usage events and
      // requestCount each count exactly the VALID answers (twice: the call and the verification).
      await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'C to reach the database again');
      const counters = async () => {
        await c.app.usageBuffer.flush();
        await c.app.quotas.payOwed();
        const [quota] = await database!.query<{ n: string }>('SELECT SUM(qc.used) AS n FROM quota_counters qc JOIN quotas q ON q.id = qc.quota_id WHERE q.organization_id = ?', [organization.id]);
        const [events] = await database!.query<{ n: string }>('SELECT COUNT(*) AS n FROM usage_events WHERE organization_id = ?', [organization.id]);
        const [keys] = await database!.query<{ n: string }>('SELECT SUM(request_count) AS n FROM api_keys WHERE organization_id = ?', [organization.id]);
        return { quotaUsed: Number(quota.n), usageEvents: Number(events.n), requestCount: Number(keys.n) };
      };
      // +1 answered before the load (2 counts).
      const expected = 2 * (valid.length + 1);
      const settled = await pollUntil(counters, (n) => n.quotaUsed <= expected + IN_DOUBT && n.usageEvents === expected && n.requestCount === expected, RECOVERY_WITHIN_MS, `counters to equal ${expected}`);
      expect(settled.value.usageEvents).toBe(expected);
      expect(settled.value.requestCount).toBe(expected);
      // A quota transaction whose COMMIT reached MariaDB but whose acknowledgement was cut stays
      // charged (the one exception, README "Running in production"); there are at most a few.
      expect(settled.value.quotaUsed - expected).toBeGreaterThanOrEqual(0);
      expect(settled.value.quotaUsed - expected).toBeLessThanOrEqual(IN_DOUBT);
    });

    it('gives back the rate-limit units of a call admitted before its resolver found the database away, and records no use of it', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, preset: 'READ', rateLimits: [{ name: 'per-minute', limit: 3, windowSeconds: 60 }] });
      const QUOTAS_OF = 'query($id: ID) { quotas(organizationId: $id) { used } }';
      expect(ok(await c.gql(VIEWER, {}, { key: key.secret })).viewer.apiKey.id).toBe(key.id);

      databaseProxy.stop();
      // The key is cached and its limit lives in Redis: each call is admitted, then its resolver fails.
      for (let i = 0; i < 4; i++) {
        const response = await c.gql(QUOTAS_OF, { id: organization.id }, { key: key.secret });
        expect({ status: response.status, code: response.code, retryAfter: response.headers.get('retry-after') }).toEqual({ status: 503, code: 'UNAVAILABLE', retryAfter: '1' });
      }
      databaseProxy.resume();
      await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'C to reach the database again');

      // Only the call before the outage counted: 2 of 3 left, one usage event, requestCount 1.
      const status = ok(await c.gql(RATE_LIMIT_STATUS, { id: key.id })).rateLimitStatus;
      expect(status).toEqual([expect.objectContaining({ name: 'per-minute', remaining: 2 })]);
      await c.app.usageBuffer.flush();
      expect(await database!.query('SELECT COUNT(*) AS n FROM usage_events WHERE api_key_id = ?', [key.id])).toEqual([{ n: 1 }]);
      expect(await database!.query('SELECT request_count AS n FROM api_keys WHERE id = ?', [key.id])).toEqual([{ n: 1 }]);
    });

    it('answers a WebSocket connect with close 1013 (try again later) while the database is cut, and a subscription whose snapshot needs it with an UNAVAILABLE error', async () => {
      const organization = await createOrganization(a, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const cached = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      const uncached = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      expect((await verifyOn(c, cached.secret)).result).toEqual({ valid: true, code: 'VALID' });
      const client = connect(c, cached.secret);
      // The socket is open before the outage; a subscription's snapshot reads the database.
      await watchQuotas(client, organization.id).take(1);

      databaseProxy.stop();
      await pollUntil(() => readyz(c), (r) => r.body?.database === 'down', DOWN_WITHIN_MS, 'C to notice the database is down');
      expect(await watchQuotas(client, organization.id).error(5_000)).toMatchObject({ message: 'A backing store (database or Redis) is unreachable; retry shortly', extensions: { code: 'UNAVAILABLE', retryAfterSeconds: 1 } });

      let closed: { code: number; reason: string } | null = null;
      connect(c, uncached.secret, (event) => { closed = { code: event.code, reason: event.reason }; });
      await pollUntil(async () => closed, (value) => value !== null, 5_000, 'the new socket to close');
      expect(closed).toEqual({ code: 1013, reason: 'Unavailable: A backing store (database or Redis) is unreachable; retry shortly' });
      databaseProxy.resume();
      await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'C to reach the database again');
    });

    it('answers verifyKey for a rate-limited key with 503 UNAVAILABLE while Redis is unreachable, and counts again once it returns', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 3, windowSeconds: 60 }] });
      expect((await verifyOn(c, key.secret)).result).toEqual({ valid: true, code: 'VALID' });

      redisProxy.stop();
      await pollUntil(() => readyz(c), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'C to notice Redis is down');
      for (let i = 0; i < 3; i++) {
        const refused = await verifyOn(c, key.secret);
        expect({ status: refused.status, code: refused.code, data: refused.result ?? null }).toEqual({ status: 503, code: 'UNAVAILABLE', data: null });
      }
      // Keys without rate limits do not need Redis: still verified.
      const unlimited = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      expect((await verifyOn(c, unlimited.secret)).result).toEqual({ valid: true, code: 'VALID' });

      redisProxy.resume();
      await pollUntil(() => readyz(c), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'C to reconnect to Redis');
      // Nothing was counted while Redis was away: 2 of the 3 are left.
      expect((await verifyOn(c, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(c, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(c, key.secret)).result).toEqual({ valid: false, code: 'RATE_LIMITED' });
    });
  });

  describe('a revoke while Redis is away', () => {
    /** Lines an instance logged with `message`, parsed. */
    const logLines = (instance: Instance, message: string) => instance.logs.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.msg?.startsWith(message));

    it('is refused on B within 1 s when A and B both lost Redis: their caches keep entries at most 1 s while it is away, and are dropped when it is back', async () => {
      const { instance: a2, redisProxy } = await startProxiedInstance('A2', { proxyDatabase: false });
      const { instance: b2 } = await startProxiedInstance('B2', { proxyDatabase: false, redisProxy });
      const organization = await createOrganization(a2, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 100 }] });
      const key = await createKey(a2, { organizationId: organization.id, rateLimits: [] });
      const other = await createKey(a2, { organizationId: organization.id, rateLimits: [] });
      // B2 has both keys in its verification cache, and a socket open with the first.
      expect((await verifyOn(b2, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(b2, other.secret)).result).toEqual({ valid: true, code: 'VALID' });
      let closed: { code: number; reason: string; at: number } | null = null;
      const feed = watchQuotas(connect(b2, key.secret, (event) => { closed = { code: event.code, reason: event.reason, at: performance.now() }; }), organization.id);
      await feed.take(1);

      redisProxy.stop();
      await pollUntil(() => readyz(b2), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'B2 to notice Redis is down');
      await pollUntil(() => readyz(a2), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'A2 to notice Redis is down');
      expect(ok(await a2.gql(REVOKE, { id: key.id, reason: 'revoked during a Redis outage' })).revokeApiKey.status).toBe('REVOKED');
      const revokedAt = performance.now();
      // No invalidation can reach B2, but it keeps nothing longer than a second meanwhile.
      const whileDown = await pollUntil(() => verifyOn(b2, key.secret), (r) => r.result?.code === 'REVOKED', 3_000, 'B2 to answer REVOKED while Redis is away');
      expect(performance.now() - revokedAt).toBeLessThan(EVERYWHERE_WITHIN_MS + POLL_MS);
      expect(whileDown.value.result).toEqual({ valid: false, code: 'REVOKED' });
      expect((await verifyOn(b2, other.secret)).result).toEqual({ valid: true, code: 'VALID' });

      redisProxy.resume();
      const back = performance.now();
      const refused = await pollUntil(() => b2.gql(VIEWER, {}, { key: key.secret }), (r) => r.status === 401, 3_000, 'B2 to refuse the key with 401 after Redis is back');
      expect(refused.value.code).toBe('KEY_REVOKED');
      expect(performance.now() - back).toBeLessThan(EVERYWHERE_WITHIN_MS);
      // The socket B2 missed the revoke for is closed once B2 is back on Redis.
      await feed.until(() => closed !== null, 3_000, 'the socket on B2 to close');
      expect(closed!.code).toBe(4403);
      expect(closed!.at - back).toBeLessThan(EVERYWHERE_WITHIN_MS);
      await pollUntil(() => readyz(b2), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'B2 to reconnect to Redis');
      await pollUntil(() => readyz(a2), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'A2 to reconnect to Redis');

      // Invalidations travel again: a key revoked now is refused on B2 within a second.
      expect((await verifyOn(b2, other.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect(ok(await a2.gql(REVOKE, { id: other.id, reason: 'after the outage' })).revokeApiKey.status).toBe('REVOKED');
      const after = await pollUntil(() => verifyOn(b2, other.secret), (r) => r.result?.code === 'REVOKED', 3_000, 'B2 to answer REVOKED after the outage');
      expect(after.elapsedMs).toBeLessThan(EVERYWHERE_WITHIN_MS);

      // Each instance logged the outage in one line with the error's text, and its end in one more.
      for (const instance of [a2, b2]) {
        const down = logLines(instance, 'redis unreachable');
        expect(down).toHaveLength(1);
        expect(down[0].error).toMatch(/\w/);
        expect(logLines(instance, 'redis reachable again')).toHaveLength(1);
        expect(instance.logs.join('')).not.toContain('"err":{}');
      }
    });

    it('is refused on B within 1 s of Redis coming back to A, when only A was cut off and revoked it meanwhile', async () => {
      const { instance: a3, redisProxy } = await startProxiedInstance('A3', { proxyDatabase: false });
      const organization = await createOrganization(a3);
      const key = await createKey(a3, { organizationId: organization.id, rateLimits: [] });
      // B (never cut off) has the key in its cache.
      expect((await verifyOn(b, key.secret)).result).toEqual({ valid: true, code: 'VALID' });

      redisProxy.stop();
      await pollUntil(() => readyz(a3), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'A3 to notice Redis is down');
      expect(ok(await a3.gql(REVOKE, { id: key.id, reason: 'revoked while cut off from Redis' })).revokeApiKey.status).toBe('REVOKED');
      // Give A3's failed PUBLISH time to give up: B heard nothing.
      await sleep(1_500);
      redisProxy.resume();
      const back = performance.now();
      const refused = await pollUntil(() => verifyOn(b, key.secret), (r) => r.result?.code === 'REVOKED', 3_000, 'B to answer REVOKED once A3 is back on Redis');
      expect(refused.value.result).toEqual({ valid: false, code: 'REVOKED' });
      expect(performance.now() - back).toBeLessThan(EVERYWHERE_WITHIN_MS);
    });
  });

  describe('Redis going away with RATE_LIMIT_FAIL_OPEN=true', () => {
    let d: Instance;
    let redisProxy: TcpProxy;

    beforeAll(async () => {
      ({ instance: d, redisProxy } = await startProxiedInstance('D', { proxyDatabase: false, env: { RATE_LIMIT_FAIL_OPEN: 'true' } }));
    }, 60_000);

    it('answers verifyKey for a rate-limited key with VALID while Redis is unreachable, limited by the in-memory fallback limiter', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [{ name: 'per-minute', limit: 3, windowSeconds: 60 }] });
      expect((await verifyOn(d, key.secret)).result).toEqual({ valid: true, code: 'VALID' });

      redisProxy.stop();
      await pollUntil(() => readyz(d), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'D to notice Redis is down');
      const whileDown = [];
      for (let i = 0; i < 4; i++) whileDown.push(await verifyOn(d, key.secret));
      expect(whileDown.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      // The fallback limiter has its own (empty) windows and still enforces 3 per minute.
      expect(whileDown.map((r) => r.result?.code)).toEqual(['VALID', 'VALID', 'VALID', 'RATE_LIMITED']);

      // An outage of a few seconds: anything the instance queued for Redis meanwhile gives up.
      await sleep(2_500);
      expect(await readyz(d)).toEqual({ status: 503, body: { status: 'unavailable', database: 'up', redis: 'down' } });
      redisProxy.resume();
      await pollUntil(() => readyz(d), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'D to reconnect to Redis');
      // Back on the shared counters: 1 was taken before Redis went away, 2 are left (A shares them).
      expect((await verifyOn(d, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(a, key.secret)).result).toEqual({ valid: true, code: 'VALID' });
      expect((await verifyOn(d, key.secret)).result).toEqual({ valid: false, code: 'RATE_LIMITED' });
    });
  });

  describe('failed authentications while Redis is down', () => {
    let e: Instance;
    let redisProxy: TcpProxy;

    beforeAll(async () => {
      // Trusts X-Forwarded-For, so this test's failures come from addresses of its own.
      ({ instance: e, redisProxy } = await startProxiedInstance('E', { proxyDatabase: false, env: { TRUST_PROXY: 'true' } }));
    }, 60_000);

    it('keeps limiting failed authentications per address from memory, and goes back to the shared count once Redis returns', async () => {
      const organization = await createOrganization(a);
      const key = await createKey(a, { organizationId: organization.id, rateLimits: [] });
      const from = (ip: string, secret: string) => e.gql(VIEWER, {}, { key: secret, headers: { 'x-forwarded-for': ip } });
      const unknownKey = generateSecret('LIVE');

      redisProxy.stop();
      await pollUntil(() => readyz(e), (r) => r.body?.redis === 'down', DOWN_WITHIN_MS, 'E to notice Redis is down');
      for (let i = 0; i < 20; i++) {
        const failed = await from('198.51.100.7', unknownKey);
        expect({ i, status: failed.status, code: failed.code }).toEqual({ i, status: 401, code: 'INVALID_API_KEY' });
      }
      const blocked = await from('198.51.100.7', key.secret);
      expect({ status: blocked.status, code: blocked.code, retryAfter: blocked.headers.get('retry-after') }).toEqual({ status: 429, code: 'RATE_LIMITED', retryAfter: '60' });
      expect(blocked.body.errors![0].message).toMatch(/Too many failed authentications/);
      // Another address, and a key without rate limits, are served as usual while Redis is away.
      expect((await from('198.51.100.8', key.secret)).status).toBe(200);

      redisProxy.resume();
      await pollUntil(() => readyz(e), (r) => r.status === 200, RECOVERY_WITHIN_MS, 'E to reconnect to Redis');
      // The shared count never saw the outage's failures.
      expect((await from('198.51.100.7', key.secret)).status).toBe(200);
    });
  });
});
