import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode, KeywardError } from '../errors';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The key presented with an HTTP request: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * Null when neither header is there; a malformed Authorization header is refused.
 */
export function presentedKey(headers: IncomingHttpHeaders): string | null {
  const authorization = headers.authorization;
  if (authorization !== undefined && authorization !== '') {
    const match = BEARER.exec(authorization);
    if (!match) throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'The Authorization header must be "Bearer <api key>"');
    return match[1];
  }
  const apiKey = headers['x-api-key'];
  const value = Array.isArray(apiKey) ? apiKey[0] : apiKey;
  return value && value.trim() !== '' ? value.trim() : null;
}

/** The key of a WebSocket: connectionParams `{ authorization: "Bearer kw_…" }` or `{ apiKey: "kw_…" }`. */
export function keyFromConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | null {
  if (!params) return null;
  const authorization = params.authorization ?? params.Authorization;
  if (typeof authorization === 'string') return BEARER.exec(authorization)?.[1] ?? null;
  const apiKey = params.apiKey ?? params['x-api-key'];
  return typeof apiKey === 'string' && apiKey.trim() !== '' ? apiKey.trim() : null;
}
