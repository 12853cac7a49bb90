#!/usr/bin/env node
// `npm start` rebuilds only when a source file is newer than the build, so it starts fast:
// the server with tsc, the console (console/) with esbuild.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { buildConsole, consoleIsStale } = require('./build-console.js');

const root = path.join(__dirname, '..');
const marker = path.join(root, 'dist', 'src', 'main.js');

function newestMtime(entry) {
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...fs.readdirSync(entry).map((name) => newestMtime(path.join(entry, name))));
}

const sources = ['src', 'scripts', 'examples', 'ormconfig.ts', 'tsconfig.json'].map((name) => path.join(root, name)).filter(fs.existsSync);
const stale = !fs.existsSync(marker) || Math.max(...sources.map(newestMtime)) > fs.statSync(marker).mtimeMs;
if (stale) {
  console.error('keyward: building (tsc)…');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  // tsc leaves unchanged outputs alone; touch the marker so the next start skips the build.
  const now = new Date();
  fs.utimesSync(marker, now, now);
}
if (consoleIsStale()) {
  console.error('keyward: building the console (esbuild)…');
  buildConsole();
}
