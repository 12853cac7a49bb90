/**
 * What the bench's orchestrators share: autocannon runs, and a keyward prepared with the
 * organizations and keys the workloads use.
 */
import { gql } from './harness';

// ---------------------------------------------------------------------------------------------
// autocannon (no bundled types): the small part of its programmatic API used here.

export interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining: number;
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  /** Requests per second over all connections (fixed-rate load). */
  overallRate?: number;
}
export interface AutocannonResult {
  duration: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  requests: { total: number; average: number };
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): void;
  stop(): void;
}
type Autocannon = (options: AutocannonOptions, done: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance;
const autocannon = require('autocannon') as Autocannon;

/** A window that never refuses in a run but is checked (and counted) on every request. */
export const LARGE_RATE_LIMIT = { name: 'per-minute', limit: 1_000_000_000, windowSeconds: 60 };
export const LARGE_QUOTA = { meter: 'REQUESTS', period: 'MONTH', limit: 1e12 };
export const VIEWER_BODY = JSON.stringify({ query: 'query Viewer { viewer { scopes } }' });
export const verifyInput = (key: string) => ({ key, requiredScopes: ['inference:run'] });

/**
 * One autocannon run. Latencies are collected per response (autocannon's own histogram has
 * 1 ms resolution, too coarse for the 1 ms target) and include non-2xx responses.
 */
export function load(workload: { url: string; secret: string | null; body: string }, seconds: number, connections: number, overallRate?: number): Promise<{ result: AutocannonResult; latencies: Float64Array }> {
  let latencies = new Float64Array(1 << 18);
  let count = 0;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (workload.secret) headers.authorization = `Bearer ${workload.secret}`;
    const instance = autocannon(
      { url: workload.url, connections, duration: seconds, pipelining: 1, method: 'POST', headers, body: workload.body, ...(overallRate && { overallRate }) },
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

export interface KeywardUnderTest {
  url: string;
  /** (b)'s key: a tenant READ key, no rate limits, its organization without quotas. */
  readKey: string;
  /** (c)'s key: READ, one large window, its organization with a large REQUESTS:MONTH quota. */
  meteredKey: string;
  /** The platform's service key: keys:verify, no rate limits. */
  serviceKey: string;
  /** What (d) and (e) verify: inference:run, one large window, the metered organization. */
  targetKey: string;
}

/** Organizations and keys for the workloads, made with the init key over GraphQL. */
export async function prepareKeyward(url: string, adminSecret: string): Promise<KeywardUnderTest> {
  const createOrganization = async (input: Record<string, unknown>) =>
    (await gql(url, adminSecret, 'mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }', { input })).createOrganization.id as string;
  const createKey = async (input: Record<string, unknown>) =>
    (await gql(url, adminSecret, 'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input })).createApiKey.secret as string;
  const plain = await createOrganization({ name: 'Bench plain' });
  const metered = await createOrganization({ name: 'Bench metered', quotas: [LARGE_QUOTA] });
  return {
    url,
    readKey: await createKey({ organizationId: plain, name: 'bench READ', preset: 'READ', rateLimits: [] }),
    meteredKey: await createKey({ organizationId: metered, name: 'bench READ, metered', preset: 'READ', rateLimits: [LARGE_RATE_LIMIT] }),
    serviceKey: await createKey({ name: 'bench verifier', scopes: ['keys:verify'], rateLimits: [] }),
    targetKey: await createKey({ organizationId: metered, name: 'bench target', scopes: ['inference:run'], rateLimits: [LARGE_RATE_LIMIT] }),
  };
}

