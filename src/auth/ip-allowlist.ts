import { BlockList, isIP } from 'node:net';

/** `::ffff:10.0.0.1` (how Node reports IPv4 on a dual-stack socket) is `10.0.0.1`. */
export function normalizeIp(address: string): string {
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return mapped ? mapped[1] : trimmed;
}

/**
 * The client address to trust and record: a valid IP (normalized), else null — an
 * X-Forwarded-For header can carry anything when TRUST_PROXY is on.
 */
export function clientAddress(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const ip = normalizeIp(raw);
  return isIP(ip) === 0 ? null : ip;
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128) into canonical
 * CIDR form. Returns null when it is not one.
 */
export function parseCidr(entry: string): string | null {
  if (typeof entry !== 'string') return null;
  const [rawAddress, rawPrefix, ...rest] = entry.trim().split('/');
  if (rest.length > 0 || !rawAddress) return null;
  const address = normalizeIp(rawAddress);
  const family = isIP(address);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  if (rawPrefix === undefined) return `${address}/${max}`;
  if (!/^\d{1,3}$/.test(rawPrefix)) return null;
  const prefix = Number(rawPrefix);
  if (prefix > max) return null;
  return `${address}/${prefix}`;
}

/** True when the allowlist is empty (any address) or the address is inside one of its blocks. */
export function ipAllowed(allowlist: readonly string[], address: string | null | undefined): boolean {
  if (allowlist.length === 0) return true;
  if (!address) return false;
  const ip = normalizeIp(address);
  const family = isIP(ip);
  if (family === 0) return false;
  const list = new BlockList();
  for (const entry of allowlist) {
    const [network, prefix] = entry.split('/');
    const type = isIP(network) === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(network, Number(prefix), type);
  }
  return list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}
