import { ManualClock } from '../src/clock';
import { createKey, createOrganization } from './helpers/fixtures';
import { ok } from './helpers/expect';
import { Instance, startPair } from './helpers/cluster';
import { closeAll } from './helpers/server';
import { createMysqlDatabase, MysqlDatabase } from './helpers/database';
import { describeWith, MARIADB, mysqlServerUrl, REDIS, redisServerUrl } from './helpers/services';

/**
 * Reserve-then-settle across instances: two keywards sharing one MariaDB database and one Redis
 * never hold past a budget together (holds live beside the counters in the database, TOKENS
 * windows in Redis), and a hold settled on one is free on the other at once.
 */

const QUOTA_FIELDS = 'meter used held remaining';
const RESERVE = `mutation($input: ReserveUsageInput!) { reserveUsage(input: $input) { id tokens verify { code } } }`;
const SETTLE = `mutation($input: SettleUsageInput!) { settleUsage(input: $input) { recorded quotas { ${QUOTA_FIELDS} } } }`;
const QUOTAS = `query($organizationId: ID) { quotas(organizationId: $organizationId) { ${QUOTA_FIELDS} } }`;

describeWith([REDIS, MARIADB], 'reserveUsage on two instances (MariaDB + Redis)', () => {
  const clock = new ManualClock('2026-01-15T12:00:00.000Z');
  let database: MysqlDatabase | null = null;
  const instances: Instance[] = [];
  let a: Instance;
  let b: Instance;
  let sequence = 0;

  beforeAll(async () => {
    const redisUrl = redisServerUrl();
    database = await createMysqlDatabase(mysqlServerUrl());
    [a, b] = await startPair({ databaseUrl: database.url, redisUrl, clock });
    instances.push(a, b);
  }, 120_000);

  afterAll(async () => {
    await closeAll([...instances].reverse());
    await database?.drop();
  }, 60_000);

  const reserve = (instance: Instance, secret: string, tokens: number) => {
    sequence += 1;
    return instance.gql(RESERVE, { input: { key: secret, tokens, idempotencyKey: `s-${sequence}` } }).then((response) => ok(response).reserveUsage);
  };

  it('holds exactly what fits: 200 concurrent reservations of 100 tokens, alternating instances, against 10,000 → 100 held', async () => {
    const organization = await createOrganization(a, { quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 10_000 }] });
    const key = await createKey(a, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [] });
    const results = await Promise.all(Array.from({ length: 200 }, (_, index) => reserve(index % 2 === 0 ? a : b, key.secret, 100)));
    expect(results.filter((result) => result.id !== null)).toHaveLength(100);
    expect(results.filter((result) => result.id === null).map((result) => result.verify.code)).toEqual(Array(100).fill('QUOTA_EXCEEDED'));
    const quotas = ok(await b.gql(QUOTAS, { organizationId: organization.id })).quotas;
    expect(quotas).toEqual([{ meter: 'TOKENS', used: 0, held: 10_000, remaining: 0 }]);

    // Settled on B for less: the difference is free on A at once.
    const settled = ok(await b.gql(SETTLE, { input: { reservationId: results.find((result) => result.id)!.id, tokens: 40 } })).settleUsage;
    expect(settled.quotas).toEqual([{ meter: 'TOKENS', used: 40, held: 9_900, remaining: 60 }]);
    expect((await reserve(a, key.secret, 61)).verify.code).toBe('QUOTA_EXCEEDED');
    expect((await reserve(a, key.secret, 60)).id).not.toBeNull();
  });

  it('shares a TOKENS window between instances through Redis', async () => {
    const organization = await createOrganization(a);
    const key = await createKey(a, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [{ name: 'tpm', limit: 1_000, windowSeconds: 60, meter: 'TOKENS' }] });
    const results = await Promise.all(Array.from({ length: 20 }, (_, index) => reserve(index % 2 === 0 ? a : b, key.secret, 100)));
    expect(results.filter((result) => result.id !== null)).toHaveLength(10);
    expect(results.filter((result) => result.id === null).map((result) => result.verify.code)).toEqual(Array(10).fill('RATE_LIMITED'));
  });

  it('corrects a TOKENS window in Redis on settle: less gives back on the other instance, more takes the rest', async () => {
    const organization = await createOrganization(a);
    const key = await createKey(a, { organizationId: organization.id, preset: 'ADMIN', rateLimits: [{ name: 'tpm', limit: 1_000, windowSeconds: 60, meter: 'TOKENS' }] });
    const big = await reserve(a, key.secret, 900);
    expect((await reserve(b, key.secret, 200)).verify.code).toBe('RATE_LIMITED');
    ok(await b.gql(SETTLE, { input: { reservationId: big.id, tokens: 100 } }));
    const small = await reserve(a, key.secret, 100);
    expect(small.id).not.toBeNull();
    ok(await a.gql(SETTLE, { input: { reservationId: small.id, tokens: 700 } }));
    // 100 + 700 taken: 200 left, on either instance.
    expect((await reserve(b, key.secret, 201)).verify.code).toBe('RATE_LIMITED');
    expect((await reserve(a, key.secret, 200)).id).not.toBeNull();
  });
});
