import { startTestServer, TestServer } from './helpers/server';
import { buildCallers, CallerKind, Callers } from './helpers/callers';
import { createKey } from './helpers/fixtures';
import { expectRefused, ok } from './helpers/expect';

/**
 * Who may do what with webhooks (auth/authorization.ts, in this order): a superseded secret
 * changes no webhook (FORBIDDEN); another organization's endpoint or delivery does not exist
 * (NOT_FOUND); the platform organization's endpoints, which receive every organization's
 * events, are platform admins' alone (INSUFFICIENT_SCOPE); then the input (BAD_USER_INPUT).
 * The scopes: webhooks:read lists, webhooks:write changes (READ / WRITE presets include them).
 */
const CREATE = 'mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id organizationId } } }';
const ENDPOINTS = 'query($organizationId: ID) { webhookEndpoints(organizationId: $organizationId) { id organizationId } }';
const DELIVERIES = 'query($endpointId: ID!) { webhookDeliveries(endpointId: $endpointId) { totalCount nodes { id } } }';
const CHANGES: Record<string, (id: string, input?: Record<string, unknown>) => [string, Record<string, unknown>]> = {
  updateWebhookEndpoint: (id, input = { description: 'changed' }) => ['mutation($id: ID!, $input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(id: $id, input: $input) { id } }', { id, input }],
  deleteWebhookEndpoint: (id) => ['mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }', { id }],
  rotateWebhookSecret: (id) => ['mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }', { id }],
  sendTestWebhook: (id) => ['mutation($id: ID!) { sendTestWebhook(id: $id) { id } }', { id }],
};
const RETRY = 'mutation($id: ID!) { retryWebhookDelivery(id: $id) { id } }';
/** Nothing listens there: every attempt fails, and the manual clock never makes a retry due. */
const URL = 'http://127.0.0.1:9/hooks';

describe('webhook authorization', () => {
  let server: TestServer;
  let callers: Callers;
  /** A platform-organization key with webhooks:read and webhooks:write but not platform:admin. */
  let platformWebhooksKey: string;

  beforeAll(async () => {
    server = await startTestServer({ env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
    callers = await buildCallers(server);
    platformWebhooksKey = (await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['webhooks:read', 'webhooks:write'], rateLimits: [] })).secret;
  });
  afterAll(async () => {
    await server.close();
  });

  const secretOf = (kind: CallerKind) => callers.byKind[kind].secret;

  /** An endpoint of tenant A (made by the platform admin), with one delivery (a TEST). */
  async function endpointOfA(): Promise<{ id: string; deliveryId: string }> {
    const created = ok(await server.gql(CREATE, { input: { organizationId: callers.organizationA, url: URL, eventTypes: ['KEY_REVOKED'] } })).createWebhookEndpoint;
    const [query, variables] = CHANGES.sendTestWebhook(created.endpoint.id);
    const delivery = ok(await server.gql(query, variables)).sendTestWebhook;
    // Its one attempt (to a closed port) is over: the delivery waits for a retry the clock never reaches.
    await server.app.webhookDispatcher.tick();
    return { id: created.endpoint.id, deliveryId: delivery.id };
  }

  it.each([
    ['P*', 'created'], ['TA', 'created'], ['TW', 'created'], ['OA', 'created'],
    ['Pkw', 'INSUFFICIENT_SCOPE'], ['TR', 'INSUFFICIENT_SCOPE'], ['WK', 'INSUFFICIENT_SCOPE'], ['SS', 'FORBIDDEN'],
  ] as Array<[CallerKind, string]>)('createWebhookEndpoint in its own organization: %s → %s', async (kind, outcome) => {
    const response = await server.gql(CREATE, { input: { url: URL, eventTypes: ['TEST'] } }, { key: secretOf(kind) });
    if (outcome !== 'created') {
      expectRefused(response, outcome);
      return;
    }
    const created = ok(response).createWebhookEndpoint;
    expect(created.endpoint.organizationId).toBe(callers.organizationOf(kind));
    expect(created.secret).toMatch(/^whsec_/);
  });

  it("refuses another organization's endpoints as NOT_FOUND, before looking at the input", async () => {
    const endpoint = await endpointOfA();
    const oa = secretOf('OA');
    expectRefused(await server.gql(CREATE, { input: { organizationId: callers.organizationA, url: URL, eventTypes: ['TEST'] } }, { key: oa }), 'NOT_FOUND');
    expectRefused(await server.gql(CREATE, { input: { organizationId: callers.organizationA, url: 'ftp://nope', eventTypes: [] } }, { key: oa }), 'NOT_FOUND');
    expectRefused(await server.gql(ENDPOINTS, { organizationId: callers.organizationA }, { key: oa }), 'NOT_FOUND');
    expectRefused(await server.gql(DELIVERIES, { endpointId: endpoint.id }, { key: oa }), 'NOT_FOUND');
    for (const change of Object.values(CHANGES)) {
      const [query, variables] = change(endpoint.id, { url: 'ftp://nope' });
      expectRefused(await server.gql(query, variables, { key: oa }), 'NOT_FOUND');
    }
    expectRefused(await server.gql(RETRY, { id: endpoint.deliveryId }, { key: oa }), 'NOT_FOUND');
    // What OA sees of webhooks is its own organization's only.
    const listed = ok(await server.gql(ENDPOINTS, {}, { key: oa })).webhookEndpoints;
    expect(listed.every((entry: { organizationId: string }) => entry.organizationId === callers.organizationB)).toBe(true);
    // Nothing changed: A's endpoint is there, with its one delivery.
    expect(ok(await server.gql(DELIVERIES, { endpointId: endpoint.id })).webhookDeliveries.totalCount).toBe(1);
  });

  it('refuses every webhook change by a superseded secret with FORBIDDEN, even with bad input, and lets it read', async () => {
    const endpoint = await endpointOfA();
    const ss = secretOf('SS');
    for (const change of Object.values(CHANGES)) {
      const [query, variables] = change(endpoint.id, { url: 'ftp://nope' });
      expectRefused(await server.gql(query, variables, { key: ss }), 'FORBIDDEN');
    }
    expectRefused(await server.gql(RETRY, { id: endpoint.deliveryId }, { key: ss }), 'FORBIDDEN');
    expectRefused(await server.gql(CREATE, { input: { url: 'ftp://nope', eventTypes: [] } }, { key: ss }), 'FORBIDDEN');
    expect(ok(await server.gql(ENDPOINTS, { organizationId: callers.organizationA }, { key: ss })).webhookEndpoints.map((entry: { id: string }) => entry.id)).toContain(endpoint.id);
    expect(ok(await server.gql(DELIVERIES, { endpointId: endpoint.id }, { key: ss })).webhookDeliveries.totalCount).toBe(1);
  });

  it.each(['TA', 'TW'] as CallerKind[])("lets %s change its organization's endpoints and retry their deliveries", async (kind) => {
    const endpoint = await endpointOfA();
    const key = secretOf(kind);
    for (const name of ['updateWebhookEndpoint', 'rotateWebhookSecret', 'sendTestWebhook']) {
      const [query, variables] = CHANGES[name](endpoint.id);
      ok(await server.gql(query, variables, { key }));
    }
    ok(await server.gql(RETRY, { id: endpoint.deliveryId }, { key }));
    const [query, variables] = CHANGES.deleteWebhookEndpoint(endpoint.id);
    expect(ok(await server.gql(query, variables, { key })).deleteWebhookEndpoint).toBe(true);
  });

  it('lets a READ key list endpoints and deliveries but change nothing (INSUFFICIENT_SCOPE)', async () => {
    const endpoint = await endpointOfA();
    const tr = secretOf('TR');
    expect(ok(await server.gql(ENDPOINTS, {}, { key: tr })).webhookEndpoints.map((entry: { id: string }) => entry.id)).toContain(endpoint.id);
    expect(ok(await server.gql(DELIVERIES, { endpointId: endpoint.id }, { key: tr })).webhookDeliveries.totalCount).toBe(1);
    for (const change of Object.values(CHANGES)) {
      const [query, variables] = change(endpoint.id);
      expectRefused(await server.gql(query, variables, { key: tr }), 'INSUFFICIENT_SCOPE');
    }
    expectRefused(await server.gql(RETRY, { id: endpoint.deliveryId }, { key: tr }), 'INSUFFICIENT_SCOPE');
  });

  it("keeps the platform organization's endpoints (every organization's events) to platform admins", async () => {
    const created = ok(await server.gql(CREATE, { input: { url: URL, eventTypes: ['KEY_REVOKED'] } })).createWebhookEndpoint;
    const platformEndpoint = created.endpoint.id;
    try {
      const key = platformWebhooksKey;
      expectRefused(await server.gql(CREATE, { input: { url: URL, eventTypes: ['TEST'] } }, { key }), 'INSUFFICIENT_SCOPE');
      for (const change of Object.values(CHANGES)) {
        const [query, variables] = change(platformEndpoint);
        expectRefused(await server.gql(query, variables, { key }), 'INSUFFICIENT_SCOPE');
      }
      expectRefused(await server.gql(DELIVERIES, { endpointId: platformEndpoint }, { key }), 'INSUFFICIENT_SCOPE');
      // It may see the endpoints' settings, never their deliveries (which carry other organizations' data).
      expect(ok(await server.gql(ENDPOINTS, {}, { key })).webhookEndpoints.map((entry: { id: string }) => entry.id)).toContain(platformEndpoint);
      // Nor does it reach a tenant's endpoints: it is not a platform admin.
      const endpoint = await endpointOfA();
      expectRefused(await server.gql(DELIVERIES, { endpointId: endpoint.id }, { key }), 'NOT_FOUND');
    } finally {
      const [query, variables] = CHANGES.deleteWebhookEndpoint(platformEndpoint);
      ok(await server.gql(query, variables));
    }
  });

  it("lets the platform admin manage any organization's endpoints and list them all", async () => {
    const created = ok(await server.gql(CREATE, { input: { organizationId: callers.organizationB, url: URL, eventTypes: ['TEST'] } })).createWebhookEndpoint;
    expect(created.endpoint.organizationId).toBe(callers.organizationB);
    const all = ok(await server.gql(ENDPOINTS, {})).webhookEndpoints.map((entry: { organizationId: string }) => entry.organizationId);
    expect(all).toEqual(expect.arrayContaining([callers.organizationA, callers.organizationB]));
    const [query, variables] = CHANGES.updateWebhookEndpoint(created.endpoint.id, { enabled: false });
    ok(await server.gql(query, variables));
  });

  it('gives READ and WRITE preset keys webhooks:read, and WRITE webhooks:write', async () => {
    const read = await createKey(server, { organizationId: callers.organizationA, preset: 'READ' });
    const write = await createKey(server, { organizationId: callers.organizationA, preset: 'WRITE' });
    expect(read.apiKey.scopes).toContain('webhooks:read');
    expect(read.apiKey.scopes).not.toContain('webhooks:write');
    expect(write.apiKey.scopes).toEqual(expect.arrayContaining(['webhooks:read', 'webhooks:write']));
  });
});
