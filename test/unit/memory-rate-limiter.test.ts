import { MemoryRateLimiter } from '../../src/rate-limits/memory-rate-limiter';

const T0 = Date.parse('2026-01-15T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);
const MINUTE = [{ name: 'per-minute', limit: 2, windowSeconds: 60 }];

describe('MemoryRateLimiter', () => {
  it('forgets windows whose units have all left, so a stream of new subjects does not grow memory without bound', async () => {
    const limiter = new MemoryRateLimiter();
    for (let i = 0; i < 5_000; i++) await limiter.consume(`ip:first-${i}`, MINUTE, 1, at(0));
    expect(limiter.storedWindows).toBe(5_000);
    // A minute later, another 5,000 addresses: the first ones are swept on the way.
    for (let i = 0; i < 5_000; i++) await limiter.consume(`ip:second-${i}`, MINUTE, 1, at(60_000));
    expect(limiter.storedWindows).toBeLessThan(6_000);
    // What is still in its window is kept.
    expect((await limiter.peek('ip:second-0', MINUTE, at(60_000)))[0].remaining).toBe(1);
  });

  it('stores nothing for a refused request or a peek', async () => {
    const limiter = new MemoryRateLimiter();
    expect(await limiter.consume('key', MINUTE, 3, at(0))).toMatchObject({ allowed: false, retryAt: null });
    await limiter.peek('key', MINUTE, at(0));
    expect(limiter.storedWindows).toBe(0);
  });

  it('ignores a refund of units taken before a window was created (again, after a sweep)', async () => {
    const limiter = new MemoryRateLimiter();
    await limiter.consume('key', MINUTE, 1, at(0));
    // Long after: enough other traffic to sweep the old window, then the key comes back.
    for (let i = 0; i < 1_100; i++) await limiter.consume(`other-${i}`, MINUTE, 1, at(120_000));
    await limiter.consume('key', MINUTE, 2, at(120_000));
    await limiter.refund('key', MINUTE, 1, at(0));
    expect((await limiter.peek('key', MINUTE, at(120_000)))[0].remaining).toBe(0);
  });
});
