#!/usr/bin/env node
// `npm start` rebuilds only when a source file is newer than the build, so it starts fast.
// Three builds, in this order: the client package (packages/client/dist, which the built server
// and CLI load as @keyward/client), the server, scripts and examples (dist/, tsc), and the
// console (console/, esbuild).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const { buildConsole, consoleIsStale } = require('./build-console.js');

const root = path.join(__dirname, '..');
const tsc = require.resolve('typescript/bin/tsc');

function newestMtime(entry) {
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...fs.readdirSync(entry).map((name) => newestMtime(path.join(entry, name))));
}

const builds = [
  {
    name: '@keyward/client',
    tsconfig: 'packages/client/tsconfig.json',
    marker: 'packages/client/dist/index.js',
    sources: ['packages/client/src', 'packages/client/tsconfig.json'],
  },
  {
    name: 'keyward',
    tsconfig: 'tsconfig.json',
    marker: 'dist/src/main.js',
    sources: ['src', 'scripts', 'examples', 'ormconfig.ts', 'tsconfig.json', 'packages/client/src'],
  },
];

for (const build of builds) {
  const marker = path.join(root, build.marker);
  const sources = build.sources.map((name) => path.join(root, name)).filter(fs.existsSync);
  const stale = !fs.existsSync(marker) || Math.max(...sources.map(newestMtime)) > fs.statSync(marker).mtimeMs;
  if (!stale) continue;
  console.error(`keyward: building ${build.name} (tsc)…`);
  execFileSync(process.execPath, [tsc, '-p', path.join(root, build.tsconfig)], { stdio: 'inherit' });
  // tsc leaves unchanged outputs alone; touch the marker so the next start skips the build.
  const now = new Date();
  fs.utimesSync(marker, now, now);
}

if (consoleIsStale()) {
  console.error('keyward: building the console (esbuild)…');
  buildConsole();
}
