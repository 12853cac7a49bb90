import { privateAddressKind, validateWebhookUrl } from '../../src/webhooks/webhook-address';
import { generateWebhookSecret, openSecret, sealSecret } from '../../src/webhooks/webhook-secret';
import { looksLikeSecret, redactSecrets } from '../../src/auth/key-format';
import { KeywardError } from '../../src/errors';

function refusal(run: () => unknown): { code: string; field: unknown; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof KeywardError) return { code: error.code, field: error.extensions.field, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('privateAddressKind (the SSRF guard)', () => {
  it.each([
    ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'], ['::1', 'loopback'],
    ['10.0.0.1', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'],
    ['100.64.0.1', 'shared (carrier-grade NAT)'], ['0.0.0.0', '"this network"'], ['::', 'unspecified'],
    ['fc00::1', 'unique local (private)'], ['fd12:3456::1', 'unique local (private)'],
    ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'], ['255.255.255.255', 'reserved'],
    ['::ffff:127.0.0.1', 'loopback'], ['::ffff:a00:1', 'private'],
    ['64:ff9b::7f00:1', 'NAT64'], ['2002:7f00:1::', '6to4'], ['2001:0:4136:e378::1', 'Teredo'],
    ['not-an-address', 'unparseable'],
  ])('refuses %s (%s)', (address, kind) => {
    expect(privateAddressKind(address)).toBe(kind);
  });

  it.each(['93.184.215.14', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('lets the public address %s through', (address) => {
    expect(privateAddressKind(address)).toBeNull();
  });
});

describe('validateWebhookUrl', () => {
  it('accepts http(s) URLs and returns them normalized', () => {
    expect(validateWebhookUrl('url', ' https://Hooks.Example.com/keyward?team=ml ', false)).toBe('https://hooks.example.com/keyward?team=ml');
    expect(validateWebhookUrl('url', 'http://hooks.example.com', false)).toBe('http://hooks.example.com/');
  });

  it('leaves host names to the check at every attempt, and lets private addresses through when allowed', () => {
    expect(validateWebhookUrl('url', 'http://localhost:3001/hooks', false)).toBe('http://localhost:3001/hooks');
    expect(validateWebhookUrl('url', 'http://127.0.0.1:3001/hooks', true)).toBe('http://127.0.0.1:3001/hooks');
  });

  it.each([
    ['ftp://hooks.example.com/', /must be an http or https URL \(got ftp\)/],
    ['file:///etc/passwd', /must be an http or https URL \(got file\)/],
    ['hooks.example.com/keyward', /not an absolute URL/],
    ['', /must not be empty/],
    ['https://user:pass@hooks.example.com/', /must not contain credentials/],
    [`https://hooks.example.com/${'a'.repeat(1980)}`, /at most 2000 characters/],
    ['http://127.1/', /127\.0\.0\.1 is a loopback address; .*WEBHOOK_ALLOW_PRIVATE=true/],
    ['http://[fd00::1]:8080/', /fd00::1 is a unique local \(private\) address/],
    ['http://2130706433/', /127\.0\.0\.1 is a loopback address/],
  ])('refuses %s', (url, message) => {
    expect(refusal(() => validateWebhookUrl('url', url, false))).toEqual({ code: 'BAD_USER_INPUT', field: 'url', message: expect.stringMatching(message) });
  });

  it('refuses a URL carrying a keyward secret without repeating it', () => {
    const secret = generateWebhookSecret();
    const result = refusal(() => validateWebhookUrl('url', `https://hooks.example.com/?s=${encodeURIComponent(secret)}&raw=${secret}`, false));
    expect(result.message).toMatch(/looks like a webhook signing secret/);
    expect(result.message).not.toContain(secret);
  });
});

describe('webhook signing secrets', () => {
  it('are whsec_ and the base64 of 32 random bytes, each different', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(secret);
  });

  it('are sealed with a key derived from the pepper: opened with it, refused with another', () => {
    const secret = generateWebhookSecret();
    const sealed = sealSecret('pepper-0123456789abcdef', secret);
    expect(sealed).not.toContain(secret.slice(6));
    expect(openSecret('pepper-0123456789abcdef', sealed)).toBe(secret);
    expect(() => openSecret('another-pepper-0123456789', sealed)).toThrow();
  });

  it('are recognised in free text and redacted from logs', () => {
    const secret = generateWebhookSecret();
    expect(looksLikeSecret(`my secret is ${secret}`)).toBe(true);
    expect(redactSecrets(`signing with ${secret} now`)).toBe('signing with whsec_[REDACTED] now');
  });
});
