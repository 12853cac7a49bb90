import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';

/**
 * `keyward listen`: the built CLI (bin/keyward.js) as its own process, following a real server
 * over graphql-ws; Ctrl-C is a real SIGINT.
 */
const BIN = path.join(__dirname, '..', 'bin', 'keyward.js');
const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';
const WAIT_MS = 15_000;

jest.setTimeout(60_000);

let server: TestServer;
let cwd: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startTestServer();
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-listen-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
});

afterAll(async () => {
  await server.close();
  fs.rmSync(cwd, { recursive: true, force: true });
});

interface Listening {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Waits until stdout has a line matching `pattern`; returns that line. */
  line(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

function listen(args: string[], key: string = server.adminKey): Listening {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['KEYWARD_URL', 'KEYWARD_API_KEY', 'DATABASE_URL', 'KEYWARD_PEPPER', 'KEYWARD_DATA_DIR']) delete env[name];
  env.KEYWARD_URL = server.url;
  env.KEYWARD_API_KEY = key;
  const child = spawn(process.execPath, [BIN, 'listen', ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (chunk) => { stdout += chunk; for (const wake of waiters.splice(0)) wake(); });
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    async line(pattern) {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const found = stdout.split('\n').find((line) => pattern.test(line));
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`listen exited (${child.exitCode}) before printing ${pattern}:\n${stdout}\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`listen printed no line matching ${pattern} within ${WAIT_MS} ms:\n${stdout}\n${stderr}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
  };
}

describe('keyward listen', () => {
  it('prints the quota and rate-limit events a verifyKey causes, one timestamped line each, and exits 0 on Ctrl-C', async () => {
    const organization = await createOrganization(server, { quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 100 }] });
    const key = await createKey(server, { organizationId: organization.id, preset: 'INFERENCE', rateLimits: [{ name: 'per-minute', limit: 60, windowSeconds: 60 }] });
    const listening = listen(['--org', organization.id]);
    // The first lines are the current state: once they are there, the subscriptions are in place.
    await listening.line(/quota\s+REQUESTS\/MONTH 0 of 100 used/);
    await listening.line(new RegExp(`rate-limit\\s+per-minute 60 of 60 left .*key ${key.id}`));

    const verified = await server.gql(VERIFY, { input: { key: key.secret } });
    expect(verified.body.data.verifyKey).toEqual({ valid: true, code: 'VALID' });
    const quotaLine = await listening.line(/quota\s+REQUESTS\/MONTH 1 of 100 used \(1%\), 99 left — organization/);
    const windowLine = await listening.line(new RegExp(`rate-limit\\s+per-minute 59 of 60 left .*key ${key.id}`));
    for (const line of [quotaLine, windowLine]) expect(line).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z {2}/);
    expect(listening.stderr()).toContain(`Listening to organization ${organization.id}`);

    listening.child.kill('SIGINT');
    expect(await listening.exited).toBe(0);
    expect(listening.stderr()).toContain('Stopped.');
    expect(listening.stdout()).not.toContain(key.secret);
  });

  it('with --json prints one JSON object per event, and follows keys created while it runs', async () => {
    const tenant = await createTenant(server);
    const listening = listen(['--json'], tenant.key.secret);
    // The tenant's own ADMIN key has rate limits: its windows are the first events.
    await listening.line(/"type":"rate-limit"/);
    const name = uniqueName('listened key');
    const created = await createKey(server, { organizationId: tenant.organizationId, name, preset: 'INFERENCE', rateLimits: [{ name: 'per-second', limit: 5, windowSeconds: 1 }] });
    const event = JSON.parse(await listening.line(new RegExp(`"type":"key".*${created.id}`)));
    expect(event).toMatchObject({ type: 'key', data: { type: 'CREATED', apiKey: { id: created.id, name, status: 'ACTIVE' } } });
    expect(Date.parse(event.receivedAt)).not.toBeNaN();
    // The new key's window is followed too: a verification shows up.
    await listening.line(new RegExp(`"type":"rate-limit".*"apiKeyId":"${created.id}".*"remaining":5`));
    await server.gql(VERIFY, { input: { key: created.secret } });
    const window = JSON.parse(await listening.line(new RegExp(`"type":"rate-limit".*"apiKeyId":"${created.id}".*"remaining":4`)));
    expect(window.data).toMatchObject({ apiKeyId: created.id, name: 'per-second', limit: 5, remaining: 4 });
    listening.child.kill('SIGINT');
    expect(await listening.exited).toBe(0);
  });

  it('with --key follows that key only', async () => {
    const tenant = await createTenant(server);
    const key = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE', quotas: [{ meter: 'REQUESTS', period: 'DAY', limit: 10 }] });
    const other = await createKey(server, { organizationId: tenant.organizationId, preset: 'INFERENCE' });
    const listening = listen(['--key', key.id]);
    await listening.line(/quota\s+REQUESTS\/DAY 0 of 10 used/);
    await listening.line(/rate-limit\s+per-minute 60 of 60 left/);
    await server.gql(VERIFY, { input: { key: other.secret } });
    await server.gql(VERIFY, { input: { key: key.secret } });
    await listening.line(new RegExp(`quota\\s+REQUESTS/DAY 1 of 10 used .*key ${key.id}`));
    await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "listen test") { status } }', { id: key.id });
    await listening.line(new RegExp(`key\\s+REVOKED ${key.id}`));
    expect(listening.stdout()).not.toContain(other.id);
    listening.child.kill('SIGINT');
    expect(await listening.exited).toBe(0);
  });

  it("exits 1 with the server's reason when the key may not follow another organization", async () => {
    const tenant = await createTenant(server);
    const other = await createOrganization(server);
    const listening = listen(['--org', other.id], tenant.key.secret);
    expect(await listening.exited).toBe(1);
    expect(listening.stderr()).toMatch(/keyward: .+\((FORBIDDEN|NOT_FOUND)\)/);
  });
});
