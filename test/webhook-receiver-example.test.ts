import http from 'node:http';
import { AddressInfo } from 'node:net';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createTenant } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { createWebhookReceiver, KeywardEvent } from '../examples/webhook-receiver';

/**
 * examples/webhook-receiver.ts (the README's "Webhooks" receiver) in front of a real keyward:
 * it accepts keyward's signed deliveries, handles a retried event once, and refuses a request
 * that keyward did not sign.
 */
describe('examples/webhook-receiver', () => {
  let server: TestServer;
  let receiver: http.Server;
  let url: string;
  let endpointId: string;
  let organizationId: string;
  const handled: Array<{ event: KeywardEvent; webhookId: string }> = [];

  beforeAll(async () => {
    server = await startTestServer({ env: { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '1s' } });
    ({ organizationId } = await createTenant(server));
    // Listening before the endpoint exists; the example app is made once its secret is known.
    let app: ReturnType<typeof createWebhookReceiver> | null = null;
    receiver = http.createServer((req, res) => (app ? app(req, res) : res.writeHead(503).end()));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/keyward`;
    const created = ok(await server.gql('mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }', {
      input: { organizationId, url, eventTypes: ['KEY_REVOKED'] },
    })).createWebhookEndpoint;
    endpointId = created.endpoint.id;
    app = createWebhookReceiver(created.secret, (event, webhookId) => handled.push({ event, webhookId }));
  });

  afterAll(async () => {
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    await server.close();
  });

  it("accepts keyward's signed deliveries and hands each event to the application", async () => {
    const key = await createKey(server, { organizationId });
    ok(await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "rotated out by ops") { id } }', { id: key.id }));
    await server.app.webhookDispatcher.tick();
    const [delivery] = ok(await server.gql('query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { eventId status lastStatusCode } } }', { id: endpointId })).webhookDeliveries.nodes;
    expect(delivery).toMatchObject({ status: 'SUCCEEDED', lastStatusCode: 204 });
    expect(handled.map(({ event, webhookId }) => ({ type: event.type, apiKeyId: event.data.apiKeyId, webhookId }))).toEqual([
      { type: 'key.revoked', apiKeyId: key.id, webhookId: delivery.eventId },
    ]);
  });

  it('handles a retried delivery (same webhook-id) once', async () => {
    handled.splice(0);
    const test = ok(await server.gql('mutation($id: ID!) { sendTestWebhook(id: $id) { id eventId } }', { id: endpointId })).sendTestWebhook;
    await server.app.webhookDispatcher.tick();
    ok(await server.gql('mutation($id: ID!) { retryWebhookDelivery(id: $id) { id } }', { id: test.id }));
    await server.app.webhookDispatcher.tick();
    const [delivery] = ok(await server.gql('query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { attempts status } } }', { id: endpointId })).webhookDeliveries.nodes;
    expect(delivery).toEqual({ attempts: 2, status: 'SUCCEEDED' });
    expect(handled.map(({ webhookId }) => webhookId)).toEqual([test.eventId]);
  });

  it('refuses a request keyward did not sign with 400', async () => {
    handled.splice(0);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': 'msg_forged', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' },
      body: JSON.stringify({ type: 'key.revoked', timestamp: new Date().toISOString(), data: { organizationId } }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: 'not a delivery from keyward: No matching signature found' });
    expect(handled).toEqual([]);
  });
});
