import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestServer, TestServer } from './helpers/server';
import { createKey, createOrganization, CreatedKey } from './helpers/fixtures';

/**
 * The client package as a user gets it: `npm pack` of packages/client, installed into a fresh
 * project with `npm install --offline` (its dependencies come from the npm cache the root's
 * `npm install` filled), then a small app using the client, the Express middleware and the
 * wire module is type-checked there with tsc and run against a real keyward on 127.0.0.1.
 *
 * The fresh project gets a package-lock.json cut from the root's (the same versions, with
 * their integrity): an install without a lockfile would have to ask the registry for every
 * package's metadata, which the cache does not hold.
 */
const ROOT = path.join(__dirname, '..');
const PACKAGE_DIR = path.join(ROOT, 'packages', 'client');
const TSC = require.resolve('typescript/bin/tsc');
const run = promisify(execFile);

jest.setTimeout(300_000);

type Dependencies = Record<string, string>;

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Dependencies;
  devDependencies?: Dependencies;
  peerDependencies?: Dependencies;
}

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  link?: boolean;
  dependencies?: Dependencies;
  optionalDependencies?: Dependencies;
  peerDependencies?: Dependencies;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [field: string]: unknown;
}

interface PackResult {
  filename: string;
  integrity: string;
  files: Array<{ path: string }>;
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
const rootPackage = readJson<PackageJson>(path.join(ROOT, 'package.json'));
const clientPackage = readJson<PackageJson>(path.join(PACKAGE_DIR, 'package.json'));
const rootLock = readJson<{ packages: Record<string, LockEntry> }>(path.join(ROOT, 'package-lock.json')).packages;

/** The app's own dependencies besides the client: what a TypeScript Express app has, at the root's versions. */
const APP_DEPENDENCIES = ['express', '@types/express', '@types/node'];

/**
 * npm for the fresh project: run where the project is, with none of the npm_* variables a
 * surrounding `npm test` sets (they would point npm at this repository), but the same cache.
 */
function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) || /^npm_config_(cache|registry|userconfig)$/i.test(name)) env[name] = value;
  }
  return run('npm', args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
}

/** Where npm finds `name` from the package at `from` (a lockfile path): nested first, then each level up. */
function locate(name: string, from: string): string | null {
  for (let base = from; ; base = base.includes('/node_modules/') ? base.slice(0, base.lastIndexOf('/node_modules/')) : '') {
    const candidate = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
    if (rootLock[candidate]) return candidate;
    if (!base) return null;
  }
}

/**
 * The lockfile entries of `names` (asked for by the package at `from`) and everything they
 * need, at the places the root's lockfile has them. The client package's own dependencies are
 * asked for from packages/client, its place in the root; in the fresh project it is
 * node_modules/@keyward/client.
 */
function lockedClosure(names: string[], from: string, into: Record<string, LockEntry>): void {
  for (const name of names) {
    const found = locate(name, from);
    if (!found) throw new Error(`${name} (needed by ${from || 'the app'}) is not in package-lock.json`);
    const place = found.replace(/^packages\/client\//, 'node_modules/@keyward/client/');
    if (into[place]) continue;
    const { dev, devOptional, peer, optional, ...entry } = rootLock[found];
    into[place] = entry;
    const requiredPeers = Object.keys(entry.peerDependencies ?? {}).filter((peerName) => !entry.peerDependenciesMeta?.[peerName]?.optional);
    const optionalDependencies = Object.keys(entry.optionalDependencies ?? {}).filter((dependency) => locate(dependency, found));
    lockedClosure([...Object.keys(entry.dependencies ?? {}), ...optionalDependencies, ...requiredPeers], found, into);
  }
}

/** The fresh project's package.json and package-lock.json, for the packed tarball. */
function writeProject(dir: string, tarball: PackResult): void {
  const versions = { ...rootPackage.dependencies, ...rootPackage.devDependencies };
  const dependencies: Dependencies = { '@keyward/client': `file:${tarball.filename}` };
  for (const name of APP_DEPENDENCIES) dependencies[name] = versions[name];
  const project = { name: 'keyward-client-user', version: '1.0.0', private: true, dependencies };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(project, null, 2));

  const packages: Record<string, LockEntry> = { '': { name: project.name, version: project.version, dependencies } };
  const { version, dependencies: clientDependencies, peerDependencies } = clientPackage;
  packages['node_modules/@keyward/client'] = { version, resolved: `file:${tarball.filename}`, integrity: tarball.integrity, dependencies: clientDependencies, peerDependencies };
  lockedClosure(Object.keys(clientDependencies ?? {}), 'packages/client', packages);
  lockedClosure(APP_DEPENDENCIES, '', packages);
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: project.name, version: project.version, lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** `npm install --offline`, failing with what to do when the npm cache lacks a package. */
async function installOffline(dir: string): Promise<void> {
  try {
    await npm(['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], dir);
  } catch (error) {
    const { stderr = '', stdout = '' } = error as { stderr?: string; stdout?: string };
    const missing = /request to (\S+) failed: cache mode is 'only-if-cached'/.exec(stderr + stdout);
    if (missing) {
      throw new Error(`npm install --offline: ${missing[1]} is not in the npm cache. Run \`npm install\` at the repository root (with the npm registry reachable) first; it fills the cache this test installs from.\n${stderr}`);
    }
    throw new Error(`npm install --offline failed in ${dir}:\n${stderr}${stdout}`);
  }
}

/**
 * The user's app: the client, the middleware and the wire module, typed. The @ts-expect-error
 * lines make the type check fail if the package's types were missing or `any`.
 */
const APP = `
import http from 'node:http';
import { once } from 'node:events';
import express from 'express';
import { ErrorCode, KeywardClient, KeywardClientError, type ViewerQuery } from '@keyward/client';
import { keyward } from '@keyward/client/express';
import { HTTP_STATUS, keyFromHeaders } from '@keyward/client/wire';

async function main(): Promise<void> {
  const client = new KeywardClient({ retries: 0 }); // KEYWARD_URL, KEYWARD_API_KEY
  const viewer: ViewerQuery['viewer'] = await client.viewer();
  // @ts-expect-error: verifyKey needs the key to verify
  void (() => client.verifyKey({}));
  // @ts-expect-error: the client's methods return typed results, not any
  void (() => viewer.organization.noSuchField);

  const app = express();
  app.get('/v1/hello', keyward({ client, requiredScopes: ['inference:run'] }), (req, res) => {
    res.locals.keywardTokens = 2;
    res.json({ organizationId: req.keyward?.valid ? req.keyward.organizationId : null });
  });
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = \`http://127.0.0.1:\${(server.address() as { port: number }).port}/v1/hello\`;
  const call = async (headers: Record<string, string>) => {
    const response = await fetch(url, { headers });
    return { status: response.status, body: (await response.json()) as unknown };
  };

  // The service key may verify keys but not read them.
  let refusedCall: { code: string; status: number } | null = null;
  try {
    await client.apiKeys();
  } catch (error) {
    if (error instanceof KeywardClientError) refusedCall = { code: error.code, status: error.status };
  }
  const result = {
    viewer: viewer.organization.id,
    admitted: await call({ authorization: \`Bearer \${process.env.CUSTOMER_KEY}\` }),
    refused: await call({}),
    refusedCall,
    rateLimitedStatus: HTTP_STATUS[ErrorCode.RATE_LIMITED],
    presented: keyFromHeaders({ apiKey: ' kw_test_example ' }),
  };
  server.close();
  await client.close();
  console.log(JSON.stringify(result));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`;

function tsconfig(moduleResolution: 'node16' | 'node10'): object {
  return {
    compilerOptions: {
      target: 'ES2022',
      module: moduleResolution === 'node16' ? 'node16' : 'commonjs',
      moduleResolution,
      lib: ['ES2022'],
      types: ['node'],
      strict: true,
      esModuleInterop: true,
      outDir: 'out',
      // The packages' own declaration files are checked too (a broken .d.ts fails here).
      skipLibCheck: false,
    },
    files: ['app.ts'],
  };
}

let server: TestServer;
let workDir: string;
let projectDir: string;
let packed: PackResult;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-client-package-'));
  projectDir = path.join(workDir, 'app');
  fs.mkdirSync(projectDir);
  const { stdout } = await npm(['pack', '--json', '--workspace', clientPackage.name, '--pack-destination', projectDir], ROOT);
  [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as PackResult[];
  server = await startTestServer();
});

afterAll(async () => {
  await server?.close();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe('the @keyward/client package', () => {
  it('packs its build with declarations, its sources, README and package.json, and nothing else', () => {
    const files = packed.files.map((file) => file.path);
    for (const file of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/express.js', 'dist/express.d.ts', 'dist/wire.js', 'dist/wire.d.ts', 'dist/generated/graphql.d.ts']) {
      expect(files).toContain(file);
    }
    expect(files.filter((file) => !/^(dist|src)\//.test(file)).sort()).toEqual(['README.md', 'package.json']);
    const dependencies = Object.values(clientPackage.dependencies ?? {});
    for (const version of dependencies) expect(version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('installs from its tarball offline into a fresh project, whose app type-checks with tsc and runs against keyward', async () => {
    writeProject(projectDir, packed);
    await installOffline(projectDir);
    expect(fs.realpathSync(path.join(projectDir, 'node_modules', '@keyward', 'client'))).toBe(path.join(projectDir, 'node_modules', '@keyward', 'client'));

    fs.writeFileSync(path.join(projectDir, 'app.ts'), APP);
    // Both ways a TypeScript project resolves packages: through "exports" (node16) and
    // through typesVersions (the older node10 resolution).
    for (const moduleResolution of ['node10', 'node16'] as const) {
      fs.writeFileSync(path.join(projectDir, 'tsconfig.json'), JSON.stringify(tsconfig(moduleResolution), null, 2));
      await run(process.execPath, [TSC, '-p', projectDir]).catch((error: { stdout?: string }) => {
        throw new Error(`tsc (moduleResolution ${moduleResolution}) failed on the example app:\n${error.stdout}`);
      });
    }

    const service: CreatedKey = await createKey(server, { organizationId: server.platformOrganizationId, scopes: ['keys:verify', 'usage:write'], rateLimits: [] });
    const organization = await createOrganization(server);
    const customer = await createKey(server, { organizationId: organization.id, scopes: ['inference:run'] });
    const env = { PATH: process.env.PATH, KEYWARD_URL: server.url, KEYWARD_API_KEY: service.secret, CUSTOMER_KEY: customer.secret };
    const { stdout } = await run(process.execPath, [path.join(projectDir, 'out', 'app.js')], { cwd: projectDir, env, timeout: 60_000 });

    expect(JSON.parse(stdout)).toEqual({
      viewer: server.platformOrganizationId,
      admitted: { status: 200, body: { organizationId: organization.id } },
      refused: { status: 401, body: { error: { code: 'UNAUTHENTICATED', message: expect.stringContaining('API key is required') } } },
      refusedCall: { code: 'INSUFFICIENT_SCOPE', status: 403 },
      rateLimitedStatus: 429,
      presented: { kind: 'key', key: 'kw_test_example' },
    });
  });
});
