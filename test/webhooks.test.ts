import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import { expectRefused, ok, SECRET_PATTERN } from './helpers/expect';
import { verifySignature, WebhookReceiver } from './helpers/webhook-receiver';

/**
 * Signed webhooks (issue 15) on a real server: events written with the change that caused
 * them, delivered by the dispatcher (driven here with `tick()` and the manual clock) to
 * receivers on 127.0.0.1, signed per Standard Webhooks and checked with its own verifier.
 * WEBHOOK_RETRY_SCHEDULE=1s,1s,1s: an attempt and three retries.
 */
const ENDPOINT = 'id organizationId url description eventTypes quotaThresholds expiryNoticeDays enabled createdAt';
const DELIVERY = 'id endpointId eventId eventType status attempts lastStatusCode lastError nextAttemptAt deliveredAt payload createdAt';
const CREATE = `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { ${ENDPOINT} } } }`;
const UPDATE = `mutation($id: ID!, $input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(id: $id, input: $input) { ${ENDPOINT} } }`;
const DELETE = 'mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }';
const ROTATE_SECRET = `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { ${ENDPOINT} } } }`;
const SEND_TEST = `mutation($id: ID!) { sendTestWebhook(id: $id) { ${DELIVERY} } }`;
const RETRY = `mutation($id: ID!) { retryWebhookDelivery(id: $id) { ${DELIVERY} } }`;
const ENDPOINTS = `query($organizationId: ID) { webhookEndpoints(organizationId: $organizationId) { ${ENDPOINT} } }`;
const DELIVERIES = `query($endpointId: ID!, $status: WebhookDeliveryStatus) { webhookDeliveries(endpointId: $endpointId, status: $status) { nodes { ${DELIVERY} } totalCount } }`;
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked in a log") { id } }';
const ROTATE_KEY = 'mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 3600) { previousKeyExpiresAt apiKey { id } } }';
const AUDIT = 'query($organizationId: ID) { auditLog(organizationId: $organizationId) { nodes { action actorKeyId targetId metadata } } }';
const ALL_EVENTS = ['QUOTA_THRESHOLD', 'QUOTA_EXHAUSTED', 'RATE_LIMIT_EXHAUSTED', 'SESSION_EXHAUSTED', 'KEY_EXPIRING', 'KEY_REVOKED', 'KEY_ROTATED', 'TEST'];
const DAY_MS = 86_400_000;

interface Endpoint {
  id: string;
  secret: string;
}

describe('webhooks', () => {
  let server: TestServer;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    server = await startTestServer({ env: { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s' } });
  });
  afterEach(async () => {
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });
  afterAll(async () => {
    await server.close();
    // No signing secret ever reached the log.
    expect(server.logs.join('')).not.toMatch(/whsec_[0-9A-Za-z+/]{8,}/);
  });

  async function receiver(): Promise<WebhookReceiver> {
    const started = await WebhookReceiver.start();
    receivers.push(started);
    return started;
  }

  async function createEndpoint(target: { organizationId: string; url: string }, eventTypes: string[], input: Record<string, unknown> = {}, key?: string): Promise<Endpoint> {
    const created = ok(await server.gql(CREATE, { input: { ...target, eventTypes, ...input } }, { key })).createWebhookEndpoint;
    return { id: created.endpoint.id, secret: created.secret };
  }

  /** One dispatcher pass, started now, after any pass already running. */
  const deliver = () => server.app.webhookDispatcher.tick();

  async function deliveries(endpointId: string, status?: string): Promise<{ nodes: any[]; totalCount: number }> {
    return ok(await server.gql(DELIVERIES, { endpointId, status })).webhookDeliveries;
  }

  async function verifyKey(secret: string): Promise<{ valid: boolean; code: string }> {
    return ok(await server.gql(VERIFY, { input: { key: secret } })).verifyKey;
  }

  async function metric(series: string): Promise<number> {
    const text = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
    if (!line) throw new Error(`no series ${series} in /metrics`);
    return Number(line.slice(series.length + 1));
  }

  it('fires quota.threshold at 50 % and at 100 % of a REQUESTS quota of 10 and quota.exhausted at the 11th request, each once in the period (a raised limit has them anew), signed for the standardwebhooks verifier', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['QUOTA_THRESHOLD', 'QUOTA_EXHAUSTED'], { quotaThresholds: [50, 100] });
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE', rateLimits: [], quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 10 }] });

    for (let call = 1; call <= 5; call += 1) expect(await verifyKey(key.secret)).toEqual({ valid: true, code: 'VALID' });
    await deliver();
    const [fifty] = await hooks.waitFor(1);
    expect(verifySignature(endpoint.secret, fifty)).toEqual(fifty.json);
    expect(fifty.json).toEqual({
      type: 'quota.threshold',
      timestamp: server.clock.now().toISOString(),
      data: {
        organizationId: tenant.organizationId, apiKeyId: key.id, threshold: 50,
        quota: expect.objectContaining({ apiKeyId: key.id, meter: 'REQUESTS', period: 'MONTH', limit: 10, used: 5, remaining: 5, percentUsed: 50 }),
      },
    });
    expect(fifty.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(fifty.headers['content-type']).toBe('application/json');

    for (let call = 6; call <= 10; call += 1) expect((await verifyKey(key.secret)).valid).toBe(true);
    await deliver();
    const hundred = (await hooks.waitFor(2))[1];
    expect(verifySignature(endpoint.secret, hundred)).toEqual(hundred.json);
    expect(hundred.json.type).toBe('quota.threshold');
    expect(hundred.json.data).toMatchObject({ threshold: 100, quota: { used: 10, remaining: 0, percentUsed: 100 } });

    expect(await verifyKey(key.secret)).toEqual({ valid: false, code: 'QUOTA_EXCEEDED' });
    await deliver();
    const exhausted = (await hooks.waitFor(3))[2];
    expect(verifySignature(endpoint.secret, exhausted)).toEqual(exhausted.json);
    expect(exhausted.json).toMatchObject({ type: 'quota.exhausted', data: { organizationId: tenant.organizationId, apiKeyId: key.id, quota: { used: 10, limit: 10 } } });

    // Later refusals in the same period fire nothing more; neither does anything else.
    for (let call = 12; call <= 14; call += 1) expect((await verifyKey(key.secret)).code).toBe('QUOTA_EXCEEDED');
    await deliver();
    expect(hooks.received).toHaveLength(3);
    const log = await deliveries(endpoint.id);
    expect(log.totalCount).toBe(3);
    expect(log.nodes.map((delivery) => [delivery.eventType, delivery.status, delivery.attempts])).toEqual([
      ['QUOTA_EXHAUSTED', 'SUCCEEDED', 1], ['QUOTA_THRESHOLD', 'SUCCEEDED', 1], ['QUOTA_THRESHOLD', 'SUCCEEDED', 1],
    ]);
    // The delivery log shows the very body that was signed, and the webhook-id it went with.
    expect(log.nodes[2].payload).toEqual(fifty.json);
    expect(log.nodes[2].eventId).toBe(fifty.headers['webhook-id']);

    // A raised limit (the quota keeps what the period used) has its thresholds and exhaustion anew.
    ok(await server.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { quotas: [{ meter: REQUESTS, period: MONTH, limit: 12 }] }) { id } }', { id: key.id }));
    for (let call = 1; call <= 3; call += 1) await verifyKey(key.secret);
    await deliver();
    await hooks.waitFor(5);
    expect(hooks.received.slice(3).map((request) => [request.json.type, request.json.data.threshold ?? null, request.json.data.quota.limit])).toEqual([
      ['quota.threshold', 100, 12], ['quota.exhausted', null, 12],
    ]);
  });

  it('fires the thresholds of TOKENS quotas moved by recordUsage, and session.exhausted when it uses up the session', async () => {
    const hooks = await receiver();
    const organization = await createOrganization(server, { quotas: [{ meter: 'TOKENS', period: 'DAY', limit: 1000 }] });
    const key = await createKey(server, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [] });
    await createEndpoint({ organizationId: organization.id, url: hooks.url() }, ['QUOTA_THRESHOLD', 'SESSION_EXHAUSTED']);
    ok(await server.gql('mutation($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { available } }', { input: { organizationId: organization.id, sessions: 1, idempotencyKey: uniqueName('credits') } }));
    const session = ok(await server.gql('mutation { createSession(input: { tokenLimit: 1000 }) { id } }', {}, { key: key.secret })).createSession;

    const record = (tokens: number) => server.gql('mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded session { status } } }', {
      input: { apiKeyId: key.id, sessionId: session.id, operation: 'POST /v1/chat', tokens, idempotencyKey: uniqueName('usage') },
    });
    expect(ok(await record(700)).recordUsage.session.status).toBe('ACTIVE');
    expect(ok(await record(400)).recordUsage.session.status).toBe('EXHAUSTED');
    await deliver();
    await hooks.waitFor(3);
    expect(hooks.ofType('quota.threshold').map((request) => [request.json.data.threshold, request.json.data.quota.meter, request.json.data.quota.used])).toEqual([[80, 'TOKENS', 1100], [100, 'TOKENS', 1100]]);
    const [exhausted] = hooks.ofType('session.exhausted');
    expect(exhausted.json.data).toMatchObject({ organizationId: organization.id, apiKeyId: key.id, session: { id: session.id, status: 'EXHAUSTED', tokensUsed: 1100, tokenLimit: 1000 } });
    expect(hooks.received).toHaveLength(3);
  });

  it('retries a delivery answered 500 twice and delivers it at the third attempt, with the same webhook-id and a valid signature each time', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_REVOKED']);
    hooks.answer(500, 500);
    const attemptsBefore = await metric('keyward_webhook_attempts_total{result="http_error"}');

    const test = ok(await server.gql(SEND_TEST, { id: endpoint.id })).sendTestWebhook;
    expect(test).toMatchObject({ endpointId: endpoint.id, eventType: 'TEST', status: 'PENDING', attempts: 0 });
    await deliver();
    await hooks.waitFor(1);
    let [delivery] = (await deliveries(endpoint.id)).nodes;
    expect(delivery).toMatchObject({ status: 'PENDING', attempts: 1, lastStatusCode: 500, lastError: 'HTTP 500', deliveredAt: null });
    expect(delivery.nextAttemptAt).toBe(new Date(server.clock.now().getTime() + 1000).toISOString());

    // Not due yet: nothing happens until the schedule's second has passed.
    await deliver();
    expect(hooks.received).toHaveLength(1);
    server.clock.advance(1000);
    await deliver();
    await hooks.waitFor(2);
    server.clock.advance(1000);
    await deliver();
    const attempts = await hooks.waitFor(3);
    expect(attempts.map((attempt) => attempt.answeredWith)).toEqual([500, 500, 200]);
    expect(new Set(attempts.map((attempt) => attempt.headers['webhook-id']))).toEqual(new Set([test.eventId]));
    for (const attempt of attempts) expect(verifySignature(endpoint.secret, attempt)).toEqual(test.payload);
    expect(test.payload).toMatchObject({ type: 'test', data: { organizationId: tenant.organizationId, endpointId: endpoint.id } });

    [delivery] = (await deliveries(endpoint.id)).nodes;
    expect(delivery).toMatchObject({ id: test.id, status: 'SUCCEEDED', attempts: 3, lastStatusCode: 200, lastError: null, nextAttemptAt: null, deliveredAt: server.clock.now().toISOString() });
    expect(await metric('keyward_webhook_attempts_total{result="http_error"}')).toBe(attemptsBefore + 2);
    expect(await metric('keyward_webhook_attempt_duration_seconds_count')).toBeGreaterThanOrEqual(3);
  });

  it('marks a delivery FAILED once its retries are used up; retryWebhookDelivery then attempts it again with the same webhook-id', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['TEST']);
    hooks.answer(503, 503, 503, 503, 503);
    const failedBefore = await metric('keyward_webhook_deliveries_failed_total');
    const test = ok(await server.gql(SEND_TEST, { id: endpoint.id })).sendTestWebhook;
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      await deliver();
      await hooks.waitFor(attempt);
      server.clock.advance(1000);
    }
    await deliver();
    expect(hooks.received).toHaveLength(4);
    const [failed] = (await deliveries(endpoint.id, 'FAILED')).nodes;
    expect(failed).toMatchObject({ id: test.id, status: 'FAILED', attempts: 4, lastStatusCode: 503, nextAttemptAt: null });
    expect(await metric('keyward_webhook_deliveries_failed_total')).toBe(failedBefore + 1);

    // One more attempt by hand: refused again, it is FAILED again at once (no new schedule).
    const retried = ok(await server.gql(RETRY, { id: test.id })).retryWebhookDelivery;
    expect(retried).toMatchObject({ id: test.id, eventId: test.eventId, status: 'PENDING' });
    await deliver();
    await hooks.waitFor(5);
    expect((await deliveries(endpoint.id)).nodes[0]).toMatchObject({ status: 'FAILED', attempts: 5 });
    // The receiver is fixed: the retry delivers, with the webhook-id of every attempt before.
    ok(await server.gql(RETRY, { id: test.id }));
    await deliver();
    const all = await hooks.waitFor(6);
    expect(all[5].answeredWith).toBe(200);
    expect(new Set(all.map((request) => request.headers['webhook-id']))).toEqual(new Set([test.eventId]));
    expect((await deliveries(endpoint.id)).nodes[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 6 });
    const audit = ok(await server.gql(AUDIT, { organizationId: tenant.organizationId })).auditLog.nodes;
    expect(audit.filter((entry: { action: string }) => entry.action === 'webhook_delivery.retry')).toHaveLength(2);
  });

  it('sends key.revoked and key.rotated (naming the new key and the one it replaced), each written with its change', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_REVOKED', 'KEY_ROTATED']);
    const revoked = await createKey(server, { organizationId: tenant.organizationId, ownerEmail: 'dev@acme.test', externalId: 'cust-42' });
    const rotated = await createKey(server, { organizationId: tenant.organizationId });
    ok(await server.gql(REVOKE, { id: revoked.id }));
    const rotation = ok(await server.gql(ROTATE_KEY, { id: rotated.id })).rotateApiKey;
    // A refused change writes no event: revoking a revoked key, rotating a rotated one.
    expect((await server.gql(REVOKE, { id: revoked.id })).code).toBe('BAD_USER_INPUT');
    expect((await server.gql(ROTATE_KEY, { id: rotated.id })).code).toBe('BAD_USER_INPUT');
    await deliver();
    await hooks.waitFor(2);
    await deliver();
    expect(hooks.received).toHaveLength(2);

    const [revocation] = hooks.ofType('key.revoked');
    expect(verifySignature(endpoint.secret, revocation)).toEqual(revocation.json);
    expect(revocation.json.data).toEqual({
      organizationId: tenant.organizationId,
      apiKeyId: revoked.id,
      apiKey: expect.objectContaining({ id: revoked.id, hint: revoked.apiKey.hint, ownerEmail: 'dev@acme.test', externalId: 'cust-42', revokedReason: 'leaked in a log', revokedAt: server.clock.now().toISOString() }),
    });
    const [rotationEvent] = hooks.ofType('key.rotated');
    expect(rotationEvent.json.data).toMatchObject({
      organizationId: tenant.organizationId,
      apiKeyId: rotation.apiKey.id,
      rotatedFromId: rotated.id,
      previousKeyExpiresAt: rotation.previousKeyExpiresAt,
      apiKey: { id: rotation.apiKey.id, rotatedFromId: rotated.id },
    });
    // Events name keys, never their secrets or hashes.
    expect(JSON.stringify(hooks.received.map((request) => request.json))).not.toMatch(SECRET_PATTERN);
    expect(JSON.stringify(hooks.received.map((request) => request.json))).not.toMatch(/secretHash|secret_hash/);
  });

  it("sends key.expiring once, when a key's expiry comes within the endpoint's expiryNoticeDays by the injected clock", async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_EXPIRING'], { expiryNoticeDays: 7 });
    const key = await createKey(server, { organizationId: tenant.organizationId, expiresInDays: 10 });
    const start = server.clock.now().getTime();
    try {
      await deliver();
      server.clock.advance(2 * DAY_MS);
      await deliver();
      expect(hooks.ofType('key.expiring')).toHaveLength(0);

      server.clock.advance(DAY_MS + 60_000);
      await deliver();
      const [notice] = await hooks.waitFor(1);
      expect(notice.json).toMatchObject({ type: 'key.expiring', data: { organizationId: tenant.organizationId, apiKeyId: key.id, expiresAt: key.apiKey.expiresAt, apiKey: { id: key.id } } });

      for (let day = 0; day < 3; day += 1) {
        server.clock.advance(DAY_MS);
        await deliver();
      }
      expect(hooks.ofType('key.expiring')).toHaveLength(1);
    } finally {
      server.clock.set(new Date(start));
    }
  });

  it('sends rate_limit.exhausted when a window reaches 0 remaining, once per window', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['RATE_LIMIT_EXHAUSTED']);
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE', rateLimits: [{ name: 'burst', limit: 3, windowSeconds: 60 }] });
    for (let call = 1; call <= 3; call += 1) expect((await verifyKey(key.secret)).valid).toBe(true);
    expect((await verifyKey(key.secret)).code).toBe('RATE_LIMITED');
    await deliver();
    const [event] = await hooks.waitFor(1);
    expect(event.json).toMatchObject({
      type: 'rate_limit.exhausted',
      data: { organizationId: tenant.organizationId, apiKeyId: key.id, rateLimit: { name: 'burst', limit: 3, windowSeconds: 60, remaining: 0 } },
    });
    // The window running out again within the same minute fires nothing; in a later window it does.
    server.clock.advance(20_000);
    expect((await verifyKey(key.secret)).code).toBe('RATE_LIMITED');
    await deliver();
    expect(hooks.received).toHaveLength(1);
    server.clock.advance(120_000);
    for (let call = 1; call <= 3; call += 1) expect((await verifyKey(key.secret)).valid).toBe(true);
    await deliver();
    await hooks.waitFor(2);
    expect(hooks.ofType('rate_limit.exhausted')).toHaveLength(2);
  });

  it("delivers every organization's events to the platform organization's endpoints, and a tenant's only its own", async () => {
    const platformHooks = await receiver();
    const tenantHooks = await receiver();
    const a = await createTenant(server);
    const b = await createTenant(server);
    const platformEndpoint = await createEndpoint({ organizationId: server.platformOrganizationId, url: platformHooks.url() }, ['KEY_REVOKED']);
    try {
      await createEndpoint({ organizationId: a.organizationId, url: tenantHooks.url() }, ['KEY_REVOKED']);
      const inA = await createKey(server, { organizationId: a.organizationId });
      const inB = await createKey(server, { organizationId: b.organizationId });
      ok(await server.gql(REVOKE, { id: inA.id }));
      ok(await server.gql(REVOKE, { id: inB.id }));
      await deliver();
      await platformHooks.waitFor(2);
      await tenantHooks.waitFor(1);
      expect(platformHooks.received.map((request) => request.json.data.organizationId).sort()).toEqual([a.organizationId, b.organizationId].sort());
      expect(tenantHooks.received.map((request) => request.json.data.apiKeyId)).toEqual([inA.id]);
      // Each endpoint signs with its own secret.
      expect(verifySignature(platformEndpoint.secret, platformHooks.received[0])).toBeTruthy();
      expect(() => verifySignature(platformEndpoint.secret, tenantHooks.received[0])).toThrow('No matching signature found');
    } finally {
      ok(await server.gql(DELETE, { id: platformEndpoint.id }));
    }
  });

  it('shows the signing secret once: never in listings, deliveries or the audit log; after rotateWebhookSecret attempts are signed with the new one', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_REVOKED'], { description: 'billing backend' });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const rotated = ok(await server.gql(ROTATE_SECRET, { id: endpoint.id })).rotateWebhookSecret;
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(endpoint.secret);
    ok(await server.gql(SEND_TEST, { id: endpoint.id }));
    await deliver();
    const [test] = await hooks.waitFor(1);
    expect(verifySignature(rotated.secret, test)).toEqual(test.json);
    expect(() => verifySignature(endpoint.secret, test)).toThrow('No matching signature found');

    const listed = JSON.stringify([
      ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })),
      await deliveries(endpoint.id),
      ok(await server.gql(AUDIT, { organizationId: tenant.organizationId })),
    ]);
    for (const secret of [endpoint.secret, rotated.secret]) expect(listed).not.toContain(secret.slice(6));
    expect(listed).not.toContain('whsec_');
    const actions = ok(await server.gql(AUDIT, { organizationId: tenant.organizationId })).auditLog.nodes.map((entry: { action: string }) => entry.action);
    expect(actions).toEqual(expect.arrayContaining(['webhook_endpoint.create', 'webhook_endpoint.rotate_secret', 'webhook_endpoint.test']));
  });

  it('lists, updates and deletes endpoints; a deleted endpoint takes its delivery log and pending deliveries with it', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_ROTATED', 'KEY_REVOKED', 'KEY_REVOKED']);
    const [listed] = ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })).webhookEndpoints;
    expect(listed).toMatchObject({
      id: endpoint.id, organizationId: tenant.organizationId, url: hooks.url(), description: null,
      eventTypes: ['KEY_REVOKED', 'KEY_ROTATED'], quotaThresholds: [80, 100], expiryNoticeDays: 7, enabled: true,
    });
    const updated = ok(await server.gql(UPDATE, { id: endpoint.id, input: { eventTypes: ALL_EVENTS, quotaThresholds: [100, 25, 25], expiryNoticeDays: 30, description: 'ops' } })).updateWebhookEndpoint;
    expect(updated).toMatchObject({ eventTypes: ALL_EVENTS, quotaThresholds: [25, 100], expiryNoticeDays: 30, description: 'ops' });
    expect(ok(await server.gql(UPDATE, { id: endpoint.id, input: { description: null } })).updateWebhookEndpoint.description).toBeNull();

    // Disabled by hand: no test is sent, and a delivery waiting for its retry waits until it is enabled again.
    ok(await server.gql(UPDATE, { id: endpoint.id, input: { enabled: false } }));
    expect((await server.gql(SEND_TEST, { id: endpoint.id })).code).toBe('BAD_USER_INPUT');
    ok(await server.gql(UPDATE, { id: endpoint.id, input: { enabled: true } }));
    hooks.answer(500);
    const key = await createKey(server, { organizationId: tenant.organizationId });
    ok(await server.gql(REVOKE, { id: key.id }));
    await deliver();
    await hooks.waitFor(1);
    ok(await server.gql(UPDATE, { id: endpoint.id, input: { enabled: false } }));
    server.clock.advance(1000);
    await deliver();
    expect(hooks.received).toHaveLength(1);
    expect((await deliveries(endpoint.id, 'PENDING')).totalCount).toBe(1);
    ok(await server.gql(UPDATE, { id: endpoint.id, input: { enabled: true } }));
    await deliver();
    expect((await hooks.waitFor(2)).map((request) => request.answeredWith)).toEqual([500, 200]);

    // A delivery waiting for its retry goes with the endpoint.
    const another = await createKey(server, { organizationId: tenant.organizationId });
    hooks.answer(500);
    ok(await server.gql(REVOKE, { id: another.id }));
    await deliver();
    await hooks.waitFor(3);
    expect((await deliveries(endpoint.id, 'PENDING')).totalCount).toBe(1);
    expect(ok(await server.gql(DELETE, { id: endpoint.id })).deleteWebhookEndpoint).toBe(true);
    expect(ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })).webhookEndpoints).toEqual([]);
    expectRefused(await server.gql(DELIVERIES, { endpointId: endpoint.id }), 'NOT_FOUND');
    const [{ n }] = await server.app.dataSource.query('SELECT COUNT(*) AS n FROM webhook_deliveries WHERE endpoint_id = ?', [endpoint.id]);
    expect(Number(n)).toBe(0);
    server.clock.advance(1000);
    await deliver();
    expect(hooks.received).toHaveLength(3);
  });

  it('disables an endpoint whose deliveries all failed for 5 days, audited by no key; its deliveries wait until it is enabled again', async () => {
    const hooks = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['KEY_REVOKED']);
    hooks.answer(...Array.from({ length: 10 }, () => 500));
    const start = server.clock.now().getTime();
    try {
      ok(await server.gql(SEND_TEST, { id: endpoint.id }));
      await deliver();
      await hooks.waitFor(1);
      // Four days later, still failing: not yet.
      server.clock.advance(4 * DAY_MS);
      ok(await server.gql(SEND_TEST, { id: endpoint.id }));
      await deliver();
      await hooks.waitFor(3);
      expect(ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })).webhookEndpoints[0].enabled).toBe(true);

      server.clock.advance(DAY_MS);
      await deliver();
      await hooks.waitFor(5);
      const [disabled] = ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })).webhookEndpoints;
      expect(disabled.enabled).toBe(false);
      const entry = ok(await server.gql(AUDIT, { organizationId: tenant.organizationId })).auditLog.nodes.find((candidate: { action: string }) => candidate.action === 'webhook_endpoint.disable');
      expect(entry).toMatchObject({ actorKeyId: null, targetId: endpoint.id, metadata: { reason: 'every delivery attempt failed for 5 days', failingSince: new Date(start).toISOString() } });

      // Disabled: due retries wait, new events are not addressed to it.
      const key = await createKey(server, { organizationId: tenant.organizationId });
      ok(await server.gql(REVOKE, { id: key.id }));
      server.clock.advance(5000);
      await deliver();
      expect(hooks.received).toHaveLength(5);
      expect((await deliveries(endpoint.id)).totalCount).toBe(2);

      // Enabled again, the receiver working now: the deliveries that waited go out.
      hooks.clearAnswers();
      ok(await server.gql(UPDATE, { id: endpoint.id, input: { enabled: true } }));
      await deliver();
      await hooks.waitFor(7);
      expect(hooks.received.slice(5).map((request) => request.answeredWith)).toEqual([200, 200]);
      expect((await deliveries(endpoint.id, 'SUCCEEDED')).totalCount).toBe(2);
    } finally {
      server.clock.set(new Date(start));
    }
  });

  it('does not follow redirects: a 302 is a failed attempt', async () => {
    const hooks = await receiver();
    const elsewhere = await receiver();
    const tenant = await createTenant(server);
    const endpoint = await createEndpoint({ organizationId: tenant.organizationId, url: hooks.url() }, ['TEST']);
    hooks.answer({ status: 302, headers: { location: elsewhere.url() } });
    ok(await server.gql(SEND_TEST, { id: endpoint.id }));
    await deliver();
    await hooks.waitFor(1);
    const [delivery] = (await deliveries(endpoint.id)).nodes;
    expect(delivery).toMatchObject({ status: 'PENDING', attempts: 1, lastStatusCode: 302, lastError: 'HTTP 302 (redirects are not followed)' });
    expect(elsewhere.received).toHaveLength(0);
  });

  it('refuses bad input with BAD_USER_INPUT naming the field, and stores nothing', async () => {
    const tenant = await createTenant(server);
    const base = { organizationId: tenant.organizationId, url: 'http://127.0.0.1:9/hook', eventTypes: ['TEST'] };
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ url: 'ftp://127.0.0.1/hook' }, 'url', /http or https/],
      [{ url: `https://hooks.example.invalid/${'a'.repeat(2000)}` }, 'url', /at most 2000 characters/],
      [{ url: 'not a url' }, 'url', /absolute URL/],
      [{ url: 'https://user:pass@hooks.example.invalid/' }, 'url', /credentials/],
      [{ eventTypes: [] }, 'eventTypes', /at least one/],
      [{ quotaThresholds: [0] }, 'quotaThresholds[0]', /between 1 and 100/],
      [{ quotaThresholds: [101] }, 'quotaThresholds[0]', /between 1 and 100/],
      [{ quotaThresholds: [] }, 'quotaThresholds', /1 to 10/],
      [{ expiryNoticeDays: 0 }, 'expiryNoticeDays', /between 1 and 365/],
      [{ description: `the secret is ${'whsec_'}${'A'.repeat(43)}=` }, 'description', /webhook signing secret/],
      [{ description: 'x'.repeat(501) }, 'description', /at most 500/],
    ];
    for (const [change, field, message] of cases) {
      const response = await server.gql(CREATE, { input: { ...base, ...change } });
      expectRefused(response, 'BAD_USER_INPUT');
      expect({ field: response.body.errors![0].extensions!.field, message: response.body.errors![0].message }).toEqual({ field, message: expect.stringMatching(message) });
    }
    expect(ok(await server.gql(ENDPOINTS, { organizationId: tenant.organizationId })).webhookEndpoints).toEqual([]);
    // An unknown organization, for a platform admin, does not exist.
    expectRefused(await server.gql(CREATE, { input: { ...base, organizationId: 'org_00000000000000000000000000' } }), 'NOT_FOUND');
  });
});

describe('webhooks without WEBHOOK_ALLOW_PRIVATE', () => {
  let server: TestServer;
  let hooks: WebhookReceiver;
  beforeAll(async () => {
    server = await startTestServer({ env: { WEBHOOK_RETRY_SCHEDULE: '1s' } });
    hooks = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await hooks.close();
    await server.close();
  });

  it.each([
    ['http://127.0.0.1:9/hook', '127.0.0.1 is a loopback address'],
    ['http://10.1.2.3/hook', '10.1.2.3 is a private address'],
    ['https://[::1]/hook', '::1 is a loopback address'],
    ['http://169.254.169.254/latest/meta-data', '169.254.169.254 is a link-local address'],
    ['http://[::ffff:192.168.0.1]/hook', 'is a private address'],
    ['http://0x7f.1/hook', '127.0.0.1 is a loopback address'],
  ])('refuses an endpoint at %s with BAD_USER_INPUT naming WEBHOOK_ALLOW_PRIVATE', async (url, problem) => {
    const { organizationId } = await createTenant(server);
    const response = await server.gql(CREATE, { input: { organizationId, url, eventTypes: ['TEST'] } });
    expectRefused(response, 'BAD_USER_INPUT');
    expect(response.body.errors![0].message).toContain(problem);
    expect(response.body.errors![0].message).toContain('WEBHOOK_ALLOW_PRIVATE=true');
    expect(ok(await server.gql(ENDPOINTS, { organizationId })).webhookEndpoints).toEqual([]);
  });

  it('checks the address a host name resolves to at every attempt: localhost gets nothing', async () => {
    const { organizationId } = await createTenant(server);
    const created = ok(await server.gql(CREATE, { input: { organizationId, url: `http://localhost:${hooks.port}/hook`, eventTypes: ['TEST'] } })).createWebhookEndpoint;
    const test = ok(await server.gql(SEND_TEST, { id: created.endpoint.id })).sendTestWebhook;
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      await server.app.webhookDispatcher.tick();
      server.clock.advance(1000);
    }
    const [delivery] = ok(await server.gql(DELIVERIES, { endpointId: created.endpoint.id })).webhookDeliveries.nodes;
    expect(delivery).toMatchObject({ id: test.id, status: 'FAILED', attempts: 2, lastStatusCode: null });
    expect(delivery.lastError).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), a loopback address; deliveries to private, loopback and link-local addresses need WEBHOOK_ALLOW_PRIVATE=true$/);
    expect(hooks.received).toHaveLength(0);
    const metrics = await (await fetch(server.url.replace(/\/graphql$/, '/metrics'))).text();
    expect(metrics).toContain('keyward_webhook_attempts_total{result="blocked"} 2');
  });
});
