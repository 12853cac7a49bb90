import fs from 'node:fs';
import path from 'node:path';
import { chromium, Browser, Page } from 'playwright-core';
import { CHROMIUM_PATH } from './services';

/**
 * Debian's Chromium, driven by playwright-core (never a downloaded browser), for the tests of
 * keyward's pages (GraphiQL, the console). Suites using it run inside describeWith([CHROMIUM]).
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Screenshots are test output, kept in test-output/ (git-ignored), never committed. */
export function screenshotPath(name: string): string {
  const directory = path.join(__dirname, '..', '..', 'test-output');
  fs.mkdirSync(directory, { recursive: true });
  return path.join(directory, name);
}

/** What a page did that a test may want to fail on. */
export interface PageWatch {
  /** Requests to hosts other than 127.0.0.1 / localhost: all aborted. */
  blocked: string[];
  /** Paths requested from 127.0.0.1 / localhost. */
  local: string[];
  /** Uncaught exceptions thrown in the page. */
  pageErrors: string[];
  /** console.error / console.warn messages. */
  consoleErrors: string[];
  /** Content-Security-Policy violations the page reported ("directive blocked-uri"). */
  violations(): Promise<string[]>;
}

/**
 * Must run before the page's first navigation: aborts (and records) every request that would
 * leave 127.0.0.1, and records errors, console errors and CSP violations.
 */
export async function watchPage(page: Page): Promise<PageWatch> {
  const watch: PageWatch = {
    blocked: [],
    local: [],
    pageErrors: [],
    consoleErrors: [],
    violations: () => page.evaluate(() => (globalThis as any).__cspViolations ?? []),
  };
  await page.addInitScript(() => {
    const scope = globalThis as any;
    scope.__cspViolations = [];
    scope.document.addEventListener('securitypolicyviolation', (event: { violatedDirective: string; blockedURI: string }) => {
      scope.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on('pageerror', (error) => watch.pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') watch.consoleErrors.push(`${message.type()}: ${message.text()}`);
  });
  await page.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') {
      watch.local.push(url.pathname);
      return route.continue();
    }
    watch.blocked.push(url.href);
    return route.abort();
  });
  return watch;
}
