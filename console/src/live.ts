import { useEffect, useRef, useState } from 'react';
import { ApiError, Subscription } from './api';
import { API_KEYS, API_KEY_CHANGED, ApiKey, Organization, Page, Quota, QUOTA_CHANGED, RATE_LIMIT_CHANGED, RateLimitState, Session, SESSION_CHANGED } from './queries';
import { quotaDelta, RequestRate, windowDelta } from './request-rate';
import { useSession } from './session';
import { formatCount, formatMeter, formatPercent } from './format';

export interface FeedEvent {
  id: number;
  /** When the console received it (epoch ms). */
  at: number;
  kind: 'quota' | 'rate-limit' | 'key' | 'session';
  text: string;
}

export interface LiveState {
  /** The organization's quotas, latest state. */
  quotas: Quota[];
  /** Keys whose rate-limit windows are watched. */
  keys: ApiKey[];
  /** Latest state of each window, per key id. */
  windows: Map<string, RateLimitState[]>;
  /** Every event received since the page opened (newest first, at most FEED_LIMIT). */
  feed: FeedEvent[];
  /** Requests per minute over the last 30 minutes. */
  rate: { times: number[]; values: number[] };
  /** True when the organization has more active keys than are watched. */
  moreKeys: boolean;
  /** Subscriptions the server refused (e.g. a scope the key lacks). */
  problems: ApiError[];
  connected: boolean;
}

/** Keys watched live: a connection carries at most 50 subscriptions (DESIGN.md), 3 go to the organization. */
export const WATCHED_KEYS = 40;
export const FEED_LIMIT = 5_000;

interface Store {
  quotas: Map<string, Quota>;
  keys: Map<string, ApiKey>;
  windows: Map<string, Map<string, RateLimitState>>;
  keySubscriptions: Map<string, Subscription>;
  feed: FeedEvent[];
  rate: RequestRate;
  nextId: number;
  problems: ApiError[];
  moreKeys: boolean;
  connected: boolean;
}

const quotaId = (quota: Quota) => `${quota.meter}|${quota.period}`;

/**
 * The live state of one organization: quotaChanged, apiKeyChanged and sessionChanged for the
 * organization, rateLimitChanged for each of its active keys (up to WATCHED_KEYS). Unsubscribes
 * when the organization changes or the view goes away.
 */
export function useLive(organization: Organization): LiveState {
  const { api, can, viewer } = useSession();
  const [, setVersion] = useState(0);
  const store = useRef<Store | null>(null);

  useEffect(() => {
    const state: Store = {
      quotas: new Map(organization.quotas.map((quota) => [quotaId(quota), quota])),
      keys: new Map(),
      windows: new Map(),
      keySubscriptions: new Map(),
      feed: [],
      rate: new RequestRate(),
      nextId: 1,
      problems: [],
      moreKeys: false,
      connected: false,
    };
    store.current = state;
    let active = true;
    const changed = () => {
      if (active) setVersion((value) => value + 1);
    };
    const push = (kind: FeedEvent['kind'], text: string) => {
      state.feed.unshift({ id: state.nextId++, at: Date.now(), kind, text });
      if (state.feed.length > FEED_LIMIT) state.feed.length = FEED_LIMIT;
    };
    const refused = (error: ApiError) => {
      if (!state.problems.some((problem) => problem.message === error.message)) state.problems.push(error);
      changed();
    };
    const keyName = (id: string) => {
      const key = state.keys.get(id);
      return key ? `${key.name} (${key.hint})` : id === viewer.apiKey.id ? `${viewer.apiKey.name} (this console)` : id;
    };
    const usesQuotaForRate = () => [...state.quotas.values()].some((quota) => quota.meter === 'REQUESTS');

    const watchKey = (key: ApiKey) => {
      if (state.keySubscriptions.has(key.id) || state.keySubscriptions.size >= WATCHED_KEYS || key.status !== 'ACTIVE') return;
      state.keys.set(key.id, key);
      if (!can('keys:read')) return;
      state.keySubscriptions.set(key.id, api.subscribe<{ rateLimitChanged: RateLimitState }>(RATE_LIMIT_CHANGED, { apiKeyId: key.id }, ({ rateLimitChanged: next }) => {
        const windows = state.windows.get(next.apiKeyId) ?? new Map<string, RateLimitState>();
        const previous = windows.get(next.name);
        windows.set(next.name, next);
        state.windows.set(next.apiKeyId, windows);
        if (previous && (previous.remaining !== next.remaining || previous.resetAt !== next.resetAt)) {
          push('rate-limit', `${keyName(next.apiKeyId)} — window ${next.name}: ${formatCount(next.remaining)} of ${formatCount(next.limit)} left`);
          // Without a REQUESTS quota, each key's first window tells how many requests went by.
          const first = windows.keys().next().value;
          if (!usesQuotaForRate() && first === next.name) state.rate.add(windowDelta(previous, next), Date.now());
        }
        changed();
      }, refused));
    };
    const unwatchKey = (id: string) => {
      state.keySubscriptions.get(id)?.unsubscribe();
      state.keySubscriptions.delete(id);
      state.keys.delete(id);
      state.windows.delete(id);
    };

    const subscriptions: Subscription[] = [];
    if (can('usage:read')) {
      subscriptions.push(api.subscribe<{ quotaChanged: Quota }>(QUOTA_CHANGED, { organizationId: organization.id }, ({ quotaChanged: next }) => {
        const previous = state.quotas.get(quotaId(next));
        state.quotas.set(quotaId(next), next);
        if (previous && (previous.used !== next.used || previous.resetsAt !== next.resetsAt)) {
          push('quota', `Quota ${next.meter} / ${next.period}: ${formatMeter(next.meter, next.used)} of ${formatMeter(next.meter, next.limit)} used (${formatPercent(next.percentUsed)})`);
          state.rate.add(quotaDelta(previous, next), Date.now());
        }
        changed();
      }, refused));
    }
    if (can('keys:read')) {
      subscriptions.push(api.subscribe<{ apiKeyChanged: { type: string; at: string; apiKey: ApiKey } }>(API_KEY_CHANGED, { organizationId: organization.id }, ({ apiKeyChanged: event }) => {
        push('key', `Key ${event.apiKey.name} (${event.apiKey.hint}): ${event.type}`);
        if (event.apiKey.status === 'ACTIVE') {
          if (state.keys.has(event.apiKey.id)) state.keys.set(event.apiKey.id, event.apiKey);
          else watchKey(event.apiKey);
        } else {
          unwatchKey(event.apiKey.id);
        }
        changed();
      }, refused));
      api.request<{ apiKeys: Page<ApiKey> }>(API_KEYS, { filter: { organizationId: organization.id, status: 'ACTIVE' }, first: WATCHED_KEYS }).then(({ apiKeys }) => {
        if (!active) return;
        state.moreKeys = apiKeys.totalCount > apiKeys.nodes.length;
        for (const key of apiKeys.nodes) watchKey(key);
        changed();
      }, (error: unknown) => {
        if (error instanceof ApiError) refused(error);
      });
    }
    if (can('sessions:read')) {
      subscriptions.push(api.subscribe<{ sessionChanged: Session }>(SESSION_CHANGED, { organizationId: organization.id }, ({ sessionChanged: session }) => {
        push('session', `Session ${session.id} ${session.status}: ${formatCount(session.tokensUsed)} of ${formatCount(session.tokenLimit)} tokens used`);
        changed();
      }, refused));
    }
    // The requests-per-minute line moves on with the clock, events or not.
    const clock = window.setInterval(changed, 5_000);
    const stopFollowing = api.onStatus((status) => {
      state.connected = status === 'live';
      changed();
    });
    changed();
    return () => {
      active = false;
      window.clearInterval(clock);
      stopFollowing();
      for (const subscription of subscriptions) subscription.unsubscribe();
      for (const subscription of state.keySubscriptions.values()) subscription.unsubscribe();
    };
    // The organization's id is what matters; its quotas seed the state once.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [organization.id, api]);

  const state = store.current;
  if (!state) return { quotas: organization.quotas, keys: [], windows: new Map(), feed: [], rate: new RequestRate().series(Date.now()), moreKeys: false, problems: [], connected: false };
  return {
    quotas: [...state.quotas.values()],
    keys: [...state.keys.values()],
    windows: new Map([...state.windows].map(([id, windows]) => [id, [...windows.values()]])),
    feed: state.feed,
    rate: state.rate.series(Date.now()),
    moreKeys: state.moreKeys,
    problems: state.problems,
    connected: state.connected,
  };
}
