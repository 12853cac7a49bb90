import { useState } from 'react';
import { Gauge } from '../components/gauge';
import { TimeChart } from '../components/chart';
import { Badge, Empty, Notice, Problem } from '../components/bits';
import { formatClock, formatMeter, formatUntil } from '../format';
import { FEED_LIMIT, useLive, WATCHED_KEYS } from '../live';
import { useNow } from '../hooks';
import { useSession } from '../session';

const FEED_SHOWN = 200;

/** Live gauges (quotas, every rate-limit window of every active key), requests per minute, and the event feed. */
export function Overview() {
  const { organization, can } = useSession();
  const live = useLive(organization);
  const now = useNow(1000);
  const [showAll, setShowAll] = useState(false);
  const rateSeries = [{ label: 'Requests / min', values: live.rate.values, color: '#2563eb' }];

  return (
    <div className="view overview">
      <header className="view-head">
        <h1>{organization.name}</h1>
        <Badge value={organization.status} />
        <span className={`live-dot ${live.connected ? 'live-on' : ''}`} aria-live="polite">{live.connected ? 'Live' : 'Connecting…'}</span>
      </header>
      {live.problems.map((problem) => <Problem key={problem.message} error={problem} />)}

      <section aria-labelledby="quotas-title" className="panel">
        <h2 id="quotas-title">Quotas</h2>
        {!can('usage:read') ? <Notice>Quotas need the usage:read scope.</Notice> : live.quotas.length === 0 ? (
          <Empty>No quotas on this organization{can('platform:admin') ? ' — set them under Organizations' : ''}.</Empty>
        ) : (
          <div className="gauges" data-testid="quota-gauges">
            {live.quotas.map((quota) => (
              <Gauge
                key={`${quota.meter}-${quota.period}`}
                label={`${quota.meter} / ${quota.period}`}
                percent={quota.percentUsed}
                detail={`${formatMeter(quota.meter, quota.used)} of ${formatMeter(quota.meter, quota.limit)} used${quota.held > 0 ? `, ${formatMeter(quota.meter, quota.held)} held` : ''}`}
                note={quota.resetsAt ? `resets ${formatUntil(quota.resetsAt, now)}` : 'lifetime'}
              />
            ))}
          </div>
        )}
      </section>

      <section aria-labelledby="windows-title" className="panel">
        <h2 id="windows-title">Rate-limit windows</h2>
        {!can('keys:read') ? <Notice>Rate limits need the keys:read scope.</Notice> : live.keys.length === 0 ? (
          <Empty>No active keys yet — create one under Keys.</Empty>
        ) : (
          <div className="key-windows">
            {live.keys.map((key) => {
              const windows = live.windows.get(key.id) ?? [];
              return (
                <div className="key-window" key={key.id} data-key-id={key.id}>
                  <h3>{key.name} <span className="muted mono">{key.hint}</span></h3>
                  {key.rateLimits.length === 0 && windows.length === 0 ? <p className="muted">No rate limit.</p> : windows.map((window) => (
                    <Gauge
                      key={window.name}
                      label={window.name}
                      percent={window.limit === 0 ? 100 : ((window.limit - window.remaining) / window.limit) * 100}
                      detail={`${window.remaining} of ${window.limit} left`}
                      note={`per ${window.windowSeconds} s, resets ${formatUntil(window.resetAt, now)}`}
                    />
                  ))}
                </div>
              );
            })}
            {live.moreKeys ? <p className="muted">Showing the {WATCHED_KEYS} newest active keys.</p> : null}
          </div>
        )}
      </section>

      <section aria-labelledby="rate-title" className="panel">
        <h2 id="rate-title">Requests per minute</h2>
        <TimeChart title="Requests per minute, last 30 minutes (live)" times={live.rate.times} series={rateSeries} bars integers />
        <p className="muted small">Counted from live quota and rate-limit events since this page opened.</p>
      </section>

      <section aria-labelledby="feed-title" className="panel">
        <h2 id="feed-title">Event feed <span className="muted">({live.feed.length})</span></h2>
        {live.feed.length === 0 ? <Empty>No events yet — they appear here as keys are used and changed.</Empty> : (
          <>
            <ol className="feed" data-testid="event-feed" aria-live="polite">
              {(showAll ? live.feed : live.feed.slice(0, FEED_SHOWN)).map((event) => (
                <li key={event.id} className={`feed-${event.kind}`}>
                  <time dateTime={new Date(event.at).toISOString()}>{formatClock(event.at)}</time>
                  <span className="feed-kind">{event.kind}</span>
                  <span className="feed-text">{event.text}</span>
                </li>
              ))}
            </ol>
            {live.feed.length > FEED_SHOWN && !showAll ? <button type="button" onClick={() => setShowAll(true)}>Show all {live.feed.length} events</button> : null}
            <p className="muted small">Every event since this page opened is kept (up to {FEED_LIMIT.toLocaleString()}).</p>
          </>
        )}
      </section>
    </div>
  );
}
