import { FormEvent, useState } from 'react';
import { Badge, Empty, Problem } from '../components/bits';
import { Dialog } from '../components/dialog';
import { SecretDialog } from '../components/secret-dialog';
import { formatCount, formatTime } from '../format';
import { FormError, formatQuotaSpecs, formatRateLimits, parseList, parseQuotas, parseRateLimits } from '../forms';
import { useLoad } from '../hooks';
import {
  API_KEYS, ApiKey, ApiKeyStatus, CREATE_API_KEY, Page, REVOKE_API_KEY, ROTATE_API_KEY, ScopePreset, SET_API_KEY_ENABLED, UPDATE_API_KEY,
} from '../queries';
import { useSession } from '../session';
import { KeyUsage } from './usage';

const PAGE_SIZE = 20;
const PRESETS: ScopePreset[] = ['READ', 'WRITE', 'ADMIN', 'INFERENCE'];
const STATUSES: ApiKeyStatus[] = ['ACTIVE', 'DISABLED', 'EXPIRED', 'REVOKED'];

interface Secret {
  title: string;
  keyName: string;
  secret: string;
  note?: string;
}

/** Keys of the organization: search, filter, pages; create, rotate, disable / enable, revoke, edit limits. */
export function Keys() {
  const { api, organization, can } = useSession();
  const [search, setSearch] = useState('');
  const [appliedSearch, setAppliedSearch] = useState('');
  const [status, setStatus] = useState<ApiKeyStatus | ''>('');
  const [environment, setEnvironment] = useState<'' | 'LIVE' | 'TEST'>('');
  // Cursors of the pages before the current one; the current page starts after the last.
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [creating, setCreating] = useState(false);
  const [selected, setSelected] = useState<ApiKey | null>(null);
  const [secret, setSecret] = useState<Secret | null>(null);
  const after = cursors[cursors.length - 1];
  const filter = { organizationId: organization.id, ...(status && { status }), ...(environment && { environment }), ...(appliedSearch && { search: appliedSearch }) };
  const page = useLoad(
    () => api.request<{ apiKeys: Page<ApiKey> }>(API_KEYS, { filter, first: PAGE_SIZE, after }).then((data) => data.apiKeys),
    [organization.id, status, environment, appliedSearch, after],
  );
  const restart = () => setCursors([null]);
  const onSearch = (event: FormEvent) => {
    event.preventDefault();
    setAppliedSearch(search.trim());
    restart();
  };
  const writable = can('keys:write');
  const changed = (key: ApiKey) => {
    setSelected((current) => (current && current.id === key.id ? key : current));
    page.reload();
  };

  return (
    <div className="view keys">
      <header className="view-head">
        <h1>Keys</h1>
        {writable ? <button type="button" className="primary" onClick={() => setCreating(true)}>Create key</button> : null}
      </header>
      <form className="filters" onSubmit={onSearch} role="search">
        <label>
          Search
          <input type="search" value={search} onChange={(event) => setSearch(event.target.value)} placeholder="name, owner email, external id or hint" />
        </label>
        <label>
          Status
          <select value={status} onChange={(event) => { setStatus(event.target.value as ApiKeyStatus | ''); restart(); }}>
            <option value="">any</option>
            {STATUSES.map((value) => <option key={value} value={value}>{value}</option>)}
          </select>
        </label>
        <label>
          Environment
          <select value={environment} onChange={(event) => { setEnvironment(event.target.value as '' | 'LIVE' | 'TEST'); restart(); }}>
            <option value="">any</option>
            <option value="LIVE">LIVE</option>
            <option value="TEST">TEST</option>
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <Problem error={page.error} />
      {page.data && page.data.nodes.length === 0 ? (
        <Empty>{appliedSearch || status || environment ? 'No keys match.' : writable ? 'No keys yet — create one.' : 'No keys yet.'}</Empty>
      ) : null}
      {page.data && page.data.nodes.length > 0 ? (
        <div className="table-scroll">
          <table className="keys-table">
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Key</th><th scope="col">Scopes</th><th scope="col">Requests</th><th scope="col">Last used</th><th scope="col"><span className="sr-only">Actions</span></th></tr>
            </thead>
            <tbody>
              {page.data.nodes.map((key) => (
                <tr key={key.id} data-key-id={key.id}>
                  <td>{key.name}<div className="muted small">{key.environment}{key.expiresAt ? ` · expires ${formatTime(key.expiresAt)}` : ''}</div></td>
                  <td><Badge value={key.status} /></td>
                  <td className="mono">{key.hint}</td>
                  <td className="scopes">{key.scopes.join(', ')}</td>
                  <td>{formatCount(key.requestCount)}</td>
                  <td>{formatTime(key.lastUsedAt)}</td>
                  <td><button type="button" onClick={() => setSelected(key)} aria-label={`Manage ${key.name}`}>Manage</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {page.data ? (
        <nav className="pager" aria-label="Pages of keys">
          <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
          <span>Page {cursors.length} · {formatCount(page.data.totalCount)} keys</span>
          <button type="button" disabled={!page.data.pageInfo.hasNextPage} onClick={() => setCursors([...cursors, page.data!.pageInfo.endCursor])}>Next</button>
        </nav>
      ) : null}

      {creating ? (
        <CreateKeyDialog
          onClose={() => setCreating(false)}
          onCreated={(key, value) => {
            setCreating(false);
            setSecret({ title: 'Key created', keyName: key.name, secret: value });
            restart();
            page.reload();
          }}
        />
      ) : null}
      {selected ? <KeyDialog apiKey={selected} onClose={() => setSelected(null)} onChanged={changed} onSecret={setSecret} /> : null}
      {secret ? <KeySecretDialog secret={secret} onClose={() => setSecret(null)} /> : null}
    </div>
  );
}

/** The secret, shown this once: keyward keeps only a hash. */
function KeySecretDialog({ secret, onClose }: { secret: Secret; onClose: () => void }) {
  return (
    <SecretDialog title={secret.title} secret={secret.secret} note={secret.note} onClose={onClose}>
      The secret of <strong>{secret.keyName}</strong>. Copy it now: <strong>it is shown only this once</strong> — keyward keeps only a hash.
    </SecretDialog>
  );
}

function CreateKeyDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (key: ApiKey, secret: string) => void }) {
  const { api, organization } = useSession();
  const [name, setName] = useState('');
  const [preset, setPreset] = useState<ScopePreset | ''>('');
  const [scopes, setScopes] = useState('');
  const [environment, setEnvironment] = useState<'LIVE' | 'TEST'>('LIVE');
  const [expiresInDays, setExpiresInDays] = useState('');
  const [ipAllowlist, setIpAllowlist] = useState('');
  const [rateLimits, setRateLimits] = useState('');
  const [noRateLimit, setNoRateLimit] = useState(false);
  const [quotas, setQuotas] = useState('');
  const [ownerEmail, setOwnerEmail] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    let input: Record<string, unknown>;
    try {
      input = {
        organizationId: organization.id,
        name: name.trim(),
        environment,
        ...(preset && { preset }),
        ...(scopes.trim() && { scopes: parseList(scopes) }),
        ...(expiresInDays.trim() && { expiresInDays: Number(expiresInDays) }),
        ...(ipAllowlist.trim() && { ipAllowlist: parseList(ipAllowlist) }),
        ...(noRateLimit ? { rateLimits: [] } : rateLimits.trim() ? { rateLimits: parseRateLimits(rateLimits) } : {}),
        ...(quotas.trim() && { quotas: parseQuotas(quotas) }),
        ...(ownerEmail.trim() && { ownerEmail: ownerEmail.trim() }),
      };
    } catch (problem) {
      setError(problem instanceof FormError ? problem : new Error(String(problem)));
      return;
    }
    setBusy(true);
    try {
      const { createApiKey } = await api.request<{ createApiKey: { secret: string; apiKey: ApiKey } }>(CREATE_API_KEY, { input });
      onCreated(createApiKey.apiKey, createApiKey.secret);
    } catch (problem) {
      setError(problem);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title={`Create a key in ${organization.name}`}
      onClose={onClose}
      actions={(
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="create-key" className="primary" disabled={busy || name.trim() === ''}>Create key</button>
        </>
      )}
    >
      <form id="create-key" className="form" onSubmit={submit}>
        <label>Name<input required value={name} onChange={(event) => setName(event.target.value)} maxLength={200} /></label>
        <div className="form-row">
          <label>
            Preset
            <select value={preset} onChange={(event) => setPreset(event.target.value as ScopePreset | '')}>
              <option value="">none (READ unless scopes are given)</option>
              {PRESETS.map((value) => <option key={value} value={value}>{value}</option>)}
            </select>
          </label>
          <label>
            Environment
            <select value={environment} onChange={(event) => setEnvironment(event.target.value as 'LIVE' | 'TEST')}>
              <option value="LIVE">LIVE (kw_live_…)</option>
              <option value="TEST">TEST (kw_test_…)</option>
            </select>
          </label>
        </div>
        <label>Scopes<input value={scopes} onChange={(event) => setScopes(event.target.value)} placeholder="e.g. inference:run, usage:read (added to the preset)" /></label>
        <div className="form-row">
          <label>Expires in days<input type="number" min={1} value={expiresInDays} onChange={(event) => setExpiresInDays(event.target.value)} placeholder="never" /></label>
          <label>Owner email<input type="email" value={ownerEmail} onChange={(event) => setOwnerEmail(event.target.value)} /></label>
        </div>
        <label>IP allowlist<input value={ipAllowlist} onChange={(event) => setIpAllowlist(event.target.value)} placeholder="any address; e.g. 203.0.113.0/24, 198.51.100.7" /></label>
        <label>Rate limits<input value={rateLimits} disabled={noRateLimit} onChange={(event) => setRateLimits(event.target.value)} placeholder="default per-minute:60:60, per-hour:1000:3600" /></label>
        <label className="checkbox"><input type="checkbox" checked={noRateLimit} onChange={(event) => setNoRateLimit(event.target.checked)} /> No rate limit (a service calling verifyKey)</label>
        <label>Quotas<input value={quotas} onChange={(event) => setQuotas(event.target.value)} placeholder="none; e.g. REQUESTS:MONTH:100000, TOKENS:DAY:50000" /></label>
        <Problem error={error} />
      </form>
    </Dialog>
  );
}

type KeyAction = 'rotate' | 'revoke' | 'limits' | null;

/** One key: its settings, usage chart and what may be done to it. */
function KeyDialog({ apiKey, onClose, onChanged, onSecret }: { apiKey: ApiKey; onClose: () => void; onChanged: (key: ApiKey) => void; onSecret: (secret: Secret) => void }) {
  const { api, can, viewer } = useSession();
  const [action, setAction] = useState<KeyAction>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const writable = can('keys:write');
  const ended = apiKey.status === 'REVOKED';

  const run = async <T,>(work: () => Promise<T>, then: (result: T) => void) => {
    setBusy(true);
    setError(null);
    try {
      then(await work());
      setAction(null);
    } catch (problem) {
      setError(problem);
    } finally {
      setBusy(false);
    }
  };
  const setEnabled = (enabled: boolean) => run(
    () => api.request<{ setApiKeyEnabled: ApiKey }>(SET_API_KEY_ENABLED, { id: apiKey.id, enabled }),
    (data) => onChanged(data.setApiKeyEnabled),
  );

  return (
    <Dialog title={`Key: ${apiKey.name}`} onClose={onClose}>
      <dl className="facts">
        <dt>Status</dt><dd><Badge value={apiKey.status} />{apiKey.id === viewer.apiKey.id ? <span className="muted"> (this console's key)</span> : null}</dd>
        <dt>Id</dt><dd className="mono">{apiKey.id}</dd>
        <dt>Key</dt><dd className="mono">{apiKey.hint}</dd>
        <dt>Scopes</dt><dd>{apiKey.scopes.join(', ') || '—'}</dd>
        <dt>Rate limits</dt><dd>{apiKey.rateLimits.length ? apiKey.rateLimits.map((limit) => `${limit.name}: ${limit.limit} per ${limit.windowSeconds} s`).join(', ') : 'none'}</dd>
        <dt>Quotas</dt><dd>{apiKey.quotas.length ? apiKey.quotas.map((quota) => `${quota.meter}/${quota.period}: ${quota.used} of ${quota.limit}`).join(', ') : 'none'}</dd>
        <dt>IP allowlist</dt><dd>{apiKey.ipAllowlist.join(', ') || 'any address'}</dd>
        <dt>Expires</dt><dd>{apiKey.expiresAt ? formatTime(apiKey.expiresAt) : 'never'}</dd>
        {apiKey.revokedAt ? <><dt>Revoked</dt><dd>{formatTime(apiKey.revokedAt)}: {apiKey.revokedReason}</dd></> : null}
        <dt>Requests</dt><dd>{formatCount(apiKey.requestCount)} · last used {formatTime(apiKey.lastUsedAt)}</dd>
        <dt>Created</dt><dd>{formatTime(apiKey.createdAt)}</dd>
      </dl>
      {writable && !ended ? (
        <div className="actions">
          {apiKey.status === 'DISABLED' ? <button type="button" disabled={busy} onClick={() => setEnabled(true)}>Enable</button> : null}
          {apiKey.status === 'ACTIVE' ? <button type="button" disabled={busy} onClick={() => setEnabled(false)}>Disable</button> : null}
          <button type="button" disabled={busy} onClick={() => setAction('limits')}>Edit limits</button>
          <button type="button" disabled={busy} onClick={() => setAction('rotate')}>Rotate</button>
          <button type="button" className="danger" disabled={busy} onClick={() => setAction('revoke')}>Revoke</button>
        </div>
      ) : null}
      <Problem error={error} />
      {action === 'revoke' ? <RevokeForm busy={busy} onCancel={() => setAction(null)} onRevoke={(reason) => run(
        () => api.request<{ revokeApiKey: ApiKey }>(REVOKE_API_KEY, { id: apiKey.id, reason }),
        (data) => onChanged(data.revokeApiKey),
      )} /> : null}
      {action === 'rotate' ? <RotateForm busy={busy} onCancel={() => setAction(null)} onRotate={(gracePeriodSeconds) => run(
        () => api.request<{ rotateApiKey: { secret: string; previousKeyExpiresAt: string; apiKey: ApiKey } }>(ROTATE_API_KEY, { id: apiKey.id, gracePeriodSeconds }),
        ({ rotateApiKey }) => {
          onChanged(rotateApiKey.apiKey);
          onClose();
          onSecret({ title: 'Key rotated', keyName: rotateApiKey.apiKey.name, secret: rotateApiKey.secret, note: `The old secret works until ${formatTime(rotateApiKey.previousKeyExpiresAt)}.` });
        },
      )} /> : null}
      {action === 'limits' ? <LimitsForm apiKey={apiKey} busy={busy} onCancel={() => setAction(null)} onSave={(input) => run(
        () => api.request<{ updateApiKey: ApiKey }>(UPDATE_API_KEY, { id: apiKey.id, input }),
        (data) => onChanged(data.updateApiKey),
      )} onInvalid={setError} /> : null}
      <KeyUsage apiKeyId={apiKey.id} />
    </Dialog>
  );
}

function RevokeForm({ busy, onCancel, onRevoke }: { busy: boolean; onCancel: () => void; onRevoke: (reason: string) => void }) {
  const [reason, setReason] = useState('');
  return (
    <form className="form inline-form" onSubmit={(event) => { event.preventDefault(); onRevoke(reason.trim()); }}>
      <label>Reason<input required value={reason} onChange={(event) => setReason(event.target.value)} placeholder="e.g. leaked in a public repository" maxLength={500} /></label>
      <p className="muted small">A revoked key is refused for good; it cannot be enabled again.</p>
      <div className="actions">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="submit" className="danger" disabled={busy || reason.trim() === ''}>Revoke key</button>
      </div>
    </form>
  );
}

function RotateForm({ busy, onCancel, onRotate }: { busy: boolean; onCancel: () => void; onRotate: (gracePeriodSeconds: number) => void }) {
  const [grace, setGrace] = useState('3600');
  return (
    <form className="form inline-form" onSubmit={(event) => { event.preventDefault(); onRotate(Number(grace)); }}>
      <label>
        The old secret keeps working for
        <select value={grace} onChange={(event) => setGrace(event.target.value)}>
          <option value="0">no time (refused at once)</option>
          <option value="300">5 minutes</option>
          <option value="3600">1 hour</option>
          <option value="86400">1 day</option>
          <option value="604800">7 days</option>
        </select>
      </label>
      <div className="actions">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="submit" className="primary" disabled={busy}>Rotate key</button>
      </div>
    </form>
  );
}

function LimitsForm({ apiKey, busy, onCancel, onSave, onInvalid }: {
  apiKey: ApiKey; busy: boolean; onCancel: () => void; onSave: (input: Record<string, unknown>) => void; onInvalid: (error: unknown) => void;
}) {
  const [rateLimits, setRateLimits] = useState(formatRateLimits(apiKey.rateLimits));
  const [quotas, setQuotas] = useState(formatQuotaSpecs(apiKey.quotas));
  const [maxCost, setMaxCost] = useState(apiKey.maxCostPerRequest === null ? '' : String(apiKey.maxCostPerRequest));
  const submit = (event: FormEvent) => {
    event.preventDefault();
    try {
      onSave({ rateLimits: parseRateLimits(rateLimits), quotas: parseQuotas(quotas), maxCostPerRequest: maxCost.trim() === '' ? null : Number(maxCost) });
    } catch (problem) {
      onInvalid(problem);
    }
  };
  return (
    <form className="form inline-form" onSubmit={submit}>
      <label>Rate limits<input value={rateLimits} onChange={(event) => setRateLimits(event.target.value)} placeholder="empty: no rate limit" /></label>
      <label>Quotas<input value={quotas} onChange={(event) => setQuotas(event.target.value)} placeholder="empty: no key quota" /></label>
      <label>Max cost per request<input type="number" min={1} value={maxCost} onChange={(event) => setMaxCost(event.target.value)} placeholder="no cap" /></label>
      <div className="actions">
        <button type="button" onClick={onCancel}>Cancel</button>
        <button type="submit" className="primary" disabled={busy}>Save limits</button>
      </div>
    </form>
  );
}
