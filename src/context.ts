import type { IncomingHttpHeaders } from 'node:http';
import type { WebSocket } from 'ws';
import type { App } from './app';
import { Actor, actorForKey } from './auth/actor';
import { Authenticated, refusedOutcome, VerificationOutcome } from './auth/key-verifier';
import { authFailureBlock, countAuthFailure } from './auth/auth-failures';
import { REFUSAL_ERROR, VerifyCode } from './auth/verify-code';
import { ApiKeyEntity } from './api-keys/api-key.entity';
import { OrganizationEntity } from './organizations/organization.entity';
import { ErrorCode, KeywardError, storeUnavailableError } from './errors';
import { isStoreUnreachable } from './db/store-errors';
import type { Logger } from './logger';
import { presentedKey } from './auth/presented-key';
import { Loaders } from './loaders';

/** The authenticated key behind a request or WebSocket. */
export interface Caller {
  key: ApiKeyEntity;
  organization: OrganizationEntity;
  actor: Actor;
  /** Steps 1–5 passed; the consuming steps run once the operation is known. */
  authenticated: Authenticated;
}

/** What an HTTP request or WebSocket operation runs with. */
export interface Context {
  app: App;
  /** Client address (TRUST_PROXY applied). */
  ip: string | null;
  /** A key was presented (whether or not it authenticated). */
  keyPresented: boolean;
  /** Null: anonymous (only @public fields), or the presented key did not authenticate. */
  caller: Caller | null;
  /**
   * The presented key did not authenticate: the enforcement plugin refuses the operation with
   * this once it is parsed and validated (an operation over a GraphQL limit is refused as
   * such first, and logs name the operation either way).
   */
  refusal: AuthenticationRefusal | null;
  /** The pipeline's outcome for this operation, for rate-limit headers and usage. */
  verification: VerificationOutcome | null;
  /** How usage and logs name the operation: its name, or its root fields joined by "+". */
  operationLabel: string | null;
  /** What the operation would resolve (graphql-limits.ts `operationCost`), once the request rules passed it. */
  operationCost: number | null;
  /**
   * The HTTP request's id (X-Request-Id, accepted from the client when it looks safe, else
   * generated; echoed in the response), or the WebSocket connection's.
   */
  requestId: string;
  /** app.logger with `requestId` bound: log anything about this request with it. */
  logger: Logger;
  /** What field resolvers read from the database, batched and cached for this request only. */
  loaders: Loaders;
  /** A WebSocket subscription: its socket and the client's id for it (live events are written there). */
  subscription?: { socket: WebSocket; id: string };
}

/** Why a presented key did not authenticate: the outcome (for logs) and the error a client gets. */
export interface AuthenticationRefusal {
  outcome: VerificationOutcome;
  error: KeywardError;
}

/**
 * Authentication shared by HTTP requests and WebSocket connects: the failed-auth limit of the
 * client address, then pipeline steps 1–5 (nothing is consumed). A refusal that says the key
 * does not work counts against the address.
 */
export async function authenticateCaller(app: App, secret: string, ip: string | null): Promise<{ caller: Caller; refusal: null } | { caller: null; refusal: AuthenticationRefusal }> {
  const blocked = await authFailureBlock(app, ip);
  if (blocked) {
    const outcome = refusedOutcome(VerifyCode.RATE_LIMITED, blocked.message, { retryAfterSeconds: blocked.retryAfterSeconds });
    return { caller: null, refusal: { outcome, error: new KeywardError(ErrorCode.RATE_LIMITED, blocked.message, {}, { retryAfterSeconds: blocked.retryAfterSeconds }) } };
  }
  const { authenticated, refused } = await app.verifier.authenticate({ secret, ip });
  if (refused) {
    await countAuthFailure(app, ip, refused.code);
    return { caller: null, refusal: { outcome: refused, error: new KeywardError(REFUSAL_ERROR[refused.code as keyof typeof REFUSAL_ERROR], refused.reason) } };
  }
  const { key, organization } = authenticated.outcome;
  return { caller: { key, organization, actor: actorForKey(key, organization, ip), authenticated }, refusal: null };
}

/**
 * The context builder of every HTTP request: the presented key (`Authorization: Bearer` or
 * `X-API-Key`) is authenticated here (steps 1–5) and the caller — or the refusal — put in the
 * context. What the operation consumes (scopes, rate limits, quotas) is taken by the
 * enforcement plugin once the operation is known; it also answers a refusal, with its code
 * and status. `onContext` lets the access log see the context.
 */
export async function buildContext(
  app: App,
  request: { headers: IncomingHttpHeaders; ip: string | null },
  scope: { requestId: string; logger: Logger; onContext?: (context: Context) => void },
): Promise<Context> {
  const secret = presentedKey(request.headers);
  const context: Context = {
    app, ip: request.ip, keyPresented: secret !== null, caller: null, refusal: null, verification: null, operationLabel: null, operationCost: null,
    requestId: scope.requestId, logger: scope.logger, loaders: new Loaders(app, null),
  };
  scope.onContext?.(context);
  if (secret === null) return context;
  // A database (or Redis) that cannot be reached answers 503 with Retry-After, not Apollo's 500.
  const { caller, refusal } = await authenticateCaller(app, secret, request.ip).catch((error: unknown) => {
    if (isStoreUnreachable(error)) throw storeUnavailableError();
    throw error;
  });
  context.caller = caller;
  context.refusal = refusal;
  context.verification = refusal?.outcome ?? null;
  if (caller) context.loaders = new Loaders(app, caller.actor);
  return context;
}

/** The acting key of an authenticated field (the directive guarantees there is one). */
export function actorOf(context: Context): Actor {
  if (!context.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'This field needs an API key');
  return context.caller.actor;
}
