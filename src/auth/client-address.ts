import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';
import { clientAddress } from './ip-allowlist';

/** Which hops in front of keyward are trusted to append X-Forwarded-For (TRUST_PROXY). */
export type TrustProxy = boolean | number | string[];

export type ClientAddressOf = (request: IncomingMessage) => string | null;

/**
 * Compiles TRUST_PROXY exactly as Express does for `req.ip` (proxy-addr; a number trusts that
 * many hops, a list trusts those addresses/CIDRs, `true` trusts every hop). Throws on a bad entry.
 */
export function compileTrust(trust: TrustProxy): (address: string, hop: number) => boolean {
  if (trust === true) return () => true;
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return proxyaddr.compile(trust);
}

/**
 * The one client-address function for HTTP requests and WebSocket upgrades: the socket's peer,
 * or — through trusted proxies only — the nearest untrusted X-Forwarded-For entry. A client can
 * prepend anything to X-Forwarded-For; only what trusted hops appended counts.
 * The result is a normalized IP, or null when it is not one.
 */
export function clientAddressResolver(trust: TrustProxy): ClientAddressOf {
  const trusted = compileTrust(trust);
  return (request) => clientAddress(proxyaddr(request, trusted));
}
