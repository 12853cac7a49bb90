import { ApolloServerPlugin } from '@apollo/server';
import { DocumentNode, FragmentDefinitionNode, GraphQLField, GraphQLSchema, Kind, OperationDefinitionNode, SelectionSetNode } from 'graphql';
import { getDirective } from '@graphql-tools/utils';
import { callerFrom, Context } from '../context';
import { ErrorCode, KeywardError } from '../errors';
import { VerifyCode } from '../auth/verify-code';
import { REFUSAL_ERROR } from '../auth/verify-code';
import { publicDirective, requireScopeDirective } from '../auth/directives';
import { secondsUntil, tightest } from '../rate-limits/rate-limiter';
import { authFailureBlock, countAuthFailure } from '../auth/auth-failures';

/** Root fields an operation selects (through fragments), without introspection fields. */
export function rootFields(operation: OperationDefinitionNode, document: DocumentNode): string[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const names = new Set<string>();
  const visit = (selectionSet: SelectionSetNode, seen: Set<string>) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        if (!selection.name.value.startsWith('__')) names.add(selection.name.value);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        visit(selection.selectionSet, seen);
      } else {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) visit(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return [...names];
}

interface FieldRule {
  isPublic: boolean;
  anyOf: readonly string[] | null;
}

// The directives of a field never change: read them once per field, not once per request.
const ruleOf = new WeakMap<GraphQLField<unknown, unknown>, FieldRule>();

function rulesOf(schema: GraphQLSchema, operation: OperationDefinitionNode, fields: string[]): FieldRule[] {
  const root = schema.getRootType(operation.operation);
  if (!root) return [];
  const rules: FieldRule[] = [];
  for (const name of fields) {
    const field = root.getFields()[name];
    if (!field) continue;
    let rule = ruleOf.get(field);
    if (!rule) {
      const isPublic = Boolean(getDirective(schema, field, publicDirective.name)?.[0]);
      const anyOf = isPublic ? null : ((getDirective(schema, field, requireScopeDirective.name)?.[0]?.anyOf as string[] | undefined) ?? null);
      rule = { isPublic, anyOf };
      ruleOf.set(field, rule);
    }
    rules.push(rule);
  }
  return rules;
}

/** DESIGN.md: public fields take 30 requests per minute (any 60 s) per client IP. */
export const PUBLIC_RATE_LIMIT = { name: 'public', limit: 30, windowSeconds: 60 } as const;

/** Anonymous calls of @public fields: limited per client IP, refused with 429 RATE_LIMITED. */
async function limitPublicCall(context: Context, operation: string): Promise<void> {
  const { app } = context;
  const now = app.clock.now();
  const result = await app.rateLimiter.consume(`ip:${context.ip ?? 'unknown'}`, [PUBLIC_RATE_LIMIT], 1, now);
  // A cost of 1 always fits a limit of 30 eventually: retryAt is set on every refusal.
  const retryAfterSeconds = result.allowed ? null : secondsUntil(result.retryAt!, now);
  context.verification = {
    valid: result.allowed, code: result.allowed ? VerifyCode.VALID : VerifyCode.RATE_LIMITED, reason: '', key: null, organization: null,
    rateLimits: result.states, quotas: [], session: null, retryAfterSeconds,
  };
  if (!result.allowed) {
    throw new KeywardError(ErrorCode.RATE_LIMITED, `Public fields take ${PUBLIC_RATE_LIMIT.limit} requests per minute per client address (operation ${operation}); retry in ${retryAfterSeconds} s`);
  }
}

/**
 * Every key-authenticated operation goes through the verification pipeline once (cost 1),
 * after parsing and validation so its scopes are known and a refusal consumes nothing.
 * Responses carry X-RateLimit-* of the tightest window (Retry-After on 429), and each
 * verified operation becomes a usage event with its status and latency.
 */
export const meteringPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    const started = performance.now();
    let operationLabel = 'anonymous';
    return {
      async didResolveOperation({ contextValue, operation, document, schema }) {
        if (!operation) return;
        const fields = rootFields(operation, document);
        if (operation.operation === 'subscription') {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Subscriptions run over WebSocket (graphql-ws, protocol graphql-transport-ws) on this same path, not over HTTP');
        }
        // One write per request: a failed later mutation would null the whole response and hide
        // the earlier one's effect. Aliased verifyKey calls are the exception (they each count).
        const writes = operation.operation === 'mutation' ? operation.selectionSet.selections.length : 0;
        if (writes > 1 && !(fields.length === 1 && fields[0] === 'verifyKey')) {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Send one mutation per request (only verifyKey may be repeated with aliases)');
        }
        operationLabel = operation.name?.value ?? (fields.join('+') || operation.operation);
        const rules = rulesOf(schema, operation, fields);
        if (contextValue.secret === null) {
          if (rules.some((rule) => rule.isPublic)) await limitPublicCall(contextValue, operationLabel);
          return;
        }
        // An address with too many failed authentications gets no key checked until its window ends.
        const blocked = await authFailureBlock(contextValue.app, contextValue.ip);
        if (blocked) {
          contextValue.verification = {
            valid: false, code: VerifyCode.RATE_LIMITED, reason: blocked.message, key: null, organization: null,
            rateLimits: [], quotas: [], session: null, retryAfterSeconds: blocked.retryAfterSeconds,
          };
          throw new KeywardError(ErrorCode.RATE_LIMITED, blocked.message);
        }
        const outcome = await contextValue.app.verifier.verify({
          secret: contextValue.secret,
          ip: contextValue.ip,
          scopeRequirements: rules.flatMap((rule) => (rule.anyOf ? [rule.anyOf] : [])),
          cost: 1,
          operation: operationLabel,
        });
        contextValue.verification = outcome;
        if (!outcome.valid) {
          await countAuthFailure(contextValue.app, contextValue.ip, outcome.code);
          throw new KeywardError(REFUSAL_ERROR[outcome.code as keyof typeof REFUSAL_ERROR], outcome.reason);
        }
        contextValue.caller = callerFrom(outcome, contextValue.ip);
      },
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
        if (outcome.valid && outcome.key) {
          const status = response.http.status ?? 200;
          contextValue.app.usageBuffer.record({
            organizationId: outcome.key.organizationId,
            apiKeyId: outcome.key.id,
            operation: operationLabel,
            statusCode: status,
            isError: status >= 400 || (errors?.length ?? 0) > 0,
            latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
          });
        }
      },
    };
  },
};
