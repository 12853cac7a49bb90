/**
 * Processes and plumbing for the benchmark (bench/run.ts and the parts it runs: soak.ts, subscribers.ts):
 * command-line options, the child processes they fork (always ended here, whatever happens),
 * a fresh keyward data dir bootstrapped with `keyward init --json`, GraphQL over HTTP for
 * setup, and the small pieces of reporting both print (machine line, percentiles, CPU profile
 * summary).
 *
 * For the scale-out pass of bench/run.ts: probes of Redis and MySQL/MariaDB, and a fresh
 * database on that server that is dropped at the end (or by cleanUp when the run fails).
 *
 * An orchestrator calls `begin(name)` first: it names the orchestrator in failure messages and
 * installs the exit and signal handlers that kill its children and remove its data dir.
 */
import { ChildProcess, execFile, execFileSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { createConnection } from 'mysql2/promise';

/** The working copy (this file runs from dist/bench). */
export const ROOT = path.resolve(__dirname, '..', '..');

// ---------------------------------------------------------------------------------------------
// Child processes: started here, always ended here.

const children = new Set<ChildProcess>();
let dataDir: string | null = null;
let benchName = 'bench';
let begun = false;

/** Names the orchestrator in failure messages; kills children and removes the data dir on exit. */
export function begin(name: string): void {
  benchName = name;
  if (begun) return;
  begun = true;
  process.on('exit', cleanUp);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      cleanUp();
      process.exit(130);
    });
  }
}

/** Synchronous clean-up steps registered by the orchestrator (run by cleanUp, newest first). */
const cleanUpSteps = new Set<() => void>();

/** Adds a synchronous step to cleanUp (it also runs on failure and on signals); returns its removal. */
export function onCleanUp(step: () => void): () => void {
  cleanUpSteps.add(step);
  return () => cleanUpSteps.delete(step);
}

export function cleanUp(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const step of [...cleanUpSteps].reverse()) {
    cleanUpSteps.delete(step);
    try {
      step();
    } catch (error) {
      console.error(`${benchName}: clean-up step failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
}

export function fail(message: string): never {
  console.error(`\n${benchName}: ${message}`);
  cleanUp();
  process.exit(1);
}

/** Runs the orchestrator's main, then cleans up; any error fails the run. */
export function runMain(main: () => Promise<void>): void {
  main()
    .then(() => cleanUp())
    .catch((error) => fail(error instanceof Error ? (error.stack ?? error.message) : String(error)));
}

/**
 * Forks a compiled bench script (next to this file) with IPC; it is killed if this process ends.
 * env and execArgv default to fork's (this process's).
 */
export function forkChild(script: string, env?: NodeJS.ProcessEnv, execArgv?: string[], stdout: 'inherit' | 'ignore' = 'inherit'): ChildProcess {
  const child = fork(path.join(__dirname, script), [], { env, execArgv, stdio: ['ignore', stdout, 'inherit', 'ipc'] });
  children.add(child);
  return child;
}

/**
 * Forks a bench server and resolves with its port once it says it is ready ({ type: 'ready', port }).
 * Its stdout (keyward's JSON logs, access lines included) goes to /dev/null unless `stdout` says otherwise.
 */
export function startServer(label: string, script: string, env: NodeJS.ProcessEnv, execArgv: string[] = [], stdout: 'inherit' | 'ignore' = 'ignore'): Promise<{ child: ChildProcess; port: number }> {
  const child = forkChild(script, env, execArgv, stdout);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within 30 s`)), 30_000);
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message?.type !== 'ready' || !message.port) return;
      clearTimeout(timer);
      resolve({ child, port: message.port });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${signal ?? `code ${code}`}) before it was ready`));
    });
  });
}

/** Asks a server to stop cleanly (keyward flushes usage and writes its CPU profile), then kills it. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** Closes a child's IPC channel (its cue to end) and waits for it to exit. */
export async function disconnectChild(child: ChildProcess): Promise<void> {
  child.disconnect();
  await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  children.delete(child);
}

/**
 * Pins every thread of process `pid` to CPU `cpu` (taskset). Returns false when that is not
 * possible here (no taskset, or fewer CPUs), so the caller can say the run was not pinned.
 */
export function pin(pid: number, cpu: number): boolean {
  if (os.cpus().length <= cpu) return false;
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** VmRSS of a process in MiB, from /proc. */
export function rssMib(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  if (!line) fail(`no VmRSS in /proc/${pid}/status`);
  return Number(line.split(/\s+/)[1]) / 1024;
}

/** CPU time (user + system, all threads) a process has used so far, in milliseconds (from /proc). */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15, in clock ticks (1/100 s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The 1-, 5- and 15-minute load averages, e.g. "1.52 0.98 0.77". */
export function loadAverage(): string {
  return os.loadavg().map((value) => value.toFixed(2)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Options: --name=value and --flag

const argv = process.argv.slice(2);

export function flag(name: string): boolean {
  return argv.includes(`--${name}`);
}

/** The raw value of --name=value, if given. */
export function textOption(name: string): string | undefined {
  return argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
}

export function positiveNumber(name: string, fallback: number): number {
  const raw = textOption(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number, got "${raw}"`);
  return value;
}

export function positiveInteger(name: string, fallback: number): number {
  const raw = textOption(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) fail(`--${name} must be a positive integer, got "${raw}"`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// A fresh keyward: data dir, environment, bootstrap

export interface InitResult {
  organizationId: string;
  apiKeyId: string;
  secret: string;
}

/**
 * A temp data dir (removed on exit) and the environment for keyward processes: a fresh SQLite
 * database there, whatever the calling shell has set.
 */
export function makeDataDir(prefix: string): { dataDir: string; env: NodeJS.ProcessEnv } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dataDir = dir;
  const env: NodeJS.ProcessEnv = {
    ...process.env, KEYWARD_DATA_DIR: dir, LOG_LEVEL: 'warn', NODE_ENV: 'production',
    // The subscription load comes from one key and one address (up to 10,000 sockets): the
    // per-key and per-address caps would measure themselves instead of keyward.
    MAX_WEBSOCKETS_PER_KEY: '100000', MAX_WEBSOCKETS_PER_ADDRESS: '100000',
  };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'KEYWARD_PEPPER', 'PORT', 'HOST', 'NODE_OPTIONS']) delete env[name];
  return { dataDir: dir, env };
}

function runCli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'keyward.js'), ...args], { env, cwd }, (error, stdout, stderr) => {
      if (error) reject(new Error(`keyward ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

/** `keyward init --json` in the data dir (cwd = the data dir, so no .env of the working copy is read). */
export async function initKeyward(env: NodeJS.ProcessEnv, dir: string): Promise<InitResult> {
  return JSON.parse((await runCli(['init', '--json'], env, dir)).trim()) as InitResult;
}

// ---------------------------------------------------------------------------------------------
// Redis and MariaDB for the scale-out pass

/** null when Redis at `url` answers PING within `timeoutMs`, else why not. */
export async function probeRedis(url: string, timeoutMs = 2_000): Promise<string | null> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // ioredis rejects connect() with "Connection is closed."; the socket error says why.
  let socketError: Error | null = null;
  client.on('error', (error: Error) => { socketError ??= error; });
  try {
    await client.connect();
    const pong = await client.ping();
    return pong === 'PONG' ? null : `PING answered ${JSON.stringify(pong)}`;
  } catch (error) {
    const reason = (socketError ?? error) as Error & { code?: string };
    return reason instanceof Error ? reason.message || reason.code || reason.name : String(reason);
  } finally {
    client.disconnect();
  }
}

function mysqlOptions(url: URL) {
  return { host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), connectTimeout: 3_000 };
}

/** null when the MySQL/MariaDB server at `url` accepts the credentials and answers SELECT 1, else why not. */
export async function probeMysql(url: string): Promise<string | null> {
  try {
    const connection = await createConnection(mysqlOptions(new URL(url.replace(/^mariadb:/, 'mysql:'))));
    try {
      await connection.query('SELECT 1');
      return null;
    } finally {
      await connection.end();
    }
  } catch (error) {
    return error instanceof Error ? error.message || (error as { code?: string }).code || error.name : String(error);
  }
}

export interface BenchDatabase {
  name: string;
  /** `url` with the new database as its path. */
  url: string;
  /** Drops the database (also done by cleanUp if the run fails before). */
  drop(): Promise<void>;
}

/**
 * A new, empty database `<prefix><random>` on the server of `url` (utf8mb4), dropped by
 * `drop()` — or, if the run ends any other way, synchronously by cleanUp.
 */
export async function createMysqlDatabase(url: string, prefix: string): Promise<BenchDatabase> {
  const base = new URL(url.replace(/^mariadb:/, 'mysql:'));
  const name = `${prefix}${randomBytes(6).toString('hex')}`;
  const options = mysqlOptions(base);
  const admin = await createConnection(options);
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await admin.end();
  }
  // exit handlers cannot wait: the fallback drops the database from a short child process.
  const removeFallback = onCleanUp(() => {
    execFileSync(process.execPath, ['-e', DROP_DATABASE_SCRIPT], {
      cwd: ROOT, timeout: 15_000, stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, BENCH_DROP_OPTIONS: JSON.stringify(options), BENCH_DROP_NAME: name },
    });
  });
  const databaseUrl = new URL(base.toString());
  databaseUrl.pathname = `/${name}`;
  return {
    name,
    url: databaseUrl.toString(),
    async drop() {
      removeFallback();
      const connection = await createConnection(options);
      try {
        await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await connection.end();
      }
    },
  };
}

const DROP_DATABASE_SCRIPT = `
const { createConnection } = require('mysql2/promise');
(async () => {
  const connection = await createConnection(JSON.parse(process.env.BENCH_DROP_OPTIONS));
  await connection.query('DROP DATABASE IF EXISTS \`' + process.env.BENCH_DROP_NAME + '\`');
  await connection.end();
})().catch((error) => { console.error('dropping ' + process.env.BENCH_DROP_NAME + ' failed: ' + error.message); process.exit(1); });
`;

// ---------------------------------------------------------------------------------------------
// GraphQL over HTTP

export interface GraphqlResponse {
  status: number;
  headers: Headers;
  body: { data?: Record<string, any> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

export async function post(url: string, body: string, secret: string | null): Promise<GraphqlResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secret) headers.authorization = `Bearer ${secret}`;
  const response = await fetch(url, { method: 'POST', headers, body });
  const text = await response.text();
  try {
    return { status: response.status, headers: response.headers, body: JSON.parse(text) };
  } catch {
    return { status: response.status, headers: response.headers, body: { errors: [{ message: `not JSON: ${text.slice(0, 200)}` }] } };
  }
}

/** A GraphQL call that must succeed (HTTP 200, data, no errors); anything else fails the run. */
export async function gql(url: string, secret: string, query: string, variables: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const response = await post(url, JSON.stringify({ query, variables }), secret);
  if (response.status !== 200 || response.body.errors?.length || !response.body.data) {
    fail(`request failed (HTTP ${response.status}): ${JSON.stringify(response.body).slice(0, 500)}`);
  }
  return response.body.data;
}

// ---------------------------------------------------------------------------------------------
// Reporting

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** "<n> CPU(s) (<model>), node <version>, <platform> <release>" */
export function machineSummary(): string {
  return `${os.cpus().length} CPU(s) (${os.cpus()[0]?.model.trim() ?? 'unknown'}), node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** The p-th percentile (nearest rank) of ascending values; NaN when there are none. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Node options that make a child write a CPU profile into `profileDir` when it exits (none when off). */
export function cpuProfArgs(enabled: boolean, profileDir: string): string[] {
  return enabled ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

function summarizeProfile(file: string, top: number): void {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byNode = new Map<number, number>();
  profile.samples.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...byNode.values()].reduce((sum, value) => sum + value, 0);
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const micros = byNode.get(node.id) ?? 0;
    if (!micros) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(`file://${ROOT}/`, '').replace(/^.*node_modules\//, '~/')}:${lineNumber + 1}` : '';
    const name = `${functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }
  console.log(`\nkeyward CPU profile (${file}), top ${top} by self time of ${(total / 1e6).toFixed(1)} s sampled:`);
  for (const [name, micros] of [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${((100 * micros) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}

/**
 * Copies each profile written into `profileDir` to os.tmpdir()/<keptPrefix>-<ms>.cpuprofile
 * (the data dir is removed on exit) and prints its top `top` functions by self time.
 */
export function printCpuProfiles(profileDir: string, keptPrefix: string, top: number): void {
  const files = fs.existsSync(profileDir) ? fs.readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile')) : [];
  if (files.length === 0) console.log('\n(no CPU profile was written)');
  for (const name of files) {
    const kept = path.join(os.tmpdir(), `${keptPrefix}-${Date.now()}.cpuprofile`);
    fs.copyFileSync(path.join(profileDir, name), kept);
    summarizeProfile(kept, top);
  }
}
