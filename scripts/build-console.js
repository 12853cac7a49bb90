#!/usr/bin/env node
// Bundles the console (console/src, React + uPlot) into dist/console with esbuild: hashed
// assets and an index.html naming them. Run by `npm install` (prepare) and `npm start` when
// stale; the server serves dist/console at /console. No type checking here: that is
// `npx tsc --noEmit -p console/tsconfig.json`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.join(__dirname, '..');
const source = path.join(root, 'console');
const out = path.join(root, 'dist', 'console');

function build() {
  const assets = path.join(out, 'assets');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(assets, { recursive: true });
  const result = esbuild.buildSync({
    entryPoints: [path.join(source, 'src', 'main.tsx')],
    bundle: true,
    outdir: assets,
    entryNames: '[name]-[hash]',
    format: 'iife',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
  const script = outputs.find((name) => /^main-.*\.js$/.test(name));
  const style = outputs.find((name) => /^main-.*\.css$/.test(name));
  if (!script || !style) throw new Error(`esbuild produced no script or stylesheet: ${outputs.join(', ')}`);
  const template = fs.readFileSync(path.join(source, 'index.html'), 'utf8');
  fs.writeFileSync(path.join(out, 'index.html'), template.replace('{{script}}', `/console/assets/${script}`).replace('{{style}}', `/console/assets/${style}`));
}

/** True when dist/console is missing or older than a file in console/ (or this script). */
function isStale() {
  const marker = path.join(out, 'index.html');
  if (!fs.existsSync(marker)) return true;
  const newest = (entry) => {
    const stat = fs.statSync(entry);
    if (!stat.isDirectory()) return stat.mtimeMs;
    return Math.max(0, ...fs.readdirSync(entry).map((name) => newest(path.join(entry, name))));
  };
  return Math.max(newest(source), fs.statSync(__filename).mtimeMs) > fs.statSync(marker).mtimeMs;
}

module.exports = { buildConsole: build, consoleIsStale: isStale };

if (require.main === module) {
  try {
    build();
  } catch (error) {
    console.error(`keyward: building the console failed: ${error.message}`);
    process.exit(1);
  }
}
