/**
 * Reserve-then-settle against verifyKey alone, in one run on one keyward (SQLite): closed-loop
 * clients each send, as fast as answers come back, either POST /v1/verify (one request per
 * unit) or POST /v1/reserve followed by POST /v1/settle for the reservation it made (one pair
 * per unit). Reports units per second and the pair's cost relative to a verification.
 *
 *   npm run build && npx tsc -p bench/tsconfig.json && node dist/bench/reserve-settle.js [--seconds=10] [--connections=16] [--rounds=3]
 *
 * `measureReserveSettle` is exported for bench/run.ts to report beside its workloads.
 */
import { begin, fail, gql, initKeyward, makeDataDir, positiveInteger, positiveNumber, post, runMain, startServer, stopServer } from './harness';
import { LARGE_RATE_LIMIT } from './workloads';

export interface ReserveSettleFigures {
  verifiesPerSecond: number;
  pairsPerSecond: number;
}

interface Target {
  origin: string;
  serviceKey: string;
  targetKey: string;
}

/** Keys for the run: a service key (keys:verify, usage:write, no limits) and a target with TOKENS and COST_USD quotas and a TPM window that never refuse. */
async function prepare(graphqlUrl: string, adminSecret: string): Promise<Target> {
  const organization = (await gql(graphqlUrl, adminSecret, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', {
    input: { name: 'Bench budgets', quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1e15 }, { meter: 'COST_USD', period: 'MONTH', limit: 1e12 }] },
  })).createOrganization.id as string;
  const createKey = async (input: Record<string, unknown>) =>
    (await gql(graphqlUrl, adminSecret, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input })).createApiKey.secret as string;
  return {
    origin: new URL(graphqlUrl).origin,
    serviceKey: await createKey({ name: 'bench budgets service', scopes: ['keys:verify', 'usage:write'], rateLimits: [] }),
    targetKey: await createKey({
      organizationId: organization, name: 'bench budgets target', scopes: ['inference:run'],
      rateLimits: [LARGE_RATE_LIMIT, { name: 'tpm', limit: 1_000_000_000, windowSeconds: 60, meter: 'TOKENS' }],
    }),
  };
}

let sequence = 0;

/** One unit of each workload; throws on a wrong answer (the figures would mean nothing). */
async function send(target: Target, route: string, body: unknown): Promise<{ status: number; body: Record<string, any> }> {
  const response = await post(`${target.origin}${route}`, JSON.stringify(body), target.serviceKey);
  return { status: response.status, body: response.body as Record<string, any> };
}

async function verifyOnce(target: Target): Promise<void> {
  const response = await send(target, '/v1/verify', { key: target.targetKey, requiredScopes: ['inference:run'] });
  if (response.status !== 200 || response.body.valid !== true) throw new Error(`verify answered ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`);
}

async function reserveAndSettleOnce(target: Target): Promise<void> {
  sequence += 1;
  const reserve = await send(target, '/v1/reserve', {
    key: target.targetKey, requiredScopes: ['inference:run'], tokens: 2_000, costUsd: 0.01, idempotencyKey: `bench-${process.pid}-${sequence}`,
  });
  const id = reserve.body.id as string | null;
  if (reserve.status !== 200 || !id) throw new Error(`reserve answered ${reserve.status}: ${JSON.stringify(reserve.body).slice(0, 300)}`);
  const settle = await send(target, '/v1/settle', { reservationId: id, inputTokens: 700, outputTokens: 300, costUsd: 0.004 });
  if (settle.status !== 200 || settle.body.recorded !== true) throw new Error(`settle answered ${settle.status}: ${JSON.stringify(settle.body).slice(0, 300)}`);
}

/** Units per second of `unit`, from `connections` closed loops over `seconds`. */
async function closedLoop(unit: () => Promise<void>, seconds: number, connections: number): Promise<number> {
  const endAt = performance.now() + seconds * 1000;
  let units = 0;
  const loop = async () => {
    while (performance.now() < endAt) {
      await unit();
      units += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  return units / ((performance.now() - started) / 1000);
}

/**
 * verifyKey alone and reserve + settle pairs, alternating for `rounds` rounds (a slow moment of
 * the machine hits both alike), each workload warmed up first; medians of the rounds.
 */
export async function measureReserveSettle(graphqlUrl: string, adminSecret: string, options: { seconds: number; connections: number; rounds: number }): Promise<ReserveSettleFigures> {
  const target = await prepare(graphqlUrl, adminSecret);
  await closedLoop(() => verifyOnce(target), 1, options.connections);
  await closedLoop(() => reserveAndSettleOnce(target), 1, options.connections);
  const verifies: number[] = [];
  const pairs: number[] = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    verifies.push(await closedLoop(() => verifyOnce(target), options.seconds, options.connections));
    pairs.push(await closedLoop(() => reserveAndSettleOnce(target), options.seconds, options.connections));
    process.stderr.write(`  round ${round}: verify ${verifies[round - 1].toFixed(0)}/s, reserve + settle ${pairs[round - 1].toFixed(0)} pairs/s\n`);
  }
  return { verifiesPerSecond: median(verifies), pairsPerSecond: median(pairs) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function main(): Promise<void> {
  begin('reserve-settle bench');
  const { dataDir, env } = makeDataDir('keyward-bench-budgets-');
  const init = await initKeyward(env, dataDir);
  const keyward = await startServer('keyward', 'keyward-server.js', env).catch((error: Error) => fail(error.message));
  try {
    const figures = await measureReserveSettle(`http://127.0.0.1:${keyward.port}/graphql`, init.secret, {
      seconds: positiveNumber('seconds', 10), connections: positiveInteger('connections', 16), rounds: positiveInteger('rounds', 3),
    });
    console.log(`verifyKey alone (POST /v1/verify):            ${figures.verifiesPerSecond.toFixed(0)} verifications/s`);
    console.log(`reserve + settle (POST /v1/reserve, /v1/settle): ${figures.pairsPerSecond.toFixed(0)} pairs/s `
      + `(${(figures.pairsPerSecond / figures.verifiesPerSecond).toFixed(2)} × verifyKey alone)`);
  } finally {
    await stopServer(keyward.child);
  }
}

if (require.main === module) runMain(main);
