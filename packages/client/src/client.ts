import { print } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { CloseCode, createClient, Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { KeywardClientError } from './client-error';
import * as ops from './generated/graphql';
import { ErrorCode } from './wire';

export interface KeywardClientOptions {
  /** GraphQL endpoint; default KEYWARD_URL or http://localhost:4000/graphql. */
  url?: string;
  /** The key to call with; default KEYWARD_API_KEY. */
  apiKey?: string;
  /** Retries after a network error or a 503 (other errors are never retried); default 3. */
  retries?: number;
  /** First retry delay (milliseconds), doubled each time with jitter; default 200. */
  retryDelayMs?: number;
  /** Per-request timeout (milliseconds); default 10,000. */
  timeoutMs?: number;
  /** Extra headers on every HTTP request (e.g. X-Forwarded-For behind your own proxy). */
  headers?: Record<string, string>;
}

const printed = new WeakMap<object, string>();
function source(document: TypedDocumentNode<unknown, unknown>): string {
  let text = printed.get(document);
  if (!text) printed.set(document, (text = print(document)));
  return text;
}

/** The error a subscription socket's close code stands for (keyward closes with 4401 and 4403 on purpose). */
function closeCodeError(code: number): string {
  if (code === CloseCode.Unauthorized) return ErrorCode.UNAUTHENTICATED;
  if (code === CloseCode.Forbidden) return ErrorCode.FORBIDDEN;
  return 'SOCKET_CLOSED';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Typed client for the keyward GraphQL API. Methods mirror the contract's operations and
 * return its types (generated from schema.graphql); failures throw KeywardClientError with the
 * server's code. Subscriptions (`subscribe…`) return async iterators over graphql-ws.
 */
export class KeywardClient {
  readonly url: string;
  private readonly key: string | undefined;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private ws: WsClient | null = null;

  constructor(options: KeywardClientOptions = {}) {
    this.url = options.url ?? process.env.KEYWARD_URL ?? 'http://localhost:4000/graphql';
    this.key = options.apiKey ?? process.env.KEYWARD_API_KEY ?? undefined;
    this.retries = options.retries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.headers = options.headers ?? {};
  }

  /** Runs any typed document; the methods below are shorthands over it. */
  async request<TResult, TVariables>(document: TypedDocumentNode<TResult, TVariables>, variables?: TVariables): Promise<TResult> {
    const response = await this.send(this.url, { query: source(document as TypedDocumentNode<unknown, unknown>), variables: variables ?? {} });
    let payload: { data?: TResult | null; errors?: Array<{ message: string; path?: Array<string | number>; extensions?: { code?: string } }> };
    try {
      payload = (await response.json()) as typeof payload;
    } catch {
      throw new KeywardClientError(response.status === 503 ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL_SERVER_ERROR, `keyward answered HTTP ${response.status} without a JSON body`, { status: response.status });
    }
    const error = payload.errors?.[0];
    if (error) throw new KeywardClientError(error.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR, error.message, { status: response.status, path: error.path });
    if (!payload.data) throw new KeywardClientError(ErrorCode.INTERNAL_SERVER_ERROR, `keyward answered HTTP ${response.status} without data`, { status: response.status });
    return payload.data;
  }

  /**
   * A route of keyward's plain-HTTP data plane (`v1/verify`, `v1/usage`), next to the GraphQL
   * endpoint: the same operation and JSON as its GraphQL mutation, without parsing a query.
   */
  private async dataPlane<TResult>(route: string, body: unknown): Promise<TResult> {
    const response = await this.send(new URL(route, this.url.replace(/\/+$/, '')).toString(), body);
    let payload: TResult & { error?: { code?: string; message?: string } };
    try {
      payload = (await response.json()) as typeof payload;
    } catch {
      throw new KeywardClientError(response.status === 503 ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL_SERVER_ERROR, `keyward answered HTTP ${response.status} without a JSON body`, { status: response.status });
    }
    if (response.status !== 200 || payload.error) {
      throw new KeywardClientError(payload.error?.code ?? ErrorCode.INTERNAL_SERVER_ERROR, payload.error?.message ?? `keyward answered HTTP ${response.status}`, { status: response.status });
    }
    return payload;
  }

  /** POSTs JSON, retrying after a network error or a 503 (with backoff); any other answer is returned. */
  private async send(url: string, body: unknown): Promise<Response> {
    const text = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            ...(this.key && { authorization: `Bearer ${this.key}` }),
            ...this.headers,
          },
          body: text,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        if (attempt < this.retries) {
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new KeywardClientError('NETWORK_ERROR', `keyward is unreachable at ${url}: ${(error as Error).message}`);
      }
      if (response.status === 503 && attempt < this.retries) {
        await response.body?.cancel();
        await sleep(this.backoff(attempt));
        continue;
      }
      return response;
    }
  }

  private backoff(attempt: number): number {
    const base = this.retryDelayMs * 2 ** attempt;
    return base / 2 + Math.random() * base;
  }

  // Caller
  async viewer() { return (await this.request(ops.ViewerDocument)).viewer; }

  // Organizations
  async organization(id?: string) { return (await this.request(ops.OrganizationDocument, { id })).organization; }
  async organizations(variables: ops.OrganizationsQueryVariables = {}) { return (await this.request(ops.OrganizationsDocument, variables)).organizations; }
  async createOrganization(input: ops.CreateOrganizationInput) { return (await this.request(ops.CreateOrganizationDocument, { input })).createOrganization; }
  async updateOrganization(id: string, input: ops.UpdateOrganizationInput) { return (await this.request(ops.UpdateOrganizationDocument, { id, input })).updateOrganization; }
  async setOrganizationStatus(id: string, status: ops.OrganizationStatus) { return (await this.request(ops.SetOrganizationStatusDocument, { id, status })).setOrganizationStatus; }

  // Keys
  async apiKey(id: string) { return (await this.request(ops.ApiKeyDocument, { id })).apiKey; }
  async apiKeys(variables: ops.ApiKeysQueryVariables = {}) { return (await this.request(ops.ApiKeysDocument, variables)).apiKeys; }
  async createApiKey(input: ops.CreateApiKeyInput) { return (await this.request(ops.CreateApiKeyDocument, { input })).createApiKey; }
  async updateApiKey(id: string, input: ops.UpdateApiKeyInput) { return (await this.request(ops.UpdateApiKeyDocument, { id, input })).updateApiKey; }
  async setApiKeyEnabled(id: string, enabled: boolean) { return (await this.request(ops.SetApiKeyEnabledDocument, { id, enabled })).setApiKeyEnabled; }
  async revokeApiKey(id: string, reason: string) { return (await this.request(ops.RevokeApiKeyDocument, { id, reason })).revokeApiKey; }
  async rotateApiKey(id: string, gracePeriodSeconds = 0) { return (await this.request(ops.RotateApiKeyDocument, { id, gracePeriodSeconds })).rotateApiKey; }
  async deleteApiKey(id: string) { return (await this.request(ops.DeleteApiKeyDocument, { id })).deleteApiKey; }

  // Verification, usage, limits: on the plain-HTTP data plane (POST /v1/verify, /v1/usage), the
  // same answers as the verifyKey / recordUsage mutations at a fraction of the cost.
  async verifyKey(input: ops.VerifyKeyInput) { return this.dataPlane<ops.VerifyKeyMutation['verifyKey']>('v1/verify', input); }
  async recordUsage(input: ops.RecordUsageInput) { return this.dataPlane<ops.RecordUsageMutation['recordUsage']>('v1/usage', input); }
  // Reserve-then-settle (POST /v1/reserve, /v1/settle): hold an estimate before calling a model,
  // then replace it with what the provider reported; release it if the call never happened.
  async reserveUsage(input: ops.ReserveUsageInput) { return this.dataPlane<ops.ReserveUsageMutation['reserveUsage']>('v1/reserve', input); }
  async settleUsage(input: ops.SettleUsageInput) { return this.dataPlane<ops.SettleUsageMutation['settleUsage']>('v1/settle', input); }
  async releaseUsage(reservationId: string) { return (await this.request(ops.ReleaseUsageDocument, { reservationId })).releaseUsage; }
  async usage(range?: ops.UsageRange) { return (await this.request(ops.UsageDocument, { range })).usage; }
  async quotas(variables: ops.QuotasQueryVariables = {}) { return (await this.request(ops.QuotasDocument, variables)).quotas; }
  async rateLimitStatus(apiKeyId: string) { return (await this.request(ops.RateLimitStatusDocument, { apiKeyId })).rateLimitStatus; }
  async rateLimitLog(apiKeyId: string, first?: number) { return (await this.request(ops.RateLimitLogDocument, { apiKeyId, first })).rateLimitLog; }
  async resetRateLimit(apiKeyId: string, name?: string) { return (await this.request(ops.ResetRateLimitDocument, { apiKeyId, name })).resetRateLimit; }

  // Sessions
  async session(id: string) { return (await this.request(ops.SessionDocument, { id })).session; }
  async sessions(variables: ops.SessionsQueryVariables = {}) { return (await this.request(ops.SessionsDocument, variables)).sessions; }
  async currentSession() { return (await this.request(ops.CurrentSessionDocument)).currentSession; }
  async sessionBalance(organizationId?: string) { return (await this.request(ops.SessionBalanceDocument, { organizationId })).sessionBalance; }
  async createSession(input: ops.CreateSessionInput = {}) { return (await this.request(ops.CreateSessionDocument, { input })).createSession; }
  async terminateSession(id: string) { return (await this.request(ops.TerminateSessionDocument, { id })).terminateSession; }
  async addSessionCredits(input: ops.AddSessionCreditsInput) { return (await this.request(ops.AddSessionCreditsDocument, { input })).addSessionCredits; }

  // Audit and wallets
  async auditLog(variables: ops.AuditLogQueryVariables = {}) { return (await this.request(ops.AuditLogDocument, variables)).auditLog; }
  async walletChallenge(address: string) { return (await this.request(ops.WalletChallengeDocument, { address })).walletChallenge; }
  async createApiKeyWithWallet(input: ops.CreateApiKeyWithWalletInput) { return (await this.request(ops.CreateApiKeyWithWalletDocument, { input })).createApiKeyWithWallet; }

  // Subscriptions (graphql-ws on the same URL)
  subscribeQuotaChanged(variables: ops.QuotaChangedSubscriptionVariables = {}) { return this.subscribe(ops.QuotaChangedDocument, variables, (data) => data.quotaChanged); }
  subscribeRateLimitChanged(apiKeyId: string) { return this.subscribe(ops.RateLimitChangedDocument, { apiKeyId }, (data) => data.rateLimitChanged); }
  subscribeSessionChanged(variables: ops.SessionChangedSubscriptionVariables = {}) { return this.subscribe(ops.SessionChangedDocument, variables, (data) => data.sessionChanged); }
  subscribeApiKeyChanged(variables: ops.ApiKeyChangedSubscriptionVariables = {}) { return this.subscribe(ops.ApiKeyChangedDocument, variables, (data) => data.apiKeyChanged); }

  /** Closes the subscription socket, if one was opened. */
  async close(): Promise<void> {
    const ws = this.ws;
    this.ws = null;
    if (ws) await ws.dispose();
  }

  private socket(): WsClient {
    this.ws ??= createClient({
      url: this.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: this.key ? { authorization: `Bearer ${this.key}` } : {},
      retryAttempts: 0,
      lazy: true,
    });
    return this.ws;
  }

  /** An async iterator of one field's events; `return()` (or `break`) ends the subscription. */
  private subscribe<TResult, TVariables, TEvent>(
    document: TypedDocumentNode<TResult, TVariables>,
    variables: TVariables,
    pick: (data: TResult) => TEvent,
  ): AsyncIterableIterator<TEvent> {
    const inner = this.socket().iterate({ query: source(document as TypedDocumentNode<unknown, unknown>), variables: variables as Record<string, unknown> });
    const fail = (error: unknown): never => {
      const close = error as { code?: number; reason?: string };
      if (typeof close?.code === 'number') throw new KeywardClientError(closeCodeError(close.code), `keyward closed the subscription socket (${close.code}${close.reason ? `: ${close.reason}` : ''})`);
      const list = Array.isArray(error) ? error as Array<{ message: string; extensions?: { code?: string } }> : null;
      if (list?.[0]) throw new KeywardClientError(list[0].extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR, list[0].message);
      throw error;
    };
    const iterator: AsyncIterableIterator<TEvent> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        const result = await inner.next().catch(fail);
        if (result.done) return { done: true, value: undefined };
        const { data, errors } = result.value as { data?: TResult; errors?: Array<{ message: string; extensions?: { code?: string } }> };
        if (errors?.[0] || !data) fail(errors ?? [{ message: 'subscription event without data' }]);
        return { done: false, value: pick(data!) };
      },
      return: async () => {
        await inner.return?.(undefined);
        return { done: true, value: undefined };
      },
    };
    return iterator;
  }
}
