import type { ApolloServerPlugin } from '@apollo/server';
import type { Context } from '../context';
import { ErrorCode, HTTP_STATUS, tightest } from '@keyward/client/wire';

/**
 * What a metered operation leaves behind: X-RateLimit-* of the tightest window (Retry-After on a
 * refusal that knows when to come back) on the response, and for every operation the pipeline
 * admitted a use of its key (requestCount, lastUsedAt) and one usage event, with its HTTP status
 * and latency — unless it was answered 503 UNAVAILABLE: the client retries it, and the
 * enforcement plugin has given back what it took.
 */
export const meteringPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    const started = performance.now();
    return {
      async willSendResponse({ contextValue, response, errors }) {
        const outcome = contextValue.verification;
        if (!outcome) return;
        const window = tightest(outcome.rateLimits);
        if (window) {
          response.http.headers.set('x-ratelimit-limit', String(window.limit));
          response.http.headers.set('x-ratelimit-remaining', String(window.remaining));
          // Rounded up: from this second on, the next unit is free.
          response.http.headers.set('x-ratelimit-reset', String(Math.ceil(window.resetAt.getTime() / 1000)));
        }
        if (outcome.retryAfterSeconds !== null) response.http.headers.set('retry-after', String(outcome.retryAfterSeconds));
        if (!outcome.valid || !outcome.key) return;
        const status = response.http.status ?? 200;
        if (status === HTTP_STATUS[ErrorCode.UNAVAILABLE]) return;
        contextValue.app.usageBuffer.touchKey(outcome.key.id);
        contextValue.app.usageBuffer.record({
          organizationId: outcome.key.organizationId,
          apiKeyId: outcome.key.id,
          operation: contextValue.operationLabel ?? 'anonymous',
          statusCode: status,
          isError: status >= 400 || (errors?.length ?? 0) > 0,
          latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
        });
      },
    };
  },
};
