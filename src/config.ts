import fs from 'node:fs';
import path from 'node:path';
import type { QuotaSpec } from './quotas/quota.entity';
import { Meter, QuotaPeriod } from './quotas/quota.entity';
import type { DatabaseConfig } from './db/data-source';

export type { DatabaseConfig };
import { ScopePreset } from './auth/scopes';
import { compileTrust, TrustProxy } from './auth/client-address';
import { ModelPrices, parseModelPrices } from './usage/model-prices';

/** Everything keyward reads from its environment, parsed and validated once at start. */
export interface Config {
  port: number;
  host: string;
  /** Holds the SQLite database and, in embedded mode, the generated pepper. */
  dataDir: string;
  database: DatabaseConfig;
  /** Unset: rate limits, counters and pub/sub stay in process. */
  redisUrl: string | null;
  /** HMAC key for stored key hashes; null means "generate once into the data dir" (SQLite only). */
  pepper: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Express `trust proxy` setting: false, true, a hop count or a list of addresses/CIDRs. */
  trustProxy: TrustProxy;
  sessionPriceUsd: number;
  /** Schema introspection (and GraphiQL's docs) on or off. */
  introspection: boolean;
  /**
   * NODE_ENV=production: introspection and "did you mean" hints only for callers with a valid key
   * (GraphiQL then needs the key in its Headers tab for its docs).
   */
  schemaDetailsNeedKey: boolean;
  /**
   * With REDIS_URL, what rate limiting does while Redis is unreachable: false (default) answers
   * UNAVAILABLE / 503; true falls back to each instance's in-memory limiter.
   */
  rateLimitFailOpen: boolean;
  /** Quotas of an organization created by a wallet signature (WALLET_DEFAULT_QUOTAS). */
  walletDefaultQuotas: QuotaSpec[];
  /**
   * Where clients reach this keyward (KEYWARD_PUBLIC_URL): wallet sign-in messages name its
   * host as their domain. Default: the listen address (development).
   */
  publicUrl: URL;
  /** The most an anonymous wallet signature may get (WALLET_KEY_PRESET, default INFERENCE). */
  walletKeyPreset: ScopePreset;
  /** New wallet organizations one client address may create per hour (WALLET_ORGANIZATIONS_PER_HOUR, default 5). */
  walletOrganizationsPerHour: number;
  /**
   * Cost (graphql-limits.ts `operationCost`) of the GraphQL operations over HTTP one key may have
   * executing at once on an instance (MAX_CONCURRENT_COST_PER_KEY, default 100,000: two operations
   * at the cost limit, or tens of thousands of cheap ones).
   */
  maxConcurrentCostPerKey: number;
  /** WebSockets one key may hold open on an instance (MAX_WEBSOCKETS_PER_KEY, default 100). */
  maxWebSocketsPerKey: number;
  /** WebSockets one client address may hold open on an instance, authenticated or not (MAX_WEBSOCKETS_PER_ADDRESS, default 200). */
  maxWebSocketsPerAddress: number;
  /** Milliseconds a client has to send a whole HTTP request, body included (HTTP_REQUEST_TIMEOUT_SECONDS, default 30); then 408 and closed. */
  requestTimeoutMs: number;
  /** Milliseconds a client has to send a request's headers (HTTP_HEADERS_TIMEOUT_SECONDS, default 10, at most the request timeout). */
  headersTimeoutMs: number;
  /**
   * Waits before each retry of a webhook delivery that failed, in milliseconds
   * (WEBHOOK_RETRY_SCHEDULE, default 5s,5m,30m,2h,5h,10h): after the last one fails the delivery is FAILED.
   */
  webhookRetrySchedule: number[];
  /**
   * Deliver webhooks to private, loopback and link-local addresses (WEBHOOK_ALLOW_PRIVATE, default
   * false): for tests and receivers inside your own network.
   */
  webhookAllowPrivate: boolean;
  /** USD per 1M input / output tokens by model (MODEL_PRICES): costUsd when a call gives a model and no cost. */
  modelPrices: ModelPrices;
}

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function parseBoolean(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function parsePort(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(name, `must be a port number 0-65535, got "${raw}"`);
  }
  return port;
}

function parseTrustProxy(raw: string | undefined): Config['trustProxy'] {
  if (raw === undefined || raw.trim() === '') return false;
  const value = raw.trim();
  if (/^\d+$/.test(value)) return Number(value);
  if (/^(true|false|yes|no|on|off)$/i.test(value)) return parseBoolean('TRUST_PROXY', value, false);
  const list = value.split(',').map((part) => part.trim()).filter(Boolean);
  try {
    compileTrust(list);
  } catch (error) {
    throw new ConfigError('TRUST_PROXY', `must be true/false, a hop count, or addresses/CIDRs (or loopback, linklocal, uniquelocal): ${(error as Error).message}`);
  }
  return list;
}

function parseDatabase(raw: string | undefined, dataDir: string): DatabaseConfig {
  if (raw === undefined || raw.trim() === '') {
    return { kind: 'sqlite', path: path.join(dataDir, 'keyward.sqlite') };
  }
  const value = raw.trim();
  if (value.startsWith('mysql://') || value.startsWith('mariadb://')) {
    try {
      const url = new URL(value.replace(/^mariadb:/, 'mysql:'));
      if (!url.pathname || url.pathname === '/') throw new Error('no database name');
      return { kind: 'mysql', url: url.toString() };
    } catch (error) {
      throw new ConfigError('DATABASE_URL', `is not a valid mysql:// URL (${(error as Error).message})`);
    }
  }
  if (value.startsWith('sqlite:')) {
    const file = value.replace(/^sqlite:(\/\/)?/, '');
    if (!file) throw new ConfigError('DATABASE_URL', 'needs a file path after sqlite:');
    return { kind: 'sqlite', path: path.resolve(file) };
  }
  throw new ConfigError('DATABASE_URL', 'must start with mysql://, mariadb:// or sqlite:');
}

/** `REQUESTS:MONTH:10000,TOKENS:MONTH:1000000`; an empty value means no quotas. */
function parseQuotaList(name: string, raw: string | undefined, fallback: string): Config['walletDefaultQuotas'] {
  const value = raw === undefined ? fallback : raw.trim();
  if (value === '') return [];
  const meters = Object.values(Meter);
  const periods = Object.values(QuotaPeriod);
  return value.split(',').map((entry) => {
    const [meter, period, limit] = entry.trim().split(':');
    if (!meters.includes(meter as Meter) || !periods.includes(period as QuotaPeriod) || !(Number(limit) > 0)) {
      throw new ConfigError(name, `entries must look like REQUESTS:MONTH:10000 (meter ${meters.join('|')}, period ${periods.join('|')}, limit > 0), got "${entry}"`);
    }
    return { meter: meter as Meter, period: period as QuotaPeriod, limit: Number(limit) };
  });
}

function parsePublicUrl(raw: string | undefined, host: string, port: number): URL {
  if (raw === undefined || raw.trim() === '') {
    const listening = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    return new URL(`http://${listening}:${port}`);
  }
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ConfigError('KEYWARD_PUBLIC_URL', `must be an absolute http(s) URL such as https://keys.example.com, got "${raw}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('KEYWARD_PUBLIC_URL', `must be an http(s) URL, got "${raw}"`);
  return url;
}

/** MODEL_PRICES: JSON, or the path of a JSON file (anything not starting with `{`). */
function parseModelPriceTable(raw: string | undefined): ModelPrices {
  if (raw === undefined || raw.trim() === '') return new Map();
  let json = raw.trim();
  if (!json.startsWith('{')) {
    try {
      json = fs.readFileSync(path.resolve(json), 'utf8');
    } catch (error) {
      throw new ConfigError('MODEL_PRICES', `is neither JSON nor a readable file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  try {
    return parseModelPrices(json);
  } catch (error) {
    throw new ConfigError('MODEL_PRICES', (error as Error).message);
  }
}

function parsePositiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(name, `must be a whole number of at least 1, got "${raw}"`);
  return value;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000 };
/** The longest single wait between two attempts of one webhook delivery: a week. */
const MAX_RETRY_DELAY_MS = 7 * 24 * 3_600_000;
const MAX_RETRIES = 20;

/** `5s,5m,30m,2h` → milliseconds; each entry a whole number of seconds, minutes or hours. */
function parseRetrySchedule(name: string, raw: string | undefined, fallback: string): number[] {
  const value = raw === undefined || raw.trim() === '' ? fallback : raw.trim();
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.length > MAX_RETRIES) throw new ConfigError(name, `allows at most ${MAX_RETRIES} retries, got ${entries.length}`);
  return entries.map((entry) => {
    const match = /^(\d+)(s|m|h)$/.exec(entry);
    const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2]] : NaN;
    if (!(ms > 0 && ms <= MAX_RETRY_DELAY_MS)) {
      throw new ConfigError(name, `must be comma-separated delays such as 5s,5m,30m,2h (whole numbers with s, m or h; each above 0 and at most 168h), got "${entry}"`);
    }
    return ms;
  });
}

function parsePreset(name: string, raw: string | undefined, fallback: ScopePreset): ScopePreset {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim().toUpperCase();
  if (!(value in ScopePreset)) throw new ConfigError(name, `must be one of ${Object.keys(ScopePreset).join(', ')}, got "${raw}"`);
  return value as ScopePreset;
}

/**
 * Parses a configuration from an environment (by default `process.env`).
 * Throws ConfigError naming the variable on the first bad value.
 */
export function parseConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(env.KEYWARD_DATA_DIR || './data');
  const database = parseDatabase(env.DATABASE_URL, dataDir);

  const logLevel = (env.LOG_LEVEL || 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  }

  const pepper = env.KEYWARD_PEPPER ? env.KEYWARD_PEPPER : null;
  if (pepper !== null && pepper.length < 16) {
    throw new ConfigError('KEYWARD_PEPPER', 'must be at least 16 characters');
  }
  if (pepper === null && database.kind === 'mysql') {
    // Several instances share one MySQL database; each must hash keys with the same pepper.
    throw new ConfigError('KEYWARD_PEPPER', 'is required when DATABASE_URL points at MySQL/MariaDB');
  }

  const redisUrl = env.REDIS_URL ? env.REDIS_URL.trim() : null;
  if (redisUrl !== null && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://');
  }

  const sessionPriceUsd = env.SESSION_PRICE_USD === undefined || env.SESSION_PRICE_USD === '' ? 1 : Number(env.SESSION_PRICE_USD);
  if (!Number.isFinite(sessionPriceUsd) || sessionPriceUsd < 0) {
    throw new ConfigError('SESSION_PRICE_USD', `must be a non-negative number, got "${env.SESSION_PRICE_USD}"`);
  }

  const requestTimeoutSeconds = parsePositiveInt('HTTP_REQUEST_TIMEOUT_SECONDS', env.HTTP_REQUEST_TIMEOUT_SECONDS, 30);
  const headersTimeoutSeconds = parsePositiveInt('HTTP_HEADERS_TIMEOUT_SECONDS', env.HTTP_HEADERS_TIMEOUT_SECONDS, Math.min(10, requestTimeoutSeconds));
  if (headersTimeoutSeconds > requestTimeoutSeconds) {
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_SECONDS', `must be at most HTTP_REQUEST_TIMEOUT_SECONDS (${requestTimeoutSeconds}), got "${env.HTTP_HEADERS_TIMEOUT_SECONDS}"`);
  }

  const port = parsePort('PORT', env.PORT, 4000);
  const host = env.HOST || '0.0.0.0';
  return {
    port,
    host,
    dataDir,
    database,
    redisUrl,
    pepper,
    logLevel: logLevel as Config['logLevel'],
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    sessionPriceUsd,
    introspection: parseBoolean('INTROSPECTION', env.INTROSPECTION, true),
    schemaDetailsNeedKey: env.NODE_ENV === 'production',
    rateLimitFailOpen: parseBoolean('RATE_LIMIT_FAIL_OPEN', env.RATE_LIMIT_FAIL_OPEN, false),
    walletDefaultQuotas: parseQuotaList('WALLET_DEFAULT_QUOTAS', env.WALLET_DEFAULT_QUOTAS, 'REQUESTS:MONTH:10000'),
    publicUrl: parsePublicUrl(env.KEYWARD_PUBLIC_URL, host, port),
    walletKeyPreset: parsePreset('WALLET_KEY_PRESET', env.WALLET_KEY_PRESET, ScopePreset.INFERENCE),
    walletOrganizationsPerHour: parsePositiveInt('WALLET_ORGANIZATIONS_PER_HOUR', env.WALLET_ORGANIZATIONS_PER_HOUR, 5),
    maxConcurrentCostPerKey: parsePositiveInt('MAX_CONCURRENT_COST_PER_KEY', env.MAX_CONCURRENT_COST_PER_KEY, 100_000),
    maxWebSocketsPerKey: parsePositiveInt('MAX_WEBSOCKETS_PER_KEY', env.MAX_WEBSOCKETS_PER_KEY, 100),
    maxWebSocketsPerAddress: parsePositiveInt('MAX_WEBSOCKETS_PER_ADDRESS', env.MAX_WEBSOCKETS_PER_ADDRESS, 200),
    requestTimeoutMs: requestTimeoutSeconds * 1000,
    headersTimeoutMs: headersTimeoutSeconds * 1000,
    webhookRetrySchedule: parseRetrySchedule('WEBHOOK_RETRY_SCHEDULE', env.WEBHOOK_RETRY_SCHEDULE, '5s,5m,30m,2h,5h,10h'),
    webhookAllowPrivate: parseBoolean('WEBHOOK_ALLOW_PRIVATE', env.WEBHOOK_ALLOW_PRIVATE, false),
    modelPrices: parseModelPriceTable(env.MODEL_PRICES),
  };
}

/** Loads `.env` from the working directory when there is one; real environment variables win. */
export function loadDotEnv(file = path.resolve('.env')): void {
  if (fs.existsSync(file)) process.loadEnvFile(file);
}
