import { quotaDelta, RequestRate, windowDelta } from '../../console/src/request-rate';
import type { Quota, RateLimitState } from '../../console/src/queries';

/** The console's requests-per-minute line, worked out from successive live states. */

const quota = (used: number, resetsAt = '2026-02-01T00:00:00.000Z', meter: Quota['meter'] = 'REQUESTS'): Quota => ({
  organizationId: 'org_1', apiKeyId: null, meter, period: 'MONTH', limit: 100, used, held: 0, remaining: 100 - used, percentUsed: used, resetsAt,
});
const window = (remaining: number, resetAt = '2026-01-15T12:01:00.000Z'): RateLimitState => ({
  apiKeyId: 'key_1', name: 'per-minute', limit: 60, windowSeconds: 60, remaining, resetAt,
});

describe('request rate from live states', () => {
  it('counts the units a REQUESTS quota took between two states, however many events were coalesced', () => {
    expect(quotaDelta(quota(3), quota(7))).toBe(4);
    expect(quotaDelta(undefined, quota(7))).toBe(0);
  });

  it('counts nothing across a quota period reset or for TOKENS and COST_USD', () => {
    expect(quotaDelta(quota(90), quota(2, '2026-03-01T00:00:00.000Z'))).toBe(0);
    expect(quotaDelta(quota(3, undefined, 'TOKENS'), quota(700, undefined, 'TOKENS'))).toBe(0);
  });

  it('counts what a rate-limit window lost within one window, nothing when it moved on or was reset', () => {
    expect(windowDelta(window(60), window(57))).toBe(3);
    expect(windowDelta(window(10), window(59, '2026-01-15T12:02:00.000Z'))).toBe(0);
    expect(windowDelta(window(10), window(60))).toBe(0);
  });

  it('buckets units per minute and gives the last minutes oldest first, zero where nothing happened', () => {
    const rate = new RequestRate();
    const at = Date.parse('2026-01-15T12:00:10.000Z');
    rate.add(2, at);
    rate.add(3, at + 30_000);
    rate.add(1, at + 60_000);
    rate.add(0, at + 60_000);
    const { times, values } = rate.series(at + 60_000, 3);
    expect(times).toEqual([Date.parse('2026-01-15T11:59:00.000Z') / 1000, Date.parse('2026-01-15T12:00:00.000Z') / 1000, Date.parse('2026-01-15T12:01:00.000Z') / 1000]);
    expect(values).toEqual([0, 5, 1]);
  });
});
