import { periodKey, periodWindow } from '../../src/quotas/quota-period';
import { QuotaPeriod } from '../../src/quotas/quota.entity';

const at = (iso: string) => new Date(iso);
const window = (period: QuotaPeriod, iso: string) => {
  const { start, resetsAt } = periodWindow(period, at(iso));
  return { start: start?.toISOString() ?? null, resetsAt: resetsAt?.toISOString() ?? null };
};

describe('periodWindow', () => {
  describe('DAY', () => {
    it('runs from 00:00 UTC to the next 00:00 UTC', () => {
      expect(window(QuotaPeriod.DAY, '2026-03-14T12:34:56.789Z')).toEqual({ start: '2026-03-14T00:00:00.000Z', resetsAt: '2026-03-15T00:00:00.000Z' });
    });

    it('keeps 23:59:59.999 UTC in the same day', () => {
      expect(window(QuotaPeriod.DAY, '2026-03-14T23:59:59.999Z')).toEqual({ start: '2026-03-14T00:00:00.000Z', resetsAt: '2026-03-15T00:00:00.000Z' });
    });

    it('starts a new day at midnight exactly', () => {
      expect(window(QuotaPeriod.DAY, '2026-03-15T00:00:00.000Z')).toEqual({ start: '2026-03-15T00:00:00.000Z', resetsAt: '2026-03-16T00:00:00.000Z' });
    });

    it('resets on Feb 1 at the end of Jan 31', () => {
      expect(window(QuotaPeriod.DAY, '2026-01-31T23:59:59.999Z')).toEqual({ start: '2026-01-31T00:00:00.000Z', resetsAt: '2026-02-01T00:00:00.000Z' });
    });

    it('resets on Jan 1 of the next year at the end of Dec 31', () => {
      expect(window(QuotaPeriod.DAY, '2026-12-31T23:59:59.999Z')).toEqual({ start: '2026-12-31T00:00:00.000Z', resetsAt: '2027-01-01T00:00:00.000Z' });
    });

    it('has a Feb 29 in the leap year 2028 and resets on Mar 1', () => {
      expect(window(QuotaPeriod.DAY, '2028-02-28T23:59:59.999Z')).toEqual({ start: '2028-02-28T00:00:00.000Z', resetsAt: '2028-02-29T00:00:00.000Z' });
      expect(window(QuotaPeriod.DAY, '2028-02-29T08:00:00.000Z')).toEqual({ start: '2028-02-29T00:00:00.000Z', resetsAt: '2028-03-01T00:00:00.000Z' });
    });

    it('goes from Feb 28 straight to Mar 1 in the common year 2027', () => {
      expect(window(QuotaPeriod.DAY, '2027-02-28T10:00:00.000Z')).toEqual({ start: '2027-02-28T00:00:00.000Z', resetsAt: '2027-03-01T00:00:00.000Z' });
    });

    it('uses UTC boundaries whatever the offset the moment was written with', () => {
      // 2026-03-14T23:30 at -05:00 is 2026-03-15T04:30Z.
      expect(window(QuotaPeriod.DAY, '2026-03-14T23:30:00-05:00')).toEqual({ start: '2026-03-15T00:00:00.000Z', resetsAt: '2026-03-16T00:00:00.000Z' });
    });
  });

  describe('MONTH', () => {
    it('runs from the 1st at 00:00 UTC to the next 1st', () => {
      expect(window(QuotaPeriod.MONTH, '2026-03-14T12:00:00.000Z')).toEqual({ start: '2026-03-01T00:00:00.000Z', resetsAt: '2026-04-01T00:00:00.000Z' });
    });

    it('keeps Jan 31 23:59:59.999 UTC in January and resets on Feb 1', () => {
      expect(window(QuotaPeriod.MONTH, '2026-01-31T23:59:59.999Z')).toEqual({ start: '2026-01-01T00:00:00.000Z', resetsAt: '2026-02-01T00:00:00.000Z' });
    });

    it('starts February at Feb 1 midnight exactly', () => {
      expect(window(QuotaPeriod.MONTH, '2026-02-01T00:00:00.000Z')).toEqual({ start: '2026-02-01T00:00:00.000Z', resetsAt: '2026-03-01T00:00:00.000Z' });
    });

    it('resets December on Jan 1 of the next year', () => {
      expect(window(QuotaPeriod.MONTH, '2026-12-31T23:59:59.999Z')).toEqual({ start: '2026-12-01T00:00:00.000Z', resetsAt: '2027-01-01T00:00:00.000Z' });
      expect(window(QuotaPeriod.MONTH, '2026-12-01T00:00:00.000Z')).toEqual({ start: '2026-12-01T00:00:00.000Z', resetsAt: '2027-01-01T00:00:00.000Z' });
    });

    it('keeps Feb 29 2028 in February 2028', () => {
      expect(window(QuotaPeriod.MONTH, '2028-02-29T23:59:59.999Z')).toEqual({ start: '2028-02-01T00:00:00.000Z', resetsAt: '2028-03-01T00:00:00.000Z' });
    });
  });

  describe('LIFETIME', () => {
    it('has no start and never resets', () => {
      expect(window(QuotaPeriod.LIFETIME, '2026-03-14T12:00:00.000Z')).toEqual({ start: null, resetsAt: null });
      expect(window(QuotaPeriod.LIFETIME, '2026-12-31T23:59:59.999Z')).toEqual({ start: null, resetsAt: null });
    });
  });
});

describe('periodKey', () => {
  it('is the UTC date for DAY', () => {
    expect(periodKey(QuotaPeriod.DAY, at('2026-03-14T12:00:00.000Z'))).toBe('2026-03-14');
    expect(periodKey(QuotaPeriod.DAY, at('2026-03-14T23:59:59.999Z'))).toBe('2026-03-14');
    expect(periodKey(QuotaPeriod.DAY, at('2026-03-15T00:00:00.000Z'))).toBe('2026-03-15');
    expect(periodKey(QuotaPeriod.DAY, at('2028-02-29T00:00:00.000Z'))).toBe('2028-02-29');
  });

  it('is the UTC year and month for MONTH', () => {
    expect(periodKey(QuotaPeriod.MONTH, at('2026-01-31T23:59:59.999Z'))).toBe('2026-01');
    expect(periodKey(QuotaPeriod.MONTH, at('2026-02-01T00:00:00.000Z'))).toBe('2026-02');
    expect(periodKey(QuotaPeriod.MONTH, at('2026-12-31T23:59:59.999Z'))).toBe('2026-12');
    expect(periodKey(QuotaPeriod.MONTH, at('2027-01-01T00:00:00.000Z'))).toBe('2027-01');
  });

  it('is the same for every moment for LIFETIME', () => {
    expect(periodKey(QuotaPeriod.LIFETIME, at('2026-03-14T12:00:00.000Z'))).toBe('lifetime');
    expect(periodKey(QuotaPeriod.LIFETIME, at('2030-01-01T00:00:00.000Z'))).toBe('lifetime');
  });

  it('agrees with periodWindow: the key of a moment is the key of its window start', () => {
    const moments = ['2026-01-31T23:59:59.999Z', '2026-02-01T00:00:00.000Z', '2026-12-31T23:59:59.999Z', '2028-02-29T12:00:00.000Z'];
    for (const iso of moments) {
      for (const period of [QuotaPeriod.DAY, QuotaPeriod.MONTH]) {
        const { start, resetsAt } = periodWindow(period, at(iso));
        expect(periodKey(period, start!)).toBe(periodKey(period, at(iso)));
        expect(periodKey(period, new Date(resetsAt!.getTime() - 1))).toBe(periodKey(period, at(iso)));
        expect(periodKey(period, resetsAt!)).not.toBe(periodKey(period, at(iso)));
      }
    }
  });
});
