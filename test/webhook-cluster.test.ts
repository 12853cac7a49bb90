import { ManualClock } from '../src/clock';
import { createKey, createTenant } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { WebhookReceiver } from './helpers/webhook-receiver';
import { Instance, startInstance } from './helpers/cluster';
import { closeAll, platformOf } from './helpers/server';
import { createMysqlDatabase, MysqlDatabase } from './helpers/database';
import { describeWith, MARIADB, mysqlServerUrl, REDIS, redisServerUrl } from './helpers/services';

/**
 * Webhooks with two instances sharing one MariaDB database and one Redis (always MariaDB, also
 * in the SQLite pass): both deliver the same outbox, and each event
 * reaches the receiver once; an endpoint created on one instance hears events raised on the other.
 */
const CREATE = 'mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }';
const DELIVERIES = 'query($endpointId: ID!) { webhookDeliveries(endpointId: $endpointId, first: 100) { totalCount nodes { eventId status attempts } } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id, reason: "cluster test") { id } }';
const SEND_TEST = 'mutation($id: ID!) { sendTestWebhook(id: $id) { eventId } }';
/** An endpoint created on one instance hears the other's events within this long (Redis invalidation). */
const EVERYWHERE_WITHIN_MS = 1_000;

describeWith([REDIS, MARIADB], 'webhooks across instances sharing MariaDB and Redis', () => {
  const clock = new ManualClock('2026-01-15T12:00:00.000Z');
  const env = { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s' };
  let database: MysqlDatabase | null = null;
  let a: Instance | null = null;
  let b: Instance | null = null;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    const redisUrl = redisServerUrl();
    database = await createMysqlDatabase(mysqlServerUrl());
    a = await startInstance({ name: 'A', databaseUrl: database.url, redisUrl, clock, env });
    b = await startInstance({ name: 'B', databaseUrl: database.url, redisUrl, clock, env, platform: platformOf(a) });
  }, 120_000);

  afterEach(async () => {
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });

  afterAll(async () => {
    await closeAll([b, a]);
    await database?.drop();
  }, 60_000);

  async function receiver(): Promise<WebhookReceiver> {
    const started = await WebhookReceiver.start();
    receivers.push(started);
    return started;
  }

  /** Passes of both instances at the same time, `rounds` times (their own timers run meanwhile too). */
  async function bothDeliver(rounds = 3): Promise<void> {
    for (let round = 0; round < rounds; round += 1) {
      await Promise.all([a!.app.webhookDispatcher.tick(), b!.app.webhookDispatcher.tick(), a!.app.webhookDispatcher.tick(), b!.app.webhookDispatcher.tick()]);
    }
  }

  it('delivers each event once when both instances deliver the same outbox at the same time', async () => {
    const hooks = await receiver();
    const { organizationId } = await createTenant(a!);
    const endpoint = ok(await a!.gql(CREATE, { input: { organizationId, url: hooks.url(), eventTypes: ['KEY_REVOKED'] } })).createWebhookEndpoint.endpoint;
    const keys = await Promise.all(Array.from({ length: 12 }, () => createKey(a!, { organizationId })));
    // Events written by both instances, some while the other is delivering.
    await Promise.all(keys.map((key, index) => (index % 2 === 0 ? a! : b!).gql(REVOKE, { id: key.id }).then(ok)));
    const tests = await Promise.all(Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? b! : a!).gql(SEND_TEST, { id: endpoint.id }).then((response) => ok(response).sendTestWebhook.eventId as string)));
    await bothDeliver();

    await hooks.waitFor(20);
    await bothDeliver();
    const ids = hooks.received.map((request) => request.headers['webhook-id']);
    expect(ids).toHaveLength(20);
    expect(new Set(ids).size).toBe(20);
    expect(ids).toEqual(expect.arrayContaining(tests));
    const log = ok(await b!.gql(DELIVERIES, { endpointId: endpoint.id })).webhookDeliveries;
    expect(log.totalCount).toBe(20);
    expect(log.nodes.every((delivery: { status: string; attempts: number }) => delivery.status === 'SUCCEEDED' && delivery.attempts === 1)).toBe(true);
  });

  it('makes each retry of a failing delivery once, whichever instance gets to it', async () => {
    const hooks = await receiver();
    const { organizationId } = await createTenant(a!);
    const endpoint = ok(await a!.gql(CREATE, { input: { organizationId, url: hooks.url(), eventTypes: ['TEST'] } })).createWebhookEndpoint.endpoint;
    hooks.answer(500, 500);
    const eventId = ok(await b!.gql(SEND_TEST, { id: endpoint.id })).sendTestWebhook.eventId;
    await bothDeliver();
    expect(hooks.received).toHaveLength(1);
    for (const expected of [2, 3]) {
      clock.advance(1000);
      await bothDeliver();
      expect(hooks.received).toHaveLength(expected);
    }
    expect(hooks.received.map((request) => [request.headers['webhook-id'], request.answeredWith])).toEqual([[eventId, 500], [eventId, 500], [eventId, 200]]);
    expect(ok(await a!.gql(DELIVERIES, { endpointId: endpoint.id })).webhookDeliveries.nodes).toEqual([{ eventId, status: 'SUCCEEDED', attempts: 3 }]);
  });

  it("sends events raised on one instance to an endpoint just created on the other (subscriptions dropped through Redis)", async () => {
    const hooks = await receiver();
    const { organizationId } = await createTenant(a!);
    // B learns that nobody listens to the organization.
    ok(await b!.gql(REVOKE, { id: (await createKey(a!, { organizationId })).id }));
    ok(await a!.gql(CREATE, { input: { organizationId, url: hooks.url(), eventTypes: ['KEY_REVOKED'] } }));
    const created = performance.now();
    const revokedOnB: string[] = [];
    while (hooks.received.length === 0) {
      if (performance.now() - created > EVERYWHERE_WITHIN_MS) throw new Error(`B wrote no event for the new endpoint within ${EVERYWHERE_WITHIN_MS} ms`);
      const key = await createKey(a!, { organizationId });
      ok(await b!.gql(REVOKE, { id: key.id }));
      revokedOnB.push(key.id);
      await b!.app.webhookDispatcher.tick();
    }
    expect(revokedOnB).toContain(hooks.received[0].json.data.apiKeyId);
    expect(hooks.received[0].json.type).toBe('key.revoked');
  });
});
