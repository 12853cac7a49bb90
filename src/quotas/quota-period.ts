import { QuotaPeriod } from './quota.entity';

/**
 * The period a moment falls in, with UTC boundaries: DAY starts at 00:00 UTC, MONTH on
 * the 1st at 00:00 UTC; LIFETIME never resets. `resetsAt` is the exclusive end.
 */
export function periodWindow(period: QuotaPeriod, at: Date): { start: Date | null; resetsAt: Date | null } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  const d = at.getUTCDate();
  switch (period) {
    case QuotaPeriod.DAY:
      return { start: new Date(Date.UTC(y, m, d)), resetsAt: new Date(Date.UTC(y, m, d + 1)) };
    case QuotaPeriod.MONTH:
      return { start: new Date(Date.UTC(y, m, 1)), resetsAt: new Date(Date.UTC(y, m + 1, 1)) };
    case QuotaPeriod.LIFETIME:
      return { start: null, resetsAt: null };
  }
}

/** A stable key for counters of one period, e.g. `2026-03-01` for DAY, `2026-03` for MONTH. */
export function periodKey(period: QuotaPeriod, at: Date): string {
  const iso = at.toISOString();
  switch (period) {
    case QuotaPeriod.DAY:
      return iso.slice(0, 10);
    case QuotaPeriod.MONTH:
      return iso.slice(0, 7);
    case QuotaPeriod.LIFETIME:
      return 'lifetime';
  }
}
