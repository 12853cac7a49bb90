/**
 * Workload (g) of `npm run bench`: N idle `quotaChanged` subscribers (10,000) in one keyward
 * process, and what a quota change costs them and the request that caused it.
 *
 * keyward runs on a fresh SQLite data dir (bench/keyward-live-server.ts: keyward plus a 'gc'
 * IPC message), pinned like the other servers. One organization has a REQUESTS:MONTH quota;
 * N sockets (raw `ws`, graphql-transport-ws, one `quotaChanged(organizationId)` subscription
 * each, a few usage:read keys round-robin) are held by two subscriber processes
 * (bench/subscription-clients.ts, pinned with the load generator). A change is one `verifyKey`
 * (a platform service key verifying a key of that organization: used + 1 on its quota),
 * `spacingMs` apart (above the 250 ms coalescing window, so each is its own event).
 *
 *   push latency      arrival at a subscriber − the causing verifyKey request sent (both
 *                     CLOCK_MONOTONIC, shared by every process of the machine)
 *   causing verifyKey its latency during the changes, against the same call's idle latency
 *                     (no subscriber: 200 calls, after 50 to warm up)
 *   memory            VmRSS after a full GC: before any socket, with N idle, after the changes
 *                     (and right after the changes without a GC, as the OS sees it)
 */
import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import {
  cpuProfArgs, disconnectChild, fail, forkChild, gql, initKeyward, percentile, pin, rssMib, sleep, startServer, stopServer,
} from './harness';

export interface SubscriberOptions {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  subscribers: number;
  changes: number;
  pinServer: (label: string, pid: number) => void;
  /** CPU of the subscriber processes (the load generator's), or null for none. */
  clientCpu?: number | null;
  spacingMs?: number;
  clients?: number;
  keys?: number;
  cpuProfDir?: string | null;
}

export interface SubscriberFigures {
  /** The report lines, ready to print. */
  lines: string[];
  pushP99Ms: number;
}

const P99_TARGET_MS = 50;
const VERIFY_RATIO_TARGET = 2;
const MIB_PER_1000_TARGET = 40;
const QUOTA_LIMIT = 1e12;
const WARMUP_CHANGES = 2;
const DELIVERY_DEADLINE_MS = 15_000;
const IDLE_CALLS = 200;

const VERIFY = 'mutation ($key: String!) { verifyKey(input: { key: $key }) { valid code quotas { organizationId meter period used } } }';

const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n);

/** keyward_live_delivery_seconds from /metrics: cumulative bucket counts by bound, and sum. */
async function deliveryHistogram(origin: string): Promise<{ buckets: Map<number, number>; sum: number; count: number }> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(/^keyward_live_delivery_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) buckets.set(match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2]));
  const value = (name: string) => Number(new RegExp(`^keyward_live_delivery_seconds_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { buckets, sum: value('sum'), count: value('count') };
}

/** The smallest bucket bound (ms) that holds `share` of the events between two readings. */
function boundHolding(before: Awaited<ReturnType<typeof deliveryHistogram>>, after: Awaited<ReturnType<typeof deliveryHistogram>>, share: number): number {
  const total = after.count - before.count;
  for (const [bound, cumulative] of [...after.buckets].sort((x, y) => x[0] - y[0])) {
    if (cumulative - (before.buckets.get(bound) ?? 0) >= share * total) return bound * 1000;
  }
  return Infinity;
}

/** "250 ms (bucket bound)", or what the largest finite bound is when the share lies beyond it. */
function describeBound(boundMs: number, buckets: Map<number, number>): string {
  if (Number.isFinite(boundMs)) return `${boundMs} ms (bucket bound)`;
  return `— more than ${Math.max(...[...buckets.keys()].filter(Number.isFinite)) * 1000} ms, the largest bucket`;
}

interface Client {
  child: ChildProcess;
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

function startClient(): Promise<Client> {
  const child = forkChild('subscription-clients.js');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a subscriber process did not start within 10 s')), 10_000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve({ child });
    });
    child.once('exit', (code, signal) => reject(new Error(`a subscriber process exited (${signal ?? `code ${code}`})`)));
  });
}

/** A full GC in keyward, a settle, then its VmRSS (MiB). */
async function settledRss(child: ChildProcess): Promise<number> {
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
  return rssMib(child.pid!);
}

export async function measureSubscribers(options: SubscriberOptions): Promise<SubscriberFigures> {
  const spacingMs = options.spacingMs ?? 300;
  const clientCount = options.clients ?? 2;
  const keyCount = options.keys ?? 4;
  fs.mkdirSync(options.dataDir, { recursive: true });
  const env = { ...options.env, KEYWARD_DATA_DIR: options.dataDir };
  const init = await initKeyward(env, options.dataDir);
  const keyward = await startServer('keyward (subscribers)', 'keyward-live-server.js', env, ['--expose-gc', ...(options.cpuProfDir ? cpuProfArgs(true, options.cpuProfDir) : [])])
    .catch((error: Error) => fail(error.message));
  options.pinServer('keyward (subscribers)', keyward.child.pid!);
  const origin = `http://127.0.0.1:${keyward.port}`;
  const url = `${origin}/graphql`;
  const clients = await Promise.all(Array.from({ length: clientCount }, startClient)).catch((error: Error) => fail(error.message));
  if (options.clientCpu !== null) for (const client of clients) pin(client.child.pid!, options.clientCpu ?? 1);
  const problems: string[] = [];
  try {
    const createKey = async (organizationId: string, input: Record<string, unknown>) =>
      (await gql(url, init.secret, 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input: { organizationId, rateLimits: [], quotas: [], ...input } })).createApiKey.secret as string;
    const organization = (await gql(url, init.secret, 'mutation ($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
      input: { name: 'Bench live', quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: QUOTA_LIMIT }] },
    })).createOrganization.id as string;
    const serviceKey = await createKey(init.organizationId, { name: 'bench verifier', scopes: ['keys:verify'] });
    const targetKey = await createKey(organization, { name: 'bench target' });
    const subscriberKeys: string[] = [];
    for (let i = 0; i < keyCount; i++) subscriberKeys.push(await createKey(organization, { name: `bench subscriber ${i + 1}`, scopes: ['usage:read'] }));

    const change = async () => {
      const sentAt = nowMicros();
      const data = await gql(url, serviceKey, VERIFY, { key: targetKey });
      const answeredAt = nowMicros();
      const quota = (data.verifyKey.quotas as Array<{ organizationId: string | null; used: number }>).find((q) => q.organizationId === organization);
      if (data.verifyKey.code !== 'VALID' || !quota) fail(`verifyKey answered ${JSON.stringify(data).slice(0, 300)}`);
      return { used: quota.used, sentAt, answeredAt };
    };
    const runChanges = async (count: number, spacing: number) => {
      const changes: Array<{ used: number; sentAt: number; answeredAt: number }> = [];
      for (let i = 0; i < count; i++) {
        const begun = Date.now();
        changes.push(await change());
        await sleep(Math.max(0, spacing - (Date.now() - begun)));
      }
      return changes;
    };
    const latencies = (changes: Array<{ sentAt: number; answeredAt: number }>) => Float64Array.from(changes.map((c) => (c.answeredAt - c.sentAt) / 1000)).sort();
    const collect = async () => {
      const answers = await Promise.all(clients.map((client) => clientRequest<{ used: number[]; at: number[]; problems: string[] }>(client, { type: 'collect' }, 'collected', 60_000)));
      problems.push(...answers.flatMap((answer) => answer.problems));
      return { used: answers.flatMap((answer) => answer.used), at: answers.flatMap((answer) => answer.at) };
    };
    const arrivals = async () => (await Promise.all(clients.map((client) => clientRequest<{ arrivals: number }>(client, { type: 'count' }, 'count', 10_000))))
      .reduce((sum, answer) => sum + answer.arrivals, 0);

    // The causing call's idle latency: no subscriber at all, one call at a time.
    await runChanges(50, 0);
    const idle = latencies(await runChanges(IDLE_CALLS, 0));
    const rssBefore = await settledRss(keyward.child);

    const connectStarted = Date.now();
    const answers = await Promise.all(clients.map((client, i) => clientRequest<{ open: number; failed: number; failures: string[] }>(client, {
      type: 'connect', url: url.replace(/^http/, 'ws'), secrets: subscriberKeys, organizationId: organization,
      count: Math.floor(options.subscribers / clientCount) + (i < options.subscribers % clientCount ? 1 : 0), concurrency: 100,
    }, 'connected', 300_000)));
    const subscribed = answers.reduce((sum, answer) => sum + answer.open, 0);
    for (const answer of answers) problems.push(...answer.failures.map((failure) => `connect: ${failure}`));
    const connectSeconds = (Date.now() - connectStarted) / 1000;
    const rssIdle = await settledRss(keyward.child);

    await runChanges(WARMUP_CHANGES, spacingMs);
    await sleep(500);
    await collect();
    const deliveredBefore = await deliveryHistogram(origin);
    const changes = await runChanges(options.changes, spacingMs);
    const expected = subscribed * options.changes;
    const deadline = Date.now() + DELIVERY_DEADLINE_MS;
    while (Date.now() < deadline && (await arrivals()) < expected) await sleep(50);
    const rssRaw = rssMib(keyward.child.pid!);
    const deliveredAfter = await deliveryHistogram(origin);
    const { used, at } = await collect();
    const rssAfter = await settledRss(keyward.child);

    const byUsed = new Map(changes.map((c) => [c.used, c]));
    const push: number[] = [];
    for (let i = 0; i < used.length; i++) {
      const c = byUsed.get(used[i]);
      if (c) push.push((at[i] - c.sentAt) / 1000);
    }
    const pushSorted = Float64Array.from(push).sort();
    const causing = latencies(changes);
    await Promise.all(clients.map((client) => clientRequest(client, { type: 'close' }, 'closed', 60_000))).catch((error: Error) => problems.push(error.message));

    const f1 = (value: number) => value.toFixed(1);
    const perThousand = (rssIdle - rssBefore) / (subscribed / 1000);
    const pushP99 = percentile(pushSorted, 99);
    const verifyRatio = percentile(causing, 99) / percentile(idle, 99);
    const grown = rssAfter - rssIdle;
    const lines = [
      `(g) ${subscribed.toLocaleString('en-US')} subscribers (connected in ${connectSeconds.toFixed(0)} s), ${options.changes} quota changes ${spacingMs} ms apart:`,
      `    push latency from the causing request: p50 ${f1(percentile(pushSorted, 50))} ms, p99 ${f1(pushP99)} ms, max ${f1(pushSorted[pushSorted.length - 1] ?? NaN)} ms; delivered ${pushSorted.length}/${expected}   target p99 ≤ ${P99_TARGET_MS} ms   ${pushP99 <= P99_TARGET_MS && pushSorted.length === expected ? 'MET' : 'MISSED'}`,
      `    keyward's own part (keyward_live_delivery_seconds: event reaching the fan-out → last frame written): mean ${f1((1000 * (deliveredAfter.sum - deliveredBefore.sum)) / Math.max(1, deliveredAfter.count - deliveredBefore.count))} ms, 99 % within ${describeBound(boundHolding(deliveredBefore, deliveredAfter, 0.99), deliveredAfter.buckets)}; the rest is the subscriber processes reading ${subscribed.toLocaleString('en-US')} frames on the load generator's CPU`,
      `    causing verifyKey: p50 ${f1(percentile(causing, 50))} ms, p99 ${f1(percentile(causing, 99))} ms; idle (no subscriber) p50 ${f1(percentile(idle, 50))} ms, p99 ${f1(percentile(idle, 99))} ms → ${verifyRatio.toFixed(2)}× idle p99   target ≤ ${VERIFY_RATIO_TARGET}×   ${verifyRatio <= VERIFY_RATIO_TARGET ? 'MET' : 'MISSED'}`,
      `    memory (VmRSS after a full GC): ${f1(rssBefore)} MiB before the sockets, ${f1(rssIdle)} MiB with them idle = ${f1(perThousand)} MiB per 1,000 subscribers   target ≤ ${MIB_PER_1000_TARGET}   ${perThousand <= MIB_PER_1000_TARGET ? 'MET' : 'MISSED'}`,
      `    after the changes: ${f1(rssAfter)} MiB (${grown >= 0 ? '+' : ''}${f1(grown)} MiB; ${f1(rssRaw)} MiB before that GC)   target flat   ${Math.abs(grown) <= 0.1 * rssIdle ? 'MET' : 'MISSED'}`,
      ...problems.slice(0, 10).map((problem) => `    problem: ${problem}`),
    ];
    return { lines, pushP99Ms: pushP99 };
  } finally {
    await stopServer(keyward.child);
    for (const client of clients) await disconnectChild(client.child);
  }
}
