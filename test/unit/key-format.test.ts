import {
  generateSecret,
  hashesEqual,
  hashSecret,
  hintFor,
  isWellFormedSecret,
  KEY_PREFIXES,
  redactSecrets,
  SECRET_LENGTH,
} from '../../src/auth/key-format';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The same secret with the character at `index` replaced by a different base62 character. */
function changeCharAt(secret: string, index: number): string {
  const current = secret[index];
  const replacement = BASE62[(BASE62.indexOf(current) + 1) % BASE62.length];
  return secret.slice(0, index) + replacement + secret.slice(index + 1);
}

describe('generateSecret', () => {
  it('makes a LIVE secret of kw_live_, 32 base62 characters and a 6-character base62 checksum', () => {
    const secret = generateSecret('LIVE');
    expect(secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
    expect(secret).toHaveLength(46);
    expect(SECRET_LENGTH).toBe(46);
  });

  it('makes a TEST secret that starts with kw_test_ and is 46 characters long', () => {
    const secret = generateSecret('TEST');
    expect(secret).toMatch(/^kw_test_[0-9A-Za-z]{38}$/);
    expect(secret).toHaveLength(46);
  });

  it('never repeats a secret over 1000 generations', () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 1000; i++) secrets.add(generateSecret(i % 2 === 0 ? 'LIVE' : 'TEST'));
    expect(secrets.size).toBe(1000);
  });

  it('uses characters from the whole base62 alphabet in the random part', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) for (const char of generateSecret('LIVE').slice(8, 40)) seen.add(char);
    // 6400 uniformly drawn characters cover all 62 with overwhelming probability.
    expect(seen.size).toBe(62);
  });
});

describe('isWellFormedSecret', () => {
  it('accepts every generated secret of both environments', () => {
    for (let i = 0; i < 200; i++) {
      expect(isWellFormedSecret(generateSecret('LIVE'))).toBe(true);
      expect(isWellFormedSecret(generateSecret('TEST'))).toBe(true);
    }
  });

  it.each([
    ['kw_prod_'],
    ['kw_LIVE_'],
    ['kx_live_'],
    ['sk_live_'],
  ])('refuses a secret whose prefix is %s', (prefix) => {
    const secret = generateSecret('LIVE');
    expect(isWellFormedSecret(prefix + secret.slice(8))).toBe(false);
  });

  it('refuses a LIVE secret whose prefix was switched to kw_test_ (the checksum covers the prefix)', () => {
    const secret = generateSecret('LIVE');
    expect(isWellFormedSecret(KEY_PREFIXES.TEST + secret.slice(8))).toBe(false);
  });

  it.each([8, 9, 15, 23, 30, 39])('refuses a secret with one character changed in the random part at index %i', (index) => {
    for (let i = 0; i < 20; i++) {
      const secret = generateSecret('LIVE');
      expect(isWellFormedSecret(changeCharAt(secret, index))).toBe(false);
    }
  });

  it.each([40, 41, 42, 43, 44, 45])('refuses a secret with one character changed in the checksum at index %i', (index) => {
    for (let i = 0; i < 20; i++) {
      const secret = generateSecret('TEST');
      expect(isWellFormedSecret(changeCharAt(secret, index))).toBe(false);
    }
  });

  it('refuses a truncated secret', () => {
    const secret = generateSecret('LIVE');
    expect(isWellFormedSecret(secret.slice(0, -1))).toBe(false);
    expect(isWellFormedSecret(secret.slice(0, 40))).toBe(false);
    expect(isWellFormedSecret(secret.slice(1))).toBe(false);
    expect(isWellFormedSecret('kw_live_')).toBe(false);
    expect(isWellFormedSecret('')).toBe(false);
  });

  it('refuses an extended secret', () => {
    const secret = generateSecret('LIVE');
    expect(isWellFormedSecret(`${secret}a`)).toBe(false);
    expect(isWellFormedSecret(`${secret} `)).toBe(false);
    expect(isWellFormedSecret(` ${secret}`)).toBe(false);
    expect(isWellFormedSecret(`${secret}\n`)).toBe(false);
  });

  it.each(['-', '_', '+', '/', '=', 'é', ' '])('refuses a secret containing the non-base62 character %j', (char) => {
    const secret = generateSecret('LIVE');
    expect(isWellFormedSecret(secret.slice(0, 20) + char + secret.slice(21))).toBe(false);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['an object', { secret: 'kw_live_x' }],
    ['an array', ['kw_live_x']],
  ])('refuses %s', (_what, value) => {
    expect(isWellFormedSecret(value as unknown as string)).toBe(false);
  });
});

describe('hintFor', () => {
  it('is the first 8 characters, an ellipsis and the last 4', () => {
    const secret = 'kw_live_0123456789abcdefghijABCDEFGHIJ012345';
    expect(hintFor(secret)).toBe('kw_live_…2345');
    const test = generateSecret('TEST');
    expect(hintFor(test)).toBe(`kw_test_…${test.slice(-4)}`);
  });

  it('never contains the random part of the secret', () => {
    const secret = generateSecret('LIVE');
    expect(hintFor(secret)).not.toContain(secret.slice(8, 40));
    expect(hintFor(secret)).toHaveLength(13);
  });
});

describe('hashSecret', () => {
  const pepper = 'test-pepper-0123456789abcdef';

  it('is 64 lower-case hex characters', () => {
    expect(hashSecret(pepper, generateSecret('LIVE'))).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is deterministic for the same pepper and secret', () => {
    const secret = generateSecret('LIVE');
    expect(hashSecret(pepper, secret)).toBe(hashSecret(pepper, secret));
  });

  it('is the HMAC-SHA256 of the secret keyed with the pepper', () => {
    // Fixed vector: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog").
    expect(hashSecret('key', 'The quick brown fox jumps over the lazy dog')).toBe('f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8');
  });

  it('differs when the pepper differs', () => {
    const secret = generateSecret('LIVE');
    expect(hashSecret(pepper, secret)).not.toBe(hashSecret(`${pepper}x`, secret));
  });

  it('differs when the secret differs', () => {
    expect(hashSecret(pepper, generateSecret('LIVE'))).not.toBe(hashSecret(pepper, generateSecret('LIVE')));
  });

  it('does not contain the secret', () => {
    const secret = generateSecret('LIVE');
    expect(hashSecret(pepper, secret)).not.toContain(secret.slice(8, 20));
  });
});

describe('hashesEqual', () => {
  const pepper = 'test-pepper-0123456789abcdef';

  it('is true for two equal hashes', () => {
    const secret = generateSecret('LIVE');
    expect(hashesEqual(hashSecret(pepper, secret), hashSecret(pepper, secret))).toBe(true);
  });

  it('is false for two different hashes', () => {
    expect(hashesEqual(hashSecret(pepper, generateSecret('LIVE')), hashSecret(pepper, generateSecret('LIVE')))).toBe(false);
  });

  it('is false for hashes of different lengths instead of throwing', () => {
    const hash = hashSecret(pepper, generateSecret('LIVE'));
    expect(hashesEqual(hash, hash.slice(0, 32))).toBe(false);
    expect(hashesEqual(hash, '')).toBe(false);
  });
});

describe('redactSecrets', () => {
  it('masks a live secret inside text', () => {
    const secret = generateSecret('LIVE');
    const redacted = redactSecrets(`request with Bearer ${secret} failed`);
    expect(redacted).toBe('request with Bearer kw_live_[REDACTED] failed');
    expect(redacted).not.toContain(secret.slice(8));
  });

  it('masks a test secret and every secret in the text', () => {
    const a = generateSecret('TEST');
    const b = generateSecret('LIVE');
    const redacted = redactSecrets(`a=${a}, b="${b}"`);
    expect(redacted).toBe('a=kw_test_[REDACTED], b="kw_live_[REDACTED]"');
  });

  it('masks malformed or truncated secrets too', () => {
    expect(redactSecrets('key kw_live_0123456789abcdefghij (truncated)')).toBe('key kw_live_[REDACTED] (truncated)');
  });

  it('leaves text without a secret unchanged', () => {
    const text = 'kw_prod_0123456789 and kw_live_ mention, hint kw_live_…9fQa';
    expect(redactSecrets(text)).toBe(text);
  });
});
