import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * The client package's typed documents (packages/client/src/generated/graphql.ts) must be
 * exactly what GraphQL Code Generator makes from schema.graphql +
 * packages/client/src/operations.graphql with codegen.yml's settings: a schema or operation
 * change without `npm run codegen` fails here. The generator runs in memory
 * (`generate(config, false)` writes nothing).
 */

const ROOT = path.resolve(__dirname, '..');
const TARGET = path.join(ROOT, 'packages/client/src/generated/graphql.ts');

// @graphql-codegen/cli requires yargs 18, which is ES-module only: Node loads it
// (require(esm)) but Jest's module registry cannot, so the generator runs in a plain Node.
const GENERATE = `
const { generate, loadCodegenConfig } = require('@graphql-codegen/cli');
(async () => {
  const { config } = await loadCodegenConfig({ configFilePath: 'codegen.yml' });
  const files = await generate({ ...config, cwd: process.cwd(), silent: true }, false);
  process.stdout.write(JSON.stringify(files.map(({ filename, content }) => ({ filename, content }))));
})().catch((error) => { console.error(error); process.exit(1); });
`;

async function generated(): Promise<Map<string, string>> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', GENERATE], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  const files = JSON.parse(stdout) as Array<{ filename: string; content: string }>;
  return new Map(files.map((file) => [path.resolve(ROOT, file.filename), file.content]));
}

describe('generated client types', () => {
  it('packages/client/src/generated/graphql.ts is what `npm run codegen` produces from schema.graphql and packages/client/src/operations.graphql', async () => {
    const files = await generated();
    expect([...files.keys()]).toEqual([TARGET]);

    const expected = files.get(TARGET)!;
    const actual = readFileSync(TARGET, 'utf8');
    if (actual !== expected) {
      const actualLines = actual.split('\n');
      const expectedLines = expected.split('\n');
      const line = expectedLines.findIndex((text, i) => text !== actualLines[i]);
      throw new Error(
        'packages/client/src/generated/graphql.ts is out of date with schema.graphql / packages/client/src/operations.graphql: run `npm run codegen`.\n'
        + `First difference at line ${line + 1}:\n  generated: ${JSON.stringify(expectedLines[line])}\n  committed: ${JSON.stringify(actualLines[line])}`,
      );
    }

    // Every operation of operations.graphql has its typed document.
    const operations = [...readFileSync(path.join(ROOT, 'packages/client/src/operations.graphql'), 'utf8').matchAll(/^(?:query|mutation|subscription) (\w+)/gm)].map((match) => match[1]);
    expect(operations.length).toBeGreaterThan(30);
    for (const name of operations) expect(actual).toContain(`export const ${name}Document = `);
  });
});
