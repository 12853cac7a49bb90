/**
 * What CLI commands print: one JSON document with `--json`, otherwise aligned plain-text
 * tables (lists) and label/value blocks (single things). No colours, nothing but text.
 */

export interface Writer {
  out: (line: string) => void;
}

/** Prints `value` as one (pretty-printed) JSON document. */
export function printJson(writer: Writer, value: unknown): void {
  writer.out(JSON.stringify(value, null, 2));
}

/** Aligned columns separated by two spaces; the header row is upper case. */
export function formatTable(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, column) => (cell ?? '').padEnd(widths[column])).join('  ').trimEnd();
  return [line(headers.map((header) => header.toUpperCase())), ...rows.map(line)];
}

export function printTable(writer: Writer, headers: string[], rows: string[][], empty: string): void {
  if (rows.length === 0) {
    writer.out(empty);
    return;
  }
  for (const line of formatTable(headers, rows)) writer.out(line);
}

/** "Label:  value" lines with the values aligned; entries whose value is undefined are left out. */
export function printFields(writer: Writer, fields: Array<[string, string | undefined]>): void {
  const shown = fields.filter((field): field is [string, string] => field[1] !== undefined);
  const width = Math.max(...shown.map(([label]) => label.length + 1));
  for (const [label, value] of shown) writer.out(`${`${label}:`.padEnd(width)}  ${value}`);
}

/** Footer of a paginated list: how many of how many, and how to get the next page. */
export function printPageFooter(writer: Writer, page: { nodes: unknown[]; totalCount: number; pageInfo: { hasNextPage: boolean; endCursor?: string | null } }): void {
  if (page.nodes.length === 0) return;
  writer.out('');
  writer.out(`${page.nodes.length} shown of ${page.totalCount}.`);
  if (page.pageInfo.hasNextPage && page.pageInfo.endCursor) writer.out(`Next page: --after ${page.pageInfo.endCursor}`);
}

/** ISO date-time without milliseconds; "-" for none. */
export function formatDate(value: string | null | undefined): string {
  if (!value) return '-';
  return value.replace(/\.\d{3}Z$/, 'Z');
}

export function formatValue(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

export function formatList(values: readonly string[] | null | undefined, empty = '-'): string {
  return values && values.length > 0 ? values.join(', ') : empty;
}

export function formatNumber(value: number | null | undefined, fractionDigits?: number): string {
  if (value === null || value === undefined) return '-';
  return fractionDigits === undefined ? String(value) : value.toFixed(fractionDigits);
}

export interface QuotaLike {
  meter: string;
  period: string;
  limit: number;
  used: number;
  remaining: number;
  percentUsed: number;
  resetsAt?: string | null;
}

export function quotaRows(quotas: readonly QuotaLike[]): string[][] {
  return quotas.map((quota) => [
    quota.meter,
    quota.period,
    formatNumber(quota.limit),
    formatNumber(quota.used),
    formatNumber(quota.remaining),
    `${formatNumber(quota.percentUsed, 1)}%`,
    formatDate(quota.resetsAt),
  ]);
}

export const QUOTA_HEADERS = ['meter', 'period', 'limit', 'used', 'remaining', 'used %', 'resets at'];

/** "REQUESTS/MONTH 5/100, TOKENS/DAY 0/1000" */
export function formatQuotas(quotas: readonly QuotaLike[]): string {
  return quotas.length === 0 ? 'none' : quotas.map((quota) => `${quota.meter}/${quota.period} ${quota.used}/${quota.limit}`).join(', ');
}
