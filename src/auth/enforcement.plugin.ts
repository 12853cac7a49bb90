import type { ApolloServerPlugin } from '@apollo/server';
import type { Context } from '../context';
import { fieldRules } from './directives';
import { admittedOutcome, Authenticated, refusedOutcome } from './key-verifier';
import { REFUSAL_ERROR, VerifyCode } from './verify-code';
import { rootFields } from '../graphql-limits';
import { ErrorCode, HTTP_STATUS, KeywardError, storeUnavailableError } from '../errors';
import { isStoreUnreachable } from '../db/store-errors';
import { secondsUntil } from '../clock';
import type { ExecutionBudget } from './execution-budget';

/** Public fields take 30 requests per minute per client address. */
export const PUBLIC_RATE_LIMIT = { name: 'public', limit: 30, windowSeconds: 60 } as const;

/** Anonymous calls of @public fields: limited per client address, refused with 429 RATE_LIMITED. */
async function limitPublicCall(context: Context, operation: string): Promise<void> {
  const { app } = context;
  const now = app.clock.now();
  const result = await app.rateLimiter.consume(`ip:${context.ip ?? 'unknown'}`, [PUBLIC_RATE_LIMIT], 1, now);
  if (result.allowed) {
    context.verification = admittedOutcome({ rateLimits: result.states });
    return;
  }
  // A cost of 1 always fits a limit of 30 eventually: retryAt is set on every refusal.
  const retryAfterSeconds = secondsUntil(result.retryAt!, now);
  const reason = `Public fields take ${PUBLIC_RATE_LIMIT.limit} requests per minute per client address (operation ${operation}); retry in ${retryAfterSeconds} s`;
  context.verification = refusedOutcome(VerifyCode.RATE_LIMITED, reason, { rateLimits: result.states, retryAfterSeconds });
  throw new KeywardError(ErrorCode.RATE_LIMITED, reason);
}

/** What each GraphQL operation takes from the key's rate limits and REQUESTS quotas. */
const OPERATION_COST = 1;

/** A key whose execution budget is taken is told to come back in this many seconds. */
const BUSY_RETRY_AFTER_SECONDS = 1;

/**
 * Answers a key that did not authenticate (the context builder found out) with its refusal, then,
 * for an authenticated caller once the operation is known: takes the operation's cost from the
 * key's execution budget (MAX_CONCURRENT_COST_PER_KEY; no room → 429 RATE_LIMITED; given back when
 * the response is sent, however the operation ended) and runs the consuming steps of the pipeline — the scopes of every root field
 * (@requireScope), then rate limits, quotas and session, cost 1 per operation. Anonymous
 * operations of @public fields take the per-address public limit. Runs after the request rules
 * (graphql-limits.ts), which name the operation only when it passed them: an operation they
 * refuse is never counted.
 */
export const enforcementPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    let held: { budget: ExecutionBudget; subject: string; units: number } | null = null;
    let admitted: { authenticated: Authenticated; takenAt: Date } | null = null;
    return {
      async didResolveOperation({ contextValue, operation, document, schema }) {
        const label = contextValue.operationLabel;
        if (!operation || label === null) return;
        if (contextValue.refusal) throw contextValue.refusal.error;
        const rules = fieldRules(schema, operation, rootFields(operation, document));
        const { caller } = contextValue;
        if (!caller) {
          if (rules.some((rule) => rule.isPublic)) await limitPublicCall(contextValue, label);
          return;
        }
        const budget = contextValue.app.executionBudget;
        const subject = caller.key.lineageId ?? caller.key.id;
        const units = Math.max(1, contextValue.operationCost ?? 1);
        if (!budget.take(subject, units)) {
          const reason = `This API key's operations executing on this instance would cost more than ${budget.perKey} together with this one (cost ${units}; MAX_CONCURRENT_COST_PER_KEY); send it when one of them has answered`;
          contextValue.verification = refusedOutcome(VerifyCode.RATE_LIMITED, reason, { key: caller.key, organization: caller.organization, retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS });
          throw new KeywardError(ErrorCode.RATE_LIMITED, reason, {}, { retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS });
        }
        held = { budget, subject, units };
        const takenAt = contextValue.app.clock.now();
        const outcome = await contextValue.app.verifier.consume(caller.authenticated, {
          scopeRequirements: rules.flatMap((rule) => (rule.anyOf ? [rule.anyOf] : [])),
          cost: OPERATION_COST,
          operation: label,
          recordsLater: true,
        }).catch((error: unknown) => {
          // The pipeline gave back what it took before throwing: 503 with Retry-After.
          if (isStoreUnreachable(error)) throw storeUnavailableError();
          throw error;
        });
        contextValue.verification = outcome;
        if (!outcome.valid) throw new KeywardError(REFUSAL_ERROR[outcome.code as keyof typeof REFUSAL_ERROR], outcome.reason);
        admitted = { authenticated: caller.authenticated, takenAt };
      },
      // Apollo sends every response through here, errors included (the status plugin before
      // this one has set the status); a client that hung up does not end its operation, so
      // neither does it give the units back before this.
      async willSendResponse({ contextValue, response }) {
        held?.budget.giveBack(held.subject, held.units);
        held = null;
        // Answered "retry" (a backing store is away): the operation leaves no charge.
        if (admitted && response.http.status === HTTP_STATUS[ErrorCode.UNAVAILABLE]) {
          await contextValue.app.verifier.giveBack(admitted.authenticated, OPERATION_COST, admitted.takenAt);
        }
        admitted = null;
      },
    };
  },
};
