import type { IncomingHttpHeaders } from 'node:http';
import { keyFromHeaders } from '@keyward/client/wire';
import { ErrorCode, KeywardError } from '../errors';

/**
 * The key presented with an HTTP request: `Authorization: Bearer <key>` or `X-API-Key: <key>`
 * (read exactly as the client package's middleware reads them). Null when neither header is
 * there; an Authorization header that is not a Bearer token is refused.
 */
export function presentedKey(headers: IncomingHttpHeaders): string | null {
  const presented = keyFromHeaders({ authorization: headers.authorization, apiKey: headers['x-api-key'] });
  if (presented.kind === 'not-bearer') throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'The Authorization header must be "Bearer <api key>"');
  return presented.kind === 'key' ? presented.key : null;
}
