import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import { KeywardProcesses, ProcessResult } from './helpers/processes';
import { isWellFormedSecret } from '../src/auth/key-format';

/**
 * The CLI commands that talk to a running keyward (`orgs`, `keys`, `sessions`, `usage`,
 * `verify`): each test spawns the built `bin/keyward.js` (jest's globalSetup rebuilds dist/
 * when stale) against an in-process server, with KEYWARD_URL/KEYWARD_API_KEY in the
 * environment and a temp dir as working directory (no `.env` is picked up).
 */
const SECRET = /kw_(live|test)_[0-9A-Za-z]{38}/g;
const WARNING = 'Store this secret now: it will not be shown again.';
const DAY_MS = 86_400_000;

jest.setTimeout(60_000);

interface RunOptions {
  /** KEYWARD_API_KEY; default the platform admin key; null leaves it unset. */
  key?: string | null;
  /** KEYWARD_URL; default the test server's. */
  url?: string;
  /** Written to the child's standard input. */
  input?: string;
}

const processes = new KeywardProcesses();
let server: TestServer;
let cwd: string;
let adminKeyId: string;

beforeAll(async () => {
  server = await startTestServer();
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-cli-'));
  adminKeyId = (await server.gql('{ viewer { apiKey { id } } }')).body.data.viewer.apiKey.id;
});

afterAll(async () => {
  await server.close();
  fs.rmSync(cwd, { recursive: true, force: true });
});

function keyward(args: string[], options: RunOptions = {}): Promise<ProcessResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['KEYWARD_URL', 'KEYWARD_API_KEY', 'DATABASE_URL', 'KEYWARD_PEPPER', 'KEYWARD_DATA_DIR']) delete env[name];
  env.KEYWARD_URL = options.url ?? server.url;
  const key = options.key === undefined ? server.adminKey : options.key;
  if (key !== null) env.KEYWARD_API_KEY = key;
  return processes.cli(args, env, cwd, options.input);
}

/** Runs a command with --json, expects exit code 0 and one JSON document on stdout. */
async function keywardJson<T = any>(args: string[], options: RunOptions = {}): Promise<T> {
  const result = await keyward([...args, '--json'], options);
  if (result.code !== 0) throw new Error(`keyward ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as T;
}

/** Exit code 1, nothing on stdout, and one line on stderr ending in the refusal code. */
function expectCliRefused(result: ProcessResult, code: string): void {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: '' });
  expect(result.stderr).toMatch(new RegExp(`^keyward: .+ \\(${code}\\)\\n$`));
}

function secretsIn(text: string): string[] {
  return [...text.matchAll(SECRET)].map((match) => match[0]);
}

function plus(ms: number): string {
  return new Date(server.clock.now().getTime() + ms).toISOString();
}

describe('keyward orgs', () => {
  it('orgs create --json prints the new organization with its name, slug, maxKeys and quotas', async () => {
    const name = uniqueName('Acme');
    const slug = `acme-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const organization = await keywardJson(['orgs', 'create', '--name', name, '--slug', slug, '--max-keys', '5', '--quota', 'REQUESTS:MONTH:1000', '--quota', 'tokens:day:50']);
    expect(organization).toMatchObject({ name, slug, status: 'ACTIVE', maxKeys: 5, sessionBalance: 0 });
    expect(organization.id).toMatch(/^org_[0-9a-z]{26}$/);
    expect(organization.quotas.map((quota: any) => [quota.meter, quota.period, quota.limit]).sort()).toEqual([['REQUESTS', 'MONTH', 1000], ['TOKENS', 'DAY', 50]]);

    const stored = await server.gql('query($id: ID) { organization(id: $id) { id name slug maxKeys } }', { id: organization.id });
    expect(stored.body.data.organization).toEqual({ id: organization.id, name, slug, maxKeys: 5 });
  });

  it('orgs create prints the organization as labelled fields in human form', async () => {
    const name = uniqueName('Human');
    const result = await keyward(['orgs', 'create', '--name', name]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const id = result.stdout.match(/Created organization (org_[0-9a-z]{26})\./)?.[1];
    expect(id).toBeDefined();
    expect(result.stdout).toMatch(new RegExp(`^Name: +${name}$`, 'm'));
    expect(result.stdout).toMatch(/^Status: +ACTIVE$/m);
    expect(result.stdout).toMatch(/^Max keys: +100$/m);
    expect(result.stdout).toContain('Quotas: none');
  });

  it('orgs list --json lists newest first and pages with --first and --after', async () => {
    const older = await createOrganization(server);
    const newer = await createOrganization(server);
    const page = await keywardJson(['orgs', 'list', '--first', '500']);
    const ids: string[] = page.nodes.map((organization: any) => organization.id);
    expect(ids.indexOf(newer.id)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(newer.id)).toBeLessThan(ids.indexOf(older.id));
    expect(page.totalCount).toBeGreaterThanOrEqual(ids.length);

    const first = await keywardJson(['orgs', 'list', '--first', '1']);
    expect(first.nodes).toHaveLength(1);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await keywardJson(['orgs', 'list', '--first', '1', '--after', first.pageInfo.endCursor]);
    expect(second.nodes).toHaveLength(1);
    expect(second.nodes[0].id).not.toBe(first.nodes[0].id);
    expect(ids.indexOf(second.nodes[0].id)).toBe(ids.indexOf(first.nodes[0].id) + 1);
  });

  it('orgs list prints an aligned table with a header row and the organizations', async () => {
    const organization = await createOrganization(server);
    const result = await keyward(['orgs', 'list', '--first', '500']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID +NAME +SLUG +STATUS +MAX KEYS +SESSIONS +CREATED$/);
    const row = lines.find((line) => line.startsWith(organization.id));
    expect(row).toBeDefined();
    expect(row).toContain(organization.name);
    expect(row).toContain(organization.slug);
    // Columns are aligned: the NAME column starts at the same offset on the header and the row.
    expect(row!.indexOf(organization.name)).toBe(lines[0].indexOf('NAME'));
    expect(result.stdout).toMatch(/\d+ shown of \d+\./);
  });

  it("orgs show prints the caller's organization by default and another one by id", async () => {
    const own = await keywardJson(['orgs', 'show']);
    expect(own).toMatchObject({ id: server.platformOrganizationId, name: 'Platform', status: 'ACTIVE' });

    const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
    const shown = await keywardJson(['orgs', 'show', organization.id]);
    expect(shown).toMatchObject({ id: organization.id, name: organization.name, slug: organization.slug });

    const human = await keyward(['orgs', 'show', organization.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^ID: +${organization.id}$`, 'm'));
    expect(human.stdout).toMatch(/^METER +PERIOD +LIMIT +USED +REMAINING +USED % +RESETS AT$/m);
    expect(human.stdout).toMatch(/^REQUESTS +DAY +10 +0 +10 +0\.0%/m);
  });

  it('orgs suspend and activate switch the status, and the suspended organization\'s keys are refused meanwhile', async () => {
    const { organizationId, key } = await createTenant(server);
    const suspended = await keywardJson(['orgs', 'suspend', organizationId]);
    expect(suspended).toMatchObject({ id: organizationId, status: 'SUSPENDED' });
    const refused = await keyward(['keys', 'list'], { key: key.secret });
    expectCliRefused(refused, 'ORGANIZATION_SUSPENDED');

    const activated = await keyward(['orgs', 'activate', organizationId]);
    expect(activated.code).toBe(0);
    expect(activated.stdout).toContain(`Organization ${organizationId}`);
    expect(activated.stdout).toContain('is now ACTIVE');
    expect((await keyward(['keys', 'list'], { key: key.secret })).code).toBe(0);
  });

  it("refuses orgs show of another organization with a tenant's key: exit 1, NOT_FOUND", async () => {
    const { key } = await createTenant(server);
    const other = await createOrganization(server);
    expectCliRefused(await keyward(['orgs', 'show', other.id], { key: key.secret }), 'NOT_FOUND');
  });

  it('refuses orgs create to a key without platform:admin: exit 1, INSUFFICIENT_SCOPE, nothing created', async () => {
    const { key } = await createTenant(server);
    const name = uniqueName('Nope');
    expectCliRefused(await keyward(['orgs', 'create', '--name', name], { key: key.secret }), 'INSUFFICIENT_SCOPE');
    const page = await keywardJson(['orgs', 'list', '--first', '500']);
    expect(page.nodes.map((organization: any) => organization.name)).not.toContain(name);
  });
});

describe('keyward keys', () => {
  it('keys create --json returns the secret and the key with every option applied', async () => {
    const organization = await createOrganization(server);
    const created = await keywardJson([
      'keys', 'create', '--org', organization.id, '--name', 'Inference bot', '--preset', 'inference', '--scope', 'models:read',
      '--env', 'test', '--expires-in-days', '30', '--ip', '10.0.0.0/8', '--ip', '192.168.1.7', '--rate-limit', 'burst:5:1',
      '--quota', 'TOKENS:MONTH:1000', '--max-cost', '10', '--owner-email', 'bot@example.com', '--external-id', 'ext-42',
      '--meta', '{"plan":"pro","seats":3}',
    ]);
    expect(Object.keys(created).sort()).toEqual(['apiKey', 'secret']);
    expect(created.secret).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
    expect(isWellFormedSecret(created.secret)).toBe(true);
    expect(created.apiKey).toMatchObject({
      organizationId: organization.id,
      name: 'Inference bot',
      environment: 'TEST',
      status: 'ACTIVE',
      hint: `${created.secret.slice(0, 8)}…${created.secret.slice(-4)}`,
      scopes: ['inference:*', 'models:read', 'usage:read'],
      ipAllowlist: ['10.0.0.0/8', '192.168.1.7/32'],
      rateLimits: [{ name: 'burst', limit: 5, windowSeconds: 1 }],
      maxCostPerRequest: 10,
      ownerEmail: 'bot@example.com',
      externalId: 'ext-42',
      meta: { plan: 'pro', seats: 3 },
      expiresAt: plus(30 * DAY_MS),
      revokedAt: null,
    });
    expect(created.apiKey.id).toMatch(/^key_[0-9a-z]{26}$/);
    expect(created.apiKey.quotas.map((quota: any) => [quota.meter, quota.period, quota.limit])).toEqual([['TOKENS', 'MONTH', 1000]]);
  });

  it('keys create prints the secret exactly once, followed by the warning to store it', async () => {
    const { organizationId } = await createTenant(server);
    const result = await keyward(['keys', 'create', '--org', organizationId, '--name', 'Human key']);
    expect(result.code).toBe(0);
    const secrets = secretsIn(result.stdout);
    expect(secrets).toHaveLength(1);
    expect(isWellFormedSecret(secrets[0])).toBe(true);
    expect(result.stdout).toContain(`Secret: ${secrets[0]}\n${WARNING}\n`);
    expect(result.stdout.split(WARNING)).toHaveLength(2);
    expect(result.stdout).toMatch(/Created API key key_[0-9a-z]{26}\./);
    expect(result.stdout).toMatch(/^Name: +Human key$/m);
    expect(result.stdout).toMatch(/^Scopes: +audit:read, keys:read, org:read, sessions:read, usage:read, webhooks:read$/m);
    expect(result.stdout).toMatch(/^Rate limits: +per-minute 60\/60s, per-hour 1000\/3600s$/m);
    expect(result.stderr).toBe('');
  });

  it('keys create --json prints no warning text, only the JSON document', async () => {
    const { organizationId } = await createTenant(server);
    const result = await keyward(['keys', 'create', '--org', organizationId, '--name', 'Quiet', '--json']);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(WARNING);
    expect(result.stderr).toBe('');
    const created = JSON.parse(result.stdout);
    expect(secretsIn(result.stdout)).toEqual([created.secret]);
  });

  it('keys create --no-rate-limit makes a key without rate limits', async () => {
    const { organizationId } = await createTenant(server);
    const created = await keywardJson(['keys', 'create', '--org', organizationId, '--name', 'Service', '--no-rate-limit', '--preset', 'WRITE']);
    expect(created.apiKey.rateLimits).toEqual([]);
    expect(created.apiKey.scopes).toEqual(['audit:read', 'keys:read', 'keys:write', 'org:read', 'org:write', 'sessions:read', 'sessions:write', 'usage:read', 'usage:write', 'webhooks:read', 'webhooks:write']);
  });

  it('keys list --json filters by organization, status, environment and search', async () => {
    const organization = await createOrganization(server);
    const live = await createKey(server, { organizationId: organization.id, name: 'alpha live' });
    const test = await createKey(server, { organizationId: organization.id, name: 'beta test', environment: 'TEST' });
    const disabled = await createKey(server, { organizationId: organization.id, name: 'gamma off' });
    await keywardJson(['keys', 'disable', disabled.id]);

    const all = await keywardJson(['keys', 'list', '--org', organization.id]);
    expect(all.nodes.map((key: any) => key.id)).toEqual([disabled.id, test.id, live.id]);
    expect(all.totalCount).toBe(3);
    expect((await keywardJson(['keys', 'list', '--org', organization.id, '--status', 'disabled'])).nodes.map((key: any) => key.id)).toEqual([disabled.id]);
    expect((await keywardJson(['keys', 'list', '--org', organization.id, '--env', 'test'])).nodes.map((key: any) => key.id)).toEqual([test.id]);
    expect((await keywardJson(['keys', 'list', '--org', organization.id, '--search', 'ALPHA'])).nodes.map((key: any) => key.id)).toEqual([live.id]);

    const first = await keywardJson(['keys', 'list', '--org', organization.id, '--first', '2']);
    expect(first.nodes.map((key: any) => key.id)).toEqual([disabled.id, test.id]);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const rest = await keywardJson(['keys', 'list', '--org', organization.id, '--first', '2', '--after', first.pageInfo.endCursor]);
    expect(rest.nodes.map((key: any) => key.id)).toEqual([live.id]);
    expect(rest.pageInfo.hasNextPage).toBe(false);
  });

  it("keys list prints a table of the organization's keys with their names, statuses and hints", async () => {
    const organization = await createOrganization(server);
    const one = await createKey(server, { organizationId: organization.id, name: 'first key' });
    const two = await createKey(server, { organizationId: organization.id, name: 'second key' });
    await keywardJson(['keys', 'revoke', one.id, '--reason', 'leaked']);
    const result = await keyward(['keys', 'list', '--org', organization.id]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID +NAME +ORGANIZATION +ENV +STATUS +HINT +REQUESTS +LAST USED$/);
    expect(lines[1]).toMatch(new RegExp(`^${two.id} +second key +${organization.id} +LIVE +ACTIVE +${escape(two.apiKey.hint)} +0 +-$`));
    expect(lines[2]).toMatch(new RegExp(`^${one.id} +first key +${organization.id} +LIVE +REVOKED +${escape(one.apiKey.hint)} +0 +-$`));
    expect(result.stdout).toContain('2 shown of 2.');
    expect(secretsIn(result.stdout)).toEqual([]);
  });

  it('keys list prints "No keys." for an organization without keys', async () => {
    const organization = await createOrganization(server);
    const result = await keyward(['keys', 'list', '--org', organization.id]);
    expect(result).toEqual({ code: 0, stdout: 'No keys.\n', stderr: '' });
  });

  it('keys show prints the key, never its secret', async () => {
    const key = await createKey(server, { name: uniqueName('Shown'), ownerEmail: 'owner@example.com', meta: { team: 'search' } });
    const shown = await keywardJson(['keys', 'show', key.id]);
    expect(shown).toMatchObject({ id: key.id, name: key.apiKey.name, hint: key.apiKey.hint, ownerEmail: 'owner@example.com', meta: { team: 'search' } });
    expect(shown).not.toHaveProperty('secret');

    const human = await keyward(['keys', 'show', key.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^ID: +${key.id}$`, 'm'));
    expect(human.stdout).toMatch(new RegExp(`^Hint: +${escape(key.apiKey.hint)}$`, 'm'));
    expect(human.stdout).toMatch(/^Owner email: +owner@example\.com$/m);
    expect(human.stdout).toMatch(/^Meta: +\{"team":"search"\}$/m);
    expect(human.stdout).not.toContain(key.secret);
  });

  it('keys update changes only the given settings, and --no-… options clear them', async () => {
    const { organizationId } = await createTenant(server);
    const key = await createKey(server, { organizationId, ownerEmail: 'a@example.com', externalId: 'x-1', maxCostPerRequest: 3, expiresInDays: 10 });
    const updated = await keywardJson(['keys', 'update', key.id, '--name', 'Renamed', '--scope', 'keys:read,usage:read', '--rate-limit', 'slow:1:60', '--max-cost', '7', '--quota', 'REQUESTS:DAY:5']);
    expect(updated).toMatchObject({
      id: key.id,
      name: 'Renamed',
      scopes: ['keys:read', 'usage:read'],
      rateLimits: [{ name: 'slow', limit: 1, windowSeconds: 60 }],
      maxCostPerRequest: 7,
      ownerEmail: 'a@example.com',
      externalId: 'x-1',
      expiresAt: key.apiKey.expiresAt,
    });
    expect(updated.quotas.map((quota: any) => [quota.meter, quota.period, quota.limit])).toEqual([['REQUESTS', 'DAY', 5]]);

    const cleared = await keywardJson(['keys', 'update', key.id, '--no-rate-limit', '--no-max-cost', '--no-owner-email', '--no-external-id', '--no-expiry', '--no-quota']);
    expect(cleared).toMatchObject({ name: 'Renamed', rateLimits: [], maxCostPerRequest: null, ownerEmail: null, externalId: null, expiresAt: null, quotas: [] });

    const human = await keyward(['keys', 'update', key.id, '--expires-at', plus(DAY_MS)]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`Updated API key ${key.id}.`);
    expect(human.stdout).toMatch(new RegExp(`^Expires: +${plus(DAY_MS).replace('.000Z', 'Z')}$`, 'm'));
  });

  it('keys update without any change is a usage error (exit 2)', async () => {
    const key = await createKey(server, {});
    const result = await keyward(['keys', 'update', key.id]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('nothing to update');
    expect(result.stdout).toBe('');
  });

  it('keys update reports the server\'s BAD_USER_INPUT naming the field, and changes nothing', async () => {
    const key = await createKey(server, { name: 'Unchanged' });
    const result = await keyward(['keys', 'update', key.id, '--name', 'New', '--owner-email', 'not-an-email']);
    expectCliRefused(result, 'BAD_USER_INPUT');
    expect(result.stderr).toContain('ownerEmail');
    expect((await keywardJson(['keys', 'show', key.id])).name).toBe('Unchanged');
  });

  it('keys disable and enable switch the key between DISABLED and ACTIVE', async () => {
    const key = await createKey(server, {});
    expect(await keywardJson(['keys', 'disable', key.id])).toMatchObject({ id: key.id, status: 'DISABLED' });
    const refused = await keyward(['verify', key.secret]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('Refused: DISABLED\n');

    const enabled = await keyward(['keys', 'enable', key.id]);
    expect(enabled.code).toBe(0);
    expect(enabled.stdout).toBe(`API key ${key.id} (${key.apiKey.name}) is now ACTIVE.\n`);
    expect((await keyward(['verify', key.secret])).code).toBe(0);
  });

  it('keys revoke --reason revokes the key, records the reason and the caller, and the key is refused', async () => {
    const key = await createKey(server, {});
    const revoked = await keywardJson(['keys', 'revoke', key.id, '--reason', 'leaked in a log']);
    expect(revoked).toMatchObject({ id: key.id, status: 'REVOKED', revokedReason: 'leaked in a log', revokedBy: adminKeyId, revokedAt: server.clock.now().toISOString() });
    const result = await keyward(['verify', key.secret, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ valid: false, code: 'REVOKED' });
  });

  it('keys revoke without --reason is a usage error naming the option', async () => {
    const key = await createKey(server, {});
    const result = await keyward(['keys', 'revoke', key.id]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("required option '--reason <text>' not specified");
    expect((await keywardJson(['keys', 'show', key.id])).status).toBe('ACTIVE');
  });

  it('keys rotate prints the new secret exactly once with the warning; with no grace the old secret is refused at once', async () => {
    const key = await createKey(server, {});
    const result = await keyward(['keys', 'rotate', key.id]);
    expect(result.code).toBe(0);
    const secrets = secretsIn(result.stdout);
    expect(secrets).toHaveLength(1);
    expect(secrets[0]).not.toBe(key.secret);
    expect(result.stdout).toContain(`Secret: ${secrets[0]}\n${WARNING}\n`);
    const newId = result.stdout.match(/the new key is (key_[0-9a-z]{26})\./)?.[1];
    expect(newId).toBeDefined();
    expect(newId).not.toBe(key.id);
    expect(result.stdout).toMatch(new RegExp(`^Rotated from: +${key.id}$`, 'm'));

    const old = await keyward(['verify', key.secret]);
    expect(old).toEqual({ code: 1, stdout: 'Refused: EXPIRED\n', stderr: '' });
    const fresh = await keywardJson(['verify', secrets[0]]);
    expect(fresh).toMatchObject({ valid: true, code: 'VALID', keyId: newId });
  });

  it('keys rotate --json --grace-seconds returns the new key, its secret and when the old secret stops working', async () => {
    const key = await createKey(server, { name: 'Rotating', scopes: ['keys:read'] });
    const rotated = await keywardJson(['keys', 'rotate', key.id, '--grace-seconds', '3600']);
    expect(Object.keys(rotated).sort()).toEqual(['apiKey', 'previousKeyExpiresAt', 'secret']);
    expect(isWellFormedSecret(rotated.secret)).toBe(true);
    expect(rotated.previousKeyExpiresAt).toBe(plus(3600_000));
    expect(rotated.apiKey).toMatchObject({ name: 'Rotating', scopes: ['keys:read'], rotatedFromId: key.id, status: 'ACTIVE' });
    expect(rotated.apiKey.id).not.toBe(key.id);
    expect((await keywardJson(['verify', key.secret])).code).toBe('VALID');
  });

  it('keys delete answers {id, deleted: true}; the key is then NOT_FOUND and gone from the list', async () => {
    const organization = await createOrganization(server);
    const key = await createKey(server, { organizationId: organization.id });
    expect(await keywardJson(['keys', 'delete', key.id])).toEqual({ id: key.id, deleted: true });
    expectCliRefused(await keyward(['keys', 'show', key.id]), 'NOT_FOUND');
    expect((await keywardJson(['keys', 'list', '--org', organization.id])).nodes).toEqual([]);

    const again = await keyward(['keys', 'delete', key.id]);
    expectCliRefused(again, 'NOT_FOUND');
  });

  it('keys delete prints a confirmation in human form', async () => {
    const key = await createKey(server, {});
    expect(await keyward(['keys', 'delete', key.id])).toEqual({ code: 0, stdout: `Deleted API key ${key.id}.\n`, stderr: '' });
  });

  it("keys usage shows the key's requests, tokens and operations", async () => {
    const { key } = await createTenant(server);
    const other = await createKey(server, { organizationId: key.organizationId });
    await recordUsage(key.id, 'POST /v1/chat', 120, 0.25);
    await recordUsage(key.id, 'POST /v1/chat', 30, 0.05);
    await recordUsage(other.id, 'POST /v1/embed', 999, 1);

    const usage = await keywardJson(['keys', 'usage', key.id]);
    expect(usage).toMatchObject({ requests: 2, errors: 0, tokens: 150 });
    expect(usage.costUsd).toBeCloseTo(0.3, 10);
    expect(usage.byOperation.map((bucket: any) => [bucket.key, bucket.requests, bucket.tokens])).toEqual([['POST /v1/chat', 2, 150]]);
    expect(usage.byApiKey.map((bucket: any) => bucket.key)).toEqual([key.id]);

    const human = await keyward(['keys', 'usage', key.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Requests: +2$/m);
    expect(human.stdout).toMatch(/^Tokens: +150$/m);
    expect(human.stdout).toMatch(/^OPERATION +REQUESTS +ERRORS +TOKENS +COST USD +AVG LATENCY MS$/m);
    expect(human.stdout).toMatch(/^POST \/v1\/chat +2 +0 +150 +0\.3000 +-$/m);
    expect(human.stdout).not.toContain('POST /v1/embed');
  });

  it('refuses keys create for another organization with a tenant key: exit 1, NOT_FOUND', async () => {
    const { key } = await createTenant(server);
    const other = await createOrganization(server);
    expectCliRefused(await keyward(['keys', 'create', '--org', other.id, '--name', 'intruder'], { key: key.secret }), 'NOT_FOUND');
    expect((await keywardJson(['keys', 'list', '--org', other.id])).nodes).toEqual([]);
  });

  it('refuses keys create over maxKeys with exit 1 and KEY_LIMIT_EXCEEDED', async () => {
    const organization = await createOrganization(server, { maxKeys: 1 });
    await createKey(server, { organizationId: organization.id });
    expectCliRefused(await keyward(['keys', 'create', '--org', organization.id, '--name', 'one too many']), 'KEY_LIMIT_EXCEEDED');
  });
});

let idempotency = 0;
async function recordUsage(apiKeyId: string, operation: string, tokens: number, costUsd: number): Promise<void> {
  idempotency += 1;
  const response = await server.gql(
    'mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }',
    { input: { apiKeyId, operation, tokens, costUsd, statusCode: 200, idempotencyKey: `cli-${process.pid}-${idempotency}` } },
  );
  if (response.body.data?.recordUsage?.recorded !== true) throw new Error(`recordUsage failed: ${JSON.stringify(response.body)}`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('keyward usage', () => {
  it('usage --org sums the organization, --key narrows it to one key, and --from/--to choose the range', async () => {
    const { organizationId, key } = await createTenant(server);
    const second = await createKey(server, { organizationId });
    await recordUsage(key.id, 'chat', 10, 0.5);
    await recordUsage(second.id, 'embed', 5, 0.25);

    const organization = await keywardJson(['usage', '--org', organizationId]);
    expect(organization).toMatchObject({ requests: 2, tokens: 15, costUsd: 0.75 });
    expect(organization.byApiKey.map((bucket: any) => [bucket.key, bucket.tokens]).sort()).toEqual([[key.id, 10], [second.id, 5]].sort());
    expect(organization.byDay.map((bucket: any) => bucket.key)).toEqual([server.clock.now().toISOString().slice(0, 10)]);

    const oneKey = await keywardJson(['usage', '--org', organizationId, '--key', second.id]);
    expect(oneKey).toMatchObject({ requests: 1, tokens: 5, costUsd: 0.25 });

    const earlier = await keywardJson(['usage', '--org', organizationId, '--from', '2025-01-01', '--to', '2025-02-01T00:00:00Z']);
    expect(earlier).toMatchObject({ from: '2025-01-01T00:00:00.000Z', to: '2025-02-01T00:00:00.000Z', requests: 0, tokens: 0, byOperation: [] });
  });

  it('usage prints the totals and the breakdowns by operation, key and day', async () => {
    const { organizationId, key } = await createTenant(server);
    await recordUsage(key.id, 'summarize', 42, 0.125);
    const result = await keyward(['usage', '--org', organizationId]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Requests: +1$/m);
    expect(result.stdout).toMatch(/^Cost \(USD\): +0\.1250$/m);
    for (const title of ['By operation:', 'By key:', 'By day:']) expect(result.stdout).toContain(title);
    expect(result.stdout).toMatch(/^summarize +1 +0 +42 +0\.1250 +-$/m);
    expect(result.stdout).toMatch(new RegExp(`^${key.id} +1 +0 +42 +0\\.1250 +-$`, 'm'));
  });

  it('refuses a malformed --from as a usage error (exit 2) naming the option', async () => {
    const result = await keyward(['usage', '--from', 'last tuesday']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("option '--from <date>' argument 'last tuesday' is invalid");
  });
});

describe('keyward sessions', () => {
  it('sessions credit adds purchased sessions once per idempotency key', async () => {
    const organization = await createOrganization(server);
    const args = ['sessions', 'credit', '--org', organization.id, '--sessions', '3', '--idempotency-key', 'pay-1'];
    expect(await keywardJson(args)).toEqual({ organizationId: organization.id, available: 3, purchased: 3, used: 0 });
    expect(await keywardJson(args)).toEqual({ organizationId: organization.id, available: 3, purchased: 3, used: 0 });
    const human = await keyward(['sessions', 'credit', '--org', organization.id, '--sessions', '2', '--idempotency-key', 'pay-2']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Available: +5$/m);
    expect(await keywardJson(['sessions', 'balance', '--org', organization.id])).toEqual({ organizationId: organization.id, available: 5, purchased: 5, used: 0 });
  });

  it('sessions create, current, list, show and terminate follow one session through its life', async () => {
    const { organizationId, key } = await createTenant(server);
    await keywardJson(['sessions', 'credit', '--org', organizationId, '--sessions', '1', '--idempotency-key', 'buy']);
    const tenant = { key: key.secret };

    const session = await keywardJson(['sessions', 'create', '--token-limit', '500', '--ttl-seconds', '600'], tenant);
    expect(session).toMatchObject({
      organizationId, apiKeyId: key.id, status: 'ACTIVE', tokenLimit: 500, tokensUsed: 0, tokensRemaining: 500,
      startedAt: server.clock.now().toISOString(), expiresAt: plus(600_000), endedAt: null,
    });
    expect(await keywardJson(['sessions', 'current'], tenant)).toMatchObject({ id: session.id, status: 'ACTIVE' });
    expect(await keywardJson(['sessions', 'show', session.id], tenant)).toMatchObject({ id: session.id, tokenLimit: 500 });
    const listed = await keywardJson(['sessions', 'list', '--status', 'active'], tenant);
    expect(listed.nodes.map((node: any) => node.id)).toEqual([session.id]);

    const table = await keyward(['sessions', 'list'], tenant);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID +STATUS +KEY +TOKENS USED +TOKEN LIMIT +REQUESTS +STARTED +EXPIRES$/);
    expect(table.stdout).toMatch(new RegExp(`^${session.id} +ACTIVE +${key.id} +0 +500 +0 `, 'm'));

    const terminated = await keywardJson(['sessions', 'terminate', session.id], tenant);
    expect(terminated).toMatchObject({ id: session.id, status: 'TERMINATED', endedAt: server.clock.now().toISOString() });
    expect(await keywardJson(['sessions', 'current'], tenant)).toBeNull();
    expect(await keyward(['sessions', 'current'], tenant)).toEqual({ code: 0, stdout: 'No active session.\n', stderr: '' });
    expect(await keywardJson(['sessions', 'balance'], tenant)).toMatchObject({ organizationId, available: 0, used: 1 });
  });

  it('sessions create prints the started session in human form', async () => {
    const { organizationId, key } = await createTenant(server);
    await keywardJson(['sessions', 'credit', '--org', organizationId, '--sessions', '1', '--idempotency-key', 'buy']);
    const result = await keyward(['sessions', 'create', '--token-limit', '1000'], { key: key.secret });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Started session \S+\.$/m);
    expect(result.stdout).toMatch(/^Status: +ACTIVE$/m);
    expect(result.stdout).toMatch(/^Tokens: +0 used of 1000 \(1000 left\)$/m);
  });

  it('refuses sessions create without credits: exit 1, SESSION_BALANCE_EMPTY', async () => {
    const { key } = await createTenant(server);
    expectCliRefused(await keyward(['sessions', 'create'], { key: key.secret }), 'SESSION_BALANCE_EMPTY');
  });

  it('refuses sessions credit without --idempotency-key as a usage error (exit 2)', async () => {
    const organization = await createOrganization(server);
    const result = await keyward(['sessions', 'credit', '--org', organization.id, '--sessions', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("required option '--idempotency-key <key>' not specified");
    expect(await keywardJson(['sessions', 'balance', '--org', organization.id])).toMatchObject({ purchased: 0 });
  });
});

describe('keyward verify', () => {
  it('exits 0 and prints VALID with the key, its organization and rate limits for a good key', async () => {
    const key = await createKey(server, { scopes: ['inference:run'] });
    const result = await keyward(['verify', key.secret, '--scope', 'inference:run']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Valid: VALID$/m);
    expect(result.stdout).toMatch(new RegExp(`^Key: +${key.id}$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^Organization: +${key.organizationId}$`, 'm'));
    expect(result.stdout).toMatch(/^per-minute +60 +59 +60 /m);
    expect(result.stderr).toBe('');
  });

  it('--json prints the verification result and counts the cost against the rate limits', async () => {
    const key = await createKey(server, { scopes: ['inference:run'], rateLimits: [{ name: 'tight', limit: 10, windowSeconds: 60 }] });
    const result = await keywardJson(['verify', key.secret, '--cost', '4', '--operation', 'POST /v1/predict']);
    expect(result).toMatchObject({ valid: true, code: 'VALID', keyId: key.id, organizationId: key.organizationId, environment: 'LIVE', scopes: ['inference:run'] });
    expect(result.rateLimits).toMatchObject([{ name: 'tight', limit: 10, remaining: 6 }]);
  });

  it('exits 1 and prints the code when the key lacks a required scope', async () => {
    const key = await createKey(server, { scopes: ['inference:run'] });
    const result = await keyward(['verify', key.secret, '--scope', 'inference:run', 'billing:read']);
    expect(result).toEqual({ code: 1, stdout: 'Refused: INSUFFICIENT_SCOPE\n', stderr: '' });
    const json = await keyward(['verify', key.secret, '--scope', 'billing:read', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, code: 'INSUFFICIENT_SCOPE' });
  });

  it('exits 1 with QUOTA_EXCEEDED when --cost is above the key\'s maxCostPerRequest', async () => {
    const key = await createKey(server, { maxCostPerRequest: 2 });
    expect(await keyward(['verify', key.secret, '--cost', '3'])).toEqual({ code: 1, stdout: 'Refused: QUOTA_EXCEEDED\n', stderr: '' });
  });

  it('exits 1 with NOT_FOUND for a malformed key', async () => {
    expect(await keyward(['verify', 'kw_live_not-a-real-key'])).toEqual({ code: 1, stdout: 'Refused: NOT_FOUND\n', stderr: '' });
  });

  it('reads the key from standard input when given -', async () => {
    const key = await createKey(server, {});
    const result = await keyward(['verify', '-', '--json'], { input: `${key.secret}\n` });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ valid: true, keyId: key.id });
  });
});

describe('keyward CLI errors and help', () => {
  it('revoking an unknown key exits 1 with "keyward: <message> (NOT_FOUND)" on stderr and nothing on stdout', async () => {
    const result = await keyward(['keys', 'revoke', 'key_00000000000000000000000000', '--reason', 'gone']);
    expectCliRefused(result, 'NOT_FOUND');
  });

  it('a bad --preset is a usage error: exit 2 naming the option and the allowed presets', async () => {
    const organization = await createOrganization(server);
    const result = await keyward(['keys', 'create', '--org', organization.id, '--name', 'x', '--preset', 'SUPERUSER']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain("option '--preset <preset>' argument 'SUPERUSER' is invalid");
    expect(result.stderr).toContain('READ, WRITE, ADMIN, INFERENCE');
    expect((await keywardJson(['keys', 'list', '--org', organization.id])).nodes).toEqual([]);
  });

  it('bad option values (--first, --quota, --rate-limit, --meta) are usage errors naming the option', async () => {
    const cases: Array<[string[], string]> = [
      [['keys', 'list', '--first', 'ten'], "option '--first <n>' argument 'ten' is invalid"],
      [['orgs', 'create', '--name', 'x', '--quota', 'REQUESTS:WEEK:5'], '"WEEK" is not one of DAY, MONTH, LIFETIME'],
      [['keys', 'create', '--name', 'x', '--rate-limit', 'fast:many:1'], "option '--rate-limit <name:limit:windowSeconds...>' argument 'fast:many:1' is invalid"],
      [['keys', 'create', '--name', 'x', '--meta', '[1,2]'], 'must be a JSON object'],
    ];
    for (const [args, message] of cases) {
      const result = await keyward(args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toContain(message);
    }
  });

  it('a server-side BAD_USER_INPUT exits 1 with the field in the message', async () => {
    const result = await keyward(['keys', 'list', '--first', '0']);
    expectCliRefused(result, 'BAD_USER_INPUT');
    expect(result.stderr).toContain('first');
  });

  it('an unreachable KEYWARD_URL exits 1 saying keyward is unreachable there (NETWORK_ERROR)', async () => {
    const result = await keyward(['orgs', 'list'], { url: 'http://127.0.0.1:9/graphql' });
    expectCliRefused(result, 'NETWORK_ERROR');
    expect(result.stderr).toContain('unreachable at http://127.0.0.1:9/graphql');
  });

  it('a missing KEYWARD_API_KEY exits 1 saying how to give one', async () => {
    const result = await keyward(['keys', 'list'], { key: null });
    expectCliRefused(result, 'UNAUTHENTICATED');
    expect(result.stderr).toContain('KEYWARD_API_KEY');
  });

  it('an unknown API key exits 1 with INVALID_API_KEY', async () => {
    const fake = await createKey(server, {});
    await keywardJson(['keys', 'delete', fake.id]);
    expectCliRefused(await keyward(['orgs', 'show'], { key: fake.secret }), 'INVALID_API_KEY');
  });

  it('--url and --api-key override KEYWARD_URL and KEYWARD_API_KEY', async () => {
    const { organizationId, key } = await createTenant(server);
    const shown = await keywardJson(['orgs', 'show', '--url', server.url, '--api-key', key.secret], { url: 'http://127.0.0.1:9/graphql', key: 'kw_live_wrong' });
    expect(shown.id).toBe(organizationId);
  });

  it('--help on the root lists every command group and the environment, exit 0', async () => {
    const result = await keyward(['--help']);
    expect(result.code).toBe(0);
    for (const command of ['init', 'migrate', 'orgs', 'keys', 'sessions', 'usage', 'verify']) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(result.stdout).toContain('KEYWARD_URL');
    expect(result.stdout).toContain('KEYWARD_API_KEY');
  });

  it('--help on a group and on a subcommand lists its commands and options, exit 0', async () => {
    const group = await keyward(['keys', '--help']);
    expect(group.code).toBe(0);
    for (const command of ['create', 'list', 'show', 'update', 'enable', 'disable', 'revoke', 'rotate', 'delete', 'usage']) expect(group.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));

    const create = await keyward(['keys', 'create', '--help']);
    expect(create.code).toBe(0);
    expect(create.stdout).toContain('Usage: keyward keys create [options]');
    for (const option of ['--org <id>', '--name <name>', '--preset <preset>', '--scope <scope...>', '--env <environment>', '--expires-in-days <n>', '--ip <cidr...>', '--rate-limit <name:limit:windowSeconds...>', '--quota <METER:PERIOD:LIMIT...>', '--max-cost <n>', '--owner-email <email>', '--external-id <id>', '--meta <json>', '--json', '--url <url>', '--api-key <secret>']) {
      expect(create.stdout).toContain(option);
    }
  });

  it('an unknown command or a group without a subcommand exits 2', async () => {
    const unknown = await keyward(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    const bare = await keyward(['sessions']);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: keyward sessions');
  });
});
