import { InvalidArgumentError } from 'commander';
import type { Meter, QuotaInput, QuotaPeriod, RateLimitInput } from '@keyward/client';

/**
 * Parsers for option values (commander `argParser`s). A bad value throws InvalidArgumentError,
 * which commander reports as a usage error naming the option (exit code 2).
 */

export function integer(value: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`"${value}" is not a whole number.`);
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new InvalidArgumentError(`"${value}" is out of range.`);
  return parsed;
}

/** One of `choices`, case-insensitive; returns the upper-case spelling the API uses. */
export function choice<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    const upper = value.trim().toUpperCase();
    const found = choices.find((candidate) => candidate === upper);
    if (!found) throw new InvalidArgumentError(`"${value}" is not one of ${choices.join(', ')} (case-insensitive).`);
    return found;
  };
}

/** A repeatable, variadic list option: `--scope a b --scope c,d` → [a, b, c, d]. */
export function collect(value: string, previous: string[] | undefined): string[] {
  const items = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  return [...(previous ?? []), ...items];
}

const METERS: readonly Meter[] = ['REQUESTS', 'TOKENS', 'COST_USD'];
const PERIODS: readonly QuotaPeriod[] = ['DAY', 'MONTH', 'LIFETIME'];

/** `METER:PERIOD:LIMIT`, e.g. REQUESTS:MONTH:10000 or cost_usd:day:2.5 (repeatable). */
export function quota(value: string, previous: QuotaInput[] | undefined): QuotaInput[] {
  const parts = value.split(':');
  if (parts.length !== 3) throw new InvalidArgumentError(`"${value}" is not METER:PERIOD:LIMIT (e.g. REQUESTS:MONTH:10000).`);
  const meter = choice(METERS)(parts[0]);
  const period = choice(PERIODS)(parts[1]);
  const limit = Number(parts[2]);
  if (parts[2].trim() === '' || !Number.isFinite(limit)) throw new InvalidArgumentError(`the limit in "${value}" is not a number.`);
  return [...(previous ?? []), { meter, period, limit }];
}

/** `name:limit:windowSeconds`, e.g. per-minute:60:60 (repeatable). */
export function rateLimit(value: string, previous: RateLimitInput[] | undefined): RateLimitInput[] {
  const parts = value.split(':');
  if (parts.length !== 3 || parts[0].trim() === '') {
    throw new InvalidArgumentError(`"${value}" is not name:limit:windowSeconds (e.g. per-minute:60:60).`);
  }
  return [...(previous ?? []), { name: parts[0].trim(), limit: integer(parts[1]), windowSeconds: integer(parts[2]) }];
}

/** A JSON object, e.g. '{"team":"search"}'. */
export function jsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not valid JSON (${(error as Error).message}).`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object, e.g. \'{"team":"search"}\'.');
  return parsed as Record<string, unknown>;
}

/** A date or date-time (ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z), returned as an ISO string. */
export function dateTime(value: string): string {
  const trimmed = value.trim();
  const date = /^\d{4}-\d{2}-\d{2}/.test(trimmed) ? new Date(trimmed) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError(`"${value}" is not an ISO 8601 date (e.g. 2026-01-31 or 2026-01-31T12:00:00Z).`);
  return date.toISOString();
}
