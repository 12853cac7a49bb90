import { randomBytes } from 'node:crypto';

// Lower-case Crockford base32: sorts the same in every collation (SQLite binary, MySQL *_ci).
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function encodeRandom(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i] % 32];
  return out;
}

export type IdPrefix = 'org' | 'key' | 'aud' | 'qta' | 'ses' | 'evt';

/**
 * A new id such as `key_01jd3m8k2a7x9q4w1z0c5b6n8r`: a prefix naming the kind, then a
 * 10-character millisecond timestamp and 16 random characters. Ids sort by creation time,
 * which is what cursor pagination orders by. Always 30 characters.
 */
export function newId(prefix: IdPrefix, at: Date = new Date()): string {
  return `${prefix}_${encodeTime(at.getTime())}${encodeRandom(16)}`;
}
