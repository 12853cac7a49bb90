import { BrowserContext, Page, Response, WebSocket as PageSocket } from 'playwright-core';
import type { TestServer } from './helpers/server';
import { createKey, createOrganization, uniqueName } from './helpers/fixtures';
import { PageWatch, screenshotPath, useBrowserHarness } from './helpers/browser';
import { CHROMIUM, describeWith } from './helpers/services';

/**
 * GraphiQL at GET /graphql, driven by a real headless Chromium (Debian's, never a downloaded one).
 * Every request to a host other than the test server is aborted and recorded, so the page has
 * to work offline. Skipped without Chromium (failed in CI).
 */
const BROWSER_TIMEOUT = 60_000;
const UI_TIMEOUT = 15_000;

interface OpenedPage extends PageWatch {
  page: Page;
  context: BrowserContext;
  /** Bodies of the POSTs the page sent to the test server. */
  posts: string[];
}

/** How a WebSocket opened by the page ended (recorded by an init script wrapping window.WebSocket). */
interface SocketRecord {
  url: string;
  protocol: string | null;
  close: { code: number; reason: string } | null;
}

// page.evaluate callbacks run in the page; the project's tsconfig has no DOM lib, hence (globalThis as any).document.
describeWith([CHROMIUM], 'GraphiQL page', () => {
  const harness = useBrowserHarness({}, BROWSER_TIMEOUT);
  let server: TestServer;
  beforeAll(() => {
    server = harness.server;
  });

  /**
   * A fresh browser context (own storage, so no history from other tests) on GraphiQL.
   * `recordSockets` wraps window.WebSocket before the page's scripts run, only to note each
   * socket's close code and reason (Playwright reports a close without them).
   */
  async function openGraphiql(options: { recordSockets?: boolean } = {}): Promise<OpenedPage> {
    const { page, context, ...watch } = await harness.openPage({ width: 1400, height: 900 }, UI_TIMEOUT);
    if (options.recordSockets) {
      await page.addInitScript(() => {
        const scope = globalThis as any;
        const Native = scope.WebSocket;
        const records: unknown[] = [];
        scope.__keywardSockets = records;
        scope.WebSocket = class extends Native {
          constructor(url: string, protocols?: string | string[]) {
            super(url, protocols);
            const record = { url: String(url), protocol: null as string | null, close: null as { code: number; reason: string } | null };
            records.push(record);
            this.addEventListener('open', () => { record.protocol = this.protocol; });
            this.addEventListener('close', (event: { code: number; reason: string }) => { record.close = { code: event.code, reason: event.reason }; });
          }
        };
      });
    }
    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url() === server.url) posts.push(request.postData() ?? '');
    });
    const response = await page.goto(server.url, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');
    return { page, context, ...watch, posts };
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
    const { page, blocked, local, pageErrors, consoleErrors, violations } = await openGraphiql();
    await expect(page.locator('.graphiql-container').count()).resolves.toBe(1);
    await expect(page.locator('.graphiql-execute-button').isVisible()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Show Documentation Explorer' }).isVisible()).resolves.toBe(true);
    // Give lazy loads (fonts, workers, …) a moment to show up in the record.
    await page.waitForLoadState('networkidle');
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    // It runs under its Content-Security-Policy (no inline script or style) without a violation.
    expect(await violations()).toEqual([]);
    expect(consoleErrors).toEqual([]);
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
    await page.screenshot({ path: screenshotPath('graphiql.png') });
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

  /** Polls `check` (every 25 ms) until it holds or `timeoutMs` passes; returns its last value. */
  async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (check()) return true;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return check();
  }

  interface RecordedSocket {
    socket: PageSocket;
    /** graphql-transport-ws messages, parsed. */
    sent: any[];
    received: any[];
  }

  /** Records every WebSocket the page opens with its frames (listeners attached as it opens). */
  function recordWebSockets(page: Page): RecordedSocket[] {
    const sockets: RecordedSocket[] = [];
    const parse = (payload: string | Buffer): any => {
      try {
        return JSON.parse(String(payload));
      } catch {
        return { unparsed: String(payload) };
      }
    };
    page.on('websocket', (socket) => {
      const entry: RecordedSocket = { socket, sent: [], received: [] };
      socket.on('framesent', (frame) => entry.sent.push(parse(frame.payload)));
      socket.on('framereceived', (frame) => entry.received.push(parse(frame.payload)));
      sockets.push(entry);
    });
    return sockets;
  }

  /** Waits until the response pane shows `marker`; false after `timeoutMs`. */
  async function paneShows(page: Page, marker: string, timeoutMs: number): Promise<boolean> {
    return page
      .waitForFunction(
        (wanted) => {
          const editor = (globalThis as any).document.querySelector('.graphiql-response .CodeMirror');
          return Boolean(editor && String(editor.CodeMirror.getValue()).includes(wanted));
        },
        marker,
        { timeout: timeoutMs },
      )
      .then(() => true, () => false);
  }

  it('streams apiKeyChanged events caused over HTTP into the response pane of a subscription run over one graphql-ws socket with the Headers key', async () => {
    const organization = await createOrganization(server);
    const { page, blocked, pageErrors, consoleErrors, posts, violations } = await openGraphiql();
    const sockets = recordWebSockets(page);
    await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${server.adminKey}` }));
    await setQuery(page, `subscription KeyWatch { apiKeyChanged(organizationId: "${organization.id}") { type apiKey { name organizationId } } }`);
    await page.locator('.graphiql-execute-button').click();

    const subscribed = await eventually(
      () => sockets.length > 0 && sockets[0].received.some((message) => message.type === 'connection_ack') && sockets[0].sent.some((message) => message.type === 'subscribe'),
      UI_TIMEOUT,
    );
    const diagnosis = async () => JSON.stringify({
      sockets: sockets.map(({ socket, sent, received }) => ({ url: socket.url(), closed: socket.isClosed(), sent, received })),
      responsePane: await responseText(page),
      console: consoleErrors,
      pageErrors,
    });
    if (!subscribed) throw new Error(`GraphiQL never subscribed over a WebSocket: ${await diagnosis()}`);
    const [{ socket, sent, received }] = sockets;
    expect(socket.url()).toBe(server.url.replace(/^http:/, 'ws:'));
    // The key from the Headers editor became the connection's connectionParams.
    expect(sent[0]).toEqual({ type: 'connection_init', payload: { authorization: `Bearer ${server.adminKey}` } });
    const subscribe = sent.find((message) => message.type === 'subscribe');
    expect(subscribe.payload.query).toContain(`apiKeyChanged(organizationId: "${organization.id}")`);

    // The server registers the subscription a moment after the subscribe message: a key
    // created in that moment may be missed, so create (distinctly named) keys until one shows.
    let created: { id: string; name: string } | null = null;
    for (let attempt = 0; attempt < 3 && !created; attempt += 1) {
      const name = uniqueName('GraphiQL live key');
      const key = await createKey(server, { organizationId: organization.id, name });
      if (await paneShows(page, name, 3_000)) created = { id: key.id, name };
    }
    if (!created) throw new Error(`the response pane never showed the created key: ${await diagnosis()}`);
    expect(JSON.parse(await responseText(page))).toEqual({
      data: { apiKeyChanged: { type: 'CREATED', apiKey: { name: created.name, organizationId: organization.id } } },
    });
    await page.screenshot({ path: screenshotPath('graphiql-subscription.png') });

    // The subscription keeps streaming: the next event replaces the pane.
    const revoked = await server.gql('mutation($id: ID!) { revokeApiKey(id: $id, reason: "graphiql test") { status } }', { id: created.id });
    expect(revoked.status).toBe(200);
    expect(revoked.body.data?.revokeApiKey.status).toBe('REVOKED');
    if (!(await paneShows(page, '"REVOKED"', UI_TIMEOUT))) throw new Error(`the response pane never showed the REVOKED event: ${await diagnosis()}`);
    expect(JSON.parse(await responseText(page))).toEqual({
      data: { apiKeyChanged: { type: 'REVOKED', apiKey: { name: created.name, organizationId: organization.id } } },
    });

    // Both events came as `next` messages of that subscription on that one socket; nothing went over HTTP.
    const events = received.filter((message) => message.type === 'next' && message.id === subscribe.id).map((message) => message.payload.data.apiKeyChanged);
    expect(events.slice(-2)).toEqual([
      { type: 'CREATED', apiKey: { name: created.name, organizationId: organization.id } },
      { type: 'REVOKED', apiKey: { name: created.name, organizationId: organization.id } },
    ]);
    expect(received.filter((message) => message.type === 'error')).toEqual([]);
    expect(sockets).toHaveLength(1);
    expect(posts.filter((body) => body.includes('apiKeyChanged'))).toEqual([]);

    // The execute button now stops the subscription: GraphiQL completes it on the socket.
    await page.locator('.graphiql-execute-button').click();
    if (!(await eventually(() => sent.some((message) => message.type === 'complete' && message.id === subscribe.id), UI_TIMEOUT))) {
      throw new Error(`stopping the subscription sent no complete message: ${await diagnosis()}`);
    }
    expect(blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    // The socket to the same origin is allowed by the page's connect-src.
    expect(await violations()).toEqual([]);
  }, BROWSER_TIMEOUT);

  /** Runs a subscription with empty headers and returns the response pane's parsed error body once it shows one. */
  async function runSubscriptionWithoutKey(opened: OpenedPage): Promise<{ body: any; sockets: SocketRecord[] }> {
    const { page, consoleErrors, pageErrors } = opened;
    await setHeaders(page, '{}');
    await setQuery(page, 'subscription { apiKeyChanged { type apiKey { name } } }');
    await page.locator('.graphiql-execute-button').click();
    const socketRecords = (): Promise<SocketRecord[]> => page.evaluate(() => (globalThis as any).__keywardSockets ?? []);
    if (!(await paneShows(page, '"errors"', UI_TIMEOUT))) {
      throw new Error(`the response pane never showed an error; it shows: ${await responseText(page)}; sockets: ${JSON.stringify(await socketRecords())}; console: ${JSON.stringify(consoleErrors)}; page errors: ${JSON.stringify(pageErrors)}`);
    }
    return { body: JSON.parse(await responseText(page)), sockets: await socketRecords() };
  }

  it('shows an error in the response pane when a subscription is run without a key, the socket being closed with 4401', async () => {
    const opened = await openGraphiql({ recordSockets: true });
    const { body, sockets } = await runSubscriptionWithoutKey(opened);
    // The page opened one graphql-ws socket, which the server closed with 4401.
    expect(sockets).toEqual([
      { url: server.url.replace(/^http:/, 'ws:'), protocol: 'graphql-transport-ws', close: { code: 4401, reason: expect.stringContaining('Unauthorized') } },
    ]);
    expect(body.data ?? null).toBeNull();
    expect(body.errors).toHaveLength(1);
    // The subscription never went over HTTP (where it would have got a 401 UNAUTHENTICATED instead).
    expect(opened.posts.filter((post) => post.includes('apiKeyChanged'))).toEqual([]);
    await opened.page.screenshot({ path: screenshotPath('graphiql-subscription-unauthorized.png') });
    expect(opened.blocked).toEqual([]);
    expect(opened.pageErrors).toEqual([]);
  }, BROWSER_TIMEOUT);

  it('says in the response pane why a subscription without a key was refused (close code 4401 or its reason)', async () => {
    const opened = await openGraphiql({ recordSockets: true });
    const { body, sockets } = await runSubscriptionWithoutKey(opened);
    expect(sockets.map((socket) => socket.close?.code)).toEqual([4401]);
    expect(body.errors).toHaveLength(1);
    // Not just the serialised CloseEvent ({ "isTrusted": true }): the user must see the code or the server's reason.
    expect(JSON.stringify(body.errors[0])).toMatch(/4401|Unauthorized/);
  }, BROWSER_TIMEOUT);
});
