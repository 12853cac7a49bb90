import { freePort, KeywardProcesses } from './helpers/processes';
import { ok } from './helpers/expect';
import { verifySignature, WebhookReceiver } from './helpers/webhook-receiver';

/**
 * The outbox survives the process: an event committed with its change is delivered by the
 * next process on the same database, even when the first was killed (SIGKILL, nothing flushed)
 * before it could deliver. Real processes (`node dist/src/main.js`), real time.
 */
jest.setTimeout(90_000);

describe('webhooks and a killed process', () => {
  const processes = new KeywardProcesses();
  let hooks: WebhookReceiver | null = null;
  afterEach(async () => {
    await hooks?.close();
    await processes.cleanup();
  });

  it('delivers an event after a restart when the process was killed between the change and the delivery', async () => {
    const { env, dataDir } = await processes.environment();
    Object.assign(env, { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s' });
    const init = await processes.cli(['init', '--json'], env, dataDir);
    expect(init.code).toBe(0);
    const admin = { key: JSON.parse(init.stdout).secret as string };
    // The receiver is not there yet: whatever the first process attempts cannot deliver.
    const port = await freePort();

    const first = await processes.startServer(env, dataDir);
    const organization = ok(await first.gql('mutation { createOrganization(input: { name: "Restart" }) { id } }', {}, admin)).createOrganization;
    const key = ok(await first.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', { input: { organizationId: organization.id, name: 'to revoke' } }, admin)).createApiKey.apiKey;
    const endpoint = ok(await first.gql('mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }', {
      input: { organizationId: organization.id, url: `http://127.0.0.1:${port}/hooks/keyward`, eventTypes: ['KEY_REVOKED'] },
    }, admin)).createWebhookEndpoint;
    ok(await first.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "killed right after") { id } }', { id: key.id }, admin));
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    hooks = await WebhookReceiver.start(port);
    const second = await processes.startServer(env, dataDir);
    const [event] = await hooks.waitFor(1, 20_000);
    expect(event.json).toMatchObject({ type: 'key.revoked', data: { organizationId: organization.id, apiKeyId: key.id } });
    expect(verifySignature(endpoint.secret, event)).toEqual(event.json);
    // The answer is recorded just after the receiver saw the request.
    const delivery = async () => ok(await second.gql('query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { eventId status } } }', { id: endpoint.endpoint.id }, admin)).webhookDeliveries.nodes[0];
    const deadline = Date.now() + 5_000;
    while ((await delivery()).status !== 'SUCCEEDED' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await delivery()).toEqual({ eventId: event.headers['webhook-id'], status: 'SUCCEEDED' });
    expect(hooks.received).toHaveLength(1);
  });
});
