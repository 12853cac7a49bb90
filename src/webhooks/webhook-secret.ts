import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

/**
 * Webhook signing secrets: `whsec_` and the base64 of 32 random bytes, the form the Standard
 * Webhooks libraries (and receivers' verifiers) take. keyward must sign with the secret, so it
 * keeps it — sealed with AES-256-GCM under a key derived from the pepper, so that a copy of the
 * database alone cannot forge deliveries. It is shown once (create, rotate), never listed or logged.
 */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';
const SEALED_VERSION = 'v1';

export function generateWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(32).toString('base64');
}

function sealingKey(pepper: string): Buffer {
  return createHmac('sha256', pepper).update('keyward webhook signing secrets v1').digest();
}

/** `v1:` + base64(iv ‖ tag ‖ ciphertext). */
export function sealSecret(pepper: string, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(pepper), iv);
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return `${SEALED_VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
}

/** Throws when the sealed value was not sealed with this pepper (or was altered). */
export function openSecret(pepper: string, sealed: string): string {
  const [version, body] = sealed.split(':');
  if (version !== SEALED_VERSION || !body) throw new Error('unknown sealed webhook secret format');
  const bytes = Buffer.from(body, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', sealingKey(pepper), bytes.subarray(0, 12));
  decipher.setAuthTag(bytes.subarray(12, 28));
  return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
}
