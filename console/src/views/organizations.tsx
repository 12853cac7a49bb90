import { FormEvent, useState } from 'react';
import { Badge, Empty, Problem } from '../components/bits';
import { Dialog } from '../components/dialog';
import { formatMeter, formatTime } from '../format';
import { FormError, formatQuotaSpecs, parseQuotas } from '../forms';
import { CREATE_ORGANIZATION, Organization, SET_ORGANIZATION_STATUS, UPDATE_ORGANIZATION } from '../queries';
import { useSession } from '../session';

/** Platform only: every organization, create one, suspend / activate, set quotas. */
export function Organizations() {
  const { api, organizations, reloadOrganizations, selectOrganization, viewer } = useSession();
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Organization | null>(null);
  const [error, setError] = useState<unknown>(null);

  const setStatus = async (organization: Organization, status: 'ACTIVE' | 'SUSPENDED') => {
    setError(null);
    try {
      await api.request(SET_ORGANIZATION_STATUS, { id: organization.id, status });
      await reloadOrganizations();
    } catch (problem) {
      setError(problem);
    }
  };

  return (
    <div className="view organizations">
      <header className="view-head">
        <h1>Organizations</h1>
        <button type="button" className="primary" onClick={() => setCreating(true)}>Create organization</button>
      </header>
      <Problem error={error} />
      {organizations.length <= 1 ? <Empty>No customer organizations yet — create one.</Empty> : null}
      <div className="table-scroll">
        <table>
          <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Quotas</th><th scope="col">Keys (max)</th><th scope="col">Created</th><th scope="col"><span className="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {organizations.map((organization) => (
              <tr key={organization.id} data-organization-id={organization.id}>
                <td>{organization.name}<div className="muted small mono">{organization.slug}</div></td>
                <td><Badge value={organization.status} /></td>
                <td className="small">{organization.quotas.length === 0 ? 'none' : organization.quotas.map((quota) => `${quota.meter}/${quota.period} ${formatMeter(quota.meter, quota.used)} of ${formatMeter(quota.meter, quota.limit)}`).join(', ')}</td>
                <td>{organization.maxKeys}</td>
                <td>{formatTime(organization.createdAt)}</td>
                <td className="row-actions">
                  <button type="button" onClick={() => { selectOrganization(organization.id); window.location.hash = '#/overview'; }}>Open</button>
                  <button type="button" onClick={() => setEditing(organization)}>Quotas</button>
                  {organization.id === viewer.organization.id ? null : organization.status === 'ACTIVE'
                    ? <button type="button" className="danger" onClick={() => setStatus(organization, 'SUSPENDED')}>Suspend</button>
                    : <button type="button" onClick={() => setStatus(organization, 'ACTIVE')}>Activate</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {creating ? <OrganizationDialog onClose={() => setCreating(false)} onSaved={async (created) => { setCreating(false); await reloadOrganizations(); selectOrganization(created.id); }} /> : null}
      {editing ? <OrganizationDialog organization={editing} onClose={() => setEditing(null)} onSaved={async () => { setEditing(null); await reloadOrganizations(); }} /> : null}
    </div>
  );
}

/** Create an organization (name, quotas), or replace an existing one's quotas. */
function OrganizationDialog({ organization, onClose, onSaved }: { organization?: Organization; onClose: () => void; onSaved: (organization: Organization) => void }) {
  const { api } = useSession();
  const [name, setName] = useState('');
  const [quotas, setQuotas] = useState(organization ? formatQuotaSpecs(organization.quotas) : '');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    let parsed;
    try {
      parsed = parseQuotas(quotas);
    } catch (problem) {
      setError(problem instanceof FormError ? problem : new Error(String(problem)));
      return;
    }
    setBusy(true);
    try {
      const saved = organization
        ? (await api.request<{ updateOrganization: Organization }>(UPDATE_ORGANIZATION, { id: organization.id, input: { quotas: parsed } })).updateOrganization
        : (await api.request<{ createOrganization: Organization }>(CREATE_ORGANIZATION, { input: { name: name.trim(), quotas: parsed } })).createOrganization;
      onSaved(saved);
    } catch (problem) {
      setError(problem);
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={organization ? `Quotas of ${organization.name}` : 'Create an organization'}
      onClose={onClose}
      actions={(
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="organization-form" className="primary" disabled={busy || (!organization && name.trim() === '')}>{organization ? 'Save quotas' : 'Create'}</button>
        </>
      )}
    >
      <form id="organization-form" className="form" onSubmit={submit}>
        {organization ? null : <label>Name<input required value={name} onChange={(event) => setName(event.target.value)} maxLength={200} /></label>}
        <label>Quotas<input value={quotas} onChange={(event) => setQuotas(event.target.value)} placeholder="e.g. REQUESTS:MONTH:100000, TOKENS:DAY:50000 (empty: none)" /></label>
        <Problem error={error} />
      </form>
    </Dialog>
  );
}
