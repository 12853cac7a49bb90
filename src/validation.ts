import { BadUserInputError } from './errors';
import { isValidScope } from './auth/scopes';
import { parseCidr } from './auth/ip-allowlist';
import { secretKindIn } from './auth/key-format';

/**
 * Input checks shared by every service. Each throws BadUserInputError naming the field,
 * before anything is written. Limits are the ones in docs/behaviour.md ("Keys").
 */
export const LIMITS = {
  nameLength: 200,
  scopesPerKey: 100,
  ipAllowlistEntries: 100,
  metaBytes: 8 * 1024,
  rateLimitsPerKey: 20,
  quotasPerOwner: 20,
  reasonLength: 500,
  externalIdLength: 200,
  emailLength: 320,
  maxCostPerRequest: 1_000_000,
  maxWindowSeconds: 366 * 24 * 3600,
  maxRateLimit: 1_000_000_000,
  maxKeysPerOrganization: 1_000_000,
  maxExpiresInDays: 36_500,
  maxGracePeriodSeconds: 30 * 24 * 3600,
  pageSize: 500,
  metaDepth: 32,
} as const;

/** Nesting depth of a JSON value, counted without recursion and without going past `stopAt + 1`. */
function depthOf(value: unknown, stopAt: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > stopAt) return deepest;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export function requireText(field: string, value: unknown, maxLength: number): string {
  if (typeof value !== 'string') throw new BadUserInputError(field, 'must be a string');
  const trimmed = value.trim();
  if (trimmed.length === 0) throw new BadUserInputError(field, 'must not be empty');
  if (trimmed.length > maxLength) {
    throw new BadUserInputError(field, `must be at most ${maxLength} characters (got ${trimmed.length})`);
  }
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw new BadUserInputError(field, 'must not contain control characters');
  // A lone surrogate cannot be stored faithfully (MySQL would turn it into U+FFFD).
  if (/\p{Cs}/u.test(trimmed)) throw new BadUserInputError(field, 'must be valid Unicode text (it contains a lone surrogate)');
  refuseSecret(field, trimmed);
  return trimmed;
}

/**
 * Free text (names, reasons, descriptions, operations, meta) is stored, listed and logged:
 * a pasted secret there would outlive its revocation. Refused, never echoed.
 */
export function refuseSecret(field: string, text: string): void {
  const kind = secretKindIn(text);
  if (kind) throw new BadUserInputError(field, `looks like ${kind}; it was not stored`);
}

/** Undefined stays undefined (not given); null stays null (clear it). */
export function optionalText(field: string, value: string | null | undefined, maxLength: number): string | null | undefined {
  if (value === undefined || value === null) return value;
  return requireText(field, value, maxLength);
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function optionalEmail(field: string, value: string | null | undefined): string | null | undefined {
  const text = optionalText(field, value, LIMITS.emailLength);
  if (typeof text === 'string' && !EMAIL.test(text)) throw new BadUserInputError(field, `"${text}" is not an email address`);
  return text;
}

export function requireInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new BadUserInputError(field, 'must be an integer');
  if (value < min || value > max) throw new BadUserInputError(field, `must be between ${min} and ${max} (got ${value})`);
  return value;
}

export function requirePositiveNumber(field: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new BadUserInputError(field, 'must be a finite number');
  if (value <= 0) throw new BadUserInputError(field, `must be greater than 0 (got ${value})`);
  if (value > max) throw new BadUserInputError(field, `must be at most ${max} (got ${value})`);
  return value;
}

export function validateScopes(field: string, scopes: readonly string[]): string[] {
  if (scopes.length > LIMITS.scopesPerKey) {
    throw new BadUserInputError(field, `at most ${LIMITS.scopesPerKey} scopes (got ${scopes.length})`);
  }
  for (const scope of scopes) {
    if (!isValidScope(scope)) {
      throw new BadUserInputError(field, `"${String(scope).slice(0, 60)}" is not a scope; use resource:action, resource:* or *`);
    }
  }
  return [...new Set(scopes)].sort();
}

export function validateIpAllowlist(field: string, entries: readonly string[]): string[] {
  if (entries.length > LIMITS.ipAllowlistEntries) {
    throw new BadUserInputError(field, `at most ${LIMITS.ipAllowlistEntries} entries (got ${entries.length})`);
  }
  return [...new Set(entries.map((entry) => {
    const cidr = parseCidr(entry);
    if (!cidr) throw new BadUserInputError(field, `"${String(entry).slice(0, 60)}" is not an IP address or CIDR block`);
    return cidr;
  }))];
}

export function validateMeta(field: string, meta: Record<string, unknown> | null | undefined): Record<string, unknown> | null | undefined {
  if (meta === undefined || meta === null) return meta;
  if (typeof meta !== 'object' || Array.isArray(meta)) throw new BadUserInputError(field, 'must be a JSON object');
  if (depthOf(meta, LIMITS.metaDepth) > LIMITS.metaDepth) throw new BadUserInputError(field, `must be nested at most ${LIMITS.metaDepth} levels deep`);
  const json = JSON.stringify(meta);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > LIMITS.metaBytes) throw new BadUserInputError(field, `must be at most ${LIMITS.metaBytes} bytes as JSON (got ${bytes})`);
  // Keys and string values anywhere in the object (the JSON text holds them all).
  refuseSecret(field, json);
  return meta;
}

export function requireFutureDate(field: string, value: Date, now: Date): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new BadUserInputError(field, 'must be a date-time');
  if (value.getTime() <= now.getTime()) throw new BadUserInputError(field, `must be in the future (got ${value.toISOString()})`);
  return value;
}

/** A key's expiry: in the future and no further than `expiresInDays` may reach. */
export function requireExpiry(field: string, value: Date, now: Date): Date {
  requireFutureDate(field, value, now);
  const latest = now.getTime() + LIMITS.maxExpiresInDays * 86_400_000;
  if (value.getTime() > latest) {
    throw new BadUserInputError(field, `must be at most ${LIMITS.maxExpiresInDays} days ahead (latest ${new Date(latest).toISOString()})`);
  }
  return value;
}

/** Names in a list (rate limits, meter+period pairs) must not repeat. */
export function requireUnique(field: string, keys: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) throw new BadUserInputError(field, `"${key}" appears more than once`);
    seen.add(key);
  }
}
