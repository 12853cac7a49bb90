import type { IncomingHttpHeaders } from 'node:http';
import { App } from './app';
import { Actor, actorForKey } from './auth/actor';
import { REFUSAL_ERROR } from './auth/verify-code';
import { ApiKeyEntity } from './api-keys/api-key.entity';
import { OrganizationEntity } from './organizations/organization.entity';
import { ErrorCode, KeywardError } from './errors';

/** The authenticated key behind a request. */
export interface Caller {
  key: ApiKeyEntity;
  organization: OrganizationEntity;
  actor: Actor;
}

export interface Context {
  app: App;
  /** Null for anonymous requests; only @public fields accept those. */
  caller: Caller | null;
  ip: string | null;
}

/**
 * The key presented with a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * Returns null when neither header is there.
 */
export function presentedKey(headers: IncomingHttpHeaders): string | null {
  const authorization = headers.authorization;
  if (authorization !== undefined && authorization !== '') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'The Authorization header must be "Bearer <api key>"');
    return match[1];
  }
  const apiKey = headers['x-api-key'];
  const value = Array.isArray(apiKey) ? apiKey[0] : apiKey;
  return value && value.trim() !== '' ? value.trim() : null;
}

/**
 * Builds a request's context: runs the key through the verification pipeline (format,
 * lookup, status, organization, IP allowlist) and refuses the whole request when a key
 * was presented and failed. Scope checks happen per field (@requireScope).
 */
export async function buildContext(app: App, headers: IncomingHttpHeaders, ip: string | null): Promise<Context> {
  const secret = presentedKey(headers);
  if (secret === null) return { app, caller: null, ip };
  const outcome = await app.verifier.verify({ secret, ip });
  if (!outcome.valid) throw new KeywardError(REFUSAL_ERROR[outcome.code], outcome.reason);
  return {
    app,
    caller: { key: outcome.key, organization: outcome.organization, actor: actorForKey(outcome.key, outcome.organization, ip) },
    ip,
  };
}

/** The acting key of an authenticated field (the directive guarantees there is one). */
export function actorOf(context: Context): Actor {
  if (!context.caller) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'This field needs an API key');
  return context.caller.actor;
}
