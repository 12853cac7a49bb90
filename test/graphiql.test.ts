import fs from 'node:fs';
import { chromium, Browser, BrowserContext, Page, Response } from 'playwright-core';
import { startTestServer, TestServer } from './helpers/server';

/**
 * GraphiQL at GET /graphql, driven by a real headless Chromium (Debian's, never a downloaded one).
 * Every request to a host other than the test server is aborted and recorded, so the page has
 * to work offline.
 */
const CHROMIUM = '/usr/bin/chromium';
const BROWSER_TIMEOUT = 60_000;
const UI_TIMEOUT = 15_000;

interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** Requests to hosts other than 127.0.0.1/localhost, all aborted. */
  blocked: string[];
  /** Paths requested from the test server. */
  local: string[];
  /** Uncaught exceptions thrown in the page. */
  pageErrors: string[];
}

// page.evaluate callbacks run in the page; the project's tsconfig has no DOM lib, hence (globalThis as any).document.
describe('GraphiQL page', () => {
  let server: TestServer;
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium); these tests never download a browser`);
    }
    server = await startTestServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, BROWSER_TIMEOUT);

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((context) => context.close()));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  }, BROWSER_TIMEOUT);

  /** A fresh browser context (own storage, so no history from other tests) on GraphiQL. */
  async function openGraphiql(): Promise<OpenedPage> {
    if (!browser) throw new Error('the browser did not start');
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT);
    const blocked: string[] = [];
    const local: string[] = [];
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') {
        local.push(url.pathname);
        return route.continue();
      }
      blocked.push(url.href);
      return route.abort();
    });
    const response = await page.goto(server.url, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');
    return { page, context, blocked, local, pageErrors };
  }

  async function setQuery(page: Page, query: string): Promise<void> {
    await page.evaluate((value) => {
      const editor = (globalThis as any).document.querySelector('.graphiql-query-editor .CodeMirror');
      if (!editor) throw new Error('no query editor');
      editor.CodeMirror.setValue(value);
    }, query);
  }

  async function setHeaders(page: Page, headers: string): Promise<void> {
    // The page opens with the Headers tab of the editor tools selected and its editor visible.
    await expect(page.locator('.graphiql-editor-tools button[data-name="headers"]').getAttribute('class')).resolves.toContain('active');
    await page.locator('section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror').waitFor({ state: 'visible' });
    await page.evaluate((value) => {
      const editor = (globalThis as any).document.querySelector('section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror');
      if (!editor) throw new Error('no headers editor');
      editor.CodeMirror.setValue(value);
    }, headers);
  }

  /** The whole text of the response pane (a read-only CodeMirror). */
  async function responseText(page: Page): Promise<string> {
    return page.evaluate(() => {
      const editor = (globalThis as any).document.querySelector('.graphiql-response .CodeMirror');
      return editor ? String(editor.CodeMirror.getValue()) : '';
    });
  }

  /** Clicks the execute button and waits until the response pane shows `marker`. */
  async function runAndWaitFor(page: Page, marker: string): Promise<{ status: number; text: string }> {
    const before = await responseText(page);
    const graphqlResponse = page.waitForResponse((response) => response.url() === server.url && response.request().method() === 'POST' && (response.request().postData() ?? '').includes('viewer'));
    await page.locator('.graphiql-execute-button').click();
    const status = (await graphqlResponse).status();
    await page
      .waitForFunction(
        ([wanted, previous]) => {
          const editor = (globalThis as any).document.querySelector('.graphiql-response .CodeMirror');
          const text = editor ? String(editor.CodeMirror.getValue()) : '';
          return text !== previous && text.includes(wanted);
        },
        [marker, before] as const,
      )
      .catch(async () => {
        throw new Error(`the response pane never showed ${JSON.stringify(marker)}; it shows: ${await responseText(page)}`);
      });
    return { status, text: await responseText(page) };
  }

  it('renders GraphiQL without fetching anything from outside the server', async () => {
    const { page, blocked, local, pageErrors } = await openGraphiql();
    await expect(page.locator('.graphiql-container').count()).resolves.toBe(1);
    await expect(page.locator('.graphiql-execute-button').isVisible()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Show Documentation Explorer' }).isVisible()).resolves.toBe(true);
    // Give lazy loads (fonts, workers, …) a moment to show up in the record.
    await page.waitForLoadState('networkidle');
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    // React, ReactDOM, GraphiQL and its stylesheet all came from keyward itself.
    expect(local).toEqual(expect.arrayContaining([
      '/graphql',
      '/graphiql-assets/react.production.min.js',
      '/graphiql-assets/react-dom.production.min.js',
      '/graphiql-assets/graphiql.min.js',
      '/graphiql-assets/graphiql.min.css',
    ]));
  }, BROWSER_TIMEOUT);

  it('runs a query with the key entered in the Headers editor and shows the result', async () => {
    const { page, blocked } = await openGraphiql();
    await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${server.adminKey}` }));
    await setQuery(page, '{ viewer { organization { name } scopes } }');
    const { status, text } = await runAndWaitFor(page, '"Platform"');
    expect(status).toBe(200);
    expect(JSON.parse(text)).toEqual({ data: { viewer: { organization: { name: 'Platform' }, scopes: ['*'] } } });
    await page.screenshot({ path: '/tmp/graphiql.png' });
    expect(blocked).toEqual([]);
  }, BROWSER_TIMEOUT);

  /** Opens the documentation explorer and returns its root-type lines ("query: Query", …). */
  async function rootTypesInDocs(page: Page): Promise<string[]> {
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.waitFor();
    await page.waitForFunction(() => /Mutation/.test((globalThis as any).document.querySelector('.graphiql-doc-explorer')?.textContent ?? '')).catch(async () => {
      throw new Error(`the documentation explorer never listed the root types; it shows: ${await docs.textContent()}; response pane: ${(await responseText(page)).slice(0, 400)}`);
    });
    // Each line is <div><span class="graphiql-doc-explorer-root-type">query</span>: <a>Query</a></div>.
    return (await docs.locator('.graphiql-doc-explorer-root-type').locator('xpath=..').allTextContents()).map((line) => line.replace(/\s+/g, ' ').trim());
  }

  it('shows the schema root types in the documentation explorer of a freshly opened page', async () => {
    const { page, blocked } = await openGraphiql();
    const rootTypes = await rootTypesInDocs(page);
    expect(rootTypes).toEqual(expect.arrayContaining(['query: Query', 'mutation: Mutation']));
    expect(blocked).toEqual([]);
  }, BROWSER_TIMEOUT);

  it('shows the schema root types in the documentation explorer once a key is entered and the schema re-fetched', async () => {
    const { page, blocked } = await openGraphiql();
    await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${server.adminKey}` }));
    // GraphiQL picks up edited headers after a short debounce: click again until an
    // introspection request carrying the key goes out.
    let introspection: Response | null = null;
    for (let attempt = 0; attempt < 20 && !introspection; attempt += 1) {
      const sent = page
        .waitForResponse(
          (response) => response.url() === server.url && (response.request().postData() ?? '').includes('__schema') && response.request().headers().authorization === `Bearer ${server.adminKey}`,
          { timeout: 1_000 },
        )
        .catch(() => null);
      await page.getByRole('button', { name: 'Re-fetch GraphQL schema' }).click();
      introspection = await sent;
    }
    if (!introspection) throw new Error('GraphiQL never re-fetched the schema with the key from the Headers editor');
    expect(introspection.status()).toBe(200);
    const rootTypes = await rootTypesInDocs(page);
    expect(rootTypes).toEqual(expect.arrayContaining(['query: Query', 'mutation: Mutation']));
    expect(blocked).toEqual([]);
  }, BROWSER_TIMEOUT);

  it('lists a query that was run in the history panel', async () => {
    const { page } = await openGraphiql();
    await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${server.adminKey}` }));
    await setQuery(page, 'query HistoryProbe { viewer { organization { name } scopes } }');
    await runAndWaitFor(page, '"Platform"');
    await page.getByRole('button', { name: 'Show History' }).click();
    const items = page.locator('.graphiql-history-item');
    await items.first().waitFor();
    const labels = await items.allTextContents();
    expect(labels).toHaveLength(1);
    expect(labels[0]).toContain('HistoryProbe');
  }, BROWSER_TIMEOUT);

  it('shows UNAUTHENTICATED in the response pane when the query is run without a key', async () => {
    const { page } = await openGraphiql();
    await setHeaders(page, '{}');
    await setQuery(page, '{ viewer { scopes } }');
    const { status, text } = await runAndWaitFor(page, 'UNAUTHENTICATED');
    expect(status).toBe(401);
    const body = JSON.parse(text);
    expect(body.data ?? null).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  }, BROWSER_TIMEOUT);
});
