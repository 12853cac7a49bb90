import type { ApolloServerPlugin } from '@apollo/server';
import type { App } from '../app';
import type { Context } from '../context';
import type { VerificationOutcome } from '../auth/key-verifier';
import { ErrorCode, HTTP_STATUS, tightest } from '@keyward/client/wire';

/**
 * X-RateLimit-* of the tightest window (rounded up: from that second on, the next unit is free),
 * and Retry-After when a refusal knows when to come back.
 */
export function meteringHeaders(outcome: VerificationOutcome): Array<[name: string, value: string]> {
  const headers: Array<[string, string]> = [];
  const window = tightest(outcome.rateLimits);
  if (window) {
    headers.push(['x-ratelimit-limit', String(window.limit)], ['x-ratelimit-remaining', String(window.remaining)],
      ['x-ratelimit-reset', String(Math.ceil(window.resetAt.getTime() / 1000))]);
  }
  if (outcome.retryAfterSeconds !== null) headers.push(['retry-after', String(outcome.retryAfterSeconds)]);
  return headers;
}

/** The usage event of a call the pipeline admitted for its caller's key (none for a refusal). */
export function recordMeteredCall(app: App, outcome: VerificationOutcome, call: { operation: string; status: number; isError: boolean; startedAt: number }): void {
  if (!outcome.valid || !outcome.key) return;
  app.usageBuffer.record({
    organizationId: outcome.key.organizationId,
    apiKeyId: outcome.key.id,
    operation: call.operation,
    statusCode: call.status,
    isError: call.isError,
    latencyMs: Math.round((performance.now() - call.startedAt) * 1000) / 1000,
  });
}

/**
 * What a metered operation leaves behind: the metering headers on the response, and for every
 * operation the pipeline admitted a use of its key (requestCount, lastUsedAt) and one usage event,
 * with its HTTP status and latency — unless it was answered 503 UNAVAILABLE: the client retries
 * it, and the enforcement plugin has given back what it took. The plain-HTTP routes
 * (data-plane/data-plane.router.ts) use the same two functions (their pipeline touches the key).
 */
export const meteringPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    const startedAt = performance.now();
    return {
      async willSendResponse({ contextValue, response, errors }) {
        const outcome = contextValue.verification;
        if (!outcome) return;
        for (const [name, value] of meteringHeaders(outcome)) response.http.headers.set(name, value);
        const status = response.http.status ?? 200;
        if (status === HTTP_STATUS[ErrorCode.UNAVAILABLE]) return;
        if (outcome.valid && outcome.key) contextValue.app.usageBuffer.touchKey(outcome.key.id);
        recordMeteredCall(contextValue.app, outcome, {
          operation: contextValue.operationLabel ?? 'anonymous', status, isError: status >= 400 || (errors?.length ?? 0) > 0, startedAt,
        });
      },
    };
  },
};
