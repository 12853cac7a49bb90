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
 *   (b) keyward, { __typename } with a valid key           (no rate limits, no quotas; SQLite)
 *   (c) keyward, verifyKey of a valid key                  (service key with keys:verify)
 *   (d) keyward, verifyKey of an unknown, well-formed key  (→ valid:false NOT_FOUND)
 *   (e) keyward, { __typename } with a used-up key         (limit 1 per hour → 429)
 *
 * Scale-out pass (MariaDB + Redis, REDIS_URL set): keyward on a fresh MariaDB database
 * (kw_test_bench_<random>, dropped at the end) with rate limits in Redis:
 *
 *   (f) keyward, { __typename } with a valid key whose rate limit (1e9 per 60 s) never refuses
 *       but is checked in Redis on every request
 *   (g) the same against TWO keyward instances (same database, same Redis), the load split
 *       across both: two autocannon runs in parallel, half the connections each; req/s is
 *       the sum, latencies are merged
 *
 * It runs when Redis (REDIS_URL, else TEST_REDIS_URL, else redis://127.0.0.1:6379) and MariaDB
 * (TEST_MYSQL_URL, else mysql://keyward:keyward@127.0.0.1:3306; the user may create databases)
 * both answer, and says so when it is skipped and why. --redis requires it (fails when either is
 * unreachable); --no-redis skips it.
 *
 * Throughput is measured under load (50 connections); latency also without load (1 connection,
 * one request at a time; (g): one per instance): under load p99 is mostly queueing
 * (≈ connections ÷ throughput), so the "verifyKey adds ≤ 1 ms at p99" target is judged on the
 * unloaded run, where p99 is the cost of the request itself.
 *
 * Options: --duration=<s> (8) --warmup=<s> (2) --connections=<n> (50) --latency-duration=<s> (4)
 *          --only=a,b,…   --redis | --no-redis
 *          --cpu-prof (profile the SQLite keyward process and scale-out instance A; prints their top self-time functions)
 */
import os from 'node:os';
import path from 'node:path';
import { generateSecret } from '../src/auth/key-format';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  begin, cpuProfArgs, createMysqlDatabase, fail, flag, gql, GraphqlResponse, initKeyward, machineSummary, makeDataDir, percentile,
  positiveNumber, post, printCpuProfiles, probeMysql, probeRedis, runMain, sleep, startServer, stopServer, textOption,
} from './harness';

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

begin('bench');

// ---------------------------------------------------------------------------------------------
// Options

const DURATION_S = positiveNumber('duration', 8);
const WARMUP_S = positiveNumber('warmup', 2);
const CONNECTIONS = positiveNumber('connections', 50);
const LATENCY_DURATION_S = positiveNumber('latency-duration', 4);
const CPU_PROF = flag('cpu-prof');
const ONLY = textOption('only')?.split(',');

const SCALE_OUT = flag('redis') ? 'required' : flag('no-redis') ? 'off' : 'auto';
if (flag('redis') && flag('no-redis')) fail('--redis and --no-redis contradict each other');
const REDIS_URL = process.env.REDIS_URL || process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const MYSQL_URL = process.env.TEST_MYSQL_URL || 'mysql://keyward:keyward@127.0.0.1:3306';

const P99_TARGET_MS = 1;
const RATIO_TARGET = 0.9;
/** (f) MariaDB + Redis against the bare server. */
const SCALE_OUT_RATIO_TARGET = 0.8;
const TINY_WINDOW_SECONDS = 3600;
/** (f)/(g): a limit that is never reached but makes every request consume from Redis. */
const LARGE_RATE_LIMIT = { name: 'bench', limit: 1_000_000_000, windowSeconds: 60 };

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Scenario {
  id: string;
  label: string;
  /** One server, or several sharing the load (connections split evenly, run in parallel). */
  urls: string[];
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

/**
 * One autocannon run per URL of the scenario, in parallel, the connections split evenly.
 * Latencies are collected per response (autocannon's own histogram has 1 ms resolution, too
 * coarse for the ≤ 1 ms target) and include non-2xx responses, as autocannon does by default.
 */
interface LoadResult {
  requestsPerSecond: number;
  non2xx: number;
  errors: number;
  statusCodeStats: Record<string, { count: number }>;
  latencies: Float64Array;
}

function loadOne(url: string, scenario: Scenario, seconds: number, connections: number): Promise<{ result: AutocannonResult; latencies: Float64Array }> {
  let latencies = new Float64Array(1 << 18);
  let count = 0;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (scenario.secret) headers.authorization = `Bearer ${scenario.secret}`;
    const instance = autocannon(
      { url, connections, duration: seconds, pipelining: 1, method: 'POST', headers, body: scenario.body },
      (error, result) => (error ? reject(error) : resolve({ result, latencies: latencies.slice(0, count) })),
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

async function load(scenario: Scenario, seconds: number, connections = CONNECTIONS): Promise<LoadResult> {
  const each = Math.max(1, Math.round(connections / scenario.urls.length));
  const runs = await Promise.all(scenario.urls.map((url) => loadOne(url, scenario, seconds, each)));
  const latencies = new Float64Array(runs.reduce((sum, run) => sum + run.latencies.length, 0));
  let offset = 0;
  const statusCodeStats: Record<string, { count: number }> = {};
  for (const run of runs) {
    latencies.set(run.latencies, offset);
    offset += run.latencies.length;
    for (const [status, { count }] of Object.entries(run.result.statusCodeStats)) {
      statusCodeStats[status] = { count: (statusCodeStats[status]?.count ?? 0) + count };
    }
  }
  return {
    requestsPerSecond: runs.reduce((sum, run) => sum + run.result.requests.total / run.result.duration, 0),
    non2xx: runs.reduce((sum, run) => sum + run.result.non2xx, 0),
    errors: runs.reduce((sum, run) => sum + run.result.errors + run.result.timeouts, 0),
    statusCodeStats,
    latencies: latencies.sort(),
  };
}

async function sample(scenario: Scenario, when: string): Promise<void> {
  for (const url of scenario.urls) {
    await scenario.prepare?.();
    const problem = scenario.check(await post(url, scenario.body, scenario.secret));
    if (problem) fail(`scenario (${scenario.id}) ${scenario.label} answered wrongly ${when}${scenario.urls.length > 1 ? ` (${url})` : ''}: ${problem}`);
  }
}

async function measure(scenario: Scenario): Promise<Measurement> {
  process.stderr.write(`  (${scenario.id}) ${scenario.label}: warm-up ${WARMUP_S} s, measure ${DURATION_S} s…`);
  await sample(scenario, 'before the load');
  await load(scenario, WARMUP_S);
  const loaded = await load(scenario, DURATION_S);
  const unloaded = await load(scenario, LATENCY_DURATION_S, scenario.urls.length);
  await sample(scenario, 'after the load');
  const measurement: Measurement = {
    scenario,
    requestsPerSecond: loaded.requestsPerSecond,
    p50: percentile(loaded.latencies, 50),
    p99: percentile(loaded.latencies, 99),
    p50Unloaded: percentile(unloaded.latencies, 50),
    p99Unloaded: percentile(unloaded.latencies, 99),
    non2xx: loaded.non2xx,
    errors: loaded.errors,
    statusCodes: Object.entries(loaded.statusCodeStats)
      .map(([status, { count }]) => `${status}×${count}`)
      .join(' '),
  };
  process.stderr.write(` ${Math.round(measurement.requestsPerSecond)} req/s\n`);
  return measurement;
}

// ---------------------------------------------------------------------------------------------

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Whether the scale-out pass runs, and why not when it does not. */
async function scaleOutPlan(): Promise<{ run: true } | { run: false; why: string }> {
  if (SCALE_OUT === 'off') return { run: false, why: '--no-redis' };
  if (ONLY && !ONLY.includes('f') && !ONLY.includes('g')) return { run: false, why: `--only=${ONLY.join(',')} selects neither (f) nor (g)` };
  const [redis, mysql] = await Promise.all([probeRedis(REDIS_URL), probeMysql(MYSQL_URL)]);
  const problems = [
    ...(redis ? [`Redis at ${REDIS_URL} is not reachable (${redis})`] : []),
    ...(mysql ? [`MariaDB at ${redactPassword(MYSQL_URL)} is not reachable (${mysql})`] : []),
  ];
  if (problems.length === 0) return { run: true };
  if (SCALE_OUT === 'required') fail(`--redis: ${problems.join('; ')}`);
  return { run: false, why: `${problems.join('; ')} — set REDIS_URL / TEST_MYSQL_URL, or pass --redis to make this an error` };
}

function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

function expectTypenameThroughRedisLimit(response: GraphqlResponse): string | null {
  const problem = expectTypename(response);
  if (problem) return problem;
  // The limit in the headers shows the request went through the (Redis) rate limiter.
  const limit = response.headers.get('x-ratelimit-limit');
  if (limit !== String(LARGE_RATE_LIMIT.limit)) return `expected X-RateLimit-Limit ${LARGE_RATE_LIMIT.limit}, got ${limit}`;
  return null;
}

/** Where --cpu-prof puts the profile of scale-out instance A. */
const scaleProfileDir = (dataDir: string) => path.join(dataDir, 'profile-scale-out');

/**
 * The scale-out pass: a fresh MariaDB database, two keyward instances on it with REDIS_URL,
 * (f) against one of them and (g) against both. Everything it started is stopped and the
 * database dropped before it returns.
 */
async function scaleOutPass(baseEnv: NodeJS.ProcessEnv, dataDir: string): Promise<Measurement[]> {
  const database = await createMysqlDatabase(MYSQL_URL, 'kw_test_bench_');
  process.stderr.write(`  scale-out: database ${database.name} on ${redactPassword(MYSQL_URL)}, Redis ${REDIS_URL}\n`);
  try {
    const scaleDir = path.join(dataDir, 'scale-out');
    fs.mkdirSync(scaleDir);
    const env: NodeJS.ProcessEnv = {
      ...baseEnv, KEYWARD_DATA_DIR: scaleDir, DATABASE_URL: database.url, REDIS_URL, KEYWARD_PEPPER: randomBytes(24).toString('hex'),
    };
    const init = await initKeyward(env, scaleDir);
    // One after the other: both would apply the (already applied) migrations at once otherwise.
    const first = await startServer('keyward A (MariaDB + Redis)', 'keyward-server.js', env, cpuProfArgs(CPU_PROF, scaleProfileDir(dataDir))).catch((error: Error) => fail(error.message));
    const second = await startServer('keyward B (MariaDB + Redis)', 'keyward-server.js', env).catch((error: Error) => fail(error.message));
    try {
      const urls = [first.port, second.port].map((port) => `http://127.0.0.1:${port}/graphql`);
      for (const url of urls) {
        const ready = await fetch(url.replace('/graphql', '/readyz'));
        const body = await ready.json() as { database?: string; redis?: string };
        if (ready.status !== 200 || body.database !== 'up' || body.redis !== 'up') fail(`${url}: /readyz answered ${ready.status} ${JSON.stringify(body)}; expected database and redis up`);
      }
      const organization = (await gql(urls[0], init.secret, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', { input: { name: 'Bench scale-out' } })).createOrganization as { id: string };
      const clientKey = (await gql(urls[0], init.secret, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', {
        input: { organizationId: organization.id, name: 'bench client (Redis-limited)', rateLimits: [LARGE_RATE_LIMIT], quotas: [] },
      })).createApiKey.secret as string;

      const scenarios: Scenario[] = [
        { id: 'f', label: 'keyward { __typename }, MariaDB + Redis limit', urls: [urls[0]], secret: clientKey, body: TYPENAME_BODY, check: expectTypenameThroughRedisLimit },
        { id: 'g', label: '(f) on two instances, load split', urls, secret: clientKey, body: TYPENAME_BODY, check: expectTypenameThroughRedisLimit },
      ].filter((scenario) => !ONLY || ONLY.includes(scenario.id));
      for (const scenario of scenarios) await sample(scenario, 'before the load');
      const results: Measurement[] = [];
      for (const scenario of scenarios) results.push(await measure(scenario));
      return results;
    } finally {
      await Promise.all([stopServer(first.child), stopServer(second.child)]);
    }
  } finally {
    await database.drop();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  console.log(`keyward bench — ${machineSummary()}`);
  console.log(`autocannon: ${CONNECTIONS} connections, pipelining 1, POST JSON, ${WARMUP_S} s warm-up + ${DURATION_S} s per scenario, then ${LATENCY_DURATION_S} s at 1 connection; load generator and server share the machine${CPU_PROF ? '; keyward under --cpu-prof' : ''}`);

  const plan = await scaleOutPlan();
  console.log(plan.run
    ? `scale-out pass (f, g): MariaDB ${redactPassword(MYSQL_URL)} + Redis ${REDIS_URL}\n`
    : `scale-out pass (f, g): SKIPPED — ${plan.why}\n`);

  const { dataDir, env: baseEnv } = makeDataDir('keyward-bench-');
  const results: Measurement[] = [];
  const firstPass = ['a', 'b', 'c', 'd', 'e'].some((id) => !ONLY || ONLY.includes(id));
  const profileDir = path.join(dataDir, 'profile');
  if (firstPass) {
    const init = await initKeyward(baseEnv, dataDir);
    const [bare, keyward] = await Promise.all([
      startServer('bare server', 'bare-server.js', baseEnv),
      startServer('keyward', 'keyward-server.js', baseEnv, cpuProfArgs(CPU_PROF, profileDir)),
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
        await sleep(left + 250);
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
      { id: 'a', label: 'bare Apollo+TypeGraphQL { __typename }', urls: [bareUrl], secret: null, body: TYPENAME_BODY, check: expectTypename },
      { id: 'b', label: 'keyward { __typename }, valid key', urls: [url], secret: clientKey, body: TYPENAME_BODY, check: expectTypename },
      { id: 'c', label: 'keyward verifyKey, valid key', urls: [url], secret: serviceKey, body: verifyBody(targetKey), check: expectVerify(true, 'VALID') },
      { id: 'd', label: 'keyward verifyKey, unknown key', urls: [url], secret: serviceKey, body: verifyBody(unknownKey), check: expectVerify(false, 'NOT_FOUND') },
      { id: 'e', label: 'keyward { __typename }, rate-limited key', urls: [url], secret: tinyKey, body: TYPENAME_BODY, prepare: spendTinyWindow, check: expectRateLimited },
    ].filter((scenario) => !ONLY || ONLY.includes(scenario.id));

    // Every answer is checked before any load, so a wrong setup fails fast.
    for (const scenario of scenarios) await sample(scenario, 'before the load');
    for (const scenario of scenarios) results.push(await measure(scenario));

    await Promise.all([stopServer(bare.child), stopServer(keyward.child)]);
  }

  if (plan.run) results.push(...await scaleOutPass(baseEnv, dataDir));

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
  if (rows.length === 0) console.log('(no scenario ran)');
  if (!plan.run) console.log(`(f) and (g) skipped: ${plan.why}`);

  for (const m of results) {
    if (m.errors > 0) console.log(`  warning: (${m.scenario.id}) had ${m.errors} connection errors/timeouts`);
    const expected = m.scenario.id === 'e' ? /^429×\d+$/ : /^200×\d+$/;
    if (!expected.test(m.statusCodes)) console.log(`  note: (${m.scenario.id}) status codes ${m.statusCodes}`);
  }
  if (results.some((m) => m.scenario.id === 'g')) {
    console.log(`  (g): ${Math.round(CONNECTIONS / 2)} connections to each instance; req/s is the sum of both runs, latencies merged; @1 = one connection per instance`);
  }

  const byId = new Map(results.map((m) => [m.scenario.id, m]));
  const a = byId.get('a');
  console.log('');
  const ratioLine = (id: string, target: number, note = '') => {
    const m = byId.get(id);
    if (!a || !m) return;
    const ratio = m.requestsPerSecond / a.requestsPerSecond;
    console.log(`ratio (${id})/(a) requests/s:        ${ratio.toFixed(3)}   target ≥ ${target.toFixed(2)}   ${ratio >= target ? 'PASS' : 'MISS'}${note}`);
  };
  ratioLine('b', RATIO_TARGET);
  for (const id of ['c', 'd']) {
    const m = byId.get(id);
    if (!a || !m) continue;
    const delta = m.p99Unloaded - a.p99Unloaded;
    const loaded = m.p99 - a.p99;
    console.log(`verifyKey (${id}) p99 − bare p99 @1:  ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} ms   target ≤ ${P99_TARGET_MS} ms   ${delta <= P99_TARGET_MS ? 'PASS' : 'MISS'}   (under load @${CONNECTIONS}: ${loaded >= 0 ? '+' : ''}${loaded.toFixed(2)} ms, mostly queueing)`);
  }
  ratioLine('f', SCALE_OUT_RATIO_TARGET, '   (MariaDB + Redis)');
  if (byId.has('f') && !a) console.log('ratio (f)/(a): (a) was not measured (--only)');
  const f = byId.get('f');
  const g = byId.get('g');
  if (f && g) {
    console.log(`scale-out (g)/(f) requests/s:    ${(g.requestsPerSecond / f.requestsPerSecond).toFixed(3)}   (informational: two instances vs one, on ${os.availableParallelism()} CPU(s) shared with the load generator)`);
  }
  console.log(`\nmachine: nproc ${os.availableParallelism()}, node ${process.version}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);

  if (CPU_PROF && firstPass) printCpuProfiles(profileDir, 'keyward-bench', 25);
  if (CPU_PROF && plan.run) {
    console.log('\nscale-out instance A (MariaDB + Redis):');
    printCpuProfiles(scaleProfileDir(dataDir), 'keyward-bench-scale-out', 25);
  }
}

runMain(main);
