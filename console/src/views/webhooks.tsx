import { FormEvent, useEffect, useState } from 'react';
import { Badge, Empty, Problem } from '../components/bits';
import { Dialog } from '../components/dialog';
import { SecretDialog } from '../components/secret-dialog';
import { formatTime } from '../format';
import { FormError, parseList } from '../forms';
import { useLoad } from '../hooks';
import {
  CREATE_WEBHOOK_ENDPOINT, DELETE_WEBHOOK_ENDPOINT, Page, RETRY_WEBHOOK_DELIVERY, ROTATE_WEBHOOK_SECRET, SEND_TEST_WEBHOOK, UPDATE_WEBHOOK_ENDPOINT,
  WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINTS, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint, WebhookEventType,
} from '../queries';
import { useSession } from '../session';

/** What each event is, in the words of the create form. */
const EVENTS: ReadonlyArray<[WebhookEventType, string]> = [
  ['QUOTA_THRESHOLD', 'Quota threshold crossed'],
  ['QUOTA_EXHAUSTED', 'Quota exhausted'],
  ['RATE_LIMIT_EXHAUSTED', 'Rate limit window ran out'],
  ['SESSION_EXHAUSTED', 'Session used up'],
  ['KEY_EXPIRING', 'Key expiring soon'],
  ['KEY_REVOKED', 'Key revoked'],
  ['KEY_ROTATED', 'Key rotated'],
];
const STATUSES: WebhookDeliveryStatus[] = ['PENDING', 'SUCCEEDED', 'FAILED'];
/** While a delivery is PENDING, the log is read again this often (attempts happen on the server). */
const REFRESH_MS = 2_000;

interface Secret {
  title: string;
  url: string;
  secret: string;
}

/**
 * The organization's webhook endpoints: add one (its signing secret shown once), and per
 * endpoint its delivery log with status, attempts and last answer; send a test, retry by hand,
 * rotate the secret, disable / enable, delete.
 */
export function Webhooks() {
  const { api, organization, can, isPlatform } = useSession();
  const endpoints = useLoad(
    () => api.request<{ webhookEndpoints: WebhookEndpoint[] }>(WEBHOOK_ENDPOINTS, { organizationId: organization.id }).then((data) => data.webhookEndpoints),
    [organization.id],
  );
  const [creating, setCreating] = useState(false);
  const [selected, setSelected] = useState<WebhookEndpoint | null>(null);
  const [secret, setSecret] = useState<Secret | null>(null);
  // The platform organization's endpoints receive every organization's events: platform admins' alone.
  const writable = can('webhooks:write') && (!organization.isPlatform || isPlatform);
  const changed = (endpoint: WebhookEndpoint | null) => {
    setSelected(endpoint);
    endpoints.reload();
  };

  return (
    <div className="view webhooks">
      <header className="view-head">
        <h1>Webhooks</h1>
        {writable ? <button type="button" className="primary" onClick={() => setCreating(true)}>Add endpoint</button> : null}
      </header>
      <p className="muted small">
        keyward POSTs signed events (Standard Webhooks: <span className="mono">webhook-id</span>, <span className="mono">webhook-timestamp</span>,{' '}
        <span className="mono">webhook-signature</span>) to these URLs and retries until they answer 2xx.
        {organization.isPlatform ? ' Endpoints of the platform organization receive the events of every organization.' : ''}
      </p>
      <Problem error={endpoints.error} />
      {endpoints.data && endpoints.data.length === 0 ? <Empty>{writable ? 'No endpoints yet — add one to hear of quotas, keys and sessions.' : 'No endpoints yet.'}</Empty> : null}
      {endpoints.data && endpoints.data.length > 0 ? (
        <div className="table-scroll">
          <table>
            <thead><tr><th scope="col">URL</th><th scope="col">Status</th><th scope="col">Events</th><th scope="col">Created</th><th scope="col"><span className="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {endpoints.data.map((endpoint) => (
                <tr key={endpoint.id} data-endpoint-id={endpoint.id}>
                  <td className="mono small url">{endpoint.url}{endpoint.description ? <div className="muted">{endpoint.description}</div> : null}</td>
                  <td><Badge value={endpoint.enabled ? 'ENABLED' : 'DISABLED'} /></td>
                  <td className="small events">{endpoint.eventTypes.join(', ')}</td>
                  <td>{formatTime(endpoint.createdAt)}</td>
                  <td><button type="button" onClick={() => setSelected(endpoint)} aria-label={`Manage ${endpoint.url}`}>Manage</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {creating ? (
        <CreateEndpointDialog
          onClose={() => setCreating(false)}
          onCreated={(endpoint, value) => {
            setCreating(false);
            setSecret({ title: 'Endpoint created', url: endpoint.url, secret: value });
            endpoints.reload();
          }}
        />
      ) : null}
      {selected ? <EndpointDialog endpoint={selected} writable={writable} onClose={() => setSelected(null)} onChanged={changed} onSecret={setSecret} /> : null}
      {secret ? (
        <SecretDialog title={secret.title} secret={secret.secret} onClose={() => setSecret(null)} note="Verify every delivery's webhook-signature with it (any Standard Webhooks library); keyward signs each attempt with the endpoint's current secret.">
          The signing secret of <strong className="mono">{secret.url}</strong>. Copy it now: <strong>it is shown only this once</strong>.
        </SecretDialog>
      ) : null}
    </div>
  );
}

function CreateEndpointDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (endpoint: WebhookEndpoint, secret: string) => void }) {
  const { api, organization } = useSession();
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<WebhookEventType[]>(['QUOTA_THRESHOLD', 'QUOTA_EXHAUSTED']);
  const [thresholds, setThresholds] = useState('80, 100');
  const [noticeDays, setNoticeDays] = useState('7');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (type: WebhookEventType, on: boolean) => setEvents((current) => (on ? [...current, type] : current.filter((value) => value !== type)));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    let quotaThresholds: number[];
    try {
      quotaThresholds = parseList(thresholds).map((entry) => {
        if (!/^\d+$/.test(entry)) throw new FormError(`Threshold "${entry}" should be a whole percentage, e.g. 80`);
        return Number(entry);
      });
    } catch (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    try {
      const input = {
        organizationId: organization.id,
        url: url.trim(),
        eventTypes: events,
        quotaThresholds,
        expiryNoticeDays: Number(noticeDays),
        ...(description.trim() && { description: description.trim() }),
      };
      const { createWebhookEndpoint } = await api.request<{ createWebhookEndpoint: { secret: string; endpoint: WebhookEndpoint } }>(CREATE_WEBHOOK_ENDPOINT, { input });
      onCreated(createWebhookEndpoint.endpoint, createWebhookEndpoint.secret);
    } catch (problem) {
      setError(problem);
      setBusy(false);
    }
  };

  return (
    <Dialog
      title={`Add an endpoint to ${organization.name}`}
      onClose={onClose}
      actions={(
        <>
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" form="create-endpoint" className="primary" disabled={busy || url.trim() === '' || events.length === 0}>Add endpoint</button>
        </>
      )}
    >
      <form id="create-endpoint" className="form" onSubmit={submit}>
        <label>URL<input required type="url" value={url} onChange={(event) => setUrl(event.target.value)} placeholder="https://api.example.com/hooks/keyward" maxLength={2000} /></label>
        <label>Description<input value={description} onChange={(event) => setDescription(event.target.value)} placeholder="e.g. billing backend" maxLength={500} /></label>
        <fieldset className="checks">
          <legend>Events</legend>
          {EVENTS.map(([type, label]) => (
            <label key={type} className="checkbox"><input type="checkbox" checked={events.includes(type)} onChange={(event) => toggle(type, event.target.checked)} /> {label}</label>
          ))}
        </fieldset>
        <div className="form-row">
          <label>Quota thresholds (%)<input value={thresholds} onChange={(event) => setThresholds(event.target.value)} placeholder="80, 100" /></label>
          <label>Expiry notice (days)<input type="number" min={1} max={365} value={noticeDays} onChange={(event) => setNoticeDays(event.target.value)} /></label>
        </div>
        <Problem error={error} />
      </form>
    </Dialog>
  );
}

type EndpointAction = 'delete' | null;

/** One endpoint: its settings, what may be done to it, and its delivery log. */
function EndpointDialog({ endpoint, writable, onClose, onChanged, onSecret }: {
  endpoint: WebhookEndpoint; writable: boolean; onClose: () => void; onChanged: (endpoint: WebhookEndpoint | null) => void; onSecret: (secret: Secret) => void;
}) {
  const { api } = useSession();
  const [action, setAction] = useState<EndpointAction>(null);
  const [status, setStatus] = useState<WebhookDeliveryStatus | ''>('');
  const [deliveries, setDeliveries] = useState<WebhookDelivery[]>([]);
  const [page, setPage] = useState<Page<WebhookDelivery> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const load = async (after: string | null = null) => {
    try {
      const { webhookDeliveries } = await api.request<{ webhookDeliveries: Page<WebhookDelivery> }>(WEBHOOK_DELIVERIES, { endpointId: endpoint.id, ...(status && { status }), after });
      setPage(webhookDeliveries);
      setDeliveries((previous) => (after ? [...previous, ...webhookDeliveries.nodes] : webhookDeliveries.nodes));
    } catch (problem) {
      setError(problem);
    }
  };
  useEffect(() => {
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [endpoint.id, status]);
  // Attempts happen on the server: while one is pending, look again now and then.
  const pending = deliveries.some((delivery) => delivery.status === 'PENDING');
  useEffect(() => {
    if (!pending) return undefined;
    const timer = window.setInterval(() => void load(), REFRESH_MS);
    return () => window.clearInterval(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [pending, endpoint.id, status]);

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
    () => api.request<{ updateWebhookEndpoint: WebhookEndpoint }>(UPDATE_WEBHOOK_ENDPOINT, { id: endpoint.id, input: { enabled } }),
    (data) => onChanged(data.updateWebhookEndpoint),
  );

  return (
    <Dialog title={`Endpoint: ${endpoint.url}`} onClose={onClose}>
      <dl className="facts">
        <dt>Status</dt><dd><Badge value={endpoint.enabled ? 'ENABLED' : 'DISABLED'} /></dd>
        <dt>Id</dt><dd className="mono">{endpoint.id}</dd>
        <dt>URL</dt><dd className="mono">{endpoint.url}</dd>
        {endpoint.description ? <><dt>Description</dt><dd>{endpoint.description}</dd></> : null}
        <dt>Events</dt><dd>{endpoint.eventTypes.join(', ')}</dd>
        <dt>Quota thresholds</dt><dd>{endpoint.quotaThresholds.map((threshold) => `${threshold} %`).join(', ')}</dd>
        <dt>Expiry notice</dt><dd>{endpoint.expiryNoticeDays} days before</dd>
        <dt>Created</dt><dd>{formatTime(endpoint.createdAt)}</dd>
      </dl>
      {writable ? (
        <div className="actions">
          <button type="button" disabled={busy || !endpoint.enabled} onClick={() => run(
            () => api.request(SEND_TEST_WEBHOOK, { id: endpoint.id }),
            () => void load(),
          )}>Send test</button>
          <button type="button" disabled={busy} onClick={() => run(
            () => api.request<{ rotateWebhookSecret: { secret: string; endpoint: WebhookEndpoint } }>(ROTATE_WEBHOOK_SECRET, { id: endpoint.id }),
            ({ rotateWebhookSecret }) => onSecret({ title: 'Secret rotated', url: endpoint.url, secret: rotateWebhookSecret.secret }),
          )}>Rotate secret</button>
          {endpoint.enabled
            ? <button type="button" disabled={busy} onClick={() => setEnabled(false)}>Disable</button>
            : <button type="button" disabled={busy} onClick={() => setEnabled(true)}>Enable</button>}
          <button type="button" className="danger" disabled={busy} onClick={() => setAction('delete')}>Delete</button>
        </div>
      ) : null}
      <Problem error={error} />
      {action === 'delete' ? (
        <form className="form inline-form" onSubmit={(event) => { event.preventDefault(); void run(() => api.request(DELETE_WEBHOOK_ENDPOINT, { id: endpoint.id }), () => onChanged(null)); }}>
          <p className="muted small">The endpoint goes with its delivery log; deliveries not yet made are dropped.</p>
          <div className="actions">
            <button type="button" onClick={() => setAction(null)}>Cancel</button>
            <button type="submit" className="danger" disabled={busy}>Delete endpoint</button>
          </div>
        </form>
      ) : null}
      <section aria-labelledby="deliveries-title">
        <div className="view-head">
          <h3 id="deliveries-title">Deliveries</h3>
          <label className="inline-label">
            <span className="sr-only">Delivery status</span>
            <select aria-label="Delivery status" value={status} onChange={(event) => setStatus(event.target.value as WebhookDeliveryStatus | '')}>
              <option value="">any status</option>
              {STATUSES.map((value) => <option key={value} value={value}>{value}</option>)}
            </select>
          </label>
          <button type="button" onClick={() => void load()}>Refresh</button>
        </div>
        {page && deliveries.length === 0 ? <Empty>No deliveries{status ? ` ${status}` : ''} yet{writable && endpoint.enabled ? ' — send a test' : ''}.</Empty> : null}
        {deliveries.length > 0 ? (
          <div className="table-scroll">
            <table className="deliveries">
              <thead><tr><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">Next attempt</th><th scope="col"><span className="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {deliveries.map((delivery) => (
                  <tr key={delivery.id} data-delivery-id={delivery.id}>
                    <td>
                      {delivery.eventType}
                      <div className="muted small">{formatTime(delivery.createdAt)}</div>
                      <details><summary className="small">Body</summary><pre className="small payload">{JSON.stringify(delivery.payload, null, 2)}</pre><div className="mono small">webhook-id {delivery.eventId}</div></details>
                    </td>
                    <td><Badge value={delivery.status} /></td>
                    <td>{delivery.attempts}</td>
                    <td className="small">{delivery.lastError ?? (delivery.lastStatusCode ? `HTTP ${delivery.lastStatusCode}` : '—')}</td>
                    <td className="small">{delivery.status === 'SUCCEEDED' ? `delivered ${formatTime(delivery.deliveredAt)}` : formatTime(delivery.nextAttemptAt)}</td>
                    <td>{writable && endpoint.enabled ? (
                      <button type="button" disabled={busy} onClick={() => run(
                        () => api.request(RETRY_WEBHOOK_DELIVERY, { id: delivery.id }),
                        () => void load(),
                      )}>Retry</button>
                    ) : null}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {page?.pageInfo.hasNextPage ? <button type="button" onClick={() => void load(page.pageInfo.endCursor)}>Load more</button> : null}
      </section>
    </Dialog>
  );
}
