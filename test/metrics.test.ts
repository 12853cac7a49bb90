import type { Client } from 'graphql-ws';
import { register as globalRegistry } from 'prom-client';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createTenant } from './helpers/fixtures';
import { liveClient } from './helpers/ws';

/**
 * GET /metrics: Prometheus text from a registry of the server's own (never prom-client's
 * global one), unauthenticated like /healthz. Counters are compared before and after the calls
 * a test makes; nothing else runs on the server between two scrapes of one test.
 */

const VIEWER = '{ viewer { apiKey { id } } }';
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "metrics test") { status } }';
const API_KEY_CHANGED = 'subscription { apiKeyChanged { type apiKey { id } } }';
const WALLET_CHALLENGE = '{ walletChallenge(address: "0x00000000000000000000000000000000000000aa") { token } }';

const KEYWARD_METRICS: Array<[string, string]> = [
  ['keyward_verifications_total', 'counter'],
  ['keyward_verification_duration_seconds', 'histogram'],
  ['keyward_http_request_duration_seconds', 'histogram'],
  ['keyward_rate_limit_refusals_total', 'counter'],
  ['keyward_active_subscriptions', 'gauge'],
  ['keyward_ws_connections', 'gauge'],
  ['keyward_usage_buffer_depth', 'gauge'],
  ['keyward_db_pool_connections', 'gauge'],
  ['keyward_webhook_attempts_total', 'counter'],
  ['keyward_webhook_deliveries_failed_total', 'counter'],
  ['keyward_webhook_attempt_duration_seconds', 'histogram'],
];

/** One scrape: the series (name plus labels, exactly as printed) and their values. */
class Scrape {
  constructor(readonly text: string) {}

  /** The value of `series`, e.g. `keyward_verifications_total{code="VALID"}`; fails if it is not there. */
  value(series: string): number {
    const line = this.text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
    if (!line) throw new Error(`no series ${series} in /metrics:\n${this.text.split('\n').filter((l) => l.startsWith('keyward_')).join('\n')}`);
    return Number(line.slice(series.length + 1));
  }
}

describe('/metrics', () => {
  let server: TestServer;
  let origin: string;
  beforeAll(async () => {
    server = await startTestServer();
    origin = new URL(server.url).origin;
  });
  afterAll(async () => { await server.close(); });

  async function scrape(target: TestServer = server): Promise<Scrape> {
    const response = await fetch(`${new URL(target.url).origin}/metrics`);
    expect(response.status).toBe(200);
    return new Scrape(await response.text());
  }

  /** Scrapes until `predicate` holds (gauges that follow a socket, the end of an HTTP response). */
  async function scrapeUntil(predicate: (scrape: Scrape) => boolean, what: string, timeoutMs = 3_000): Promise<Scrape> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const current = await scrape();
      if (predicate(current)) return current;
      if (performance.now() > deadline) throw new Error(`/metrics never showed ${what}:\n${current.text.split('\n').filter((l) => l.startsWith('keyward_')).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  const verifications = (scrape: Scrape, code: string) => scrape.value(`keyward_verifications_total{code="${code}"}`);

  it('answers without a key, as Prometheus text with every keyward metric and the process metrics', async () => {
    const response = await fetch(`${origin}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    for (const [name, type] of KEYWARD_METRICS) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    }
    for (const [name, type] of [['process_cpu_user_seconds_total', 'counter'], ['process_resident_memory_bytes', 'gauge'], ['nodejs_heap_size_used_bytes', 'gauge'], ['nodejs_eventloop_lag_seconds', 'gauge']]) {
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    }
    // Every outcome code has its series from the start (0 until it happens).
    const scrape = new Scrape(text);
    for (const code of ['VALID', 'NOT_FOUND', 'DISABLED', 'REVOKED', 'EXPIRED', 'ORGANIZATION_SUSPENDED', 'FORBIDDEN_IP', 'INSUFFICIENT_SCOPE', 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'NO_ACTIVE_SESSION', 'ERROR']) {
      expect(verifications(scrape, code)).toBeGreaterThanOrEqual(0);
    }
  });

  it('answers even when the request carries a key that does not exist', async () => {
    const response = await fetch(`${origin}/metrics`, { headers: { authorization: 'Bearer kw_live_0123456789abcdefghijABCDEFGHIJ012345' } });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# TYPE keyward_verifications_total counter');
  });

  it('counts verifications by code: the caller and the verified key VALID, a revoked key REVOKED, an unknown key NOT_FOUND', async () => {
    const { key } = await createTenant(server);
    const revoked = await createKey(server, { organizationId: key.organizationId });
    expect((await server.gql(REVOKE, { id: revoked.id })).status).toBe(200);

    const before = await scrape();
    // The admin key is verified for each call (VALID), then the key in the input.
    const valid = await server.gql(VERIFY, { input: { key: key.secret } });
    expect(valid.body.data.verifyKey).toEqual({ valid: true, code: 'VALID' });
    const refused = await server.gql(VERIFY, { input: { key: revoked.secret } });
    expect(refused.body.data.verifyKey).toEqual({ valid: false, code: 'REVOKED' });
    // A call made with a key that was never issued: refused by the pipeline before executing.
    const unknown = await server.gql(VIEWER, {}, { key: 'kw_live_0123456789abcdefghijABCDEFGHIJ012345' });
    expect(unknown.status).toBe(401);
    expect(unknown.code).toBe('INVALID_API_KEY');
    const after = await scrape();

    expect(verifications(after, 'VALID') - verifications(before, 'VALID')).toBe(3);
    expect(verifications(after, 'REVOKED') - verifications(before, 'REVOKED')).toBe(1);
    expect(verifications(after, 'NOT_FOUND') - verifications(before, 'NOT_FOUND')).toBe(1);
    expect(verifications(after, 'RATE_LIMITED') - verifications(before, 'RATE_LIMITED')).toBe(0);
    expect(after.value('keyward_verification_duration_seconds_count') - before.value('keyward_verification_duration_seconds_count')).toBe(5);
    expect(after.value('keyward_verification_duration_seconds_sum')).toBeGreaterThan(before.value('keyward_verification_duration_seconds_sum'));
  });

  it('counts a call refused by its key\'s rate limit as RATE_LIMITED and in keyward_rate_limit_refusals_total{limiter="key"}', async () => {
    const { organizationId } = await createTenant(server);
    const key = await createKey(server, { organizationId, preset: 'ADMIN', rateLimits: [{ name: 'burst', limit: 1, windowSeconds: 60 }] });

    const before = await scrape();
    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
    const limited = await server.gql(VIEWER, {}, { key: key.secret });
    expect(limited.status).toBe(429);
    expect(limited.code).toBe('RATE_LIMITED');
    const after = await scrape();

    expect(verifications(after, 'VALID') - verifications(before, 'VALID')).toBe(1);
    expect(verifications(after, 'RATE_LIMITED') - verifications(before, 'RATE_LIMITED')).toBe(1);
    expect(after.value('keyward_rate_limit_refusals_total{limiter="key"}') - before.value('keyward_rate_limit_refusals_total{limiter="key"}')).toBe(1);
    expect(after.value('keyward_rate_limit_refusals_total{limiter="public"}') - before.value('keyward_rate_limit_refusals_total{limiter="public"}')).toBe(0);
  });

  it('counts an anonymous call refused by the per-IP limit of public fields in keyward_rate_limit_refusals_total{limiter="public"}', async () => {
    const before = await scrape();
    let refusal = null;
    for (let call = 0; call < 40 && !refusal; call++) {
      const response = await server.gql(WALLET_CHALLENGE, {}, { key: null });
      if (response.status !== 200) refusal = response;
    }
    expect(refusal?.status).toBe(429);
    expect(refusal?.code).toBe('RATE_LIMITED');
    const after = await scrapeUntil((s) => s.value('keyward_rate_limit_refusals_total{limiter="public"}') > before.value('keyward_rate_limit_refusals_total{limiter="public"}'), 'the public refusal');

    expect(after.value('keyward_rate_limit_refusals_total{limiter="public"}') - before.value('keyward_rate_limit_refusals_total{limiter="public"}')).toBe(1);
    expect(after.value('keyward_rate_limit_refusals_total{limiter="key"}') - before.value('keyward_rate_limit_refusals_total{limiter="key"}')).toBe(0);
    // Anonymous calls never reach the key pipeline.
    expect(verifications(after, 'RATE_LIMITED') - verifications(before, 'RATE_LIMITED')).toBe(0);
  });

  it('counts a call refused because its address failed to authenticate too often as limiter="auth_failures"', async () => {
    // A server of its own: the blocked address (127.0.0.1) would refuse every later test here.
    const other = await startTestServer();
    try {
      const before = await scrape(other);
      let blocked = null;
      for (let call = 0; call < 40 && !blocked; call++) {
        const response = await other.gql(VIEWER, {}, { key: 'kw_live_0123456789abcdefghijABCDEFGHIJ012345' });
        if (response.status !== 401) blocked = response;
      }
      expect(blocked?.status).toBe(429);
      expect(blocked?.code).toBe('RATE_LIMITED');
      const limiter = (s: Scrape, name: string) => s.value(`keyward_rate_limit_refusals_total{limiter="${name}"}`);
      const deadline = performance.now() + 3_000;
      let after = await scrape(other);
      while (limiter(after, 'auth_failures') === limiter(before, 'auth_failures') && performance.now() < deadline) after = await scrape(other);
      expect(limiter(after, 'auth_failures') - limiter(before, 'auth_failures')).toBe(1);
      expect(limiter(after, 'public') - limiter(before, 'public')).toBe(0);
      expect(limiter(after, 'key') - limiter(before, 'key')).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('times each GraphQL request by operation type: query, mutation, and none for a body that does not parse', async () => {
    const { key } = await createTenant(server);
    const count = (scrape: Scrape, type: string) => scrape.value(`keyward_http_request_duration_seconds_count{operation_type="${type}"}`);
    const before = await scrape();

    expect((await server.gql(VIEWER, {}, { key: key.secret })).status).toBe(200);
    expect((await server.gql(VERIFY, { input: { key: key.secret } })).status).toBe(200);
    const broken = await server.gql('{ viewer { ', {}, { key: key.secret });
    expect(broken.status).toBe(400);
    expect(broken.code).toBe('GRAPHQL_PARSE_FAILED');

    const after = await scrapeUntil((s) => count(s, 'none') > count(before, 'none'), 'the unparsed request');
    expect(count(after, 'query') - count(before, 'query')).toBe(1);
    expect(count(after, 'mutation') - count(before, 'mutation')).toBe(1);
    expect(count(after, 'none') - count(before, 'none')).toBe(1);
    expect(count(after, 'subscription') - count(before, 'subscription')).toBe(0);
    expect(after.value('keyward_http_request_duration_seconds_sum{operation_type="query"}')).toBeGreaterThan(before.value('keyward_http_request_duration_seconds_sum{operation_type="query"}'));
    // /metrics itself is not a GraphQL request.
    expect(after.value('keyward_http_request_duration_seconds_bucket{le="+Inf",operation_type="query"}')).toBe(count(after, 'query'));
  });

  it('shows an open subscription and its WebSocket connection in the gauges, and lowers them when they end', async () => {
    const { key } = await createTenant(server);
    const before = await scrape();
    const subscriptions = (scrape: Scrape) => scrape.value('keyward_active_subscriptions');
    const connections = (scrape: Scrape) => scrape.value('keyward_ws_connections');

    const client: Client = liveClient(server.wsUrl, key.secret, { lazy: true });
    try {
      const errors: unknown[] = [];
      const unsubscribe = client.subscribe({ query: API_KEY_CHANGED }, { next: () => {}, error: (error) => errors.push(error), complete: () => {} });
      const open = await scrapeUntil((s) => subscriptions(s) === subscriptions(before) + 1, 'the subscription');
      expect(connections(open)).toBe(connections(before) + 1);
      expect(errors).toEqual([]);

      unsubscribe();
      const completed = await scrapeUntil((s) => subscriptions(s) === subscriptions(before), 'the subscription ending');
      expect(connections(completed)).toBe(connections(before) + 1);
    } finally {
      await client.dispose();
    }
    const closed = await scrapeUntil((s) => connections(s) === connections(before), 'the connection closing');
    expect(subscriptions(closed)).toBe(subscriptions(before));
  });

  it('counts a subscription that ends with its connection', async () => {
    const { key } = await createTenant(server);
    const before = await scrape();
    const client: Client = liveClient(server.wsUrl, key.secret, { lazy: true });
    try {
      client.subscribe({ query: API_KEY_CHANGED }, { next: () => {}, error: () => {}, complete: () => {} });
      client.subscribe({ query: API_KEY_CHANGED }, { next: () => {}, error: () => {}, complete: () => {} });
      await scrapeUntil((s) => s.value('keyward_active_subscriptions') === before.value('keyward_active_subscriptions') + 2, 'two subscriptions');
    } finally {
      await client.dispose();
    }
    const closed = await scrapeUntil((s) => s.value('keyward_ws_connections') === before.value('keyward_ws_connections'), 'the connection closing');
    expect(closed.value('keyward_active_subscriptions')).toBe(before.value('keyward_active_subscriptions'));
  });

  it('reports the usage events waiting in the buffer as keyward_usage_buffer_depth', async () => {
    const { key } = await createTenant(server);
    const buffer = server.app.usageBuffer;
    // Hold the periodic flush so the depth stays put between the calls and the scrape.
    await buffer.stop();
    try {
      expect((await scrape()).value('keyward_usage_buffer_depth')).toBe(0);
      for (let call = 0; call < 3; call++) expect((await server.gql(VERIFY, { input: { key: key.secret } })).status).toBe(200);
      const waiting = buffer.depth;
      expect(waiting).toBeGreaterThanOrEqual(3);
      expect((await scrape()).value('keyward_usage_buffer_depth')).toBe(waiting);
      await buffer.flush();
      expect((await scrape()).value('keyward_usage_buffer_depth')).toBe(0);
    } finally {
      buffer.start();
    }
  });

  it('reports the database pool: one connection on SQLite, the mysql2 pool by state on MySQL/MariaDB', async () => {
    const scrape_ = await scrape();
    const state = (name: string) => scrape_.value(`keyward_db_pool_connections{state="${name}"}`);
    if (server.app.config.database.kind === 'sqlite') {
      expect(state('max')).toBe(1);
      expect(state('open')).toBe(1);
      expect(scrape_.text).not.toContain('keyward_db_pool_connections{state="in_use"}');
    } else {
      expect(state('max')).toBe(10);
      expect(state('open')).toBeGreaterThanOrEqual(1);
      expect(state('open')).toBeLessThanOrEqual(10);
      expect(state('in_use') + state('idle')).toBe(state('open'));
      expect(state('waiting')).toBe(0);
    }
  });

  it('keeps each server\'s numbers apart and leaves prom-client\'s global registry empty of keyward metrics', async () => {
    const other = await startTestServer();
    try {
      const otherBefore = await scrape(other);
      const { key } = await createTenant(server);
      expect((await server.gql(VERIFY, { input: { key: key.secret } })).status).toBe(200);
      const otherAfter = await scrape(other);
      expect(verifications(otherAfter, 'VALID')).toBe(verifications(otherBefore, 'VALID'));
      expect(verifications(await scrape(), 'VALID')).toBeGreaterThanOrEqual(2);
    } finally {
      await other.close();
    }
    expect(await globalRegistry.metrics()).not.toContain('keyward_');
  });
});
