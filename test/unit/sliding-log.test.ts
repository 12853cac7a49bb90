import { advance, clear, emptyLog, giveBack, SlidingLog, take, viewOf, WindowView } from '../../src/rate-limits/sliding-log';
import { Admission, busiestSpan, randomBetween, seededRandom } from '../helpers/sliding-windows';

const WINDOW_MS = 2_000;
const LIMIT = 5;

/** One window driven like a limiter does: advance, look, take when it fits. */
class Window {
  readonly log: SlidingLog;
  readonly admissions: Admission[] = [];

  constructor(private readonly limit: number, private readonly windowMs: number, start = 0, private readonly maxEntries = 64) {
    this.log = emptyLog(start, windowMs);
  }

  view(nowMs: number, cost = 1): WindowView {
    advance(this.log, nowMs, this.windowMs);
    return viewOf(this.log, this.limit, this.windowMs, cost);
  }

  /** Takes `cost` when it fits; the view before (refused) or after (admitted). */
  request(nowMs: number, cost = 1): { admitted: boolean; view: WindowView } {
    const before = this.view(nowMs, cost);
    if (before.used + cost > this.limit) return { admitted: false, view: before };
    take(this.log, cost, this.maxEntries);
    this.admissions.push({ at: this.log.highWater, cost });
    return { admitted: true, view: viewOf(this.log, this.limit, this.windowMs, cost) };
  }

  /** Units counted at `atMs` if nothing else happens (a copy of the log is advanced). */
  usedAt(atMs: number): number {
    const copy: SlidingLog = { ...this.log, entries: this.log.entries.map(([takenAt, units]) => [takenAt, units]) };
    advance(copy, atMs, this.windowMs);
    return viewOf(copy, this.limit, this.windowMs, 0).used;
  }
}

describe('sliding log', () => {
  it('refuses a burst across what would be a fixed-window boundary: 5 at 1.9 s, none of 5 more at 2.1 s', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    for (let i = 0; i < 5; i += 1) expect(window.request(1_900).admitted).toBe(true);
    for (let i = 0; i < 5; i += 1) expect(window.request(2_100).admitted).toBe(false);
    expect(window.request(3_899).admitted).toBe(false);
    expect(window.request(3_900).admitted).toBe(true);
  });

  it('counts a unit taken at t in every span that contains t: it leaves the window at exactly t + window', () => {
    const window = new Window(1, WINDOW_MS);
    expect(window.request(1_000).admitted).toBe(true);
    expect(window.view(2_999).used).toBe(1);
    expect(window.view(3_000).used).toBe(0);
  });

  it('says resetAt is when the oldest unit leaves, or now + window when nothing is taken', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    expect(window.view(500).resetAtMs).toBe(2_500);
    window.request(1_000);
    window.request(1_500, 2);
    expect(window.view(1_600)).toEqual({ used: 3, resetAtMs: 3_000, admitAtMs: 1_600 });
    expect(window.view(3_000)).toEqual({ used: 2, resetAtMs: 3_500, admitAtMs: 3_000 });
  });

  it('says admitAt is when a request of that cost fits, which can be later than resetAt', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    window.request(1_000, 1);
    window.request(1_200, 2);
    window.request(1_400, 2);
    expect(window.view(1_500, 1)).toMatchObject({ used: 5, resetAtMs: 3_000, admitAtMs: 3_000 });
    expect(window.view(1_500, 3)).toMatchObject({ used: 5, resetAtMs: 3_000, admitAtMs: 3_200 });
    expect(window.view(1_500, 5)).toMatchObject({ admitAtMs: 3_400 });
    expect(window.request(3_199, 3).admitted).toBe(false);
    expect(window.request(3_200, 3).admitted).toBe(true);
  });

  it('says a cost above the limit can never be admitted (admitAt null), even into an empty window', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    expect(window.view(0, 6).admitAtMs).toBeNull();
    expect(window.request(0, 6).admitted).toBe(false);
    expect(window.view(0, 5).admitAtMs).toBe(0);
  });

  it('adds units taken in the same millisecond to one entry', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    window.request(100);
    window.request(100, 2);
    expect(window.log.entries).toEqual([[100, 3]]);
  });

  it('never goes back in time: a lagging clock is treated as the latest time the log has seen', () => {
    const window = new Window(LIMIT, WINDOW_MS);
    for (let i = 0; i < 5; i += 1) window.request(10_000);
    // A clock 9 s behind must not see an empty window (that would admit 5 more in the same span).
    expect(window.request(1_000).admitted).toBe(false);
    expect(window.view(1_000)).toEqual({ used: 5, resetAtMs: 12_000, admitAtMs: 12_000 });
  });

  describe('merging', () => {
    it('keeps at most maxEntries entries by merging the closest pair into the later one', () => {
      const window = new Window(1_000, 60_000, 0, 4);
      for (const at of [0, 100, 150, 1_000, 5_000]) window.request(at);
      // 100 and 150 are closest: their units move to 150.
      expect(window.log.entries).toEqual([[0, 1], [150, 2], [1_000, 1], [5_000, 1]]);
      window.request(5_010);
      expect(window.log.entries).toEqual([[0, 1], [150, 2], [1_000, 1], [5_010, 2]]);
    });

    it('stays bounded for a limit of 1e9 taken every millisecond', () => {
      const window = new Window(1_000_000_000, 60_000);
      for (let at = 0; at < 100_000; at += 1) expect(window.request(at, 10_000).admitted).toBe(true);
      expect(window.log.entries.length).toBeLessThanOrEqual(64);
      // Between the exact count of the last minute and everything ever taken.
      const used = window.view(99_999).used;
      expect(used).toBeGreaterThanOrEqual(60_000 * 10_000);
      expect(used).toBeLessThanOrEqual(100_000 * 10_000);
    });

    it.each([1, 2, 3, 4, 5])('is conservative (seed %i): it never counts fewer units than the exact log, and no span admits more than the limit', (seed) => {
      const random = seededRandom(seed);
      const limit = randomBetween(random, 3, 30);
      const windowMs = randomBetween(random, 200, 5_000);
      const merged = new Window(limit, windowMs, 0, 4);
      const exact = new Window(limit, windowMs, 0, Number.MAX_SAFE_INTEGER);
      let now = 0;
      for (let step = 0; step < 2_000; step += 1) {
        now += randomBetween(random, 0, Math.ceil(windowMs / 8));
        const cost = randomBetween(random, 1, Math.min(limit, 4));
        const admittedMerged = merged.request(now, cost).admitted;
        exact.request(now, cost);
        // Judged on the same history: the merged log counts at least what the exact one does.
        expect(merged.usedAt(now)).toBeGreaterThanOrEqual(exactUsed(merged.admissions, now, windowMs));
        if (admittedMerged) expect(exactUsed(merged.admissions, now, windowMs)).toBeLessThanOrEqual(limit);
      }
      expect(merged.log.entries.length).toBeLessThanOrEqual(4);
      expect(busiestSpan(merged.admissions, windowMs).units).toBeLessThanOrEqual(limit);
      expect(busiestSpan(exact.admissions, windowMs).units).toBeLessThanOrEqual(limit);
      // Merging only delays: the exact log admits at least as much over the run.
      expect(total(exact.admissions)).toBeGreaterThanOrEqual(total(merged.admissions));
    });
  });

  describe('refunds', () => {
    it('gives back the units of a request by the time its consume was called with', () => {
      const window = new Window(LIMIT, WINDOW_MS);
      window.request(1_000, 2);
      window.request(1_500, 3);
      expect(giveBack(window.log, 2, 1_000)).toBe(true);
      expect(window.log.entries).toEqual([[1_500, 3]]);
      expect(window.request(1_600, 2).admitted).toBe(true);
    });

    it('takes the units from the earliest entry at or after that time, never from an earlier one', () => {
      const window = new Window(LIMIT, WINDOW_MS);
      window.request(1_000, 1);
      window.request(1_200, 1);
      window.request(1_400, 1);
      giveBack(window.log, 1, 1_100);
      expect(window.log.entries).toEqual([[1_000, 1], [1_400, 1]]);
      giveBack(window.log, 2, 1_300);
      expect(window.log.entries).toEqual([[1_000, 1]]);
    });

    it('ignores a refund whose units may have left the window already', () => {
      const window = new Window(LIMIT, WINDOW_MS);
      window.request(1_000, 1);
      window.request(2_500, 1);
      window.view(3_000); // the unit of 1000 left
      expect(giveBack(window.log, 1, 1_000)).toBe(false);
      expect(window.log.entries).toEqual([[2_500, 1]]);
    });

    it('ignores a refund of units taken before the log existed', () => {
      const window = new Window(LIMIT, WINDOW_MS, 10_000);
      window.request(10_000, 1);
      expect(giveBack(window.log, 1, 7_000)).toBe(false);
      expect(window.view(10_000).used).toBe(1);
    });

    it.each([11, 12, 13])('never makes the log count fewer units than the exact history (seed %i)', (seed) => {
      const random = seededRandom(seed);
      const windowMs = 1_000;
      const limit = 20;
      const window = new Window(limit, windowMs, 0, 6);
      // The exact history: admitted requests that were not refunded.
      const kept: Array<Admission & { refunded: boolean; calledAt: number }> = [];
      let now = 0;
      for (let step = 0; step < 1_500; step += 1) {
        now += randomBetween(random, 0, 60);
        const cost = randomBetween(random, 1, 3);
        if (window.request(now, cost).admitted) kept.push({ at: now, calledAt: now, cost, refunded: false });
        // Now and then a recent admitted request is refused by a later step and refunded.
        if (random() < 0.2) {
          const candidates = kept.filter((admission) => !admission.refunded && admission.calledAt > now - 2 * windowMs);
          const victim = candidates[randomBetween(random, 0, candidates.length - 1)];
          if (victim && giveBack(window.log, victim.cost, victim.calledAt)) victim.refunded = true;
        }
        const truth = kept.filter((admission) => !admission.refunded);
        expect(window.usedAt(now)).toBeGreaterThanOrEqual(exactUsed(truth, now, windowMs));
      }
      expect(busiestSpan(kept.filter((admission) => !admission.refunded), windowMs).units).toBeLessThanOrEqual(limit);
    });
  });

  describe('clear', () => {
    it('forgets every unit and ignores refunds of units taken before the reset', () => {
      const window = new Window(LIMIT, WINDOW_MS);
      window.request(1_000, 5);
      clear(window.log, 1_500);
      expect(window.view(1_500)).toEqual({ used: 0, resetAtMs: 3_500, admitAtMs: 1_500 });
      window.request(1_600, 2);
      expect(giveBack(window.log, 5, 1_000)).toBe(false);
      expect(window.view(1_600).used).toBe(2);
    });
  });
});

/** Units of `admissions` in the window ending at `nowMs`, counted from scratch. */
function exactUsed(admissions: readonly Admission[], nowMs: number, windowMs: number): number {
  return admissions.filter((admission) => admission.at > nowMs - windowMs && admission.at <= nowMs).reduce((sum, admission) => sum + admission.cost, 0);
}

function total(admissions: readonly Admission[]): number {
  return admissions.reduce((sum, admission) => sum + admission.cost, 0);
}
