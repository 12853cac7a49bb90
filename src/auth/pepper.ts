import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config';

/**
 * The HMAC key for stored key hashes: KEYWARD_PEPPER, or in embedded mode a random value
 * generated once into `<dataDir>/pepper` (mode 0600). Losing it invalidates every key.
 */
export function resolvePepper(config: Config): string {
  if (config.pepper) return config.pepper;
  const file = path.join(config.dataDir, 'pepper');
  fs.mkdirSync(config.dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const pepper = fs.readFileSync(file, 'utf8').trim();
  if (pepper.length < 16) throw new Error(`The pepper file ${file} is damaged; restore it from a backup`);
  return pepper;
}
