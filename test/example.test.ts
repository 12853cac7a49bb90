import path from 'node:path';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, CreatedKey } from './helpers/fixtures';

/**
 * The runnable example (examples/protected-api.ts, built to dist/examples/protected-api.js)
 * as its own process, in front of a real keyward: the way an operator would run it. jest's
 * globalSetup builds it (and the client package it loads) when its sources changed.
 */
const ROOT = path.join(__dirname, '..');
const EXAMPLE = path.join(ROOT, 'dist', 'examples', 'protected-api.js');
const STARTUP_TIMEOUT_MS = 20_000;
const USAGE = 'query($range: UsageRange) { usage(range: $range) { tokens byOperation { key tokens errors } } }';

jest.setTimeout(120_000);

let server: TestServer;
let service: CreatedKey;
let example: ChildProcess | null = null;
let exampleUrl: string;
let output = '';

function startExample(env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EXAMPLE], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    example = child;
    const timer = setTimeout(() => reject(new Error(`the example did not start within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)), STARTUP_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /listening on (http:\/\/localhost:\d+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1].replace('localhost', '127.0.0.1'));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example exited with ${code}:\n${output}`));
    });
  });
}

beforeAll(async () => {
  server = await startTestServer();
  service = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify', 'usage:write'], rateLimits: [] });
  exampleUrl = await startExample({ PATH: process.env.PATH, KEYWARD_URL: server.url, KEYWARD_API_KEY: service.secret, PORT: '0' });
});

afterAll(async () => {
  if (example && example.exitCode === null && example.signalCode === null) {
    const exited = new Promise((resolve) => example!.once('exit', resolve));
    example.kill('SIGKILL');
    await exited;
  }
  await server?.close();
});

async function predict(key: string | null, prompt: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${exampleUrl}/v1/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key !== null && { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ prompt }),
  });
  return { status: response.status, body: await response.json() };
}

async function customerKey(input: Record<string, unknown>): Promise<CreatedKey> {
  const organization = await createOrganization(server);
  return createKey(server, { organizationId: organization.id, ...input });
}

describe('examples/protected-api', () => {
  it('answers its public health route without a key', async () => {
    const response = await fetch(`${exampleUrl}/health`);

    expect({ status: response.status, body: await response.json() }).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('serves POST /v1/predict to a key holding inference:run and records its tokens', async () => {
    const key = await customerKey({ preset: 'INFERENCE' });

    const answer = await predict(key.secret, 'x'.repeat(40));

    expect(answer).toEqual({ status: 200, body: { prediction: 'x'.repeat(40), tokens: 10, organizationId: key.organizationId } });
    let usage = (await server.gql(USAGE, { range: { apiKeyId: key.id } })).body.data.usage;
    for (let attempt = 0; attempt < 60 && usage.tokens === 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      usage = (await server.gql(USAGE, { range: { apiKeyId: key.id } })).body.data.usage;
    }
    expect(usage.byOperation).toEqual([{ key: 'POST /v1/predict', tokens: 10, errors: 0 }]);
  });

  it('refuses a request without a key with 401 UNAUTHENTICATED', async () => {
    const answer = await predict(null, 'hello');

    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
  });

  it('refuses a key without inference:run with 403 INSUFFICIENT_SCOPE', async () => {
    const key = await customerKey({ preset: 'READ' });

    const answer = await predict(key.secret, 'hello');

    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
  });

  it('refuses a revoked key with 401 KEY_REVOKED', async () => {
    const key = await customerKey({ preset: 'INFERENCE' });
    await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "leaked") { status } }', { id: key.id });

    const answer = await predict(key.secret, 'hello');

    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 401, code: 'KEY_REVOKED' });
  });

  it('refuses to start without KEYWARD_API_KEY, saying which variable is missing', () => {
    let failure: { status: number | null; stderr: string } | null = null;
    try {
      execFileSync(process.execPath, [EXAMPLE], { env: { PATH: process.env.PATH, PORT: '0' }, stdio: 'pipe', timeout: 10_000 });
    } catch (error) {
      const { status, stderr } = error as { status: number | null; stderr: Buffer };
      failure = { status, stderr: stderr.toString() };
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stderr).toContain('KEYWARD_API_KEY');
  });
});
