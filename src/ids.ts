import { randomBytes } from 'node:crypto';

// Lower-case Crockford base32: sorts the same in every collation (SQLite binary, MySQL *_ci).
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TIME_LENGTH = 10;
const RANDOM_LENGTH = 16;

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < TIME_LENGTH; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

// Random bytes drawn in blocks: one randomBytes call per id is measurable on hot paths.
let pool = Buffer.alloc(0);
let poolOffset = 0;

function randomDigits(): number[] {
  if (poolOffset + RANDOM_LENGTH > pool.length) {
    pool = randomBytes(RANDOM_LENGTH * 256);
    poolOffset = 0;
  }
  const digits = new Array<number>(RANDOM_LENGTH);
  for (let i = 0; i < RANDOM_LENGTH; i++) digits[i] = pool[poolOffset + i] % 32;
  poolOffset += RANDOM_LENGTH;
  return digits;
}

/** Adds one to a base32 number held as digits; wraps only after 32^16 ids in one millisecond. */
function increment(digits: number[]): number[] {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i] < 31) {
      next[i] += 1;
      return next;
    }
    next[i] = 0;
  }
  return next;
}

let lastTime = -1;
let lastRandom: number[] = [];

/** `whk` webhook endpoints, `dlv` deliveries, `msg` webhook events (the webhook-id header). */
export type IdPrefix = 'org' | 'key' | 'aud' | 'qta' | 'ses' | 'evt' | 'whk' | 'dlv' | 'msg';

/**
 * A new id such as `key_01jd3m8k2a7x9q4w1z0c5b6n8r`: a prefix naming the kind, then a
 * 10-character millisecond timestamp and 16 random characters. Within one process ids are
 * strictly increasing, even for ids made in the same millisecond (or when the clock steps
 * back): the random part is then the previous one plus one, as in monotonic ULIDs. Cursor
 * pagination orders by id, so "newest first" is exact. Always 30 characters.
 */
export function newId(prefix: IdPrefix, at: Date = new Date()): string {
  const time = at.getTime();
  if (time > lastTime) {
    lastTime = time;
    lastRandom = randomDigits();
  } else {
    lastRandom = increment(lastRandom);
  }
  return `${prefix}_${encodeTime(lastTime)}${lastRandom.map((digit) => ALPHABET[digit]).join('')}`;
}
