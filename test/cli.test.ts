import fs from 'node:fs';
import path from 'node:path';
import { USING_MYSQL } from './helpers/database';
import net from 'node:net';
import { KeywardProcesses, MAIN, ServerProcess } from './helpers/processes';
import { isWellFormedSecret } from '../src/auth/key-format';

/**
 * The built CLI (`bin/keyward.js`) and server (`dist/src/main.js`) as separate processes,
 * each test on a fresh database. jest's globalSetup rebuilds dist/ when it is stale.
 * Processes run with the temp data dir as working directory so no `.env` is picked up.
 */
const SECRET = /kw_(live|test)_[0-9A-Za-z]{38}/g;

jest.setTimeout(90_000);

const processes = new KeywardProcesses();
afterEach(() => processes.cleanup());

describe('keyward CLI', () => {
  it('init --json prints exactly one JSON line with organizationId, apiKeyId and secret, and exits 0', async () => {
    const { env, dataDir } = await processes.environment();
    const result = await processes.cli(['init', '--json'], env, dataDir);
    expect(result.code).toBe(0);
    expect(result.stdout.endsWith('\n')).toBe(true);
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    expect(lines).toHaveLength(1);
    const created = JSON.parse(lines[0]);
    expect(Object.keys(created).sort()).toEqual(['apiKeyId', 'organizationId', 'secret']);
    expect(created.organizationId).toMatch(/^org_[0-9a-z]{26}$/);
    expect(created.apiKeyId).toMatch(/^key_[0-9a-z]{26}$/);
    expect(created.secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
    expect(isWellFormedSecret(created.secret)).toBe(true);
    expect(result.stderr).not.toMatch(SECRET);
  });

  it('refuses a second init with exit code 1, a clear message on stderr and no secret', async () => {
    const { env, dataDir } = await processes.environment();
    const first = await processes.cli(['init', '--json'], env, dataDir);
    expect(first.code).toBe(0);
    const { organizationId } = JSON.parse(first.stdout);

    for (const args of [['init'], ['init', '--json']]) {
      const again = await processes.cli(args, env, dataDir);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already initialized/i);
      // "changes nothing": the platform organization is still the first one.
      expect(again.stderr).toContain(organizationId);
      expect(again.stdout).not.toMatch(SECRET);
      expect(again.stderr).not.toMatch(SECRET);
      expect(again.stdout.trim()).toBe('');
    }
  });

  it('prints the secret exactly once in the human init output, with the ids and a warning to store it', async () => {
    const { env, dataDir } = await processes.environment();
    const result = await processes.cli(['init'], env, dataDir);
    expect(result.code).toBe(0);
    const secrets: string[] = [...result.stdout.matchAll(SECRET)].map((match) => match[0]);
    expect(secrets).toHaveLength(1);
    expect(isWellFormedSecret(secrets[0])).toBe(true);
    expect(result.stdout).toMatch(/org_[0-9a-z]{26}/);
    expect(result.stdout).toMatch(/key_[0-9a-z]{26}/);
    expect(result.stdout).toMatch(/only this once/i);
    expect(result.stderr).not.toMatch(SECRET);
  });

  it('migrate applies the migrations on a fresh database and exits 0, and init works after it', async () => {
    const { env, dataDir } = await processes.environment();
    const migrated = await processes.cli(['migrate'], env, dataDir);
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toContain('migrations applied');
    const again = await processes.cli(['migrate'], env, dataDir);
    expect(again.code).toBe(0);
    const init = await processes.cli(['init', '--json'], env, dataDir);
    expect(init.code).toBe(0);
    expect(isWellFormedSecret(JSON.parse(init.stdout).secret)).toBe(true);
  });

  (USING_MYSQL ? it.skip : it)('generates the SQLite pepper into the data dir with mode 0600', async () => {
    const { env, dataDir } = await processes.environment();
    expect((await processes.cli(['init', '--json'], env, dataDir)).code).toBe(0);
    const stat = fs.statSync(path.join(dataDir, 'pepper'));
    expect(stat.mode & 0o777).toBe(0o600);
    expect(fs.existsSync(path.join(dataDir, 'keyward.sqlite'))).toBe(true);
  });

  it('exits 1 naming the variable when the configuration is bad', async () => {
    const { env, dataDir } = await processes.environment();
    const result = await processes.cli(['init', '--json'], { ...env, LOG_LEVEL: 'loud' }, dataDir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('LOG_LEVEL');
    expect(result.stdout).not.toMatch(SECRET);
  });

  it('init --org-name names the platform organization', async () => {
    const { env, dataDir } = await processes.environment();
    const init = await processes.cli(['init', '--json', '--org-name', 'Acme Platform'], env, dataDir);
    expect(init.code).toBe(0);
    const { secret, organizationId } = JSON.parse(init.stdout);
    const server = await processes.startServer(env, dataDir);
    const response = await server.gql('{ viewer { organization { id name } } }', {}, { key: secret });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer.organization).toEqual({ id: organizationId, name: 'Acme Platform' });
    server.child.kill('SIGTERM');
    expect(await server.exited).toMatchObject({ code: 0, signal: null });
  });
});

describe('keyward server process', () => {
  it('starts on PORT/HOST, accepts the init secret over HTTP and exits 0 on SIGTERM', async () => {
    const { env, dataDir } = await processes.environment();
    const init = await processes.cli(['init', '--json'], env, dataDir);
    expect(init.code).toBe(0);
    const { secret, organizationId, apiKeyId } = JSON.parse(init.stdout);

    const server = await processes.startServer(env, dataDir);
    const response = await server.gql('{ viewer { organization { id name } apiKey { id } scopes } }', {}, { key: secret });
    expect(response.status).toBe(200);
    expect(response.body.data.viewer).toEqual({ organization: { id: organizationId, name: 'Platform' }, apiKey: { id: apiKeyId }, scopes: ['*'] });

    const ready = await fetch(server.url.replace('/graphql', '/readyz'));
    expect(ready.status).toBe(200);

    server.child.kill('SIGTERM');
    expect(await server.exited).toMatchObject({ code: 0, signal: null });
    expect(server.output()).not.toMatch(SECRET);
    expect(server.output()).toContain('listening');
  });

  it('refuses a bad configuration at start with exit code 1 and a message naming the variable', async () => {
    const { env, dataDir } = await processes.environment();
    const child = processes.spawn(MAIN, [], { ...env, PORT: 'abc' }, dataDir);
    let stderr = '';
    child.stderr!.on('data', (chunk) => { stderr += chunk; });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).toBe(1);
    expect(stderr).toContain('PORT');
  });
});

describe('the first hour', () => {
  it('init says which database it used, in the human output and (with --json) on stderr', async () => {
    const { env, dataDir } = await processes.environment();
    const human = await processes.cli(['init'], env, dataDir);
    expect(human.code).toBe(0);
    const database = USING_MYSQL ? /Database: +MySQL\/MariaDB database kw_test_[0-9a-f]+ on 127\.0\.0\.1:3306/ : new RegExp(`Database: +SQLite database ${path.join(dataDir, 'keyward.sqlite')} \\(data directory ${dataDir}\\)`);
    expect(human.stdout).toMatch(database);
    expect(human.stdout).not.toContain('keyward:keyward@');

    const other = await processes.environment();
    const json = await processes.cli(['init', '--json'], other.env, other.dataDir);
    expect(json.code).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    expect(json.stderr).toMatch(USING_MYSQL ? /initialized MySQL\/MariaDB database kw_test_/ : /initialized SQLite database /);
  });

  it('keys create --direct makes a working platform key on the database when the init secret is lost, and it is audited', async () => {
    const { env, dataDir } = await processes.environment();
    const init = await processes.cli(['init', '--json'], env, dataDir);
    const lost = JSON.parse(init.stdout);
    const recovered = await processes.cli(['keys', 'create', '--direct', '--name', 'platform admin (recovered)', '--scope', '*', '--no-rate-limit', '--json'], env, dataDir);
    expect(recovered.code).toBe(0);
    expect(recovered.stderr).toContain('created directly in');
    const created = JSON.parse(recovered.stdout);
    expect(created.apiKey).toMatchObject({ organizationId: lost.organizationId, name: 'platform admin (recovered)', scopes: ['*'] });
    expect(isWellFormedSecret(created.secret)).toBe(true);

    const server = await processes.startServer(env, dataDir);
    // The new key works, revokes the lost one, and the audit log says the key came from no key.
    const revoked = await server.gql(`mutation { revokeApiKey(id: "${lost.apiKeyId}", reason: "secret lost") { status } }`, {}, { key: created.secret });
    expect(revoked.body.data.revokeApiKey.status).toBe('REVOKED');
    const audit = await server.gql('{ auditLog(first: 10) { nodes { action actorKeyId targetId } } }', {}, { key: created.secret });
    expect(audit.body.data.auditLog.nodes).toEqual(expect.arrayContaining([
      { action: 'api_key.create', actorKeyId: null, targetId: created.apiKey.id },
      { action: 'api_key.revoke', actorKeyId: created.apiKey.id, targetId: lost.apiKeyId },
    ]));
    const refused = await server.gql('{ viewer { scopes } }', {}, { key: lost.secret });
    expect(refused.status).toBe(401);
    server.child.kill('SIGTERM');
    expect(await server.exited).toMatchObject({ code: 0, signal: null });
  });

  it('keys create --direct before init says to run init first and creates no key', async () => {
    const { env, dataDir } = await processes.environment();
    const result = await processes.cli(['keys', 'create', '--direct', '--name', 'too early'], env, dataDir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no platform organization in .+: run `keyward init` first \(NOT_FOUND\)/);
  });

  it('says in one line that the port is in use, without a stack trace, and exits 1', async () => {
    const { env, dataDir } = await processes.environment();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const child = processes.spawn(MAIN, [], { ...env, PORT: String(port), HOST: '127.0.0.1' }, dataDir);
      let output = '';
      child.stdout!.on('data', (chunk) => { output += chunk; });
      child.stderr!.on('data', (chunk) => { output += chunk; });
      const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
      expect(code).toBe(1);
      expect(output).toContain(`keyward: port ${port} is in use; set PORT`);
      expect(output).not.toMatch(/\bat \w+ \(|Internal error emitted|EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('tells at start what to do next: run init on a fresh database, open the console once initialized', async () => {
    const { env, dataDir } = await processes.environment();
    const fresh = await processes.startServer(env, dataDir);
    const origin = fresh.url.replace('/graphql', '');
    await waitForOutput(fresh, 'npx keyward init');
    expect(fresh.output()).toContain(`then open ${origin}/console and paste the key it prints`);
    fresh.child.kill('SIGTERM');
    await fresh.exited;

    expect((await processes.cli(['init', '--json'], env, dataDir)).code).toBe(0);
    const initialized = await processes.startServer(env, dataDir);
    await waitForOutput(initialized, `console: ${initialized.url.replace('/graphql', '')}/console`);
    initialized.child.kill('SIGTERM');
    await initialized.exited;
  });

  it('a KEYWARD_URL without the /graphql path gets a hint naming it', async () => {
    const { env, dataDir } = await processes.environment();
    const result = await processes.cli(['keys', 'list'], { ...env, KEYWARD_URL: 'http://127.0.0.1:4999', KEYWARD_API_KEY: 'kw_live_x' }, dataDir);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('keyward: KEYWARD_URL http://127.0.0.1:4999 has no path: the GraphQL endpoint is /graphql, e.g. http://127.0.0.1:4999/graphql (BAD_USER_INPUT)\n');
  });
});

/** Waits (at most 10 s) until the server process has printed `text`. */
async function waitForOutput(server: ServerProcess, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!server.output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`the server never printed ${JSON.stringify(text)}:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
