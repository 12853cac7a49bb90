import fs from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';
import { pageSecurityHeaders } from '../security-headers';

export const CONSOLE_PATH = '/console';

/** The project root: the nearest folder above this file with a package.json (from src/ or dist/src/). */
function projectRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

/** Where scripts/build-console.js puts the bundle. */
export const CONSOLE_BUILD_DIR = path.join(projectRoot(), 'dist', 'console');

/** A key, drawn for the browser tab (served to both pages). */
const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f3a5f"/><circle cx="12" cy="16" r="6" fill="none" stroke="#fff" stroke-width="3"/><path d="M17 16h11m-4 0v5m-4-5v4" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>`;

/**
 * The console: one page (dist/console/index.html) and its hashed assets, all from local files.
 * `/` redirects to it. The page talks to /graphql like any other client.
 */
export function consoleRoutes(): Router {
  const router = Router();
  const index = path.join(CONSOLE_BUILD_DIR, 'index.html');

  router.get('/', (_req, res) => {
    res.redirect(302, CONSOLE_PATH);
  });
  router.get('/favicon.svg', (_req, res) => {
    res.type('image/svg+xml').set({ 'Cache-Control': 'public, max-age=86400', 'X-Content-Type-Options': 'nosniff' }).send(FAVICON);
  });
  router.get([CONSOLE_PATH, `${CONSOLE_PATH}/`], (req, res) => {
    pageSecurityHeaders(req, res);
    res.set('Cache-Control', 'no-cache');
    // Read per request (small): a rebuild while the server runs is picked up.
    fs.readFile(index, 'utf8', (error, html) => {
      if (error) {
        res.status(503).type('text').send('The keyward console is not built: run `npm run build` (npm install does it), then reload.\n');
        return;
      }
      res.type('html').send(html);
    });
  });
  router.use(`${CONSOLE_PATH}/assets`, (_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  }, express.static(path.join(CONSOLE_BUILD_DIR, 'assets'), { immutable: true, maxAge: '365d', index: false }));
  return router;
}
