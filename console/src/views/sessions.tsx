import { FormEvent, useEffect, useState } from 'react';
import { Badge, Empty, Notice, Problem } from '../components/bits';
import { Gauge } from '../components/gauge';
import { formatCount, formatTime, formatUsd } from '../format';
import { useLoad } from '../hooks';
import { ADD_SESSION_CREDITS, Page, Session, SESSION_BALANCE, SESSION_CHANGED, SESSIONS } from '../queries';
import { useSession } from '../session';

interface Balance { organizationId: string; available: number; purchased: number; used: number }

/** Session balance, the active session's token budget (live), past sessions; platform: credit sessions. */
export function Sessions() {
  const { api, organization, viewer, can, isPlatform } = useSession();
  const own = organization.id === viewer.organization.id;
  const balance = useLoad(() => api.request<{ sessionBalance: Balance }>(SESSION_BALANCE, { organizationId: organization.id }).then((data) => data.sessionBalance), [organization.id]);
  // sessions and currentSession answer for the caller's own organization only.
  const sessions = useLoad(
    () => (own ? api.request<{ sessions: Page<Session>; currentSession: Session | null }>(SESSIONS) : Promise.resolve(null)),
    [organization.id, own],
  );
  const [live, setLive] = useState<Session | null>(null);

  useEffect(() => {
    setLive(null);
    if (!can('sessions:read')) return undefined;
    const subscription = api.subscribe<{ sessionChanged: Session }>(SESSION_CHANGED, { organizationId: organization.id }, ({ sessionChanged }) => {
      setLive(sessionChanged);
      if (sessionChanged.status !== 'ACTIVE') balance.reload();
    }, () => undefined);
    return () => subscription.unsubscribe();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [organization.id, api]);

  const current = live ?? sessions.data?.currentSession ?? null;
  const active = current && current.status === 'ACTIVE' ? current : null;

  return (
    <div className="view sessions">
      <header className="view-head"><h1>Sessions</h1></header>
      <Problem error={balance.error ?? sessions.error} />
      {balance.data ? (
        <dl className="totals">
          <div><dt>Available</dt><dd data-testid="session-balance">{formatCount(balance.data.available)}</dd></div>
          <div><dt>Purchased</dt><dd>{formatCount(balance.data.purchased)}</dd></div>
          <div><dt>Used</dt><dd>{formatCount(balance.data.used)}</dd></div>
        </dl>
      ) : null}
      <section className="panel" aria-labelledby="active-session">
        <h2 id="active-session">Active session</h2>
        {active ? (
          <>
            <Gauge
              label="Token budget"
              percent={active.tokenLimit === 0 ? 100 : (active.tokensUsed / active.tokenLimit) * 100}
              detail={`${formatCount(active.tokensUsed)} of ${formatCount(active.tokenLimit)} tokens used`}
              note={`ends ${formatTime(active.expiresAt)}`}
            />
            <p className="muted small">{active.id} · started {formatTime(active.startedAt)} · {formatCount(active.requestCount)} requests · {formatUsd(active.priceUsd)}</p>
          </>
        ) : <Empty>No active session.</Empty>}
      </section>
      {own ? (
        <section className="panel" aria-labelledby="past-sessions">
          <h2 id="past-sessions">Sessions</h2>
          {sessions.data && sessions.data.sessions.nodes.length === 0 ? <Empty>No sessions yet — a key with sessions:write starts one (createSession).</Empty> : null}
          {sessions.data && sessions.data.sessions.nodes.length > 0 ? (
            <div className="table-scroll">
              <table>
                <thead><tr><th scope="col">Session</th><th scope="col">Status</th><th scope="col">Tokens</th><th scope="col">Requests</th><th scope="col">Started</th><th scope="col">Ended</th></tr></thead>
                <tbody>
                  {sessions.data.sessions.nodes.map((session) => (
                    <tr key={session.id}>
                      <td className="mono">{session.id}</td>
                      <td><Badge value={session.status} /></td>
                      <td>{formatCount(session.tokensUsed)} / {formatCount(session.tokenLimit)}</td>
                      <td>{formatCount(session.requestCount)}</td>
                      <td>{formatTime(session.startedAt)}</td>
                      <td>{formatTime(session.endedAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
        </section>
      ) : <Notice>The session list is per organization and is read with the organization's own key; the balance and live session above are this organization's.</Notice>}
      {isPlatform ? <AddCredits organizationId={organization.id} onAdded={() => balance.reload()} /> : null}
    </div>
  );
}

/** The payment hook by hand (platform only): credit purchased sessions, idempotent per reference. */
function AddCredits({ organizationId, onAdded }: { organizationId: string; onAdded: (balance: Balance) => void }) {
  const { api } = useSession();
  const [count, setCount] = useState('1');
  const [reference, setReference] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setDone(null);
    try {
      const { addSessionCredits } = await api.request<{ addSessionCredits: Balance }>(ADD_SESSION_CREDITS, { input: { organizationId, sessions: Number(count), idempotencyKey: reference.trim() } });
      setDone(`${addSessionCredits.available} sessions available.`);
      onAdded(addSessionCredits);
    } catch (problem) {
      setError(problem);
    }
  };
  return (
    <section className="panel" aria-labelledby="add-credits">
      <h2 id="add-credits">Add purchased sessions</h2>
      <form className="form form-row" onSubmit={submit}>
        <label>Sessions<input type="number" min={1} required value={count} onChange={(event) => setCount(event.target.value)} /></label>
        <label>Payment reference<input required value={reference} onChange={(event) => setReference(event.target.value)} placeholder="e.g. invoice id (the same one twice adds once)" /></label>
        <button type="submit" className="primary">Add</button>
      </form>
      <Problem error={error} />
      {done ? <p role="status">{done}</p> : null}
    </section>
  );
}
