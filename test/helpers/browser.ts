import fs from 'node:fs';
import path from 'node:path';
import { chromium, Browser, BrowserContext, Page } from 'playwright-core';
import { CHROMIUM_PATH } from './services';
import { startTestServer, TestServer, TestServerOptions } from './server';

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

/** A test server and a browser for one suite; every page opens in its own context, closed after its test. */
export interface BrowserHarness {
  readonly server: TestServer;
  /** A fresh context (own storage: no history from other tests) with one page, watched. */
  openPage(viewport: { width: number; height: number }, pageTimeoutMs: number): Promise<{ page: Page; context: BrowserContext } & PageWatch>;
}

/** Registers the suite's hooks: server and browser up before, contexts closed after each test, all down after. */
export function useBrowserHarness(serverOptions: TestServerOptions, hookTimeoutMs: number): BrowserHarness {
  let server: TestServer | undefined;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  beforeAll(async () => {
    server = await startTestServer(serverOptions);
    browser = await launchChromium();
  }, hookTimeoutMs);
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((context) => context.close()));
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  }, hookTimeoutMs);
  return {
    get server() {
      if (!server) throw new Error('the test server did not start');
      return server;
    },
    async openPage(viewport, pageTimeoutMs) {
      if (!browser) throw new Error('the browser did not start');
      const context = await browser.newContext({ viewport });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(pageTimeoutMs);
      return { page, context, ...(await watchPage(page)) };
    },
  };
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
