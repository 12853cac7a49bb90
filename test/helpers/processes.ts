import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { createTestDatabase, TestDatabase } from './database';
import { GraphQLResponse, Operation, postGraphQL, RequestOptions, TEST_PEPPER } from './server';

/**
 * keyward as separate processes (the built `bin/keyward.js` and `dist/src/main.js`; jest's
 * globalSetup rebuilds dist/ when stale), free ports, and a TCP proxy in front of a service.
 */

export const ROOT = path.join(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'keyward.js');
export const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
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
  /** performance.now() when it exited. */
  at: number;
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<Exit>;
  /** A GraphQL request with `options.key` (no default key). */
  gql<TData = any, TVariables = Record<string, unknown>>(query: Operation<TData, TVariables>, variables?: TVariables, options?: RequestOptions): Promise<GraphQLResponse<TData>>;
}

export interface EnvironmentOptions {
  /** REDIS_URL of the process. */
  redisUrl?: string;
  /** Without NODE_ENV, as `npm start` runs it (jest sets NODE_ENV=test, which libraries such as Apollo Server react to). */
  production?: boolean;
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
  async environment(options: EnvironmentOptions = {}): Promise<{ env: NodeJS.ProcessEnv; dataDir: string }> {
    const database = await createTestDatabase();
    this.databases.push(database);
    const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_DATA_DIR: database.dataDir, LOG_LEVEL: 'info' };
    for (const name of INHERITED_SETTINGS) delete env[name];
    if (options.production) delete env.NODE_ENV;
    if (database.config.kind === 'mysql') {
      env.DATABASE_URL = database.config.url;
      env.KEYWARD_PEPPER = TEST_PEPPER;
    }
    if (options.redisUrl) env.REDIS_URL = options.redisUrl;
    return { env, dataDir: database.dataDir };
  }

  /** `node <script> <args>` with its output piped (stdin piped when `input` is given). */
  spawn(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, withInput = false): ChildProcess {
    if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` (jest's globalSetup should have built it)`);
    const child = spawn(process.execPath, [script, ...args], { env, cwd, stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /** Runs `node <script> <args>` to its end; `input` is written to its standard input. */
  run(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, input?: string): Promise<ProcessResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(script, args, env, cwd, input !== undefined);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk) => { stdout += chunk; });
      child.stderr!.on('data', (chunk) => { stderr += chunk; });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
      if (input !== undefined) child.stdin!.end(input);
    });
  }

  /** `keyward <args>` (the built CLI). */
  cli(args: string[], env: NodeJS.ProcessEnv, cwd: string, input?: string): Promise<ProcessResult> {
    return this.run(BIN, args, env, cwd, input);
  }

  /** Starts `node dist/src/main.js` on a free port and waits until /healthz answers (at most 20 s). */
  async startServer(env: NodeJS.ProcessEnv, cwd: string): Promise<ServerProcess> {
    const port = await freePort();
    const child = this.spawn(MAIN, [], { ...env, PORT: String(port), HOST: '127.0.0.1' }, cwd);
    let output = '';
    child.stdout!.on('data', (chunk) => { output += chunk; });
    child.stderr!.on('data', (chunk) => { output += chunk; });
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
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
    return { child, url, output: () => output, exited, gql: (query, variables, options) => postGraphQL(url, null, query, variables, options) };
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

/**
 * A TCP proxy in front of a service. `stop()` plays the service going away: every open
 * connection is reset and new ones are reset as soon as they arrive; `resume()` forwards again.
 */
export class TcpProxy {
  private readonly connections = new Set<net.Socket>();
  private forwarding = true;

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const server = net.createServer((client) => {
      if (!proxy.forwarding) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(target.port, target.host);
      proxy.track(client);
      proxy.track(upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    });
    proxy = new TcpProxy(server, port);
    return proxy;
  }

  get isForwarding(): boolean {
    return this.forwarding;
  }

  /** The service "goes away": every current connection is reset, new ones are refused. */
  stop(): void {
    this.forwarding = false;
    for (const socket of this.connections) socket.resetAndDestroy();
    this.connections.clear();
  }

  /** The service "comes back". */
  resume(): void {
    this.forwarding = true;
  }

  async close(): Promise<void> {
    this.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: net.Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
  }
}

