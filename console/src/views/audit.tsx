import { useEffect, useState } from 'react';
import { Empty, Problem } from '../components/bits';
import { formatTime } from '../format';
import { AUDIT_LOG, AuditEntry, Page } from '../queries';
import { useSession } from '../session';

/**
 * The audit log, newest first, 50 entries a page ("Load more"). The API pages the log without
 * filters, so action, key and time filter the entries loaded so far.
 */
export function Audit() {
  const { api, organization } = useSession();
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [page, setPage] = useState<Page<AuditEntry> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [action, setAction] = useState('');
  const [key, setKey] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');

  const load = async (after: string | null, replace: boolean) => {
    setLoading(true);
    setError(null);
    try {
      const { auditLog } = await api.request<{ auditLog: Page<AuditEntry> }>(AUDIT_LOG, { organizationId: organization.id, after });
      setPage(auditLog);
      setEntries((previous) => (replace ? auditLog.nodes : [...previous, ...auditLog.nodes]));
    } catch (problem) {
      setError(problem);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    setEntries([]);
    void load(null, true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [organization.id]);

  const actions = [...new Set(entries.map((entry) => entry.action))].sort();
  const fromMs = from ? new Date(from).getTime() : -Infinity;
  const toMs = to ? new Date(to).getTime() : Infinity;
  const needle = key.trim().toLowerCase();
  const shown = entries.filter((entry) => {
    const at = new Date(entry.at).getTime();
    return (!action || entry.action === action) && at >= fromMs && at <= toMs
      && (!needle || [entry.actorKeyId, entry.targetId].some((id) => id?.toLowerCase().includes(needle)));
  });

  return (
    <div className="view audit">
      <header className="view-head"><h1>Audit log</h1></header>
      <div className="filters">
        <label>
          Action
          <select value={action} onChange={(event) => setAction(event.target.value)}>
            <option value="">any</option>
            {actions.map((value) => <option key={value} value={value}>{value}</option>)}
          </select>
        </label>
        <label>Key<input value={key} onChange={(event) => setKey(event.target.value)} placeholder="key id (actor or target)" /></label>
        <label>From<input type="datetime-local" value={from} onChange={(event) => setFrom(event.target.value)} /></label>
        <label>To<input type="datetime-local" value={to} onChange={(event) => setTo(event.target.value)} /></label>
      </div>
      <Problem error={error} />
      {page && entries.length === 0 ? <Empty>No audit entries yet — every change (keys, organization, sessions) is recorded here.</Empty> : null}
      {entries.length > 0 ? (
        <>
          <p className="muted small">{shown.length} of {entries.length} loaded entries shown ({page?.totalCount ?? entries.length} in all).</p>
          <div className="table-scroll">
            <table>
              <thead><tr><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">By key</th><th scope="col">Address</th><th scope="col">Details</th></tr></thead>
              <tbody>
                {shown.map((entry) => (
                  <tr key={entry.id}>
                    <td>{formatTime(entry.at)}</td>
                    <td className="mono">{entry.action}</td>
                    <td>{entry.targetType}{entry.targetId ? <div className="mono small">{entry.targetId}</div> : null}</td>
                    <td className="mono small">{entry.actorKeyId ?? 'system'}</td>
                    <td className="mono small">{entry.ip ?? '—'}</td>
                    <td className="small">{entry.metadata ? <code>{JSON.stringify(entry.metadata)}</code> : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
      {page?.pageInfo.hasNextPage ? <button type="button" disabled={loading} onClick={() => load(page.pageInfo.endCursor, false)}>Load more</button> : null}
    </div>
  );
}
