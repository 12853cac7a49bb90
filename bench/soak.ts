/**
 * `npm run bench:soak [-- --seconds=<s>]`: is keyward's memory flat under steady load? Workload (c)
 * of the bench (`{ viewer { scopes } }`, a key with one rate limit, its organization a
 * REQUESTS:MONTH quota) at a fixed 1,000 requests/s for 600 s (--seconds) against one keyward (SQLite,
 * LOG_LEVEL=info), pinned like the bench's servers. Every 10 s: VmRSS; every 60 s also VmRSS and
 * the V8 heap after a full GC. Growth is judged from the end of the first minute (warm-up) to
 * the end: at most 10 %.
 */
import path from 'node:path';
import { fail, initKeyward, makeDataDir, rssMib, sleep, startServer, stopServer, cpuProfArgs, printCpuProfiles } from './harness';
import { load, prepareKeyward, VIEWER_BODY } from './workloads';

const RATE = 1_000;
const CONNECTIONS = 10;
const WARMUP_S = 60;
const GROWTH_TARGET = 0.1;

interface Reading {
  second: number;
  rss: number;
  afterGc?: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
}

export async function soak(options: { seconds: number; pinServer: (label: string, pid: number) => void; cpuProf: boolean }): Promise<void> {
  const { dataDir, env: baseEnv } = makeDataDir('keyward-soak-');
  const env = { ...baseEnv, LOG_LEVEL: 'info' };
  const profileDir = path.join(dataDir, 'profile');
  const init = await initKeyward(env, dataDir);
  const keyward = await startServer('keyward', 'keyward-live-server.js', env, ['--expose-gc', ...cpuProfArgs(options.cpuProf, profileDir)]).catch((error: Error) => fail(error.message));
  options.pinServer('keyward', keyward.child.pid!);
  const k = await prepareKeyward(`http://127.0.0.1:${keyward.port}/graphql`, init.secret);
  const pid = keyward.child.pid!;
  const gc = () => new Promise<Reading['afterGc']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('keyward did not answer gc within 30 s')), 30_000);
    const listener = (message: { type?: string; memory?: NodeJS.MemoryUsage }) => {
      if (message?.type !== 'gc-done' || !message.memory) return;
      clearTimeout(timer);
      keyward.child.off('message', listener);
      const mib = (bytes: number) => bytes / 1024 / 1024;
      resolve({ rss: rssMib(pid), heapUsed: mib(message.memory.heapUsed), external: mib(message.memory.external), arrayBuffers: mib(message.memory.arrayBuffers) });
    };
    keyward.child.on('message', listener);
    keyward.child.send('gc');
  });

  console.log(`soak: (c) at ${RATE} requests/s (${CONNECTIONS} connections) for ${options.seconds} s; RSS every 10 s, after a full GC every 60 s\n`);
  const readings: Reading[] = [{ second: 0, rss: rssMib(pid), afterGc: await gc() }];
  const started = Date.now();
  const running = load({ url: k.url, secret: k.meteredKey, body: VIEWER_BODY }, options.seconds, CONNECTIONS, RATE);
  let done = false;
  void running.finally(() => { done = true; });
  for (let second = 10; second <= options.seconds && !done; second += 10) {
    await sleep(Math.max(0, started + second * 1000 - Date.now()));
    readings.push({ second, rss: rssMib(pid), ...(second % 60 === 0 && { afterGc: await gc() }) });
  }
  const { result, latencies } = await running;
  readings.push({ second: Math.round((Date.now() - started) / 1000), rss: rssMib(pid), afterGc: await gc() });
  await stopServer(keyward.child);

  const f1 = (value: number | undefined) => (value === undefined ? '' : value.toFixed(1));
  console.log('| s | VmRSS MiB | VmRSS after GC | heap used after GC | external | array buffers |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const reading of readings) {
    console.log(`| ${reading.second} | ${f1(reading.rss)} | ${f1(reading.afterGc?.rss)} | ${f1(reading.afterGc?.heapUsed)} | ${f1(reading.afterGc?.external)} | ${f1(reading.afterGc?.arrayBuffers)} |`);
  }
  const warm = readings.find((reading) => reading.second >= Math.min(WARMUP_S, options.seconds / 2)) ?? readings[0];
  const last = readings[readings.length - 1];
  const growth = (last.rss - warm.rss) / warm.rss;
  const rate = result.requests.total / result.duration;
  console.log(`\n${result.requests.total} requests (${rate.toFixed(0)}/s), ${result.non2xx} non-2xx, ${result.errors + result.timeouts} errors; p99 ${latencies[Math.ceil(latencies.length * 0.99) - 1]?.toFixed(2)} ms`);
  console.log(`RSS ${f1(warm.rss)} MiB at ${warm.second} s → ${f1(last.rss)} MiB at ${last.second} s: ${(growth * 100).toFixed(1)} %   target ≤ ${GROWTH_TARGET * 100} %   ${growth <= GROWTH_TARGET ? 'MET' : 'MISSED'}`);
  if (options.cpuProf) printCpuProfiles(profileDir, 'keyward-soak', 30);
}
