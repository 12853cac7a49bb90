import { ipAllowed, normalizeIp, parseCidr } from '../../src/auth/ip-allowlist';

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['192.168.1.0/24', '192.168.1.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['203.0.113.7/32', '203.0.113.7/32'],
    ['  10.1.2.0/24  ', '10.1.2.0/24'],
  ])('parses the IPv4 block %j as %j', (entry, expected) => {
    expect(parseCidr(entry)).toBe(expected);
  });

  it.each([
    ['2001:db8::/32', '2001:db8::/32'],
    ['::/0', '::/0'],
    ['fe80::/10', 'fe80::/10'],
    ['2001:db8::1/128', '2001:db8::1/128'],
  ])('parses the IPv6 block %j as %j', (entry, expected) => {
    expect(parseCidr(entry)).toBe(expected);
  });

  it('turns a bare IPv4 address into a /32', () => {
    expect(parseCidr('127.0.0.1')).toBe('127.0.0.1/32');
  });

  it('turns a bare IPv6 address into a /128', () => {
    expect(parseCidr('::1')).toBe('::1/128');
    expect(parseCidr('2001:db8::42')).toBe('2001:db8::42/128');
  });

  it('normalises an IPv4-mapped IPv6 address to plain IPv4', () => {
    expect(parseCidr('::ffff:1.2.3.4')).toBe('1.2.3.4/32');
    expect(parseCidr('::FFFF:1.2.3.4')).toBe('1.2.3.4/32');
    expect(parseCidr('::ffff:10.0.0.0/8')).toBe('10.0.0.0/8');
  });

  it.each(['10.0.0.0/33', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8.5', '10.0.0.0/abc', '10.0.0.0/1000', '10.0.0.0/8/8', '::ffff:1.2.3.4/64'])(
    'refuses the invalid prefix in %j',
    (entry) => {
      expect(parseCidr(entry)).toBeNull();
    },
  );

  it.each(['', ' ', 'garbage', 'localhost', '256.0.0.1', '1.2.3', '1.2.3.4.5', '/8', 'gggg::1', '1.2.3.4:80', 'http://1.2.3.4'])('returns null for the non-address %j', (entry) => {
    expect(parseCidr(entry)).toBeNull();
  });

  it('returns null for a value that is not a string', () => {
    expect(parseCidr(undefined as unknown as string)).toBeNull();
    expect(parseCidr(42 as unknown as string)).toBeNull();
    expect(parseCidr(null as unknown as string)).toBeNull();
  });
});

describe('normalizeIp', () => {
  it('strips the ::ffff: prefix of IPv4-mapped addresses and leaves the rest alone', () => {
    expect(normalizeIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
  });
});

describe('ipAllowed', () => {
  it('allows any address, and no address, when the allowlist is empty', () => {
    expect(ipAllowed([], '203.0.113.7')).toBe(true);
    expect(ipAllowed([], '2001:db8::1')).toBe(true);
    expect(ipAllowed([], null)).toBe(true);
    expect(ipAllowed([], undefined)).toBe(true);
  });

  it('allows an IPv4 address inside a listed block', () => {
    expect(ipAllowed(['10.0.0.0/8'], '10.255.3.4')).toBe(true);
    expect(ipAllowed(['192.168.1.0/24', '10.0.0.0/8'], '10.0.0.1')).toBe(true);
    expect(ipAllowed(['127.0.0.1/32'], '127.0.0.1')).toBe(true);
  });

  it('refuses an IPv4 address outside every listed block', () => {
    expect(ipAllowed(['10.0.0.0/8'], '11.0.0.1')).toBe(false);
    expect(ipAllowed(['192.168.1.0/24'], '192.168.2.1')).toBe(false);
    expect(ipAllowed(['127.0.0.1/32'], '127.0.0.2')).toBe(false);
  });

  it('allows an IPv6 address inside a listed block and refuses one outside', () => {
    expect(ipAllowed(['2001:db8::/32'], '2001:db8:1234::5')).toBe(true);
    expect(ipAllowed(['2001:db8::/32'], '2001:db9::1')).toBe(false);
    expect(ipAllowed(['::1/128'], '::1')).toBe(true);
    expect(ipAllowed(['::1/128'], '::2')).toBe(false);
  });

  it('matches an IPv4-mapped IPv6 client address against an IPv4 block', () => {
    expect(ipAllowed(['127.0.0.1/32'], '::ffff:127.0.0.1')).toBe(true);
    expect(ipAllowed(['10.0.0.0/8'], '::ffff:10.1.2.3')).toBe(true);
    expect(ipAllowed(['10.0.0.0/8'], '::ffff:11.1.2.3')).toBe(false);
  });

  it('does not match an IPv4 address against an IPv6-only list', () => {
    expect(ipAllowed(['2001:db8::/32'], '10.0.0.1')).toBe(false);
  });

  it('refuses a missing or unparsable client address when the list is not empty', () => {
    expect(ipAllowed(['0.0.0.0/0'], null)).toBe(false);
    expect(ipAllowed(['0.0.0.0/0'], undefined)).toBe(false);
    expect(ipAllowed(['0.0.0.0/0'], '')).toBe(false);
    expect(ipAllowed(['0.0.0.0/0'], 'not-an-ip')).toBe(false);
  });

  it('accepts entries exactly as parseCidr stores them', () => {
    const list = ['::ffff:1.2.3.4', '2001:db8::1', '10.0.0.0/8'].map((entry) => parseCidr(entry)!);
    expect(ipAllowed(list, '1.2.3.4')).toBe(true);
    expect(ipAllowed(list, '1.2.3.5')).toBe(false);
    expect(ipAllowed(list, '2001:db8::1')).toBe(true);
  });
});
