import { KeywardClient } from '@keyward/client';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization } from './helpers/fixtures';

/**
 * The README's "From code" example, line for line, with the keys its walkthrough makes: the
 * service key (keys:verify, usage:write, no rate limit) verifies, Acme's INFERENCE key follows
 * its own quotas.
 */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
});

it("runs with the walkthrough's service key and Acme's inference key", async () => {
  const service = await createKey(server, { name: 'predict service', scopes: ['keys:verify', 'usage:write'], rateLimits: [] });
  const organization = await createOrganization(server, { name: 'Acme', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 100_000 }] });
  const inference = await createKey(server, { organizationId: organization.id, name: 'Acme inference', preset: 'INFERENCE' });
  const presented = inference.secret;
  const acmeKey = inference.secret;

  const keyward = new KeywardClient({ url: server.url, apiKey: service.secret });
  const { valid, code, quotas } = await keyward.verifyKey({ key: presented, requiredScopes: ['inference:run'] });
  expect({ valid, code }).toEqual({ valid: true, code: 'VALID' });
  expect(quotas.map((quota) => [quota.meter, quota.used])).toEqual([['REQUESTS', 1]]);

  const acme = new KeywardClient({ url: server.url, apiKey: acmeKey });
  const seen: Array<[string, number]> = [];
  for await (const quota of acme.subscribeQuotaChanged()) {
    seen.push([quota.meter, quota.percentUsed]);
    break;
  }
  expect(seen).toEqual([['REQUESTS', 0]]);
  await acme.close();
  await keyward.close();
});
