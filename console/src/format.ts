/** How the console shows numbers and times (the browser's locale, UTC stated where it matters). */

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const usd = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', maximumFractionDigits: 4 });

export function formatCount(value: number): string {
  return integer.format(value);
}

export function formatNumber(value: number): string {
  return decimal.format(value);
}

export function formatUsd(value: number): string {
  return usd.format(value);
}

export function formatPercent(value: number): string {
  return `${decimal.format(value)} %`;
}

export function formatTime(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '—' : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function formatClock(value: number | Date): string {
  return new Date(value).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** "in 42 s", "in 3 min", "in 5 h", "in 2 d" (or "now"). */
export function formatUntil(value: string | null, now = Date.now()): string {
  if (!value) return 'never';
  const seconds = Math.round((new Date(value).getTime() - now) / 1000);
  if (seconds <= 0) return 'now';
  if (seconds < 90) return `in ${seconds} s`;
  if (seconds < 90 * 60) return `in ${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `in ${Math.round(seconds / 3600)} h`;
  return `in ${Math.round(seconds / 86400)} d`;
}

export function formatMeter(meter: string, value: number): string {
  return meter === 'COST_USD' ? formatUsd(value) : formatNumber(value);
}
