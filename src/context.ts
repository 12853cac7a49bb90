import type { IncomingHttpHeaders } from 'node:http';
import { keyFromHeaders } from '@keyward/client/wire';
import { App } from './app';
import { Actor, actorForKey } from './auth/actor';
import type { VerificationOutcome } from './auth/key-verifier';
import { ApiKeyEntity } from './api-keys/api-key.entity';
import { OrganizationEntity } from './organizations/organization.entity';
import { ErrorCode, KeywardError } from './errors';
import type { Logger } from './logger';
import { requestIdFrom } from './request-log';

/** The authenticated key behind a request. */
export interface Caller {
  key: ApiKeyEntity;
  organization: OrganizationEntity;
  actor: Actor;
}

export interface Context {
  app: App;
  /** The key presented with the request, or null (anonymous: only @public fields). */
  secret: string | null;
  ip: string | null;
  /** The Host the client addressed (wallet challenges name it as their domain). */
  host: string | null;
  /** Set once the operation passed the verification pipeline (the metering plugin). */
  caller: Caller | null;
  /** The pipeline's outcome for this request, for rate-limit headers and usage. */
  verification: VerificationOutcome | null;
  /**
   * The HTTP request's id (X-Request-Id, accepted from the client when it looks safe, else
   * generated; echoed in the response), or the WebSocket connection's.
   */
  requestId: string;
  /** app.logger with `requestId` bound: log anything about this request with it. */
  logger: Logger;
}

/**
 * The key presented with a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * Returns null when neither header is there.
 */
export function presentedKey(headers: IncomingHttpHeaders): string | null {
  const presented = keyFromHeaders({ authorization: headers.authorization, apiKey: headers['x-api-key'] });
  if (presented.kind === 'not-bearer') throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'The Authorization header must be "Bearer <api key>"');
  return presented.kind === 'key' ? presented.key : null;
}

/**
 * A request's starting context. The key is only read here; the metering plugin runs it
 * through the verification pipeline once the operation is known (its scopes are part of
 * the check, and a refused request must consume nothing).
 */
export function buildContext(app: App, headers: IncomingHttpHeaders, ip: string | null, scope?: { requestId: string; logger: Logger }): Context {
  const requestId = scope?.requestId ?? requestIdFrom(headers);
  const logger = scope?.logger ?? app.logger.child({ requestId });
  return { app, secret: presentedKey(headers), ip, host: headers.host ?? null, caller: null, verification: null, requestId, logger };
}

export function callerFrom(outcome: VerificationOutcome, ip: string | null): Caller {
  if (!outcome.key || !outcome.organization) throw new Error('callerFrom needs a VALID outcome');
  return { key: outcome.key, organization: outcome.organization, actor: actorForKey(outcome.key, outcome.organization, ip) };
}

/** The acting key of an authenticated field (the directive guarantees there is one). */
export function actorOf(context: Context): Actor {
  if (!context.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'This field needs an API key');
  return context.caller.actor;
}
