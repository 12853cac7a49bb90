import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { createTestDatabase, TestDatabase } from './database';
import type { GraphQLResponse, RequestOptions } from './server';

/**
 * keyward as separate processes (the built `bin/keyward.js` and `dist/src/main.js`; jest's
 * globalSetup rebuilds dist/ when stale) and free ports. The same interface as the helpers
 * being consolidated on the test-infrastructure branch.
 */

export const ROOT = path.join(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'keyward.js');
export const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
export const PROCESS_PEPPER = 'process-test-pepper-0123456789abcdef';
const STARTUP_TIMEOUT_MS = 20_000;

/** A port of 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<Exit>;
  /** A GraphQL request with `options.key` (no default key). */
  gql<T = any>(query: string, variables?: Record<string, unknown>, options?: RequestOptions): Promise<GraphQLResponse<T>>;
}

/** Variables of the test run that would point a process elsewhere than its own fresh database. */
const INHERITED_SETTINGS = ['DATABASE_URL', 'KEYWARD_PEPPER', 'PORT', 'HOST', 'REDIS_URL', 'TRUST_PROXY', 'INTROSPECTION', 'SESSION_PRICE_USD'];

/**
 * The keyward processes of one test file, each with a fresh database (SQLite, or a new MariaDB
 * database when DATABASE_URL is mysql://). Processes run with their temp data dir as working
 * directory, so no `.env` is picked up. `cleanup()` (in afterEach) kills what is still running
 * and drops the databases.
 */
export class KeywardProcesses {
  private readonly children: ChildProcess[] = [];
  private readonly databases: TestDatabase[] = [];

  /** A fresh database and the environment that points the CLI and the server at it. */
  async environment(): Promise<{ env: NodeJS.ProcessEnv; dataDir: string }> {
    const database = await createTestDatabase();
    this.databases.push(database);
    const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_DATA_DIR: database.dataDir, LOG_LEVEL: 'info' };
    for (const name of INHERITED_SETTINGS) delete env[name];
    if (database.config.kind === 'mysql') {
      env.DATABASE_URL = database.config.url;
      env.KEYWARD_PEPPER = PROCESS_PEPPER;
    }
    return { env, dataDir: database.dataDir };
  }

  /** `node <script> <args>` with its output piped. */
  spawn(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): ChildProcess {
    if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` (jest's globalSetup should have built it)`);
    const child = spawn(process.execPath, [script, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** `keyward <args>` (the built CLI) to its end. */
  cli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<ProcessResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(BIN, args, env, cwd);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk) => { stdout += chunk; });
      child.stderr!.on('data', (chunk) => { stderr += chunk; });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** Starts `node dist/src/main.js` on a free port and waits until /healthz answers (at most 20 s). */
  async startServer(env: NodeJS.ProcessEnv, cwd: string): Promise<ServerProcess> {
    const port = await freePort();
    const child = this.spawn(MAIN, [], { ...env, PORT: String(port), HOST: '127.0.0.1' }, cwd);
    let output = '';
    child.stdout!.on('data', (chunk) => { output += chunk; });
    child.stderr!.on('data', (chunk) => { output += chunk; });
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited during start (code ${child.exitCode}):\n${output}`);
      try {
        const response = await fetch(`${base}/healthz`);
        if (response.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the server did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const url = `${base}/graphql`;
    const gql = async <T = any>(query: string, variables: Record<string, unknown> = {}, options: RequestOptions = {}): Promise<GraphQLResponse<T>> => {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(options.key && { authorization: `Bearer ${options.key}` }), ...options.headers },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as GraphQLResponse<T>['body'];
      return { status: response.status, headers: response.headers, body, code: body.errors?.[0]?.extensions?.code };
    };
    return { child, url, output: () => output, exited, gql };
  }

  /** Kills (SIGKILL) every process still running and drops every database. */
  async cleanup(): Promise<void> {
    for (const child of this.children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    for (const database of this.databases.splice(0)) await database.drop();
  }
}
