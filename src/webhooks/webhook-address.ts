import { BlockList, isIP } from 'node:net';
import { BadUserInputError } from '../errors';
import { refuseSecret } from '../validation';

/** Longest endpoint URL accepted. */
export const MAX_WEBHOOK_URL_LENGTH = 2000;

/**
 * Addresses no delivery goes to unless WEBHOOK_ALLOW_PRIVATE=true (server-side request forgery:
 * a customer must not make keyward POST into the network it runs in). Node's BlockList also
 * matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4 ranges. Prefixes that embed an
 * IPv4 address (NAT64, 6to4, Teredo) are refused whole.
 */
const PRIVATE_RANGES: ReadonlyArray<[network: string, prefix: number, type: 'ipv4' | 'ipv6', what: string]> = [
  ['0.0.0.0', 8, 'ipv4', '"this network"'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'ipv4', 'documentation'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['198.51.100.0', 24, 'ipv4', 'documentation'],
  ['203.0.113.0', 24, 'ipv4', 'documentation'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['64:ff9b::', 96, 'ipv6', 'NAT64'],
  ['64:ff9b:1::', 48, 'ipv6', 'NAT64'],
  ['100::', 64, 'ipv6', 'discard'],
  ['2001::', 32, 'ipv6', 'Teredo'],
  ['2001:db8::', 32, 'ipv6', 'documentation'],
  ['2002::', 16, 'ipv6', '6to4'],
  ['fc00::', 7, 'ipv6', 'unique local (private)'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const BLOCKS = PRIVATE_RANGES.map(([network, prefix, type, what]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, type);
  return { list, what };
});

/**
 * Why `address` (an IP address, without brackets) is not a public unicast address — "loopback",
 * "private", … — or null when it is one. Anything that is not an IP address is refused too.
 */
export function privateAddressKind(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'unparseable';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  return BLOCKS.find((block) => block.list.check(address, type))?.what ?? null;
}

/**
 * The refusal of an address, for errors and a delivery's lastError: names the address (and the
 * host name it came from), never the URL.
 */
export function privateAddressProblem(address: string, kind: string, hostname?: string): string {
  const which = hostname ? `${hostname} resolves to ${address}, a ${kind} address` : `${address} is a ${kind} address`;
  return `${which}; deliveries to private, loopback and link-local addresses need WEBHOOK_ALLOW_PRIVATE=true`;
}

/**
 * An endpoint URL as given on create / update: absolute http(s), at most 2,000 characters, no
 * credentials (a URL is listed; the signature is what authenticates a delivery), nothing shaped
 * like a secret, and — unless private addresses are allowed — no private IP address as its
 * host. A host name is checked where it matters, on the address it resolves to, at every attempt
 * (webhook-sender.ts). Returns the URL in its normalized form.
 */
export function validateWebhookUrl(field: string, value: unknown, allowPrivate: boolean): string {
  if (typeof value !== 'string') throw new BadUserInputError(field, 'must be a string');
  const text = value.trim();
  if (text.length === 0) throw new BadUserInputError(field, 'must not be empty');
  if (text.length > MAX_WEBHOOK_URL_LENGTH) {
    throw new BadUserInputError(field, `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters (got ${text.length})`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BadUserInputError(field, 'is not an absolute URL (e.g. https://api.example.com/keyward-events)');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new BadUserInputError(field, `must be an http or https URL (got ${url.protocol.replace(/:$/, '')})`);
  }
  if (url.username || url.password) {
    throw new BadUserInputError(field, 'must not contain credentials (user:password@); deliveries are authenticated by their signature');
  }
  refuseSecret(field, text);
  if (url.href.length > MAX_WEBHOOK_URL_LENGTH) {
    throw new BadUserInputError(field, `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters once normalized (got ${url.href.length})`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!allowPrivate && isIP(host) !== 0) {
    const kind = privateAddressKind(host);
    if (kind) throw new BadUserInputError(field, privateAddressProblem(host, kind));
  }
  return url.href;
}
