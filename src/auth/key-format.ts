import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Key secrets look like `kw_live_<32 base62 chars><6 base62 chars of CRC32>`.
 * 32 base62 characters carry 190 bits of randomness; the checksum lets a typo or a
 * truncated paste be refused before any storage lookup.
 */
export const KEY_PREFIXES = { LIVE: 'kw_live_', TEST: 'kw_test_' } as const;
export type KeyEnvironmentName = keyof typeof KEY_PREFIXES;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 32;
const CHECKSUM_LENGTH = 6; // 62^6 > 2^32
export const SECRET_LENGTH = KEY_PREFIXES.LIVE.length + RANDOM_LENGTH + CHECKSUM_LENGTH;
const SECRET_PATTERN = /^kw_(live|test)_[0-9A-Za-z]{38}$/;

function randomBase62(length: number): string {
  let out = '';
  // Rejection sampling keeps every character uniformly likely (256 is not a multiple of 62).
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

function checksum(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export function generateSecret(environment: KeyEnvironmentName): string {
  const body = KEY_PREFIXES[environment] + randomBase62(RANDOM_LENGTH);
  return body + checksum(body);
}

/** True when the secret has the right prefix, length, alphabet and checksum. */
export function isWellFormedSecret(secret: string): boolean {
  if (typeof secret !== 'string' || !SECRET_PATTERN.test(secret)) return false;
  const body = secret.slice(0, -CHECKSUM_LENGTH);
  return checksum(body) === secret.slice(-CHECKSUM_LENGTH);
}

export function environmentOf(secret: string): KeyEnvironmentName {
  return secret.startsWith(KEY_PREFIXES.TEST) ? 'TEST' : 'LIVE';
}

/** Safe to show anywhere: `kw_live_…9fQa`. */
export function hintFor(secret: string): string {
  return `${secret.slice(0, KEY_PREFIXES.LIVE.length)}…${secret.slice(-4)}`;
}

/** What is stored instead of the secret: hex HMAC-SHA256 keyed with the pepper. */
export function hashSecret(pepper: string, secret: string): string {
  return createHmac('sha256', pepper).update(secret).digest('hex');
}

export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Something shaped like a keyward secret inside free text: the prefix and at least 16 key
 * characters (a truncated paste still gives most of a secret away) — an API key, or a webhook
 * signing secret (`whsec_` and base64, webhooks/webhook-secret.ts).
 */
const SECRET_IN_TEXT = /kw_(live|test)_[0-9A-Za-z]{16,}/;
const WEBHOOK_SECRET_IN_TEXT = /whsec_[0-9A-Za-z+/]{16,}/;

/** What kind of secret `text` contains, for a refusal's message; null when none. */
export function secretKindIn(text: string): 'an API key secret' | 'a webhook signing secret' | null {
  if (SECRET_IN_TEXT.test(text)) return 'an API key secret';
  if (WEBHOOK_SECRET_IN_TEXT.test(text)) return 'a webhook signing secret';
  return null;
}

export function looksLikeSecret(text: string): boolean {
  return secretKindIn(text) !== null;
}

/** Replaces anything that looks like a keyward secret in free text (logs, error messages). */
export function redactSecrets(text: string): string {
  return text.replace(/kw_(live|test)_[0-9A-Za-z]{4,}/g, 'kw_$1_[REDACTED]').replace(/whsec_[0-9A-Za-z+/=]{4,}/g, 'whsec_[REDACTED]');
}
