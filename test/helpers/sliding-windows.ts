/**
 * Checking the sliding-window promise from the outside: given when requests were admitted, the
 * most any span of the window held. Shared by the unit, single-server and scale-out tests.
 */

export interface Admission {
  /** Clock time (ms) the request was admitted at. */
  at: number;
  /** Units it took. */
  cost: number;
}

/**
 * The largest number of units admitted in any half-open span [start, start + windowMs). The
 * busiest span can always be slid to start at an admission, so only those starts are checked.
 */
export function busiestSpan(admissions: readonly Admission[], windowMs: number): { units: number; start: number | null } {
  const sorted = [...admissions].sort((a, b) => a.at - b.at);
  let best = { units: 0, start: null as number | null };
  let end = 0;
  let inSpan = 0;
  for (let start = 0; start < sorted.length; start += 1) {
    while (end < sorted.length && sorted[end].at < sorted[start].at + windowMs) {
      inSpan += sorted[end].cost;
      end += 1;
    }
    if (inSpan > best.units) best = { units: inSpan, start: sorted[start].at };
    inSpan -= sorted[start].cost;
  }
  return best;
}

/** A small deterministic generator (mulberry32): the same seed drives the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An integer in [min, max] from `random`. */
export function randomBetween(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
