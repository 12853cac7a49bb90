/** Parsing what people type into the console's forms (same notations as the CLI). */

import type { Meter, QuotaPeriod } from './queries';

export class FormError extends Error {}

function entries(text: string): string[] {
  return text.split(/[\n,]/).map((entry) => entry.trim()).filter(Boolean);
}

/** "per-minute:60:60, per-hour:1000:3600" → rate limits. */
export function parseRateLimits(text: string): Array<{ name: string; limit: number; windowSeconds: number }> {
  return entries(text).map((entry) => {
    const [name, limit, windowSeconds] = entry.split(':').map((part) => part.trim());
    if (!name || !/^\d+$/.test(limit ?? '') || !/^\d+$/.test(windowSeconds ?? '')) {
      throw new FormError(`Rate limit "${entry}" should look like per-minute:60:60 (name:limit:windowSeconds)`);
    }
    return { name, limit: Number(limit), windowSeconds: Number(windowSeconds) };
  });
}

const METERS: readonly Meter[] = ['REQUESTS', 'TOKENS', 'COST_USD'];
const PERIODS: readonly QuotaPeriod[] = ['DAY', 'MONTH', 'LIFETIME'];

/** "REQUESTS:MONTH:100000, TOKENS:DAY:50000" → quotas. */
export function parseQuotas(text: string): Array<{ meter: Meter; period: QuotaPeriod; limit: number }> {
  return entries(text).map((entry) => {
    const [meter, period, limit] = entry.split(':').map((part) => part.trim().toUpperCase());
    if (!METERS.includes(meter as Meter) || !PERIODS.includes(period as QuotaPeriod) || !(Number(limit) > 0)) {
      throw new FormError(`Quota "${entry}" should look like REQUESTS:MONTH:100000 (meter REQUESTS, TOKENS or COST_USD; period DAY, MONTH or LIFETIME; limit > 0)`);
    }
    return { meter: meter as Meter, period: period as QuotaPeriod, limit: Number(limit) };
  });
}

export function parseList(text: string): string[] {
  return entries(text);
}

export function formatRateLimits(limits: ReadonlyArray<{ name: string; limit: number; windowSeconds: number }>): string {
  return limits.map((limit) => `${limit.name}:${limit.limit}:${limit.windowSeconds}`).join(', ');
}

export function formatQuotaSpecs(quotas: ReadonlyArray<{ meter: string; period: string; limit: number }>): string {
  return quotas.map((quota) => `${quota.meter}:${quota.period}:${quota.limit}`).join(', ');
}
