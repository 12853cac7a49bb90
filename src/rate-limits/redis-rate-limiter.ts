import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import type { RateLimitSpec } from '../api-keys/api-key.entity';
import { assertDistinctNames, consumeResult, ConsumeResult, RateLimiter, RateLimitWindowState, stateOf } from './rate-limiter';
import { MAX_ENTRIES, WindowView } from './sliding-log';

/**
 * How long (ms) a window's log outlives its window in Redis. The log's own times come from the
 * callers' clocks; Redis expiry (real time) only collects logs nobody uses, with room for clocks
 * that differ between instances and for test clocks that stand still.
 */
const EXPIRY_GRACE_MS = 60_000;

/**
 * One call of any operation on all of a subject's windows, atomic in Redis. It makes the same
 * decisions as sliding-log.ts, step for step (test/redis-rate-limiter.test.ts compares the two),
 * and is written for speed: a log is one MessagePack array (cmsgpack, in C) that also keeps the
 * sum of its units, {highWater, refundFloor, used, t1, u1, t2, u2, …} (integers, times in ms),
 * and a window is read once per call.
 *
 * KEYS: one log per window. ARGV: op (consume | refund | charge | peek | reset), now (ms; for refund the
 * time the consume was called with), cost, maxEntries, expiryGraceMs, then per window: limit,
 * windowMs. Reply: consume → {admitted (1/0), then per window used, resetAtMs, admitAtMs}, each
 * window as it stands after the call, admitAtMs only when refused (nil: never, or not refused);
 * peek → the same with admitted 1; refund, charge and reset → {}.
 */
const SCRIPT = `
local op = ARGV[1]
local now = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local maxEntries = tonumber(ARGV[4])
local graceMs = tonumber(ARGV[5])
local HW, FLOOR, USED, FIRST = 1, 2, 3, 4

local function load(i, windowMs)
  local raw = redis.call('GET', KEYS[i])
  if not raw then return { now, now - windowMs, 0 }, false end
  return cmsgpack.unpack(raw), true
end

local function save(i, log, windowMs)
  redis.call('SET', KEYS[i], cmsgpack.pack(log), 'PX', windowMs + graceMs)
end

local function removeEntry(log, j)
  log[USED] = log[USED] - log[j + 1]
  table.remove(log, j + 1)
  table.remove(log, j)
end

local function advance(log, windowMs)
  if now > log[HW] then log[HW] = now end
  local cutoff = log[HW] - windowMs
  if cutoff > log[FLOOR] then log[FLOOR] = cutoff end
  local first = FIRST
  while first <= #log and log[first] <= cutoff do
    log[USED] = log[USED] - log[first + 1]
    first = first + 2
  end
  if first > FIRST then
    local n, shift = #log, first - FIRST
    for j = FIRST, n - shift do log[j] = log[j + shift] end
    for j = n, n - shift + 1, -1 do log[j] = nil end
  end
end

local function resetAt(log, windowMs)
  if #log >= FIRST then return log[FIRST] + windowMs end
  return log[HW] + windowMs
end

local function admitAt(log, limit, windowMs)
  if log[USED] + cost <= limit then return log[HW] end
  if cost > limit then return false end
  local left = log[USED]
  for j = FIRST, #log, 2 do
    left = left - log[j + 1]
    if left + cost <= limit then return log[j] + windowMs end
  end
  return false
end

local function take(log)
  if cost <= 0 then return end
  local n = #log
  log[USED] = log[USED] + cost
  if n >= FIRST and log[n - 1] == log[HW] then
    log[n] = log[n] + cost
  else
    log[n + 1] = log[HW]
    log[n + 2] = cost
  end
  if (#log - FIRST + 1) / 2 <= maxEntries then return end
  local best, gap = FIRST, log[FIRST + 2] - log[FIRST]
  for j = FIRST + 2, #log - 2, 2 do
    local g = log[j + 2] - log[j]
    if g < gap then best, gap = j, g end
  end
  log[best + 3] = log[best + 3] + log[best + 1]
  table.remove(log, best + 1)
  table.remove(log, best)
end

local function giveBack(log)
  if now <= log[FLOOR] or cost <= 0 then return false end
  local j = FIRST
  while j <= #log and log[j] < now do j = j + 2 end
  if j > #log then return false end
  local left = cost
  while left > 0 and j <= #log do
    local removed = math.min(log[j + 1], left)
    log[j + 1] = log[j + 1] - removed
    log[USED] = log[USED] - removed
    left = left - removed
    if log[j + 1] == 0 then
      removeEntry(log, j)
    else
      j = j + 2
    end
  end
  return true
end

local windows = {}
for i = 1, #KEYS do
  windows[i] = { limit = tonumber(ARGV[4 + 2 * i]), windowMs = tonumber(ARGV[5 + 2 * i]) }
end

if op == 'refund' then
  for i = 1, #KEYS do
    local log, stored = load(i, windows[i].windowMs)
    if stored and giveBack(log) then save(i, log, windows[i].windowMs) end
  end
  return {}
end

if op == 'charge' then
  for i = 1, #KEYS do
    local log = load(i, windows[i].windowMs)
    advance(log, windows[i].windowMs)
    take(log)
    save(i, log, windows[i].windowMs)
  end
  return {}
end

if op == 'reset' then
  for i = 1, #KEYS do
    local log = load(i, windows[i].windowMs)
    if now > log[HW] then log[HW] = now end
    local cleared = { log[HW], log[FLOOR], 0 }
    if cleared[HW] - 1 > cleared[FLOOR] then cleared[FLOOR] = cleared[HW] - 1 end
    save(i, cleared, windows[i].windowMs)
  end
  return {}
end

local logs, admitted = {}, 1
for i = 1, #KEYS do
  logs[i] = load(i, windows[i].windowMs)
  advance(logs[i], windows[i].windowMs)
  if logs[i][USED] + cost > windows[i].limit then admitted = 0 end
end
local reply = { admitted }
for i = 1, #KEYS do
  local log, window = logs[i], windows[i]
  local retryAt = false
  if op == 'consume' and admitted == 1 then
    take(log)
    save(i, log, window.windowMs)
  elseif admitted == 0 then
    retryAt = admitAt(log, window.limit, window.windowMs)
  end
  reply[#reply + 1] = log[USED]
  reply[#reply + 1] = resetAt(log, window.windowMs)
  reply[#reply + 1] = retryAt
end
return reply
`;

/** What EVALSHA names the script by (Redis caches scripts by their SHA-1). */
export const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

type Operation = 'consume' | 'refund' | 'charge' | 'peek' | 'reset';

/**
 * Sliding windows shared by every instance through Redis: each call is one script run over all
 * of the subject's windows, so a consume is all-or-nothing and atomic across instances (sent
 * with EVALSHA, falling back to EVAL when Redis does not have the script cached).
 *
 * When Redis cannot be reached, calls throw (fail closed: the caller answers UNAVAILABLE)
 * unless a `fallback` is given; then each instance limits with the fallback (its own memory)
 * until Redis answers again.
 */
export class RedisRateLimiter implements RateLimiter {
  constructor(private readonly client: Redis, private readonly fallback: RateLimiter | null = null) {}

  async consume(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<ConsumeResult> {
    assertDistinctNames(limits);
    if (limits.length === 0) return { allowed: true, states: [] };
    return this.orFallback(async () => {
      const reply = await this.script('consume', subject, limits, cost, now);
      return consumeResult(limits, viewsOf(limits, reply), reply[0] === 1);
    }, (fallback) => fallback.consume(subject, limits, cost, now));
  }

  async refund(subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<void> {
    if (limits.length === 0) return;
    await this.orFallback(async () => {
      await this.script('refund', subject, limits, cost, now);
    }, (fallback) => fallback.refund(subject, limits, cost, now));
  }

  async charge(subject: string, limits: readonly RateLimitSpec[], units: number, now: Date): Promise<void> {
    if (limits.length === 0) return;
    await this.orFallback(async () => {
      await this.script('charge', subject, limits, units, now);
    }, (fallback) => fallback.charge(subject, limits, units, now));
  }

  async peek(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<RateLimitWindowState[]> {
    if (limits.length === 0) return [];
    return this.orFallback(async () => {
      const views = viewsOf(limits, await this.script('peek', subject, limits, 0, now));
      return limits.map((limit, index) => stateOf(limit, views[index]));
    }, (fallback) => fallback.peek(subject, limits, now));
  }

  async reset(subject: string, limits: readonly RateLimitSpec[], now: Date): Promise<void> {
    if (limits.length === 0) return;
    await this.orFallback(async () => {
      await this.script('reset', subject, limits, 0, now);
    }, (fallback) => fallback.reset(subject, limits, now));
  }

  private async orFallback<T>(viaRedis: () => Promise<T>, viaFallback: (fallback: RateLimiter) => Promise<T>): Promise<T> {
    try {
      return await viaRedis();
    } catch (error) {
      if (!this.fallback) throw error;
      return viaFallback(this.fallback);
    }
  }

  private async script(op: Operation, subject: string, limits: readonly RateLimitSpec[], cost: number, now: Date): Promise<Array<number | null>> {
    // The hash tag keeps a subject's windows in one slot (Redis Cluster runs a script on one node).
    const keys = limits.map((limit) => `kw_rl:{${subject}}:${limit.name}`);
    const args = [op, now.getTime(), cost, MAX_ENTRIES, EXPIRY_GRACE_MS, ...limits.flatMap((limit) => [limit.limit, limit.windowSeconds * 1000])];
    try {
      return await this.client.evalsha(SCRIPT_SHA, keys.length, ...keys, ...args) as Array<number | null>;
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await this.client.eval(SCRIPT, keys.length, ...keys, ...args) as Array<number | null>;
    }
  }
}

/** Per-window views from a script reply {admitted, used, resetAtMs, admitAtMs, …}. */
function viewsOf(limits: readonly RateLimitSpec[], reply: ReadonlyArray<number | null>): WindowView[] {
  return limits.map((_limit, index) => ({
    used: reply[1 + 3 * index] as number,
    resetAtMs: reply[2 + 3 * index] as number,
    admitAtMs: reply[3 + 3 * index],
  }));
}
