import { startTestServer, TestServer, GraphQLResponse } from './helpers/server';
import { createKey, createOrganization } from './helpers/fixtures';
import { expectRefused, ok } from './helpers/expect';

/**
 * MAX_CONCURRENT_COST_PER_KEY: each GraphQL operation of a key holds its cost (the fields it
 * resolves, graphql-limits.ts) while it executes; one that would take the key's operations on an
 * instance past the budget gets 429 RATE_LIMITED (saying why, with Retry-After) and consumes
 * nothing. The cost is given back however the operation ended. Other keys are not affected.
 *
 * To hold operations "executing", the usage service of the running app waits at a gate the
 * test opens: the real resolver, service and database still answer every call.
 */

const BUDGET = 10;
/** Two of these (cost 4 each: usage + 3 fields) fit in the budget at once. */
const USAGE = 'query($range: UsageRange) { usage(range: $range) { requests errors tokens } }';
const HELD = 2;
/** Cost 3: no longer fits beside two held USAGE operations (8 + 3 > 10). */
const VIEWER = '{ viewer { apiKey { id } } }';
/** Cost 2: still fits (8 + 2 = 10). */
const SCOPES = '{ viewer { scopes } }';

describe('operations executing at once per key', () => {
  let server: TestServer;
  /** Calls to usage(...) that reached the service and wait for the gate. */
  let waiting = 0;
  let openGate: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_CONCURRENT_COST_PER_KEY: String(BUDGET) } });
    const usage = server.app.usage;
    const summary = usage.summary.bind(usage);
    usage.summary = async (...args) => {
      waiting += 1;
      await gate;
      waiting -= 1;
      return summary(...args);
    };
  });
  afterAll(async () => {
    openGate();
    await server.close();
  });

  function closeGate(): void {
    gate = new Promise((resolve) => { openGate = resolve; });
  }

  async function untilWaiting(count: number): Promise<void> {
    for (let i = 0; i < 400 && waiting < count; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(waiting).toBe(count);
  }

  async function meteredKey() {
    const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 1000 }] });
    const key = await createKey(server, { organizationId: organization.id, preset: 'READ', rateLimits: [{ name: 'per-minute', limit: 100, windowSeconds: 60 }] });
    const used = async () => ({
      quota: ok(await server.gql('query($id: ID) { quotas(organizationId: $id) { used } }', { id: organization.id })).quotas[0].used,
      window: ok(await server.gql('query($id: ID!) { rateLimitStatus(apiKeyId: $id) { remaining } }', { id: key.id })).rateLimitStatus[0].remaining,
    });
    return { key, used };
  }

  it('refuses an operation that would take the key past its budget with 429 RATE_LIMITED and Retry-After, taking nothing, while a cheaper one and other keys are served', async () => {
    const { key, used } = await meteredKey();
    const other = await createKey(server, { organizationId: key.organizationId, preset: 'READ', rateLimits: [] });
    closeGate();
    const running = Array.from({ length: HELD }, () => server.gql(USAGE, {}, { key: key.secret }));
    await untilWaiting(HELD);
    const before = await used();

    const refused = await server.gql(VIEWER, {}, { key: key.secret });
    expectRefused(refused, 'RATE_LIMITED');
    expect(refused.body.errors![0].message).toMatch(new RegExp(`would cost more than ${BUDGET} together with this one \\(cost 3; MAX_CONCURRENT_COST_PER_KEY\\)`));
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await used()).toEqual(before);
    // What still fits runs (and counts).
    expect(ok(await server.gql(SCOPES, {}, { key: key.secret })).viewer.scopes).toEqual(expect.arrayContaining(['keys:read']));
    expect(await used()).toEqual({ quota: before.quota + 1, window: before.window - 1 });
    // Another key of the same organization is not held up.
    expect(ok(await server.gql(VIEWER, {}, { key: other.secret })).viewer.apiKey.id).toBe(other.id);

    openGate();
    for (const response of await Promise.all(running)) expect(ok(response).usage.requests).toBeGreaterThanOrEqual(0);
    expect(ok(await server.gql(VIEWER, {}, { key: key.secret })).viewer.apiKey.id).toBe(key.id);
  });

  it('runs an operation costing more than the whole budget when the key has nothing else executing, and nothing beside it', async () => {
    const { key } = await meteredKey();
    // Cost 14: more than the budget of 10 on its own.
    const BIG = '{ viewer { apiKey { id name hint status scopes } organization { id name slug status maxKeys } scopes } }';
    expect(ok(await server.gql(BIG, {}, { key: key.secret })).viewer.apiKey.id).toBe(key.id);
    closeGate();
    const running = server.gql(USAGE, {}, { key: key.secret });
    await untilWaiting(1);
    expectRefused(await server.gql(BIG, {}, { key: key.secret }), 'RATE_LIMITED');
    openGate();
    expect((await running).status).toBe(200);
  });

  /**
   * Holds two USAGE operations of `secret` at the gate (8 of 10), then lets them finish: fails if
   * 3 or more were not given back (every operation these tests end early costs 3 or 4).
   */
  async function expectBudgetFree(secret: string): Promise<void> {
    closeGate();
    const running = Array.from({ length: HELD }, () => server.gql(USAGE, {}, { key: secret }));
    await untilWaiting(HELD);
    openGate();
    const responses = await Promise.all(running);
    expect(responses.map((response) => response.status)).toEqual(Array(HELD).fill(200));
  }

  it('gives the cost back when the operation fails with an error of its own (400 BAD_USER_INPUT)', async () => {
    const { key } = await meteredKey();
    const failing = await server.gql(USAGE, { range: { from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' } }, { key: key.secret });
    expectRefused(failing, 'BAD_USER_INPUT');
    await expectBudgetFree(key.secret);
  });

  it('gives the cost back when the pipeline refuses the operation (a rate limit used up)', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id, preset: 'READ', rateLimits: [{ name: 'tiny', limit: 1, windowSeconds: 60 }] });
    ok(await server.gql(VIEWER, {}, { key: key.secret }));
    for (let i = 0; i < 3; i++) expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');
    ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { rateLimits: [] }) { id } }', { id: key.id }));
    await expectBudgetFree(key.secret);
  });

  it('keeps the cost of a client that hung up until its operation has ended, then gives it back', async () => {
    const { key } = await meteredKey();
    closeGate();
    const aborts = Array.from({ length: HELD }, () => new AbortController());
    const hungUp = aborts.map((abort) => fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
      body: JSON.stringify({ query: USAGE }),
      signal: abort.signal,
    }).catch((error: Error) => error.name));
    await untilWaiting(HELD);
    for (const abort of aborts) abort.abort();
    expect(await Promise.all(hungUp)).toEqual(Array(HELD).fill('AbortError'));
    // The two operations still run (at the gate): they still hold their cost.
    expectRefused(await server.gql(VIEWER, {}, { key: key.secret }), 'RATE_LIMITED');

    openGate();
    for (let i = 0; i < 400 && waiting > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // Let the ended operations send their (unread) responses.
    let response: GraphQLResponse | null = null;
    for (let i = 0; i < 100; i++) {
      response = await server.gql(VIEWER, {}, { key: key.secret });
      if (response.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(response!.status).toBe(200);
    await expectBudgetFree(key.secret);
  });
});
