import { useMemo, useState } from 'react';
import { ChartSeries, TimeChart } from '../components/chart';
import { Empty, Problem } from '../components/bits';
import { formatCount, formatNumber, formatUsd } from '../format';
import { useLoad } from '../hooks';
import { API_KEYS, ApiKey, OutcomeCount, outcomesOverTime, Page, USAGE, UsageBucket, UsageSummary, VerifyCode } from '../queries';
import { useSession } from '../session';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

type RangeChoice = '24h' | '7d' | '30d' | 'month' | 'custom';

interface Range {
  from: Date;
  to: Date;
  /** Chart buckets: hours for ranges up to two days, days beyond. */
  step: 'hour' | 'day';
}

function rangeOf(choice: RangeChoice, customFrom: string, customTo: string, now: number): Range {
  const to = new Date(now);
  switch (choice) {
    case '24h': return { from: new Date(now - DAY_MS), to, step: 'hour' };
    case '7d': return { from: new Date(now - 7 * DAY_MS), to, step: 'day' };
    case '30d': return { from: new Date(now - 30 * DAY_MS), to, step: 'day' };
    case 'month': {
      const start = new Date(now);
      return { from: new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1)), to, step: 'day' };
    }
    case 'custom': {
      const from = new Date(customFrom || now - DAY_MS);
      const end = customTo ? new Date(customTo) : to;
      return { from, to: end, step: end.getTime() - from.getTime() <= 2 * DAY_MS ? 'hour' : 'day' };
    }
  }
}

/** Bucket starts (ms) covering [from, to] at `step`, so hours or days without usage show as 0. */
function bucketStarts(range: Range): number[] {
  const size = range.step === 'hour' ? HOUR_MS : DAY_MS;
  const starts: number[] = [];
  for (let start = Math.floor(range.from.getTime() / size) * size; start <= range.to.getTime(); start += size) starts.push(start);
  return starts;
}

function bucketKey(start: number, step: Range['step']): string {
  return step === 'hour' ? new Date(start).toISOString() : new Date(start).toISOString().slice(0, 10);
}

/** Values of `pick` for every bucket of the range, 0 where the API has none. */
function seriesOf(buckets: UsageBucket[], range: Range, pick: (bucket: UsageBucket) => number): { times: number[]; values: number[] } {
  const byKey = new Map(buckets.map((bucket) => [bucket.key, bucket]));
  const starts = bucketStarts(range);
  return { times: starts.map((start) => start / 1000), values: starts.map((start) => { const bucket = byKey.get(bucketKey(start, range.step)); return bucket ? pick(bucket) : 0; }) };
}

export const OUTCOME_COLORS: Record<VerifyCode, string> = {
  VALID: '#16a34a', NOT_FOUND: '#6b7280', DISABLED: '#a16207', REVOKED: '#dc2626', EXPIRED: '#ea580c', ORGANIZATION_SUSPENDED: '#7c3aed',
  FORBIDDEN_IP: '#db2777', INSUFFICIENT_SCOPE: '#0891b2', RATE_LIMITED: '#ca8a04', QUOTA_EXCEEDED: '#9333ea', NO_ACTIVE_SESSION: '#475569',
};

/** Consecutive slices of the range for "outcomes over time" (one aliased request, at most 12). */
function slicesOf(range: Range): Array<{ from: Date; to: Date }> {
  const span = range.to.getTime() - range.from.getTime();
  const count = Math.max(1, Math.min(12, Math.round(span / (range.step === 'hour' ? 2 * HOUR_MS : DAY_MS))));
  const size = span / count;
  return Array.from({ length: count }, (_, i) => ({ from: new Date(range.from.getTime() + i * size), to: new Date(i === count - 1 ? range.to.getTime() : range.from.getTime() + (i + 1) * size - 1) }));
}

/** Usage of the organization: totals, charts over time, outcomes, by operation and by key, for a chosen range. */
export function Usage() {
  const { api, organization, can } = useSession();
  const [choice, setChoice] = useState<RangeChoice>('24h');
  const [customFrom, setCustomFrom] = useState('');
  const [customTo, setCustomTo] = useState('');
  const [now, setNow] = useState(Date.now());
  const range = useMemo(() => rangeOf(choice, customFrom, customTo, now), [choice, customFrom, customTo, now]);
  const summary = useLoad(
    () => api.request<{ usage: UsageSummary }>(USAGE, { range: { organizationId: organization.id, from: range.from.toISOString(), to: range.to.toISOString() } }).then((data) => data.usage),
    [organization.id, range.from.getTime(), range.to.getTime()],
  );
  const keys = useLoad(
    () => (can('keys:read') ? api.request<{ apiKeys: Page<ApiKey> }>(API_KEYS, { filter: { organizationId: organization.id }, first: 100 }).then((data) => data.apiKeys.nodes) : Promise.resolve([])),
    [organization.id],
  );
  const names = new Map((keys.data ?? []).map((key) => [key.id, `${key.name} (${key.hint})`]));

  return (
    <div className="view usage">
      <header className="view-head">
        <h1>Usage</h1>
        <button type="button" onClick={() => setNow(Date.now())}>Refresh</button>
      </header>
      <fieldset className="range-picker">
        <legend>Time range</legend>
        {([['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['month', 'This month (UTC)'], ['custom', 'Custom']] as const).map(([value, label]) => (
          <label key={value} className="radio">
            <input type="radio" name="range" value={value} checked={choice === value} onChange={() => { setChoice(value); setNow(Date.now()); }} /> {label}
          </label>
        ))}
        {choice === 'custom' ? (
          <span className="custom-range">
            <label>From<input type="datetime-local" value={customFrom} onChange={(event) => setCustomFrom(event.target.value)} /></label>
            <label>To<input type="datetime-local" value={customTo} onChange={(event) => setCustomTo(event.target.value)} /></label>
          </span>
        ) : null}
      </fieldset>
      <Problem error={summary.error} />
      {summary.data ? <UsageReport summary={summary.data} range={range} names={names} organizationId={organization.id} /> : null}
    </div>
  );
}

function UsageReport({ summary, range, names, organizationId, apiKeyId }: { summary: UsageSummary; range: Range; names: Map<string, string>; organizationId?: string; apiKeyId?: string }) {
  const buckets = range.step === 'hour' ? summary.byHour : summary.byDay;
  const requests = seriesOf(buckets, range, (bucket) => bucket.requests);
  const errors = seriesOf(buckets, range, (bucket) => bucket.errors);
  const tokens = seriesOf(buckets, range, (bucket) => bucket.tokens);
  const cost = seriesOf(buckets, range, (bucket) => bucket.costUsd);
  const per = range.step === 'hour' ? 'hour' : 'day';
  const requestSeries: ChartSeries[] = [{ label: 'Requests', values: requests.values, color: '#2563eb' }, { label: 'Errors', values: errors.values, color: '#dc2626' }];
  return (
    <>
      <dl className="totals">
        <div><dt>Requests</dt><dd>{formatCount(summary.requests)}</dd></div>
        <div><dt>Errors</dt><dd>{formatCount(summary.errors)}</dd></div>
        <div><dt>Tokens</dt><dd>{formatCount(summary.tokens)}</dd></div>
        <div><dt>Cost</dt><dd>{formatUsd(summary.costUsd)}</dd></div>
        <div><dt>Avg latency</dt><dd>{summary.avgLatencyMs === null ? '—' : `${formatNumber(summary.avgLatencyMs)} ms`}</dd></div>
      </dl>
      {summary.requests === 0 && summary.byOutcome.length === 0 ? <Empty>No usage in this range yet.</Empty> : null}
      <div className="chart-grid">
        <TimeChart title={`Requests and errors per ${per}`} times={requests.times} series={requestSeries} bars integers format={formatCount} />
        <TimeChart title={`Tokens per ${per}`} times={tokens.times} series={[{ label: 'Tokens', values: tokens.values, color: '#7c3aed' }]} bars integers format={formatCount} />
        <TimeChart title={`Cost per ${per} (USD)`} times={cost.times} series={[{ label: 'Cost (USD)', values: cost.values, color: '#0d9488' }]} bars format={formatUsd} />
        <Outcomes total={summary.byOutcome} range={range} organizationId={organizationId} apiKeyId={apiKeyId} />
      </div>
      {organizationId ? (
        <div className="breakdowns">
          <Breakdown title="By operation" column="Operation" buckets={summary.byOperation} />
          <Breakdown title="By key" column="Key" buckets={summary.byApiKey} label={(key) => names.get(key) ?? key} />
        </div>
      ) : null}
    </>
  );
}

/** verifyKey outcomes: totals of the range and, from one aliased request, their course over it. */
function Outcomes({ total, range, organizationId, apiKeyId }: { total: OutcomeCount[]; range: Range; organizationId?: string; apiKeyId?: string }) {
  const { api } = useSession();
  const slices = slicesOf(range);
  const overTime = useLoad(async () => {
    if (total.length === 0) return [];
    const variables: Record<string, unknown> = { organizationId: organizationId ?? null, apiKeyId: apiKeyId ?? null };
    slices.forEach((slice, i) => { variables[`from${i}`] = slice.from.toISOString(); variables[`to${i}`] = slice.to.toISOString(); });
    const data = await api.request<Record<string, { byOutcome: OutcomeCount[] }>>(outcomesOverTime(slices.length), variables);
    return slices.map((_, i) => data[`s${i}`].byOutcome);
  }, [range.from.getTime(), range.to.getTime(), organizationId, apiKeyId, total.map((entry) => `${entry.code}${entry.count}`).join()]);
  const codes = total.map((entry) => entry.code);
  const series: ChartSeries[] = codes.map((code) => ({ label: code, color: OUTCOME_COLORS[code], values: (overTime.data ?? []).map((slice) => slice.find((entry) => entry.code === code)?.count ?? 0) }));
  return (
    <section className="outcomes" aria-label="Verification outcomes">
      <h3>Verification outcomes (verifyKey)</h3>
      {total.length === 0 ? <Empty>No verifications in this range.</Empty> : (
        <>
          <ul className="outcome-totals">
            {total.map((entry) => (
              <li key={entry.code}><span className="swatch" data-code={entry.code} /> {entry.code} <strong>{formatCount(entry.count)}</strong></li>
            ))}
          </ul>
          <Problem error={overTime.error} />
          {overTime.data ? <TimeChart title="Verification outcomes over time" times={slices.map((slice) => Math.floor(slice.from.getTime() / 1000))} series={series} integers format={formatCount} /> : null}
          <p className="muted small">Counted per UTC hour: an hour the range touches counts whole.</p>
        </>
      )}
    </section>
  );
}

function Breakdown({ title, column, buckets, label = (key) => key }: { title: string; column: string; buckets: UsageBucket[]; label?: (key: string) => string }) {
  const top = Math.max(1, ...buckets.map((bucket) => bucket.requests));
  const sorted = [...buckets].sort((a, b) => b.requests - a.requests);
  return (
    <section className="breakdown" aria-label={title}>
      <h3>{title}</h3>
      {sorted.length === 0 ? <Empty>Nothing in this range.</Empty> : (
        <div className="table-scroll">
          <table>
            <thead><tr><th scope="col">{column}</th><th scope="col">Requests</th><th scope="col">Errors</th><th scope="col">Tokens</th><th scope="col">Cost</th><th scope="col">Avg latency</th></tr></thead>
            <tbody>
              {sorted.map((bucket) => (
                <tr key={bucket.key}>
                  <td>{label(bucket.key)}<div className="bar" aria-hidden="true"><span style={{ width: `${(bucket.requests / top) * 100}%` }} /></div></td>
                  <td>{formatCount(bucket.requests)}</td>
                  <td>{formatCount(bucket.errors)}</td>
                  <td>{formatCount(bucket.tokens)}</td>
                  <td>{formatUsd(bucket.costUsd)}</td>
                  <td>{bucket.avgLatencyMs === null ? '—' : `${formatNumber(bucket.avgLatencyMs)} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** One key's usage (the key dialog): last 24 hours by hour or last 30 days by day. */
export function KeyUsage({ apiKeyId }: { apiKeyId: string }) {
  const { api, can } = useSession();
  const [choice, setChoice] = useState<'24h' | '30d'>('24h');
  const [now] = useState(Date.now());
  const range = useMemo(() => rangeOf(choice, '', '', now), [choice, now]);
  const summary = useLoad(
    () => (can('usage:read') ? api.request<{ usage: UsageSummary }>(USAGE, { range: { apiKeyId, from: range.from.toISOString(), to: range.to.toISOString() } }).then((data) => data.usage) : Promise.resolve(null)),
    [apiKeyId, choice],
  );
  if (!can('usage:read')) return null;
  return (
    <section className="key-usage" aria-label="Usage of this key">
      <h3>Usage</h3>
      <div className="segmented" role="group" aria-label="Range">
        <button type="button" aria-pressed={choice === '24h'} onClick={() => setChoice('24h')}>24 hours</button>
        <button type="button" aria-pressed={choice === '30d'} onClick={() => setChoice('30d')}>30 days</button>
      </div>
      <Problem error={summary.error} />
      {summary.data ? <UsageReport summary={summary.data} range={range} names={new Map()} apiKeyId={apiKeyId} /> : null}
    </section>
  );
}
