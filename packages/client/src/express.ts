import { createHash, randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { KeywardClient } from './client';
import { KeywardClientError } from './client-error';
import type { RecordUsageInput, SettleUsageInput, VerifyKeyMutation } from './generated/graphql';
import { ErrorCode, HTTP_STATUS, keyFromHeaders, type PresentedKey, REFUSAL_ERROR, retryAfterSeconds, tightest } from './wire';

/**
 * Express middleware for a platform's own API (`@keyward/client/express`): every request's key is
 * checked with `verifyKey` (the client sends it to keyward's data plane, POST /v1/verify),
 * refusals are answered for you, and usage is recorded after the response (POST /v1/usage).
 *
 * ```ts
 * import express from 'express';
 * import { KeywardClient } from '@keyward/client';
 * import { keyward } from '@keyward/client/express';
 *
 * const client = new KeywardClient({ url: process.env.KEYWARD_URL, apiKey: process.env.KEYWARD_API_KEY });
 * app.post('/v1/predict', express.json(), keyward({ client, requiredScopes: ['inference:run'] }), (req, res) => {
 *   res.locals.keywardTokens = 42;             // charged to TOKENS quotas and the session
 *   res.json({ organization: req.keyward!.organizationId });
 * });
 * ```
 *
 * The client's key is a service key of the platform organization holding `keys:verify` and
 * `usage:write` (and, so it never gets in the way, created with `rateLimits: []`).
 *
 * For model calls sold by the token, `reserve: { tokens, model }` holds the estimate with
 * `reserveUsage` (POST /v1/reserve) before the handler runs and settles it after the response
 * with `res.locals.keywardInputTokens` / `keywardOutputTokens` (POST /v1/settle).
 */

/** What `verifyKey` answered, as the middleware passes it on. */
export type VerifyResult = VerifyKeyMutation['verifyKey'];

/** `req.keyward` after an admitted request. */
export interface KeywardVerified extends VerifyResult {
  valid: true;
  failOpen: false;
  /** True when the result came from the local cache (`cache` option): keyward was not asked. */
  cached: boolean;
  /** The operation name sent to keyward (and used for the usage record). */
  operation: string;
  /** With the `reserve` option: the reservation the response settles. */
  reservationId?: string;
}

/** `req.keyward` when keyward could not be reached and `onUnavailable` is 'fail-open'. */
export interface KeywardUnavailable {
  valid: false;
  code: 'UNAVAILABLE';
  failOpen: true;
  operation: string;
}

export type KeywardRequestState = KeywardVerified | KeywardUnavailable;

/** Where a failure reported to `onError` happened. */
export interface KeywardErrorContext {
  phase: 'verify' | 'recordUsage' | 'settleUsage';
  req: Request;
}

export interface KeywardMiddlewareOptions {
  /**
   * Talks to keyward with a service key holding `keys:verify` and `usage:write` (any object with
   * these methods will do; `reserve` needs reserveUsage, settleUsage and releaseUsage too).
   */
  client: Pick<KeywardClient, 'verifyKey' | 'recordUsage'> & Partial<Pick<KeywardClient, 'reserveUsage' | 'settleUsage' | 'releaseUsage'>>;
  /**
   * Reserve-then-settle, for APIs that sell model calls: the key is checked with `reserveUsage`
   * (the same pipeline as verifyKey) holding `tokens` (and `model`'s price, or `costUsd`)
   * against the budgets before the handler runs, so concurrent requests cannot overshoot them.
   * After the response, `settleUsage` replaces the hold with what the handler put in
   * `res.locals` (`keywardInputTokens` / `keywardOutputTokens`, or `keywardTokens`, and
   * `keywardCostUsd`); a response of status 400 or more that reports no usage releases the hold
   * instead. `req.keyward.reservationId` names it. Not combinable with `cache`.
   */
  reserve?: {
    tokens: number | ((req: Request) => number);
    model?: string | ((req: Request) => string);
    costUsd?: number | ((req: Request) => number);
    /** Default keyward's (300). */
    ttlSeconds?: number;
  };
  /** Scopes the presented key must all hold (e.g. `['inference:run']`); default none. */
  requiredScopes?: string[];
  /**
   * Units this request takes from the key's rate limits and REQUESTS quotas: a whole number
   * from 1 to 1,000,000, or a function of the request; default 1.
   */
  cost?: number | ((req: Request) => number);
  /** Refuse with 402 NO_ACTIVE_SESSION unless the key's organization has an active session; default false. */
  requireSession?: boolean;
  /**
   * Where the key is read from. `header` (default true): `Authorization: Bearer <key>`, or
   * without an Authorization header `X-API-Key`, as keyward itself reads them (an Authorization
   * header of another scheme is refused with 401 UNAUTHENTICATED). `query` (default false): the
   * name of a query parameter (e.g. `'api_key'`), read when the headers hold no key.
   * Keys in URLs leak into access logs, proxies and browser history; enable it only for
   * clients that cannot send headers.
   */
  keyFrom?: { header?: boolean; query?: string | false };
  /**
   * The operation name for keyward (rate-limit log, usage breakdowns); at most 200 characters.
   * Default: `METHOD baseUrl + route path`, e.g. `POST /v1/predict` or `GET /v1/items/:id`.
   * The route is only known when the middleware is attached to a route
   * (`app.post(path, keyward(…), handler)`); as app- or router-level middleware
   * (`app.use(keyward(…))`) the default falls back to the request path, ids included — pass
   * your own function there to keep the number of operation names small.
   */
  operation?: (req: Request) => string;
  /**
   * A short local cache of VALID results, per key + client address + cost; default off.
   * Trade-off: within `ttlMs` a cached key is admitted without asking keyward, so a key
   * revoked, disabled or suspended meanwhile keeps working until its entry expires, and cached
   * requests are not counted against rate limits or REQUESTS quotas (nor do their responses
   * carry X-RateLimit-* headers). Usage is still recorded for them. Refusals are never cached.
   * An entry never outlives the key's `expiresAt` or the session's `expiresAt`.
   */
  cache?: { /** Milliseconds an entry is used. */ ttlMs: number; /** Default 10,000; least recently used entries go first. */ maxEntries?: number } | false;
  /**
   * When keyward cannot be reached (network error, timeout, 5xx): 'fail-closed' (default)
   * answers 503 UNAVAILABLE; 'fail-open' lets the request through with
   * `req.keyward = { valid: false, code: 'UNAVAILABLE', failOpen: true }` and records no usage.
   * Any other error from keyward (e.g. the service key is refused or lacks `keys:verify`) is a
   * misconfiguration: it always answers 500 and never fails open.
   */
  onUnavailable?: 'fail-closed' | 'fail-open';
  /**
   * After the response, record usage with the status, latency (milliseconds from the
   * middleware receiving the request to the response finishing) and what the handler put in
   * `res.locals`: `keywardTokens` (tokens), or `keywardCharacters` (tokens = ceil(characters / 4)),
   * and `keywardCostUsd`. Fire-and-forget: failures go to `onError`. Default true.
   */
  recordUsage?: boolean;
  /** Verification and usage-recording failures; default: one line on stderr. Never throws into the app. */
  onError?: (error: unknown, context: KeywardErrorContext) => void;
  /**
   * Current time in milliseconds since the epoch, for Retry-After, X-RateLimit-Reset and the
   * cache; default `Date.now`. Tests pass the clock keyward runs on.
   */
  now?: () => number;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by the keyward middleware before the handler runs. */
      keyward?: KeywardRequestState;
    }
    interface Locals {
      /** Tokens this response used; recorded by the keyward middleware. */
      keywardTokens?: number;
      /** Characters produced, when tokens are not counted (tokens = ceil(characters / 4)). */
      keywardCharacters?: number;
      /** Cost of this response in USD, charged to COST_USD quotas. */
      keywardCostUsd?: number;
      /** With `reserve`: the provider's input and output tokens (tokens default to their sum; they price the model). */
      keywardInputTokens?: number;
      keywardOutputTokens?: number;
    }
  }
}

type RefusalCode = Exclude<VerifyResult['code'], 'VALID'>;

/** keyward's own limits for verifyKey inputs. */
const MAX_OPERATION_LENGTH = 200;
const MAX_COST = 1_000_000;
const DEFAULT_CACHE_ENTRIES = 10_000;

export function keyward(options: KeywardMiddlewareOptions): RequestHandler {
  const { client } = options;
  if (typeof client?.verifyKey !== 'function' || typeof client.recordUsage !== 'function') throw new TypeError('keyward(): options.client must be a KeywardClient');
  const requiredScopes = [...(options.requiredScopes ?? [])];
  const requireSession = options.requireSession ?? false;
  const fromHeader = options.keyFrom?.header ?? true;
  const fromQuery = options.keyFrom?.query || null;
  if (!fromHeader && !fromQuery) throw new TypeError('keyward(): keyFrom allows no source for the key (header false, no query parameter)');
  if (typeof options.cost === 'number') checkCost(options.cost);
  const failOpen = (options.onUnavailable ?? 'fail-closed') === 'fail-open';
  if (options.onUnavailable !== undefined && !['fail-closed', 'fail-open'].includes(options.onUnavailable)) {
    throw new TypeError(`keyward(): onUnavailable must be 'fail-closed' or 'fail-open'`);
  }
  const recordUsage = options.recordUsage ?? true;
  const now = options.now ?? Date.now;
  const operationOf = options.operation ?? defaultOperation;
  const cache = options.cache ? new VerificationCache(options.cache.ttlMs, options.cache.maxEntries ?? DEFAULT_CACHE_ENTRIES) : null;
  const reserve = options.reserve ?? null;
  if (reserve) {
    if (cache) throw new TypeError('keyward(): reserve cannot be combined with cache (every request must hold its own budget)');
    if (typeof client.reserveUsage !== 'function' || typeof client.settleUsage !== 'function' || typeof client.releaseUsage !== 'function') {
      throw new TypeError('keyward(): reserve needs a client with reserveUsage, settleUsage and releaseUsage');
    }
  }

  const report = (error: unknown, phase: KeywardErrorContext['phase'], req: Request) => {
    try {
      if (options.onError) options.onError(error, { phase, req });
      else console.error(`keyward: ${phase === 'verify' ? 'verifying an API key' : phase === 'settleUsage' ? 'settling a reservation' : 'recording usage'} failed: ${(error as Error)?.message ?? String(error)}`);
    } catch {
      // A failing error handler must not take the app down.
    }
  };

  const handle = async (req: Request, res: Response): Promise<'next' | 'answered'> => {
    const started = performance.now();
    const operation = String(operationOf(req)).slice(0, MAX_OPERATION_LENGTH) || req.method;
    const presented = keyOf(req, fromHeader, fromQuery);
    if (presented.kind !== 'key') {
      res.set('WWW-Authenticate', 'Bearer');
      answer(res, ErrorCode.UNAUTHENTICATED, presented.kind === 'not-bearer'
        ? 'The Authorization header must be "Bearer <api key>"'
        : fromHeader
          ? 'An API key is required: send it as "Authorization: Bearer <key>" or in the X-API-Key header'
          : `An API key is required in the "${fromQuery}" query parameter`);
      return 'answered';
    }
    const secret = presented.key;
    const cost = typeof options.cost === 'function' ? checkCost(options.cost(req)) : options.cost ?? 1;
    const ip = req.ip || undefined;
    const cacheKey = cache?.keyFor(secret, ip, cost) ?? null;

    let result = cacheKey ? cache!.get(cacheKey, now()) : null;
    const cached = result !== null;
    let reservationId: string | null = null;
    if (!result) {
      try {
        if (reserve) {
          const valueOf = <T>(option: T | ((req: Request) => T) | undefined) => (typeof option === 'function' ? (option as (req: Request) => T)(req) : option);
          const reservation = await client.reserveUsage!({
            key: secret, cost, requiredScopes, ip, operation, requireSession, tokens: valueOf(reserve.tokens), model: valueOf(reserve.model),
            costUsd: valueOf(reserve.costUsd), ttlSeconds: reserve.ttlSeconds, idempotencyKey: randomUUID(),
          });
          result = reservation.verify;
          reservationId = reservation.id ?? null;
        } else {
          // When this middleware records the request's usage afterwards, the verification itself
          // is not an event too: each request counts once.
          result = await client.verifyKey({ key: secret, cost, requiredScopes, ip, operation, requireSession, recordEvent: !recordUsage });
        }
      } catch (error) {
        report(error, 'verify', req);
        if (!isUnavailable(error)) {
          answer(res, ErrorCode.INTERNAL_SERVER_ERROR, 'The API key could not be verified');
          return 'answered';
        }
        if (failOpen) {
          req.keyward = { valid: false, code: 'UNAVAILABLE', failOpen: true, operation };
          return 'next';
        }
        answer(res, ErrorCode.UNAVAILABLE, 'API keys cannot be verified right now; retry later');
        return 'answered';
      }
      setRateLimitHeaders(res, result.rateLimits);
      if (!result.valid) {
        refuse(res, result, requiredScopes, cost, now());
        return 'answered';
      }
      if (cacheKey) cache!.set(cacheKey, result, now());
    }

    req.keyward = { ...result, valid: true, failOpen: false, cached, operation, ...(reservationId && { reservationId }) };
    if (reservationId) {
      const id = reservationId;
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        const usage = settledUsageOf(res);
        const done = usage === null && (res.statusCode >= 400 || !res.writableFinished)
          ? client.releaseUsage!(id)
          : client.settleUsage!({
            reservationId: id, statusCode: res.statusCode, latencyMs: Math.round((performance.now() - started) * 1000) / 1000, ...usage,
          });
        done.catch((error: unknown) => report(error, 'settleUsage', req));
      };
      res.once('finish', end);
      res.once('close', end);
      return 'next';
    }
    if (recordUsage && result.keyId) {
      const apiKeyId = result.keyId;
      const sessionId = result.session?.id ?? null;
      const idempotencyKey = randomUUID();
      let recorded = false;
      const record = () => {
        if (recorded) return;
        recorded = true;
        const input: RecordUsageInput = {
          apiKeyId,
          sessionId,
          operation,
          statusCode: res.statusCode,
          latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
          idempotencyKey,
          ...usageOf(res),
        };
        client.recordUsage(input).catch((error: unknown) => report(error, 'recordUsage', req));
      };
      // 'close' alone when the client went away before the response finished.
      res.once('finish', record);
      res.once('close', record);
    }
    return 'next';
  };

  const middleware: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    handle(req, res).then(
      (outcome) => { if (outcome === 'next') next(); },
      (error: unknown) => {
        report(error, 'verify', req);
        if (!res.headersSent) answer(res, ErrorCode.INTERNAL_SERVER_ERROR, 'The API key could not be verified');
      },
    );
  };
  return middleware;
}

export default keyward;

/** `METHOD baseUrl + route path` when routed, else `METHOD baseUrl + path`. */
function defaultOperation(req: Request): string {
  const routePath = req.route?.path;
  const path = routePath === undefined ? req.path : String(routePath);
  return `${req.method} ${req.baseUrl}${path}`;
}

/** The key from the headers as keyward itself reads them (see keyFromHeaders), then the query parameter. */
function keyOf(req: Request, fromHeader: boolean, queryName: string | null): PresentedKey {
  if (fromHeader) {
    const presented = keyFromHeaders({ authorization: req.get('authorization'), apiKey: req.get('x-api-key') });
    if (presented.kind !== 'none') return presented;
  }
  if (queryName) {
    const value = (req.query as Record<string, unknown>)[queryName];
    if (typeof value === 'string' && value.trim()) return { kind: 'key', key: value.trim() };
  }
  return { kind: 'none' };
}

function checkCost(cost: number): number {
  if (!Number.isInteger(cost) || cost < 1 || cost > MAX_COST) throw new RangeError(`keyward(): cost must be a whole number from 1 to ${MAX_COST} (got ${cost})`);
  return cost;
}

/** Keyward unreachable, timing out or failing on its side: the case `onUnavailable` decides. */
function isUnavailable(error: unknown): boolean {
  if (!(error instanceof KeywardClientError)) return false;
  return error.code === 'NETWORK_ERROR' || error.code === ErrorCode.UNAVAILABLE || error.status === 0 || error.status >= 500;
}

function answer(res: Response, code: ErrorCode, message: string): void {
  res.status(HTTP_STATUS[code]).json({ error: { code, message } });
}

function setRateLimitHeaders(res: Response, states: VerifyResult['rateLimits']): void {
  const window = tightest(states);
  if (!window) return;
  res.set('X-RateLimit-Limit', String(window.limit));
  res.set('X-RateLimit-Remaining', String(window.remaining));
  res.set('X-RateLimit-Reset', String(Math.ceil(Date.parse(window.resetAt) / 1000)));
}

/**
 * When retrying can succeed: RATE_LIMITED when every window too short for `cost` has reset;
 * QUOTA_EXCEEDED when every used-up DAY / MONTH quota has reset (null when a LIFETIME quota is
 * used up or the cost is above the key's maxCostPerRequest: waiting does not help).
 */
function retryAt(result: VerifyResult, cost: number): number | null {
  if (result.code === 'RATE_LIMITED') {
    const blocking = result.rateLimits.filter((state) => state.remaining < cost);
    const windows = blocking.length > 0 ? blocking : [tightest(result.rateLimits)].filter((state) => state !== null);
    return windows.length > 0 ? Math.max(...windows.map((state) => Date.parse(state.resetAt))) : null;
  }
  if (result.code === 'QUOTA_EXCEEDED') {
    const blocking = result.quotas.filter((quota) => (quota.meter === 'REQUESTS' ? quota.remaining < cost : quota.remaining <= 0));
    if (blocking.length === 0 || blocking.some((quota) => quota.resetsAt === null)) return null;
    return Math.max(...blocking.map((quota) => Date.parse(quota.resetsAt!)));
  }
  return null;
}

const REFUSAL_MESSAGE: Record<RefusalCode, string> = {
  NOT_FOUND: 'The API key is not valid',
  REVOKED: 'The API key was revoked',
  DISABLED: 'The API key is disabled',
  EXPIRED: 'The API key has expired',
  ORGANIZATION_SUSPENDED: 'The organization of this API key is suspended',
  FORBIDDEN_IP: 'Requests from this address are not allowed for this API key',
  INSUFFICIENT_SCOPE: 'The API key lacks a required scope',
  RATE_LIMITED: 'The API key\'s rate limit is used up',
  QUOTA_EXCEEDED: 'A usage quota of this API key or its organization is used up',
  NO_ACTIVE_SESSION: 'This API needs an active session for the key\'s organization',
};

function refuse(res: Response, result: VerifyResult, requiredScopes: string[], cost: number, nowMs: number): void {
  const code = result.code as RefusalCode;
  const errorCode = REFUSAL_ERROR[code as keyof typeof REFUSAL_ERROR] ?? ErrorCode.INVALID_API_KEY;
  let message = REFUSAL_MESSAGE[code] ?? 'The API key was refused';
  if (code === 'INSUFFICIENT_SCOPE' && requiredScopes.length > 0) message += ` (needs ${requiredScopes.join(', ')})`;
  const at = retryAt(result, cost);
  if (at !== null) {
    const seconds = retryAfterSeconds(at, nowMs);
    res.set('Retry-After', String(seconds));
    message += `; retry in ${seconds} s`;
  }
  if (HTTP_STATUS[errorCode] === 401) res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
  answer(res, errorCode, message);
}

/** What the handler left in res.locals, in recordUsage's terms (bad values are dropped). */
function usageOf(res: Response): Pick<RecordUsageInput, 'tokens' | 'characters' | 'costUsd'> {
  const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined);
  const { keywardTokens, keywardCharacters, keywardCostUsd } = res.locals;
  const tokens = count(keywardTokens);
  const characters = tokens === undefined ? count(keywardCharacters) : undefined;
  const costUsd = typeof keywardCostUsd === 'number' && Number.isFinite(keywardCostUsd) && keywardCostUsd >= 0 ? keywardCostUsd : undefined;
  return { ...(tokens !== undefined && { tokens }), ...(characters !== undefined && { characters }), ...(costUsd !== undefined && { costUsd }) };
}

/** What the handler reported for settleUsage (bad values dropped); null when it reported nothing. */
function settledUsageOf(res: Response): Omit<SettleUsageInput, 'reservationId'> | null {
  const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined);
  const { keywardInputTokens, keywardOutputTokens, keywardTokens, keywardCostUsd } = res.locals;
  const usage = {
    inputTokens: count(keywardInputTokens), outputTokens: count(keywardOutputTokens), tokens: count(keywardTokens),
    costUsd: typeof keywardCostUsd === 'number' && Number.isFinite(keywardCostUsd) && keywardCostUsd >= 0 ? keywardCostUsd : undefined,
  };
  const given = Object.entries(usage).filter(([, value]) => value !== undefined);
  return given.length === 0 ? null : Object.fromEntries(given);
}

/**
 * VALID results by (key, client address, cost): an address is part of the entry so a key's
 * ipAllowlist still holds for cached hits. Keys are stored hashed, never as secrets.
 */
class VerificationCache {
  private readonly entries = new Map<string, { result: VerifyResult; expiresAt: number }>();

  constructor(private readonly ttlMs: number, private readonly maxEntries: number) {
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new RangeError(`keyward(): cache.ttlMs must be a positive number of milliseconds (got ${ttlMs})`);
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`keyward(): cache.maxEntries must be a positive whole number (got ${maxEntries})`);
  }

  keyFor(secret: string, ip: string | undefined, cost: number): string {
    return createHash('sha256').update(secret).digest('base64url') + `|${ip ?? ''}|${cost}`;
  }

  get(key: string, nowMs: number): VerifyResult | null {
    const entry = this.entries.get(key);
    if (!entry) return null;
    this.entries.delete(key);
    if (entry.expiresAt <= nowMs) return null;
    this.entries.set(key, entry); // most recently used last
    return entry.result;
  }

  set(key: string, result: VerifyResult, nowMs: number): void {
    const limits = [nowMs + this.ttlMs, result.expiresAt, result.session?.expiresAt]
      .map((at) => (typeof at === 'string' ? Date.parse(at) : at))
      .filter((at): at is number => typeof at === 'number' && Number.isFinite(at));
    this.entries.delete(key);
    this.entries.set(key, { result, expiresAt: Math.min(...limits) });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}
