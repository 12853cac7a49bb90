import { rateLimitUrgent } from '../../src/live/live-events';
import type { RateLimitState } from '../../src/rate-limits/rate-limit.service';

const state = (remaining: number, resetAt = '2026-01-15T12:01:00.000Z'): RateLimitState => ({
  apiKeyId: 'key', name: 'per-minute', limit: 10, windowSeconds: 60, remaining, resetAt: new Date(resetAt),
});

describe('which rate-limit changes go out at once', () => {
  it('sends the first state of a window at once', () => {
    expect(rateLimitUrgent(undefined, state(9))).toBe(true);
  });

  it('sends a window running out at once', () => {
    expect(rateLimitUrgent(state(1), state(0))).toBe(true);
  });

  it('sends room again after running out at once', () => {
    expect(rateLimitUrgent(state(0), state(1, '2026-01-15T12:01:05.000Z'))).toBe(true);
  });

  it('sends a window started afresh (reset) at once', () => {
    expect(rateLimitUrgent(state(4), state(10))).toBe(true);
  });

  it('coalesces units leaving a sliding window under steady traffic (remaining and resetAt moving)', () => {
    expect(rateLimitUrgent(state(4, '2026-01-15T12:01:00.000Z'), state(5, '2026-01-15T12:01:01.000Z'))).toBe(false);
    expect(rateLimitUrgent(state(5), state(4))).toBe(false);
    expect(rateLimitUrgent(state(0), state(0, '2026-01-15T12:01:01.000Z'))).toBe(false);
  });
});
