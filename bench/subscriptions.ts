/**
 * `npm run bench:subscriptions`: what idle `quotaChanged` subscribers cost keyward, and how fast
 * a quota change reaches them. A benchmark, not a test: it prints one table of figures and
 * never fails on them (it exits non-zero only when setup answers wrongly or a process does not
 * start).
 *
 * keyward runs in its own process (bench/keyward-server.ts, with a 'gc' message added by
 * bench/keyward-live-server.ts) on a fresh SQLite data dir made by
 * `keyward init --json`. One organization has a REQUESTS MONTH quota of 1e12; N sockets
 * (raw `ws`, graphql-transport-ws, one `quotaChanged(organizationId)` subscription each,
 * authenticated round-robin with a few keys holding usage:read) are held by forked subscriber
 * processes (bench/subscription-clients.ts). N grows 0 → 1,000 → 5,000 → 10,000 (sockets are
 * added, never dropped, between sizes). For each N:
 *
 *   - RSS/1000 conn: (VmRSS of keyward after N are subscribed − VmRSS before the first socket)
 *     ÷ (N / 1000), read from /proc/<pid>/status after a full GC and a 1 s settle.
 *   - CPU per event: (utime + stime of keyward, /proc/<pid>/stat, all threads) over K changes,
 *     from just before the first change until every subscriber has every event (or 10 s after
 *     the last change), ÷ K. It includes the verifyKey call that causes the change: the N = 0
 *     row is that cost alone. Resolution: 1 clock tick (10 ms) over the whole run.
 *   - push latency: a change is one verifyKey (a platform-organization service key with
 *     keys:verify and no rate limits, verifying a key of the organization that has no rate
 *     limits and no quotas of its own: used + 1 on the organization's quota). Latency =
 *     arrival at the subscriber − the moment the verifyKey request was SENT (so it includes the
 *     verification itself); the "from response" columns measure from when the HTTP response
 *     was read instead (negative when the event beat the response). Both clocks are
 *     CLOCK_MONOTONIC (process.hrtime), shared by all processes of the machine. Changes are
 *     `--spacing` ms apart (≥ the 250 ms coalescing window) so each one is its own event;
 *     events are matched to changes by `used`. Two unmeasured changes warm each size up.
 *
 * Options: --sizes=1000,5000,10000 --changes=<K> (20) --spacing=<ms> (300) --clients=<n> (2)
 *          --keys=<n> (4, subscriber keys) --concurrency=<n> (100 handshakes in flight per client)
 *          --verbose (per change: verifyKey time and first/median/last arrival)
 *          --cpu-prof (profile the keyward process; prints its top self-time functions)
 */
import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  begin, cpuProfArgs, disconnectChild, fail, flag, forkChild, gql, initKeyward, machineSummary, makeDataDir, percentile, positiveInteger,
  printCpuProfiles, runMain, sleep, startServer, stopServer, textOption,
} from './harness';

begin('bench:subscriptions');

// ---------------------------------------------------------------------------------------------
// Options

const SIZES = (textOption('sizes') ?? '1000,5000,10000').split(',').map(Number);
if (SIZES.some((n, i) => !Number.isInteger(n) || n <= 0 || (i > 0 && n <= SIZES[i - 1]))) fail('--sizes must be increasing positive integers');
const CHANGES = positiveInteger('changes', 20);
const SPACING_MS = positiveInteger('spacing', 300);
const CLIENTS = positiveInteger('clients', 2);
const KEYS = positiveInteger('keys', 4);
const CONCURRENCY = positiveInteger('concurrency', 100);
const CPU_PROF = flag('cpu-prof');
const VERBOSE = flag('verbose');
const WARMUP_CHANGES = 2;
const DELIVERY_DEADLINE_MS = 10_000;

const P99_TARGET_MS = 50;
const SUBSCRIBERS_TARGET = 10_000;
const QUOTA_LIMIT = 1e12;

const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n);

// ---------------------------------------------------------------------------------------------
// keyward process: readings from /proc

/** VmRSS in MB. */
function rssMb(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  if (!line) fail(`no VmRSS in /proc/${pid}/status`);
  return Number(line.split(/\s+/)[1]) / 1024;
}

/** A full GC in keyward, then a settle, then its VmRSS. */
async function settledRssMb(child: ChildProcess): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('keyward did not answer gc within 30 s')), 30_000);
    const listener = (message: { type?: string }) => {
      if (message?.type !== 'gc-done') return;
      clearTimeout(timer);
      child.off('message', listener);
      resolve();
    };
    child.on('message', listener);
    child.send('gc');
  });
  await sleep(1000);
  return rssMb(child.pid!);
}

/** utime and stime of every thread, in clock ticks. */
function cpuTicks(pid: number): { user: number; sys: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return { user: Number(fields[11]), sys: Number(fields[12]) };
}

function openFilesLimit(pid: number | 'self'): string {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return line ? line.replace(/^Max open files\s+/, '').replace(/\s+/g, ' ').trim() : 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Subscriber processes

interface Client {
  child: ChildProcess;
  open: number;
}

function clientRequest<T>(client: Client, command: Record<string, unknown>, answer: string, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.child.off('message', listener);
      reject(new Error(`subscriber process ${client.child.pid} did not answer ${command.type} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const listener = (message: { type?: string }) => {
      if (message?.type !== answer) return;
      clearTimeout(timer);
      client.child.off('message', listener);
      resolve(message as T);
    };
    client.child.on('message', listener);
    client.child.send(command);
  });
}

function startClient(): Promise<{ client: Client; openFiles: string }> {
  const child = forkChild('subscription-clients.js');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a subscriber process did not start within 10 s')), 10_000);
    child.once('message', (message: { type?: string; openFiles?: string }) => {
      clearTimeout(timer);
      resolve({ client: { child, open: 0 }, openFiles: message.openFiles ?? 'unknown' });
    });
    child.once('exit', (code, signal) => reject(new Error(`a subscriber process exited (${signal ?? `code ${code}`})`)));
  });
}

// ---------------------------------------------------------------------------------------------
// Changes: one verifyKey call each

const VERIFY = 'mutation ($key: String!) { verifyKey(input: { key: $key }) { valid code quotas { organizationId meter period used } } }';

interface Change {
  used: number;
  sentAt: number;
  answeredAt: number;
}

// ---------------------------------------------------------------------------------------------

interface Row {
  n: number;
  rssPer1000: number | null;
  rssMb: number;
  cpuPerEventMs: number;
  userPerEventMs: number;
  clientsCpuPerEventMs: number;
  sysPerEventMs: number;
  p50: number;
  p99: number;
  max: number;
  p50FromResponse: number;
  p99FromResponse: number;
  verifyP50: number;
  delivered: number;
  expected: number;
  unmatched: number;
  connectSeconds: number;
}

async function main(): Promise<void> {
  const started = Date.now();
  const clockTick = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s on Linux
  console.log(`keyward subscriptions bench — ${machineSummary()}`);
  console.log(`N = ${SIZES.join(' / ')} sockets × 1 quotaChanged subscription, ${KEYS} subscriber keys, ${CLIENTS} subscriber process(es); ${CHANGES} changes per N, ${SPACING_MS} ms apart (+${WARMUP_CHANGES} warm-up); server, subscribers and this process share the machine`);
  console.log(`open files (soft hard): this process ${openFilesLimit('self')}; shell \`ulimit -n\` applies per process`);

  const { dataDir, env } = makeDataDir('keyward-bench-subs-');
  const init = await initKeyward(env, dataDir);
  const profileDir = path.join(dataDir, 'profile');
  const keyward = await startServer('keyward', 'keyward-live-server.js', env, ['--expose-gc', ...cpuProfArgs(CPU_PROF, profileDir)]).catch((error: Error) => fail(error.message));
  const pid = keyward.child.pid!;
  const url = `http://127.0.0.1:${keyward.port}/graphql`;
  const wsUrl = url.replace(/^http/, 'ws');

  const clientsStarted = await Promise.all(Array.from({ length: CLIENTS }, startClient)).catch((error: Error) => fail(error.message));
  const clients = clientsStarted.map((started) => started.client);
  const needed = Math.ceil(SIZES[SIZES.length - 1] / CLIENTS);
  console.log(`open files (soft hard): keyward (pid ${pid}) ${openFilesLimit(pid)}; subscriber processes ${clientsStarted.map((c) => c.openFiles.replace(/^Max open files\s+/, '').replace(/ files$/, '')).join(', ')}; each subscriber process holds up to ${needed} sockets, keyward ${SIZES[SIZES.length - 1]}\n`);
  const serverLimit = Number(openFilesLimit(pid).split(' ')[0]);
  if (Number.isFinite(serverLimit) && serverLimit < SIZES[SIZES.length - 1] + 100) {
    console.log(`  warning: keyward may run out of file descriptors (soft limit ${serverLimit}); raise \`ulimit -n\` before running`);
  }

  // The organization watched, its keys, and a service key of the platform organization (its own
  // GraphQL calls then touch no quota of the watched organization).
  const createKey = async (organizationId: string, input: Record<string, unknown>) =>
    (await gql(url, init.secret, 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input: { organizationId, rateLimits: [], quotas: [], ...input } })).createApiKey.secret as string;
  const organization = (await gql(url, init.secret, 'mutation ($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
    input: { name: 'Bench live', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: QUOTA_LIMIT }] },
  })).createOrganization.id as string;
  const serviceKey = await createKey(init.organizationId, { name: 'bench verifier', scopes: ['keys:verify'] });
  const targetKey = await createKey(organization, { name: 'bench target' });
  const subscriberKeys: string[] = [];
  for (let i = 0; i < KEYS; i++) subscriberKeys.push(await createKey(organization, { name: `bench subscriber ${i + 1}`, scopes: ['usage:read'] }));

  const change = async (): Promise<Change> => {
    const sentAt = nowMicros();
    const data = await gql(url, serviceKey, VERIFY, { key: targetKey });
    const answeredAt = nowMicros();
    const result = data.verifyKey as { valid: boolean; code: string; quotas: Array<{ organizationId: string | null; meter: string; period: string; used: number }> };
    const quota = result.quotas.find((q) => q.organizationId === organization && q.meter === 'REQUESTS' && q.period === 'MONTH');
    if (!result.valid || result.code !== 'VALID' || !quota) fail(`verifyKey answered ${JSON.stringify(result).slice(0, 300)}`);
    return { used: quota.used, sentAt, answeredAt };
  };
  const runChanges = async (count: number): Promise<Change[]> => {
    const changes: Change[] = [];
    for (let i = 0; i < count; i++) {
      const begun = Date.now();
      changes.push(await change());
      await sleep(Math.max(0, SPACING_MS - (Date.now() - begun)));
    }
    return changes;
  };
  const totalArrivals = async () => (await Promise.all(clients.map((client) => clientRequest<{ arrivals: number }>(client, { type: 'count' }, 'count', 10_000))))
    .reduce((sum, answer) => sum + answer.arrivals, 0);
  const collect = async () => {
    const answers = await Promise.all(clients.map((client) => clientRequest<{ used: number[]; at: number[]; problems: string[] }>(client, { type: 'collect' }, 'collected', 60_000)));
    return {
      used: answers.flatMap((answer) => answer.used),
      at: answers.flatMap((answer) => answer.at),
      problems: answers.flatMap((answer) => answer.problems),
    };
  };

  // Warm-up of the verification path, then the baseline memory.
  await runChanges(5);
  const problems: string[] = [];
  const rows: Row[] = [];
  let subscribed = 0;
  const rssBefore = await settledRssMb(keyward.child);

  for (const n of [0, ...SIZES]) {
    // Connect the sockets this size adds, spread over the subscriber processes.
    const connectStarted = Date.now();
    if (n > subscribed) {
      process.stderr.write(`  N=${n}: connecting ${n - subscribed} more sockets… `);
      const add = n - subscribed;
      const answers = await Promise.all(clients.map((client, i) => {
        const count = Math.floor(add / CLIENTS) + (i < add % CLIENTS ? 1 : 0);
        return clientRequest<{ opened: number; failed: number; failures: string[]; open: number; snapshotUsed: number[] }>(
          client, { type: 'connect', url: wsUrl, secrets: subscriberKeys, organizationId: organization, count, concurrency: CONCURRENCY }, 'connected', 170_000,
        );
      }));
      subscribed = answers.reduce((sum, answer) => sum + answer.open, 0);
      const failed = answers.reduce((sum, answer) => sum + answer.failed, 0);
      process.stderr.write(`${subscribed} subscribed in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s${failed ? `, ${failed} failed` : ''}\n`);
      for (const answer of answers) for (const failure of answer.failures) problems.push(`N=${n}: connect failed: ${failure}`);
    }
    const connectSeconds = (Date.now() - connectStarted) / 1000;
    const rss = await settledRssMb(keyward.child);

    // Warm-up changes (not measured), then the measured ones.
    await runChanges(WARMUP_CHANGES);
    await sleep(500);
    const warm = await collect();
    problems.push(...warm.problems.map((problem) => `N=${n} (warm-up): ${problem}`));

    const clientsCpu = () => clients.reduce((sum, client) => {
      const ticks = cpuTicks(client.child.pid!);
      return sum + ticks.user + ticks.sys;
    }, 0);
    const clientsCpuStart = clientsCpu();
    const cpuStart = cpuTicks(pid);
    const changes = await runChanges(CHANGES);
    const expected = subscribed * CHANGES;
    const deadline = Date.now() + DELIVERY_DEADLINE_MS;
    while (subscribed > 0 && Date.now() < deadline && (await totalArrivals()) < expected) await sleep(50);
    const cpuEnd = cpuTicks(pid);
    const clientsCpuEnd = clientsCpu();
    const { used, at, problems: runProblems } = await collect();
    problems.push(...runProblems.map((problem) => `N=${n}: ${problem}`));

    const byUsed = new Map(changes.map((c) => [c.used, c]));
    if (byUsed.size !== changes.length) problems.push(`N=${n}: two changes reported the same quota.used`);
    const fromSent = new Float64Array(used.length);
    const fromResponse = new Float64Array(used.length);
    let delivered = 0;
    let unmatched = 0;
    for (let i = 0; i < used.length; i++) {
      const c = byUsed.get(used[i]);
      if (!c) {
        unmatched++;
        continue;
      }
      fromSent[delivered] = (at[i] - c.sentAt) / 1000;
      fromResponse[delivered] = (at[i] - c.answeredAt) / 1000;
      delivered++;
    }
    if (VERBOSE) {
      const perChange = new Map<number, number[]>();
      for (let i = 0; i < used.length; i++) {
        const c = byUsed.get(used[i]);
        if (c) (perChange.get(c.used) ?? perChange.set(c.used, []).get(c.used)!).push((at[i] - c.sentAt) / 1000);
      }
      for (const c of changes) {
        const list = Float64Array.from(perChange.get(c.used) ?? []).sort();
        console.error(`    N=${subscribed} used=${c.used}: verifyKey ${((c.answeredAt - c.sentAt) / 1000).toFixed(1)} ms; arrivals ${list.length}: first ${list[0]?.toFixed(1)} p50 ${percentile(list, 50).toFixed(1)} last ${list[list.length - 1]?.toFixed(1)} ms after the request`);
      }
    }
    const sent = fromSent.slice(0, delivered).sort();
    const answered = fromResponse.slice(0, delivered).sort();
    const verify = Float64Array.from(changes.map((c) => (c.answeredAt - c.sentAt) / 1000)).sort();
    rows.push({
      n: subscribed,
      rssPer1000: subscribed > 0 ? (rss - rssBefore) / (subscribed / 1000) : null,
      rssMb: rss,
      cpuPerEventMs: ((cpuEnd.user + cpuEnd.sys - cpuStart.user - cpuStart.sys) * (1000 / clockTick)) / CHANGES,
      userPerEventMs: ((cpuEnd.user - cpuStart.user) * (1000 / clockTick)) / CHANGES,
      clientsCpuPerEventMs: ((clientsCpuEnd - clientsCpuStart) * (1000 / clockTick)) / CHANGES,
      sysPerEventMs: ((cpuEnd.sys - cpuStart.sys) * (1000 / clockTick)) / CHANGES,
      p50: percentile(sent, 50),
      p99: percentile(sent, 99),
      max: sent.length ? sent[sent.length - 1] : NaN,
      p50FromResponse: percentile(answered, 50),
      p99FromResponse: percentile(answered, 99),
      verifyP50: percentile(verify, 50),
      delivered,
      expected,
      unmatched,
      connectSeconds,
    });
    if (unmatched) problems.push(`N=${n}: ${unmatched} events matched no measured change (merged, late warm-up or unexpected)`);
    if (n > 0 && subscribed !== n) problems.push(`N=${n}: only ${subscribed} sockets were subscribed`);
  }

  // Close the sockets (the subscribers do), then keyward and the subscriber processes.
  const closeStarted = Date.now();
  await Promise.all(clients.map((client) => clientRequest(client, { type: 'close' }, 'closed', 30_000))).catch((error: Error) => problems.push(error.message));
  const closeSeconds = (Date.now() - closeStarted) / 1000;
  await stopServer(keyward.child);
  for (const client of clients) await disconnectChild(client.child);

  // The table
  const f = (value: number | null, digits = 1) => (value === null || !Number.isFinite(value) ? '—' : value.toFixed(digits));
  const table = rows.map((row) => [
    row.n.toLocaleString('en-US'), f(row.rssPer1000), f(row.cpuPerEventMs), `${f(row.userPerEventMs)} / ${f(row.sysPerEventMs)}`, row.n ? f(row.p50) : '—', row.n ? f(row.p99) : '—',
    row.n ? `${row.delivered}/${row.expected}` : '—', row.n ? f(row.max) : '—', row.n ? `${f(row.p50FromResponse)} / ${f(row.p99FromResponse)}` : '—',
    f(row.verifyP50), f(row.rssMb, 0), f(row.clientsCpuPerEventMs), row.n ? (row.p99 <= P99_TARGET_MS ? 'PASS' : 'MISS') : '',
  ]);
  const header = ['N', 'RSS/1000 conn (MB)', 'CPU per event (ms)', 'user / sys (ms)', 'push p50 (ms)', 'push p99 (ms)', 'delivered/expected', 'push max (ms)', 'p50 / p99 from response (ms)', 'verifyKey p50 (ms)', 'RSS (MB)', 'subscribers CPU/event (ms)', `p99 ≤ ${P99_TARGET_MS} ms`];
  const widths = header.map((title, i) => Math.max(title.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padStart(widths[i])).join(' | ')} |`;
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((width) => `${'-'.repeat(width + 1)}:`).join('|')}|`);
  for (const row of table) console.log(line(row));
  console.log(`\npush latency = arrival at the subscriber − verifyKey request sent (includes the verification); "from response" = − verifyKey response read.`);
  console.log(`RSS (after a full GC) before any socket: ${rssBefore.toFixed(0)} MB. CPU per event includes the verifyKey call (see N=0) and anything else keyward did meanwhile (keep-alive pings every 15 s, the 500 ms expiry sweep); resolution ${1000 / clockTick} ms over ${CHANGES} changes.`);
  console.log(`"subscribers CPU/event" = CPU of all ${CLIENTS} subscriber processes per change: they share the ${os.availableParallelism()} CPU(s) with keyward, so on a small machine they slow it down.`);
  const largest = rows[rows.length - 1];
  const holds = largest.n >= SUBSCRIBERS_TARGET && largest.delivered === largest.expected;
  console.log(`\ntarget: ${SUBSCRIBERS_TARGET.toLocaleString('en-US')} subscribers in one process, every event delivered: ${largest.n.toLocaleString('en-US')} subscribed, ${largest.delivered}/${largest.expected} delivered   ${holds ? 'PASS' : 'MISS'}`);
  console.log(`target: push p99 ≤ ${P99_TARGET_MS} ms at ${largest.n.toLocaleString('en-US')}: ${f(largest.p99)} ms   ${largest.p99 <= P99_TARGET_MS ? 'PASS' : 'MISS'}`);
  if (problems.length) {
    console.log('\nproblems:');
    for (const problem of problems.slice(0, 40)) console.log(`  ${problem}`);
    if (problems.length > 40) console.log(`  … and ${problems.length - 40} more`);
  }
  if (CPU_PROF) printCpuProfiles(profileDir, 'keyward-bench-subscriptions', 30);
  console.log(`\nsockets closed in ${closeSeconds.toFixed(1)} s; machine: nproc ${os.availableParallelism()}, node ${process.version}; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

runMain(main);
