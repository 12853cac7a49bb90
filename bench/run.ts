/**
 * `npm run bench`: what keyward costs per request, as ratios against a bare Apollo Server +
 * TypeGraphQL answering the same shape from a constant, all measured in ONE run. A benchmark,
 * not a test: it prints one table of figures and never fails on them (it exits non-zero only
 * when a workload answers wrongly or a server does not start).
 *
 *   (a) bare Apollo + TypeGraphQL, `{ viewer { scopes } }` from a constant      (the baseline)
 *   (b) keyward `{ viewer { scopes } }`, a tenant READ key, no key limits, no quotas (SQLite)
 *   (c) like (b), but the key has one rate limit and its organization a REQUESTS:MONTH quota
 *   (d) keyward `verifyKey` over GraphQL: a platform service key (keys:verify, no limits)
 *       verifying (c)'s key with requiredScopes, selecting its windows and quotas
 *   (e) the same verification over plain HTTP: POST /v1/verify
 *   (f) (c) on MariaDB + Redis (rate limits in Redis, quotas in MariaDB, both on this machine)
 *   (g) 10,000 idle quotaChanged subscribers in one keyward process (bench/subscribers.ts):
 *       push latency after a quota change, the causing verifyKey against its idle latency,
 *       memory per 1,000 subscribers before and after the changes
 *   (h) reserve + settle pairs per second against POST /v1/verify alone on the (b)–(e) keyward
 *       (bench/reserve-settle.ts, issue 17)
 *
 * Every server is its own process, pinned with taskset to CPU 0; this process (the load
 * generator: autocannon, 50 connections, pipelining 1, POST JSON) and the subscriber processes
 * are pinned to CPU 1 — where the machine has two CPUs (MariaDB and Redis are not pinned).
 * keyward logs at `info`, as in production (one access line per request, to /dev/null here).
 *
 * Rounds: (a)–(f) run one after the other, and that `--rounds` times (3), interleaved, so a
 * slow moment of the machine hits every workload alike; each round of a workload is a sample
 * check of its answer, a warm-up that is thrown away, the measured run at 50 connections, and a
 * run at 1 connection (one request at a time: the request's own latency; at 50, p99 is mostly
 * queueing). Figures are medians over the rounds; a ratio is the median of each round's ratio.
 *
 * `npm run bench:soak` (`--soak`) runs only the soak instead (bench/soak.ts): (c) at a fixed
 * 1,000 requests/s against one keyward for `--seconds` (600), its RSS read every 10 s and, with
 * the V8 heap, after a full GC every 60 s.
 *
 * Options: --rounds=<n> (3) --duration=<s> (8) --warmup=<s> (2) --connections=<n> (50)
 *          --latency-duration=<s> (3) --only=a,b,… --redis | --no-redis --no-pin
 *          --subscribers=<n> (10000) --changes=<n> (20) --cpu-prof (profile the keyward servers)
 *          --soak --seconds=<s> (600)
 */
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import {
  begin, cpuProfArgs, createMysqlDatabase, fail, flag, GraphqlResponse, initKeyward, loadAverage, machineSummary, makeDataDir, percentile,
  cpuMs, pin, positiveInteger, positiveNumber, post, printCpuProfiles, probeMysql, probeRedis, runMain, startServer, stopServer, textOption,
} from './harness';
import { PRESET_SCOPES, ScopePreset } from '../src/auth/scopes';
import { measureSubscribers, SubscriberFigures } from './subscribers';
import { measureReserveSettle, ReserveSettleFigures } from './reserve-settle';
import { soak } from './soak';
import { load, prepareKeyward, verifyInput, VIEWER_BODY } from './workloads';

begin('bench');

// ---------------------------------------------------------------------------------------------
// Options

const ROUNDS = positiveInteger('rounds', 3);
const DURATION_S = positiveNumber('duration', 8);
const WARMUP_S = positiveNumber('warmup', 2);
const CONNECTIONS = positiveInteger('connections', 50);
const LATENCY_DURATION_S = positiveNumber('latency-duration', 3);
const CPU_PROF = flag('cpu-prof');
const PIN = !flag('no-pin');
const ONLY = textOption('only')?.split(',');
const SUBSCRIBERS = positiveInteger('subscribers', 10_000);
const CHANGES = positiveInteger('changes', 20);
const SOAK = flag('soak');

const SCALE_OUT = flag('redis') ? 'required' : flag('no-redis') ? 'off' : 'auto';
if (flag('redis') && flag('no-redis')) fail('--redis and --no-redis contradict each other');
const REDIS_URL = process.env.REDIS_URL || process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const MYSQL_URL = process.env.TEST_MYSQL_URL || 'mysql://keyward:keyward@127.0.0.1:3306';

/** CPU of the servers, and of this process and the subscriber processes. */
const SERVER_CPU = 0;
const LOAD_CPU = 1;

/** Throughput targets (req/s against (a) in the same round) and the p99 target at one connection. */
const TARGETS: Record<string, { ratio: number; addedP99Ms?: number }> = {
  b: { ratio: 0.9, addedP99Ms: 1 },
  c: { ratio: 0.8, addedP99Ms: 1 },
  d: { ratio: 0.85, addedP99Ms: 1 },
  e: { ratio: 2.0 },
  f: { ratio: 0.6 },
};

/** What (a), (b), (c) and (f) answer: keyward's READ preset. */
const READ_SCOPES = [...PRESET_SCOPES[ScopePreset.READ]].sort();

// ---------------------------------------------------------------------------------------------
// Workloads

interface Workload {
  id: string;
  label: string;
  /** The server process, for its CPU time. */
  pid: number;
  url: string;
  secret: string | null;
  body: string;
  /** What is wrong with a sample response, or null when it is the expected one. */
  check(response: GraphqlResponse): string | null;
}

interface Round {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  p50At1: number;
  p99At1: number;
  /** Server CPU time per request of the measured run (µs): independent of what else the machine runs. */
  cpuMicros: number;
  non2xx: number;
  errors: number;
}

const VERIFY_QUERY = `mutation Verify($input: VerifyKeyInput!) {
  verifyKey(input: $input) { valid code keyId organizationId scopes rateLimits { name remaining resetAt } quotas { meter period used remaining } }
}`;
function expectScopes(response: GraphqlResponse): string | null {
  if (response.status !== 200) return `expected HTTP 200, got ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`;
  const scopes = response.body.data?.viewer?.scopes as string[] | undefined;
  if (JSON.stringify([...(scopes ?? [])].sort()) !== JSON.stringify(READ_SCOPES)) return `expected viewer.scopes ${READ_SCOPES.join(',')}, got ${JSON.stringify(response.body).slice(0, 300)}`;
  return null;
}

/** A VALID verification that counted on the key's window and its organization's quota. */
function expectValid(result: Record<string, any> | undefined, raw: unknown): string | null {
  if (result?.valid !== true || result.code !== 'VALID') return `expected a VALID verification, got ${JSON.stringify(raw).slice(0, 300)}`;
  if (result.rateLimits?.length !== 1 || result.quotas?.length !== 1) return `expected one window and one quota, got ${JSON.stringify(raw).slice(0, 300)}`;
  return null;
}

const expectVerifyKey = (response: GraphqlResponse) => (response.status === 200 ? expectValid(response.body.data?.verifyKey, response.body) : `HTTP ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`);
const expectPlainVerify = (response: GraphqlResponse) => (response.status === 200 ? expectValid(response.body as Record<string, any>, response.body) : `HTTP ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`);

async function sample(workload: Workload, when: string): Promise<void> {
  const problem = workload.check(await post(workload.url, workload.body, workload.secret));
  if (problem) fail(`workload (${workload.id}) ${workload.label} answered wrongly ${when}: ${problem}`);
}

async function measureRound(workload: Workload, round: number): Promise<Round> {
  process.stderr.write(`  round ${round} (${workload.id}) ${workload.label}… `);
  await sample(workload, 'before the load');
  await load(workload, WARMUP_S, CONNECTIONS);
  const cpuBefore = cpuMs(workload.pid);
  const loaded = await load(workload, DURATION_S, CONNECTIONS);
  const cpuMicros = ((cpuMs(workload.pid) - cpuBefore) * 1000) / loaded.result.requests.total;
  const single = await load(workload, LATENCY_DURATION_S, 1);
  await sample(workload, 'after the load');
  const requestsPerSecond = loaded.result.requests.total / loaded.result.duration;
  process.stderr.write(`${Math.round(requestsPerSecond)} req/s, ${cpuMicros.toFixed(0)} µs CPU/req, p99 @1 ${percentile(single.latencies, 99).toFixed(2)} ms\n`);
  return {
    requestsPerSecond,
    p50: percentile(loaded.latencies, 50),
    p99: percentile(loaded.latencies, 99),
    p50At1: percentile(single.latencies, 50),
    p99At1: percentile(single.latencies, 99),
    cpuMicros,
    non2xx: loaded.result.non2xx,
    errors: loaded.result.errors + loaded.result.timeouts,
  };
}

// ---------------------------------------------------------------------------------------------
// Servers

function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** Whether (f) runs, and why not when it does not. */
async function scaleOutPlan(): Promise<{ run: true } | { run: false; why: string }> {
  if (SCALE_OUT === 'off') return { run: false, why: '--no-redis' };
  if (ONLY && !ONLY.includes('f')) return { run: false, why: `--only=${ONLY.join(',')} does not select (f)` };
  const [redis, mysql] = await Promise.all([probeRedis(REDIS_URL), probeMysql(MYSQL_URL)]);
  const problems = [
    ...(redis ? [`Redis at ${REDIS_URL} is not reachable (${redis})`] : []),
    ...(mysql ? [`MariaDB at ${redactPassword(MYSQL_URL)} is not reachable (${mysql})`] : []),
  ];
  if (problems.length === 0) return { run: true };
  if (SCALE_OUT === 'required') fail(`--redis: ${problems.join('; ')}`);
  return { run: false, why: `${problems.join('; ')} — set REDIS_URL / TEST_MYSQL_URL, or pass --redis to make this an error` };
}

const pinned: string[] = [];
/** Pins a server (CPU 0) and notes it; false when pinning is off or impossible. */
function pinServer(label: string, pid: number): void {
  if (PIN && pin(pid, SERVER_CPU)) pinned.push(label);
}

// ---------------------------------------------------------------------------------------------

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = loadAverage();
  const loadPinned = PIN && pin(process.pid, LOAD_CPU);
  console.log(`keyward bench — ${machineSummary()}; load average at start ${loadAtStart}`);
  if (SOAK) {
    await soak({ seconds: positiveNumber('seconds', 600), pinServer, cpuProf: CPU_PROF });
    return;
  }
  const selected = (id: string) => !ONLY || ONLY.includes(id);
  const plan = await scaleOutPlan();
  const { dataDir, env: baseEnv } = makeDataDir('keyward-bench-');
  const env = { ...baseEnv, LOG_LEVEL: 'info' };
  const profileDir = path.join(dataDir, 'profile');

  const stops: Array<() => Promise<void>> = [];
  const workloads: Workload[] = [];
  const http = (port: number) => `http://127.0.0.1:${port}`;
  if (['a', 'b', 'c', 'd', 'e', 'f'].some(selected)) {
    const bare = await startServer('bare server', 'bare-server.js', env).catch((error: Error) => fail(error.message));
    pinServer('bare', bare.child.pid!);
    stops.push(() => stopServer(bare.child));
    workloads.push({ id: 'a', pid: bare.child.pid!, label: 'bare Apollo + TypeGraphQL, { viewer { scopes } } from a constant', url: `${http(bare.port)}/graphql`, secret: null, body: VIEWER_BODY, check: expectScopes });
  }
  let budgetsOn: { url: string; secret: string } | null = null;
  if (['b', 'c', 'd', 'e', 'h'].some(selected)) {
    const init = await initKeyward(env, dataDir);
    const keyward = await startServer('keyward', 'keyward-server.js', env, cpuProfArgs(CPU_PROF, profileDir)).catch((error: Error) => fail(error.message));
    pinServer('keyward (SQLite)', keyward.child.pid!);
    stops.push(() => stopServer(keyward.child));
    const k = await prepareKeyward(`${http(keyward.port)}/graphql`, init.secret);
    budgetsOn = { url: k.url, secret: init.secret };
    workloads.push(
      { id: 'b', pid: keyward.child.pid!, label: 'keyward { viewer { scopes } }, READ key, no limits, no quotas', url: k.url, secret: k.readKey, body: VIEWER_BODY, check: expectScopes },
      { id: 'c', pid: keyward.child.pid!, label: 'keyward { viewer { scopes } }, one rate limit + organization quota', url: k.url, secret: k.meteredKey, body: VIEWER_BODY, check: expectScopes },
      { id: 'd', pid: keyward.child.pid!, label: 'keyward verifyKey over GraphQL (key with a window and a quota)', url: k.url, secret: k.serviceKey, body: JSON.stringify({ query: VERIFY_QUERY, variables: { input: verifyInput(k.targetKey) } }), check: expectVerifyKey },
      { id: 'e', pid: keyward.child.pid!, label: 'keyward POST /v1/verify (the same verification)', url: `${http(keyward.port)}/v1/verify`, secret: k.serviceKey, body: JSON.stringify(verifyInput(k.targetKey)), check: expectPlainVerify },
    );
  }
  if (plan.run) {
    const database = await createMysqlDatabase(MYSQL_URL, 'kw_test_bench_');
    stops.push(() => database.drop());
    const scaleDir = path.join(dataDir, 'scale-out');
    fs.mkdirSync(scaleDir);
    const scaleEnv = { ...env, KEYWARD_DATA_DIR: scaleDir, DATABASE_URL: database.url, REDIS_URL, KEYWARD_PEPPER: randomBytes(24).toString('hex') };
    const init = await initKeyward(scaleEnv, scaleDir);
    const keyward = await startServer('keyward (MariaDB + Redis)', 'keyward-server.js', scaleEnv, cpuProfArgs(CPU_PROF, path.join(dataDir, 'profile-scale-out')))
      .catch((error: Error) => fail(error.message));
    pinServer('keyward (MariaDB + Redis)', keyward.child.pid!);
    stops.unshift(() => stopServer(keyward.child));
    const k = await prepareKeyward(`${http(keyward.port)}/graphql`, init.secret);
    workloads.push({ id: 'f', pid: keyward.child.pid!, label: '(c) on MariaDB + Redis', url: k.url, secret: k.meteredKey, body: VIEWER_BODY, check: expectScopes });
  }
  const measured = workloads.filter((workload) => selected(workload.id));
  console.log(`(a)–(f): autocannon, ${CONNECTIONS} connections, pipelining 1; per round ${WARMUP_S} s warm-up + ${DURATION_S} s measured + ${LATENCY_DURATION_S} s at 1 connection; ${ROUNDS} interleaved rounds, medians`);
  console.log(`pinned: ${pinned.length ? `${pinned.join(', ')} → CPU ${SERVER_CPU}` : 'no server'}; load generator ${loadPinned ? `→ CPU ${LOAD_CPU}` : 'not pinned'}`);
  console.log(plan.run ? `(f): MariaDB ${redactPassword(MYSQL_URL)} + Redis ${REDIS_URL} (not pinned)\n` : `(f): SKIPPED — ${plan.why}\n`);

  for (const workload of measured) await sample(workload, 'before the load');
  const rounds = new Map<string, Round[]>(measured.map((workload) => [workload.id, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const workload of measured) rounds.get(workload.id)!.push(await measureRound(workload, round));
  }
  // (h): issue 17's reserve + settle pairs against verifyKey alone, on the same SQLite keyward.
  let budgets: ReserveSettleFigures | null = null;
  if (selected('h') && budgetsOn) {
    process.stderr.write('  (h) reserve + settle pairs against /v1/verify…\n');
    budgets = await measureReserveSettle(budgetsOn.url, budgetsOn.secret, { seconds: DURATION_S, connections: 16, rounds: ROUNDS });
  }
  for (const stop of stops) await stop();

  let subscribers: SubscriberFigures | null = null;
  if (selected('g')) {
    process.stderr.write(`  (g) ${SUBSCRIBERS.toLocaleString('en-US')} subscribers…\n`);
    subscribers = await measureSubscribers({
      env, dataDir: path.join(dataDir, 'subscribers'), subscribers: SUBSCRIBERS, changes: CHANGES, pinServer, clientCpu: PIN ? LOAD_CPU : null,
      cpuProfDir: CPU_PROF ? path.join(dataDir, 'profile-subscribers') : null,
    });
  }

  report(measured, rounds, subscribers, plan);
  if (budgets) {
    console.log(`\n(h) reserve + settle (POST /v1/reserve then /v1/settle, 16 closed loops): ${budgets.pairsPerSecond.toFixed(0)} pairs/s against `
      + `${budgets.verifiesPerSecond.toFixed(0)} POST /v1/verify/s in the same run: a pair costs ${(budgets.verifiesPerSecond / budgets.pairsPerSecond).toFixed(2)} verifications`);
  }
  console.log(`\nload average at the end ${loadAverage()}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (CPU_PROF) printCpuProfiles(profileDir, 'keyward-bench', 30);
  if (CPU_PROF && plan.run) printCpuProfiles(path.join(dataDir, 'profile-scale-out'), 'keyward-bench-scale-out', 30);
  if (CPU_PROF && subscribers) printCpuProfiles(path.join(dataDir, 'profile-subscribers'), 'keyward-bench-subscribers', 30);
}

function report(workloads: Workload[], rounds: Map<string, Round[]>, subscribers: SubscriberFigures | null, plan: { run: boolean; why?: string }): void {
  const baseline = rounds.get('a');
  const f2 = (value: number) => (Number.isFinite(value) ? value.toFixed(2) : '—');
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const workload of workloads) {
    const samples = rounds.get(workload.id)!;
    const target = TARGETS[workload.id];
    const ratio = baseline && workload.id !== 'a' ? median(samples.map((sample, i) => sample.requestsPerSecond / baseline[i].requestsPerSecond)) : NaN;
    const added = baseline && workload.id !== 'a' ? median(samples.map((sample, i) => sample.p99At1 - baseline[i].p99At1)) : NaN;
    // CPU per request of (a) over this workload's: the throughput ratio a dedicated core would give.
    const cpuRatio = baseline && workload.id !== 'a' ? median(samples.map((sample, i) => baseline[i].cpuMicros / sample.cpuMicros)) : NaN;
    rows.push([
      `(${workload.id}) ${workload.label}`,
      median(samples.map((sample) => sample.requestsPerSecond)).toFixed(0),
      workload.id === 'a' ? '1' : f2(ratio),
      f2(median(samples.map((sample) => sample.p50))),
      f2(median(samples.map((sample) => sample.p99))),
      f2(median(samples.map((sample) => sample.p50At1))),
      f2(median(samples.map((sample) => sample.p99At1))),
      workload.id === 'a' ? '' : `${added >= 0 ? '+' : ''}${f2(added)}`,
      median(samples.map((sample) => sample.cpuMicros)).toFixed(0),
      workload.id === 'a' ? '1' : f2(cpuRatio),
      String(samples.reduce((sum, sample) => sum + sample.non2xx + sample.errors, 0)),
    ]);
    if (target && baseline) {
      verdicts.push(`(${workload.id})/(a) ${f2(ratio)} (rounds: ${samples.map((sample, i) => f2(sample.requestsPerSecond / baseline[i].requestsPerSecond)).join(', ')}; by CPU per request ${f2(cpuRatio)})   target ≥ ${target.ratio.toFixed(2)}   ${ratio >= target.ratio ? 'MET' : 'MISSED'}`);
      if (target.addedP99Ms !== undefined) verdicts.push(`(${workload.id}) added p99 @1 ${added >= 0 ? '+' : ''}${f2(added)} ms   target ≤ ${target.addedP99Ms} ms   ${added <= target.addedP99Ms ? 'MET' : 'MISSED'}`);
    }
  }
  const header = ['workload', `req/s @${CONNECTIONS}`, 'vs (a)', `p50 ms @${CONNECTIONS}`, `p99 ms @${CONNECTIONS}`, 'p50 ms @1', 'p99 ms @1', 'added p99 @1', 'CPU µs/req', '(a) CPU ÷ CPU', 'errors'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (i > 0 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join(' | ')} |`;
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((width, i) => (i > 0 ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`);
  for (const row of rows) console.log(line(row));
  if (!plan.run) console.log(`(f) skipped: ${plan.why}`);
  console.log('');
  for (const verdict of verdicts) console.log(verdict);
  if (subscribers) {
    console.log('');
    for (const text of subscribers.lines) console.log(text);
  }
  console.log(`\nmachine: ${os.cpus().length} CPUs, node ${process.version}`);
}

runMain(main);
