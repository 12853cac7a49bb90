import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '../src/logger';
import { connectRedis, RedisConnections } from '../src/redis';
import { MemoryRateLimiter } from '../src/rate-limits/memory-rate-limiter';
import { RedisRateLimiter, SCRIPT_SHA } from '../src/rate-limits/redis-rate-limiter';
import type { RateLimitSpec } from '../src/api-keys/api-key.entity';
import { TcpProxy } from './helpers/processes';
import { describeWith, REDIS, redisServerUrl } from './helpers/services';
import { randomBetween, seededRandom } from './helpers/sliding-windows';

/**
 * The Redis limiter against a real Redis (TEST_REDIS_URL): its Lua script keeps exactly the
 * in-process algorithm (the same answers for the same calls), all of a subject's windows move
 * together, memory stays bounded, and when Redis is away it fails closed or falls back.
 * The promise itself, across two instances, is tested in test/scale-out.test.ts.
 */

const T0 = Date.parse('2026-01-15T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);

describeWith([REDIS], 'RedisRateLimiter', () => {
  let redis: RedisConnections;
  /** Subjects of this run only: the Redis is shared with other runs and test files. */
  const run = randomBytes(6).toString('hex');
  let subjectCounter = 0;
  const freshSubject = () => `test-${run}-${(subjectCounter += 1)}`;
  const quietLogger = () => createLogger('silent', new Writable({ write(_chunk, _enc, done) { done(); } }));

  beforeAll(async () => {
    redis = await connectRedis(redisServerUrl().toString(), quietLogger());
  });
  afterAll(async () => { await redis.close(); });

  it.each([1, 2, 3, 4])('answers every call exactly as the in-process limiter does (seed %i: consumes, refunds, peeks, resets, merges, a lagging clock)', async (seed) => {
    const random = seededRandom(seed);
    const subject = freshSubject();
    const limits: RateLimitSpec[] = [
      { name: 'short', limit: randomBetween(random, 3, 12), windowSeconds: randomBetween(random, 1, 3) },
      { name: 'long', limit: randomBetween(random, 20, 200), windowSeconds: randomBetween(random, 20, 90) },
    ];
    const memory = new MemoryRateLimiter();
    const shared = new RedisRateLimiter(redis.client);
    let now = 0;
    const admittedAt: number[] = [];
    for (let step = 0; step < 400; step += 1) {
      // Mostly forward, sometimes standing still, now and then a clock that lags behind.
      const move = random();
      now += move < 0.05 ? -randomBetween(random, 1, 2_000) : randomBetween(random, 0, 400);
      const action = random();
      let outcome: [unknown, unknown];
      if (action < 0.7) {
        const cost = randomBetween(random, 1, 4);
        const calls = [memory.consume(subject, limits, cost, at(now)), shared.consume(subject, limits, cost, at(now))] as const;
        outcome = await Promise.all(calls);
        if ((outcome[0] as { allowed: boolean }).allowed) admittedAt.push(now);
      } else if (action < 0.85 && admittedAt.length > 0) {
        const takenAt = admittedAt[randomBetween(random, Math.max(0, admittedAt.length - 5), admittedAt.length - 1)];
        const cost = randomBetween(random, 1, 4);
        await Promise.all([memory.refund(subject, limits, cost, at(takenAt)), shared.refund(subject, limits, cost, at(takenAt))]);
        outcome = await Promise.all([memory.peek(subject, limits, at(now)), shared.peek(subject, limits, at(now))]);
      } else if (action < 0.99) {
        outcome = await Promise.all([memory.peek(subject, limits, at(now)), shared.peek(subject, limits, at(now))]);
      } else {
        const name = limits[randomBetween(random, 0, 1)];
        await Promise.all([memory.reset(subject, [name], at(now)), shared.reset(subject, [name], at(now))]);
        outcome = await Promise.all([memory.peek(subject, limits, at(now)), shared.peek(subject, limits, at(now))]);
      }
      expect({ step, answer: outcome[1] }).toEqual({ step, answer: outcome[0] });
    }
    // Enough happened for the comparison to mean something: admissions, refusals and merges.
    expect(admittedAt.length).toBeGreaterThan(50);
    expect(admittedAt.length).toBeLessThan(400 * 0.7);
  });

  it('takes from every window or from none: a request refused by one window leaves the others untouched', async () => {
    const subject = freshSubject();
    const limiter = new RedisRateLimiter(redis.client);
    const limits = [{ name: 'minute', limit: 10, windowSeconds: 60 }, { name: 'second', limit: 2, windowSeconds: 1 }];
    expect((await limiter.consume(subject, limits, 2, at(0))).allowed).toBe(true);
    const refused = await limiter.consume(subject, limits, 1, at(500));
    expect(refused).toEqual({
      allowed: false,
      states: [
        { name: 'minute', limit: 10, windowSeconds: 60, remaining: 8, resetAt: at(60_000) },
        { name: 'second', limit: 2, windowSeconds: 1, remaining: 0, resetAt: at(1_000) },
      ],
      refusedBy: { name: 'second', limit: 2, windowSeconds: 1, remaining: 0, resetAt: at(1_000) },
      retryAt: at(1_000),
    });
    expect((await limiter.peek(subject, limits, at(500))).map((state) => state.remaining)).toEqual([8, 0]);
  });

  it('says retryAt is null when the cost is above a limit (waiting does not help)', async () => {
    const limiter = new RedisRateLimiter(redis.client);
    const refused = await limiter.consume(freshSubject(), [{ name: 'minute', limit: 10, windowSeconds: 60 }], 11, at(0));
    expect(refused).toMatchObject({ allowed: false, retryAt: null });
  });

  it('keeps at most 64 entries per window, whatever the limit, and lets Redis expire a log a minute after its window', async () => {
    const subject = freshSubject();
    const limiter = new RedisRateLimiter(redis.client);
    const limits = [{ name: 'huge', limit: 1_000_000_000, windowSeconds: 60 }];
    for (let ms = 0; ms < 500; ms += 1) expect((await limiter.consume(subject, limits, 1_000, at(ms))).allowed).toBe(true);
    // The log is one MessagePack array {highWater, refundFloor, used, t1, u1, …}.
    const fields = await redis.client.eval("return #cmsgpack.unpack(redis.call('GET', KEYS[1]))", 1, `kw_rl:{${subject}}:huge`) as number;
    expect((fields - 3) / 2).toBe(64);
    expect(await redis.client.strlen(`kw_rl:{${subject}}:huge`)).toBeLessThan(1_500);
    // Merged, never lost: all 500 requests still count.
    expect((await limiter.peek(subject, limits, at(500)))[0].remaining).toBe(1_000_000_000 - 500 * 1_000);
    const ttl = await redis.client.pttl(`kw_rl:{${subject}}:huge`);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
  });

  it('loads its script again with EVAL when Redis has lost it (EVALSHA answers NOSCRIPT)', async () => {
    const subject = freshSubject();
    const limiter = new RedisRateLimiter(redis.client);
    const limits = [{ name: 'minute', limit: 3, windowSeconds: 60 }];
    expect((await limiter.consume(subject, limits, 1, at(0))).allowed).toBe(true);
    expect(await redis.client.script('EXISTS', SCRIPT_SHA)).toEqual([1]);
    await redis.client.script('FLUSH');
    expect(await redis.client.script('EXISTS', SCRIPT_SHA)).toEqual([0]);
    const after = await limiter.consume(subject, limits, 1, at(1));
    expect(after).toMatchObject({ allowed: true, states: [{ remaining: 1 }] });
    // EVAL cached it again for the next EVALSHA.
    expect(await redis.client.script('EXISTS', SCRIPT_SHA)).toEqual([1]);
  });

  describe('with Redis unreachable', () => {
    let proxy: TcpProxy;
    let proxied: RedisConnections;

    beforeAll(async () => {
      const url = redisServerUrl();
      proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 6379) });
      const through = new URL(url.toString());
      through.host = `127.0.0.1:${proxy.port}`;
      proxied = await connectRedis(through.toString(), quietLogger());
    });
    afterAll(async () => {
      // Not quit(): a connection still in its reconnect backoff would queue QUIT and keep retrying.
      for (const connection of [proxied.client, proxied.publisher, proxied.subscriber]) connection.disconnect();
      await proxy.close();
    });

    it('fails closed without a fallback, and limits from memory with one until Redis is back', async () => {
      const subject = freshSubject();
      const limits = [{ name: 'minute', limit: 2, windowSeconds: 60 }];
      const closed = new RedisRateLimiter(proxied.client);
      const open = new RedisRateLimiter(proxied.client, new MemoryRateLimiter());
      expect((await open.consume(subject, limits, 1, at(0))).allowed).toBe(true);

      proxy.stop();
      await waitUntil(async () => !(await proxied.ping()), 'the connection to notice Redis is gone');
      await expect(closed.consume(subject, limits, 1, at(1))).rejects.toThrow();
      await expect(closed.peek(subject, limits, at(1))).rejects.toThrow();
      // The fallback counts on its own, from nothing, and still enforces the limit.
      expect((await open.consume(subject, limits, 1, at(1))).allowed).toBe(true);
      expect((await open.consume(subject, limits, 1, at(2))).allowed).toBe(true);
      expect(await open.consume(subject, limits, 1, at(3))).toMatchObject({ allowed: false, retryAt: at(60_001) });

      proxy.resume();
      await waitUntil(() => proxied.ping(), 'the connection to come back');
      // Back on Redis: only the unit taken before the outage counts there.
      expect((await closed.peek(subject, limits, at(4)))[0].remaining).toBe(1);
    }, 20_000);
  });
});

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
