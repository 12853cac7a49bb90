/**
 * `npm run bench`: throughput and latency of keyward against a bare Apollo + TypeGraphQL
 * server. A benchmark, not a test: it prints one table of figures and never fails on them
 * (it exits non-zero only when a scenario answers wrongly or a server does not start).
 *
 * Each server runs in its own process; the load comes from this process (autocannon,
 * 50 connections, pipelining 1, POST JSON). Every scenario gets the same treatment: a
 * sample request checked for the right answer, a warm-up run that is thrown away, the
 * measured run, and the sample request again.
 *
 *   (a) bare server, { __typename }                       (no auth, no database)
 *   (b) keyward, { __typename } with a valid key           (no rate limits, no quotas)
 *   (c) keyward, verifyKey of a valid key                  (service key with keys:verify)
 *   (d) keyward, verifyKey of an unknown, well-formed key  (→ valid:false NOT_FOUND)
 *   (e) keyward, { __typename } with a used-up key         (limit 1 per hour → 429)
 *
 * Throughput is measured under load (50 connections); latency also without load (1 connection,
 * one request at a time): under load p99 is mostly queueing (≈ connections ÷ throughput), so the
 * "verifyKey adds ≤ 1 ms at p99" target is judged on the unloaded run, where p99 is the cost of
 * the request itself.
 *
 * Options: --duration=<s> (8) --warmup=<s> (2) --connections=<n> (50) --latency-duration=<s> (4)
 *          --only=a,b,…
 *          --cpu-prof (profile the keyward process; prints its top self-time functions)
 */
import { ChildProcess, execFile, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSecret } from '../src/api-keys/key-format';

// ---------------------------------------------------------------------------------------------
// autocannon (no bundled types): the small part of its programmatic API used here.

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining: number;
  method: 'POST';
  headers: Record<string, string>;
  body: string;
}
interface AutocannonResult {
  duration: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): void;
  stop(): void;
}
type Autocannon = (options: AutocannonOptions, done: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance;
const autocannon = require('autocannon') as Autocannon;

// ---------------------------------------------------------------------------------------------
// Child processes: started here, always ended here.

const children = new Set<ChildProcess>();
let dataDir: string | null = null;

function cleanUp(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
}

function fail(message: string): never {
  console.error(`\nbench: ${message}`);
  cleanUp();
  process.exit(1);
}

process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanUp();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// Options

const ROOT = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
function option(name: string, fallback: number): number {
  const raw = argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) fail(`--${name} must be a positive number, got "${raw}"`);
  return value;
}
const DURATION_S = option('duration', 8);
const WARMUP_S = option('warmup', 2);
const CONNECTIONS = option('connections', 50);
const LATENCY_DURATION_S = option('latency-duration', 4);
const CPU_PROF = argv.includes('--cpu-prof');
const ONLY = argv.find((arg) => arg.startsWith('--only='))?.split('=')[1].split(',');

const P99_TARGET_MS = 1;
const RATIO_TARGET = 0.9;
const TINY_WINDOW_SECONDS = 3600;

/** Forks a compiled bench server and resolves with its port once it says it is ready. */
function startServer(label: string, script: string, env: NodeJS.ProcessEnv, execArgv: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, script), [], { env, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
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
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

function runCli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'keyward.js'), ...args], { env, cwd }, (error, stdout, stderr) => {
      if (error) reject(new Error(`keyward ${args.join(' ')} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// GraphQL over HTTP

interface GraphqlResponse {
  status: number;
  body: { data?: Record<string, any> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

async function post(url: string, body: string, secret: string | null): Promise<GraphqlResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secret) headers.authorization = `Bearer ${secret}`;
  const response = await fetch(url, { method: 'POST', headers, body });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: { errors: [{ message: `not JSON: ${text.slice(0, 200)}` }] } };
  }
}

async function gql(url: string, secret: string, query: string, variables: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const response = await post(url, JSON.stringify({ query, variables }), secret);
  if (response.status !== 200 || response.body.errors?.length || !response.body.data) {
    fail(`setup request failed (HTTP ${response.status}): ${JSON.stringify(response.body).slice(0, 500)}`);
  }
  return response.body.data;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Scenario {
  id: string;
  label: string;
  url: string;
  secret: string | null;
  body: string;
  /** Runs before each sample check (puts the scenario in the state it measures). */
  prepare?: () => Promise<void>;
  /** Returns what is wrong with a sample response, or null when it is the expected one. */
  check(response: GraphqlResponse): string | null;
}

interface Measurement {
  scenario: Scenario;
  requestsPerSecond: number;
  /** Under load (CONNECTIONS). */
  p50: number;
  p99: number;
  /** One connection, one request at a time: the request's own cost. */
  p50Unloaded: number;
  p99Unloaded: number;
  non2xx: number;
  errors: number;
  statusCodes: string;
}

const TYPENAME_BODY = JSON.stringify({ query: '{ __typename }' });
const verifyBody = (key: string) => JSON.stringify({ query: `mutation { verifyKey(input: { key: ${JSON.stringify(key)} }) { valid code } }` });

function expectTypename(response: GraphqlResponse): string | null {
  if (response.status !== 200) return `expected HTTP 200, got ${response.status}`;
  if (response.body.data?.__typename !== 'Query') return `expected data.__typename "Query", got ${JSON.stringify(response.body).slice(0, 300)}`;
  return null;
}

function expectVerify(valid: boolean, code: string) {
  return (response: GraphqlResponse): string | null => {
    if (response.status !== 200) return `expected HTTP 200, got ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`;
    const result = response.body.data?.verifyKey;
    if (result?.valid !== valid || result?.code !== code) return `expected verifyKey { valid: ${valid}, code: ${code} }, got ${JSON.stringify(response.body).slice(0, 300)}`;
    return null;
  };
}

function expectRateLimited(response: GraphqlResponse): string | null {
  const code = response.body.errors?.[0]?.extensions?.code;
  if (response.status !== 429 || code !== 'RATE_LIMITED') return `expected HTTP 429 RATE_LIMITED, got ${response.status} ${JSON.stringify(response.body).slice(0, 300)}`;
  return null;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

/**
 * One autocannon run. Latencies are collected per response (autocannon's own histogram has
 * 1 ms resolution, too coarse for the ≤ 1 ms target) and include non-2xx responses, as
 * autocannon does by default.
 */
function load(scenario: Scenario, seconds: number, connections = CONNECTIONS): Promise<{ result: AutocannonResult; latencies: Float64Array }> {
  let latencies = new Float64Array(1 << 18);
  let count = 0;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (scenario.secret) headers.authorization = `Bearer ${scenario.secret}`;
    const instance = autocannon(
      { url: scenario.url, connections, duration: seconds, pipelining: 1, method: 'POST', headers, body: scenario.body },
      (error, result) => (error ? reject(error) : resolve({ result, latencies: latencies.slice(0, count).sort() })),
    );
    instance.on('response', (_client, _status, _bytes, responseTimeMs) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = responseTimeMs;
    });
  });
}

async function sample(scenario: Scenario, when: string): Promise<void> {
  await scenario.prepare?.();
  const problem = scenario.check(await post(scenario.url, scenario.body, scenario.secret));
  if (problem) fail(`scenario (${scenario.id}) ${scenario.label} answered wrongly ${when}: ${problem}`);
}

async function measure(scenario: Scenario): Promise<Measurement> {
  process.stderr.write(`  (${scenario.id}) ${scenario.label}: warm-up ${WARMUP_S} s, measure ${DURATION_S} s…`);
  await sample(scenario, 'before the load');
  await load(scenario, WARMUP_S);
  const { result, latencies } = await load(scenario, DURATION_S);
  const unloaded = await load(scenario, LATENCY_DURATION_S, 1);
  await sample(scenario, 'after the load');
  const measurement: Measurement = {
    scenario,
    requestsPerSecond: result.requests.total / result.duration,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p50Unloaded: percentile(unloaded.latencies, 50),
    p99Unloaded: percentile(unloaded.latencies, 99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statusCodes: Object.entries(result.statusCodeStats)
      .map(([status, { count }]) => `${status}×${count}`)
      .join(' '),
  };
  process.stderr.write(` ${Math.round(measurement.requestsPerSecond)} req/s\n`);
  return measurement;
}

// ---------------------------------------------------------------------------------------------
// Profile summary (--cpu-prof)

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }>;
  samples: number[];
  timeDeltas: number[];
}

function summarizeProfile(file: string, top = 25): void {
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

// ---------------------------------------------------------------------------------------------

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

async function main(): Promise<void> {
  const started = Date.now();
  const cpus = os.cpus();
  console.log(`keyward bench — ${os.availableParallelism()} CPU(s) (${cpus[0]?.model.trim() ?? 'unknown'}), node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log(`autocannon: ${CONNECTIONS} connections, pipelining 1, POST JSON, ${WARMUP_S} s warm-up + ${DURATION_S} s per scenario, then ${LATENCY_DURATION_S} s at 1 connection; load generator and server share the machine${CPU_PROF ? '; keyward under --cpu-prof' : ''}\n`);

  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-bench-'));
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: 'warn', NODE_ENV: 'production' };
  // A fresh SQLite database in the temp dir, whatever the calling shell has set.
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'KEYWARD_PEPPER', 'PORT', 'HOST', 'NODE_OPTIONS']) delete baseEnv[name];

  // Bootstrap (cwd = the temp dir, so no .env of the working copy is read).
  const init = JSON.parse((await runCli(['init', '--json'], baseEnv, dataDir)).trim()) as { organizationId: string; apiKeyId: string; secret: string };
  const profileDir = path.join(dataDir, 'profile');
  const [bare, keyward] = await Promise.all([
    startServer('bare server', 'bare-server.js', baseEnv),
    startServer('keyward', 'keyward-server.js', baseEnv, CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  ]).catch((error: Error) => fail(error.message));
  const bareUrl = `http://127.0.0.1:${bare.port}/graphql`;
  const url = `http://127.0.0.1:${keyward.port}/graphql`;

  // An organization (no quotas) and its keys, created with the admin key.
  const organization = (await gql(url, init.secret, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', { input: { name: 'Bench' } })).createOrganization as { id: string };
  const createKey = async (input: Record<string, unknown>) =>
    (await gql(url, init.secret, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }', { input: { organizationId: organization.id, ...input } }))
      .createApiKey.secret as string;
  const clientKey = await createKey({ name: 'bench client', rateLimits: [], quotas: [] });
  const serviceKey = await createKey({ name: 'bench verifier', scopes: ['keys:verify'], rateLimits: [], quotas: [] });
  const targetKey = await createKey({ name: 'bench target', rateLimits: [], quotas: [] });
  const tinyKey = await createKey({ name: 'bench tiny', rateLimits: [{ name: 'tiny', limit: 1, windowSeconds: TINY_WINDOW_SECONDS }], quotas: [] });
  const unknownKey = generateSecret('LIVE');

  // (e): rate-limit windows are aligned to the epoch (src/rate-limits/rate-limiter.ts), so the
  // hourly window may roll over during a run and admit one call again. Before its checks and
  // load, (e) waits out a window about to end, then spends the window's one call.
  let tinyUsed = false;
  const spendTinyWindow = async () => {
    const windowMs = TINY_WINDOW_SECONDS * 1000;
    const left = windowMs - (Date.now() % windowMs);
    const needed = (WARMUP_S + DURATION_S + 5) * 1000;
    if (left < needed) {
      process.stderr.write(`  (e) the rate-limit window ends in ${(left / 1000).toFixed(1)} s; waiting for the next one… `);
      await new Promise((resolve) => setTimeout(resolve, left + 250));
    }
    const response = await post(url, TYPENAME_BODY, tinyKey);
    // Its very first call must pass (a fresh key); later ones pass only in a new window.
    if (!tinyUsed) {
      const problem = expectTypename(response);
      if (problem) fail(`scenario (e): the first call of the rate-limited key should pass: ${problem}`);
      tinyUsed = true;
    }
  };

  const scenarios: Scenario[] = [
    { id: 'a', label: 'bare Apollo+TypeGraphQL { __typename }', url: bareUrl, secret: null, body: TYPENAME_BODY, check: expectTypename },
    { id: 'b', label: 'keyward { __typename }, valid key', url, secret: clientKey, body: TYPENAME_BODY, check: expectTypename },
    { id: 'c', label: 'keyward verifyKey, valid key', url, secret: serviceKey, body: verifyBody(targetKey), check: expectVerify(true, 'VALID') },
    { id: 'd', label: 'keyward verifyKey, unknown key', url, secret: serviceKey, body: verifyBody(unknownKey), check: expectVerify(false, 'NOT_FOUND') },
    { id: 'e', label: 'keyward { __typename }, rate-limited key', url, secret: tinyKey, body: TYPENAME_BODY, prepare: spendTinyWindow, check: expectRateLimited },
  ].filter((scenario) => !ONLY || ONLY.includes(scenario.id));

  // Every answer is checked before any load, so a wrong setup fails fast.
  for (const scenario of scenarios) await sample(scenario, 'before the load');

  const results: Measurement[] = [];
  for (const scenario of scenarios) results.push(await measure(scenario));

  await Promise.all([stopServer(bare.child), stopServer(keyward.child)]);

  // The table
  const rows = results.map((m) => [
    `(${m.scenario.id}) ${m.scenario.label}`, m.requestsPerSecond.toFixed(0), m.p50.toFixed(2), m.p99.toFixed(2),
    m.p50Unloaded.toFixed(2), m.p99Unloaded.toFixed(2), String(m.non2xx),
  ]);
  const header = ['scenario', `req/s @${CONNECTIONS}`, `p50 ms @${CONNECTIONS}`, `p99 ms @${CONNECTIONS}`, 'p50 ms @1', 'p99 ms @1', 'non-2xx'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => pad(cell, widths[i], i > 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((width, i) => (i > 0 ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`);
  for (const row of rows) console.log(line(row));

  for (const m of results) {
    if (m.errors > 0) console.log(`  warning: (${m.scenario.id}) had ${m.errors} connection errors/timeouts`);
    const expected = m.scenario.id === 'e' ? /^429×\d+$/ : /^200×\d+$/;
    if (!expected.test(m.statusCodes)) console.log(`  note: (${m.scenario.id}) status codes ${m.statusCodes}`);
  }

  const byId = new Map(results.map((m) => [m.scenario.id, m]));
  const a = byId.get('a');
  console.log('');
  if (a && byId.has('b')) {
    const ratio = byId.get('b')!.requestsPerSecond / a.requestsPerSecond;
    console.log(`ratio (b)/(a) requests/s:        ${ratio.toFixed(3)}   target ≥ ${RATIO_TARGET.toFixed(2)}   ${ratio >= RATIO_TARGET ? 'PASS' : 'MISS'}`);
  }
  for (const id of ['c', 'd']) {
    const m = byId.get(id);
    if (!a || !m) continue;
    const delta = m.p99Unloaded - a.p99Unloaded;
    const loaded = m.p99 - a.p99;
    console.log(`verifyKey (${id}) p99 − bare p99 @1:  ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} ms   target ≤ ${P99_TARGET_MS} ms   ${delta <= P99_TARGET_MS ? 'PASS' : 'MISS'}   (under load @${CONNECTIONS}: ${loaded >= 0 ? '+' : ''}${loaded.toFixed(2)} ms, mostly queueing)`);
  }
  console.log(`\nmachine: nproc ${os.availableParallelism()}, node ${process.version}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);

  if (CPU_PROF) {
    const files = fs.existsSync(profileDir) ? fs.readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile')) : [];
    if (files.length === 0) console.log('\n(no CPU profile was written)');
    for (const name of files) {
      const kept = path.join(os.tmpdir(), `keyward-bench-${Date.now()}.cpuprofile`);
      fs.copyFileSync(path.join(profileDir, name), kept);
      summarizeProfile(kept);
    }
  }
  cleanUp();
}

main().catch((error) => fail(error instanceof Error ? (error.stack ?? error.message) : String(error)));
