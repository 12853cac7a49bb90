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
 * One call of any operation on all of a subject's windows, atomic in Redis. The functions mirror
 * sliding-log.ts line for line. A log is stored as one string "highWater refundFloor t1 u1 t2 u2 …"
 * (integers; times in ms).
 *
 * KEYS: one log per window. ARGV: op (consume | refund | peek | reset), now (ms; for refund the
 * time the consume was called with), cost, maxEntries, expiryGraceMs, then per window: limit,
 * windowMs. Reply: consume → {admitted (1/0), then per window used, resetAtMs, admitAtMs (nil:
 * never)}, each window as it stands after the call; peek → the same with admitted 1; refund and
 * reset → {}.
 */
const SCRIPT = `
local op = ARGV[1]
local now = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local maxEntries = tonumber(ARGV[4])
local graceMs = tonumber(ARGV[5])

local function load(i, windowMs)
  local raw = redis.call('GET', KEYS[i])
  if not raw then return { highWater = now, refundFloor = now - windowMs, ts = {}, units = {} }, false end
  local fields = {}
  for word in string.gmatch(raw, '%S+') do fields[#fields + 1] = tonumber(word) end
  local log = { highWater = fields[1], refundFloor = fields[2], ts = {}, units = {} }
  for j = 3, #fields - 1, 2 do
    log.ts[#log.ts + 1] = fields[j]
    log.units[#log.units + 1] = fields[j + 1]
  end
  return log, true
end

local function save(i, log, windowMs)
  local parts = { string.format('%d %d', log.highWater, log.refundFloor) }
  for j = 1, #log.ts do parts[#parts + 1] = string.format('%d %d', log.ts[j], log.units[j]) end
  redis.call('SET', KEYS[i], table.concat(parts, ' '), 'PX', windowMs + graceMs)
end

local function advance(log, windowMs)
  if now > log.highWater then log.highWater = now end
  local cutoff = log.highWater - windowMs
  if cutoff > log.refundFloor then log.refundFloor = cutoff end
  local first = 1
  while first <= #log.ts and log.ts[first] <= cutoff do first = first + 1 end
  if first > 1 then
    local ts, units = {}, {}
    for j = first, #log.ts do
      ts[#ts + 1] = log.ts[j]
      units[#units + 1] = log.units[j]
    end
    log.ts, log.units = ts, units
  end
end

local function view(log, limit, windowMs)
  local used = 0
  for j = 1, #log.units do used = used + log.units[j] end
  local resetAt = log.highWater + windowMs
  if #log.ts > 0 then resetAt = log.ts[1] + windowMs end
  local admitAt = false
  if used + cost <= limit then
    admitAt = log.highWater
  elseif cost <= limit then
    local left = used
    for j = 1, #log.ts do
      left = left - log.units[j]
      if left + cost <= limit then
        admitAt = log.ts[j] + windowMs
        break
      end
    end
  end
  return used, resetAt, admitAt
end

local function take(log)
  if cost <= 0 then return end
  local last = #log.ts
  if last > 0 and log.ts[last] == log.highWater then
    log.units[last] = log.units[last] + cost
  else
    log.ts[last + 1] = log.highWater
    log.units[last + 1] = cost
  end
  if #log.ts <= maxEntries then return end
  local best, gap = 1, log.ts[2] - log.ts[1]
  for j = 2, #log.ts - 1 do
    local g = log.ts[j + 1] - log.ts[j]
    if g < gap then best, gap = j, g end
  end
  log.units[best + 1] = log.units[best + 1] + log.units[best]
  table.remove(log.ts, best)
  table.remove(log.units, best)
end

local function giveBack(log)
  if now <= log.refundFloor or cost <= 0 then return false end
  local index = 1
  while index <= #log.ts and log.ts[index] < now do index = index + 1 end
  if index > #log.ts then return false end
  local left = cost
  while left > 0 and index <= #log.ts do
    local removed = math.min(log.units[index], left)
    log.units[index] = log.units[index] - removed
    left = left - removed
    if log.units[index] == 0 then
      table.remove(log.ts, index)
      table.remove(log.units, index)
    else
      index = index + 1
    end
  end
  return true
end

local logs, windows = {}, {}
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

if op == 'reset' then
  for i = 1, #KEYS do
    local log = load(i, windows[i].windowMs)
    if now > log.highWater then log.highWater = now end
    log.ts, log.units = {}, {}
    if log.highWater - 1 > log.refundFloor then log.refundFloor = log.highWater - 1 end
    save(i, log, windows[i].windowMs)
  end
  return {}
end

local admitted = 1
for i = 1, #KEYS do
  logs[i] = load(i, windows[i].windowMs)
  advance(logs[i], windows[i].windowMs)
  local used = view(logs[i], windows[i].limit, windows[i].windowMs)
  if used + cost > windows[i].limit then admitted = 0 end
end
if op == 'consume' and admitted == 1 then
  for i = 1, #KEYS do
    take(logs[i])
    save(i, logs[i], windows[i].windowMs)
  end
end
local reply = { admitted }
for i = 1, #KEYS do
  local used, resetAt, admitAt = view(logs[i], windows[i].limit, windows[i].windowMs)
  reply[#reply + 1] = used
  reply[#reply + 1] = resetAt
  reply[#reply + 1] = admitAt
end
return reply
`;

/** What EVALSHA names the script by (Redis caches scripts by their SHA-1). */
export const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

type Operation = 'consume' | 'refund' | 'peek' | 'reset';

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
