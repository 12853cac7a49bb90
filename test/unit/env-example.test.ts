import fs from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../src/config';

/** Every variable parseConfig reads, found by handing it an environment that records each read. */
function variablesTheConfigReads(): string[] {
  const read = new Set<string>();
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, name) {
      if (typeof name === 'string') read.add(name);
      return undefined;
    },
  });
  parseConfig(env);
  return [...read].sort();
}

const ROOT = path.resolve(__dirname, '../..');

describe('configuration documentation', () => {
  const variables = variablesTheConfigReads();

  it('reads at least the documented basics (the recording environment works)', () => {
    expect(variables).toEqual(expect.arrayContaining(['PORT', 'DATABASE_URL', 'REDIS_URL', 'TRUST_PROXY']));
  });

  it('lists every variable the config reads in .env.example, and nothing else', () => {
    const text = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    const listed = [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]);
    expect([...new Set(listed)].sort()).toEqual(variables);
  });

  it("names every variable the config reads in the README's configuration table", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const missing = variables.filter((name) => !readme.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});
