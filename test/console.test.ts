import { Page } from 'playwright-core';
import type { TestServer } from './helpers/server';
import { createKey, createOrganization, createTenant, uniqueName } from './helpers/fixtures';
import { PageWatch, screenshotPath, useBrowserHarness } from './helpers/browser';
import { CHROMIUM, describeWith } from './helpers/services';
import { verifySignature, WebhookReceiver } from './helpers/webhook-receiver';

/**
 * The console at /console, driven by Debian's headless Chromium against a real server. Every
 * request to a host other than 127.0.0.1 is aborted and fails the test, as do page errors,
 * console errors and Content-Security-Policy violations. Screenshots go to test-output/.
 * The server's clock starts at the real time: the console's ranges ("last 24 hours") are the
 * browser's.
 */
const BROWSER_TIMEOUT = 90_000;
const UI_TIMEOUT = 15_000;
/** The bar for live updates: a gauge and the feed move within a second of a verifyKey. */
const LIVE_WITHIN_MS = 1_000;

const VERIFY = 'mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { valid code } }';

// page.evaluate callbacks run in the page; the project's tsconfig has no DOM lib, hence (globalThis as any).
describeWith([CHROMIUM], 'keyward console', () => {
  // Webhook receivers of these tests listen on 127.0.0.1.
  const harness = useBrowserHarness({ clockStart: new Date().toISOString(), env: { WEBHOOK_ALLOW_PRIVATE: 'true' } }, BROWSER_TIMEOUT);
  let server: TestServer;
  let base: string;
  beforeAll(() => {
    server = harness.server;
    base = server.url.replace(/\/graphql$/, '');
  });

  interface Opened extends PageWatch {
    page: Page;
  }

  async function open(viewport = { width: 1280, height: 800 }): Promise<Opened> {
    const opened = await harness.openPage(viewport, UI_TIMEOUT);
    const response = await opened.page.goto(`${base}/console`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    return opened;
  }

  /** Types the key into the password field and presses Enter; resolves once the console shows. */
  async function signIn(page: Page, key: string): Promise<void> {
    const field = page.getByLabel('API key');
    await expect(field.getAttribute('type')).resolves.toBe('password');
    await field.fill(key);
    await field.press('Enter');
    await page.locator('.topbar').waitFor();
  }

  async function expectClean(opened: Opened): Promise<void> {
    expect(opened.blocked).toEqual([]);
    expect(opened.pageErrors).toEqual([]);
    expect(opened.consoleErrors).toEqual([]);
    expect(await opened.violations()).toEqual([]);
  }

  /** How many places on the page show `text`: form field values and text nodes. */
  async function placesShowing(page: Page, text: string): Promise<number> {
    return page.evaluate((wanted) => {
      const document = (globalThis as any).document;
      const fields = [...document.querySelectorAll('input, textarea')].filter((field: any) => String(field.value).includes(wanted)).length;
      const walker = document.createTreeWalker(document.body, 4 /* NodeFilter.SHOW_TEXT */);
      let texts = 0;
      for (let node = walker.nextNode(); node; node = walker.nextNode()) if (String(node.nodeValue).includes(wanted)) texts += 1;
      return fields + texts;
    }, text);
  }

  async function goTo(page: Page, label: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: label, exact: true }).click();
    await page.getByRole('heading', { level: 1 }).first().waitFor();
  }

  async function selectOrganization(page: Page, name: string): Promise<void> {
    await page.getByLabel('Organization').selectOption({ label: name });
  }

  /** Everything the page holds as text or form values, plus both web storages. */
  async function pageText(page: Page): Promise<{ text: string; storage: { session: string; local: string } }> {
    return page.evaluate(() => {
      const document = (globalThis as any).document;
      const values = [...document.querySelectorAll('input, textarea')].map((input: any) => input.value).join('\n');
      const scope = globalThis as any;
      return {
        text: `${document.documentElement.outerHTML}\n${values}`,
        storage: { session: JSON.stringify({ ...scope.sessionStorage }), local: JSON.stringify({ ...scope.localStorage }) },
      };
    });
  }

  it('is served from this server with the same security headers as GraphiQL; / redirects to it', async () => {
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/console');
    const consolePage = await fetch(`${base}/console`);
    const graphiql = await fetch(server.url, { headers: { accept: 'text/html' } });
    for (const response of [consolePage, graphiql]) {
      expect(response.status).toBe(200);
      const policy = response.headers.get('content-security-policy') ?? '';
      expect(policy).toContain("default-src 'none'");
      expect(policy).toContain("script-src 'self'");
      expect(policy).toMatch(/connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+/);
      expect(policy).toContain("frame-ancestors 'none'");
      expect(policy).not.toContain('unsafe-inline');
      expect(policy).not.toContain('unsafe-eval');
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    }
    // The page names only local assets.
    const html = await consolePage.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toMatch(/src="\/console\/assets\/main-[A-Z0-9]+\.js"/);
  });

  it('signs in with the platform key (password field, Enter), shows every organization, and signing out forgets the key', async () => {
    const acme = await createOrganization(server, { name: uniqueName('Acme') });
    const globex = await createOrganization(server, { name: uniqueName('Globex') });
    const opened = await open();
    const { page } = opened;
    await signIn(page, server.adminKey);

    const nav = page.getByRole('navigation', { name: 'Console' });
    await expect(nav.getByRole('link').allTextContents()).resolves.toEqual(['Overview', 'Keys', 'Usage', 'Sessions', 'Audit log', 'Webhooks', 'Organizations']);
    const organizations = await page.getByLabel('Organization').locator('option').allTextContents();
    expect(organizations).toEqual(expect.arrayContaining(['Platform', acme.name, globex.name]));
    await goTo(page, 'Organizations');
    await page.locator(`tr[data-organization-id="${globex.id}"]`).waitFor();

    // The key is in this tab's sessionStorage only: not in the URL, not in localStorage.
    const { storage } = await pageText(page);
    expect(storage.session).toContain(server.adminKey);
    expect(storage.local).not.toContain(server.adminKey);
    expect(page.url()).not.toContain(server.adminKey);
    await page.screenshot({ path: screenshotPath('console-platform-organizations.png'), fullPage: true });

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    const after = await pageText(page);
    expect(after.storage.session).not.toContain(server.adminKey);
    expect(after.text).not.toContain(server.adminKey);
    // A reload stays signed out.
    await page.reload();
    await page.getByLabel('API key').waitFor();
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it("signs in with a tenant ADMIN key and shows only that organization's keys and no platform pages", async () => {
    const tenant = await createTenant(server, { name: uniqueName('Tenant') });
    const other = await createTenant(server, { name: uniqueName('Other') });
    const ownKey = await createKey(server, { organizationId: tenant.organizationId, name: uniqueName('own key') });
    const foreignKey = await createKey(server, { organizationId: other.organizationId, name: uniqueName('foreign key') });
    const opened = await open();
    const { page } = opened;
    await signIn(page, tenant.key.secret);

    const nav = page.getByRole('navigation', { name: 'Console' });
    await expect(nav.getByRole('link').allTextContents()).resolves.toEqual(['Overview', 'Keys', 'Usage', 'Sessions', 'Audit log', 'Webhooks']);
    await expect(page.getByLabel('Organization').count()).resolves.toBe(0);
    const organization = await page.getByTestId('organization-name').textContent();
    const tenantName = (await server.gql('query($id: ID) { organization(id: $id) { name } }', { id: tenant.organizationId })).body.data.organization.name;
    expect(organization).toBe(tenantName);

    await goTo(page, 'Keys');
    await page.locator(`tr[data-key-id="${ownKey.id}"]`).waitFor();
    const rows = await page.locator('tbody tr').allTextContents();
    expect(rows.join('\n')).toContain(ownKey.apiKey.name);
    expect(rows.join('\n')).not.toContain(foreignKey.apiKey.name);
    // A platform page asked for by hand is not there: the overview shows instead.
    await page.goto(`${base}/console#/organizations`);
    await page.getByRole('heading', { level: 1, name: tenantName }).waitFor();
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it("refuses a bad key on the sign-in form with the server's message and keeps nothing", async () => {
    const opened = await open();
    const { page } = opened;
    const field = page.getByLabel('API key');
    await field.fill('kw_live_not-a-key');
    await field.press('Enter');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toContain('INVALID_API_KEY');
    expect((await pageText(page)).storage.session).toBe('{}');
    // The failed sign-in shows up in the browser console as the 401 it was.
    opened.consoleErrors.splice(0);
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it("shows the server's reason when the signed-in key may not do something", async () => {
    const tenant = await createTenant(server, { name: uniqueName('Writer org') });
    const writer = await createKey(server, { organizationId: tenant.organizationId, preset: 'WRITE' });
    const opened = await open();
    const { page } = opened;
    await signIn(page, writer.secret);
    await goTo(page, 'Keys');
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('wants admin');
    await dialog.getByLabel('Preset').selectOption('ADMIN');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    const notice = dialog.getByRole('alert');
    await notice.waitFor();
    const text = await notice.textContent();
    expect(text).toContain('Your key may not do this');
    expect(text).toMatch(/INSUFFICIENT_SCOPE|FORBIDDEN/);
    const keys = (await server.gql('query($filter: ApiKeyFilter) { apiKeys(filter: $filter) { nodes { name } } }', { filter: { organizationId: tenant.organizationId } })).body.data.apiKeys.nodes;
    expect(keys.map((key: { name: string }) => key.name)).not.toContain('wants admin');
    // The refusal is a 403 the browser logs; nothing else went wrong.
    expect(opened.consoleErrors.every((message) => message.includes('403'))).toBe(true);
    opened.consoleErrors.splice(0);
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it('creates a key and shows its secret exactly once, then revokes it', async () => {
    const organization = await createOrganization(server, { name: uniqueName('Keys org') });
    const opened = await open();
    const { page } = opened;
    await signIn(page, server.adminKey);
    await selectOrganization(page, organization.name);
    await goTo(page, 'Keys');
    await page.getByText('No keys yet — create one.').waitFor();

    await page.getByRole('button', { name: 'Create key' }).click();
    let dialog = page.getByRole('dialog');
    const name = uniqueName('console key');
    await dialog.getByLabel('Name').fill(name);
    await dialog.getByLabel('Preset').selectOption('INFERENCE');
    await dialog.getByLabel('Rate limits').fill('per-minute:30:60');
    await dialog.getByRole('button', { name: 'Create key' }).click();

    dialog = page.getByRole('dialog', { name: 'Key created' });
    const secret = await dialog.getByLabel('Secret').inputValue();
    expect(secret).toMatch(/^kw_live_[0-9A-Za-z]{38}$/);
    await expect(dialog.getByRole('button', { name: 'Copy' }).isVisible()).resolves.toBe(true);
    expect(await placesShowing(page, secret)).toBe(1);
    const shown = await pageText(page);
    expect(shown.storage.session).not.toContain(secret);
    expect(shown.storage.local).not.toContain(secret);
    await page.screenshot({ path: screenshotPath('console-secret-once.png') });
    await dialog.getByRole('button', { name: 'I have stored it' }).click();
    await dialog.waitFor({ state: 'detached' });

    // Gone from the page for good, and it works.
    const row = page.locator('tbody tr', { hasText: name });
    await row.waitFor();
    expect(await placesShowing(page, secret)).toBe(0);
    expect((await pageText(page)).text).not.toContain(secret);
    const verified = await server.gql(VERIFY, { input: { key: secret, requiredScopes: ['inference:run'] } });
    expect(verified.body.data.verifyKey).toEqual({ valid: true, code: 'VALID' });

    await row.getByRole('button', { name: `Manage ${name}` }).click();
    dialog = page.getByRole('dialog', { name: `Key: ${name}` });
    await dialog.getByRole('button', { name: 'Revoke', exact: true }).click();
    await dialog.getByLabel('Reason').fill('revoked from the console test');
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    await dialog.locator('.badge-revoked').waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await row.locator('.badge-revoked').waitFor();
    const refused = await server.gql(VERIFY, { input: { key: secret } });
    expect(refused.body.data.verifyKey).toEqual({ valid: false, code: 'REVOKED' });
    expect((await pageText(page)).text).not.toContain(secret);
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it('moves the quota gauge and the rate-limit gauge and adds to the event feed within a second of verifyKey calls made from outside', async () => {
    const organization = await createOrganization(server, { name: uniqueName('Live org'), quotas: [{ meter: 'REQUESTS', period: 'MONTH', limit: 100 }] });
    const key = await createKey(server, { organizationId: organization.id, name: uniqueName('live key'), preset: 'INFERENCE', rateLimits: [{ name: 'per-minute', limit: 60, windowSeconds: 60 }] });
    const opened = await open();
    const { page } = opened;
    await signIn(page, server.adminKey);
    await selectOrganization(page, organization.name);
    await page.getByRole('heading', { level: 1, name: organization.name }).waitFor();

    const quotaGauge = page.getByRole('meter', { name: 'REQUESTS / MONTH' });
    await expect(quotaGauge.getAttribute('aria-valuetext')).resolves.toContain('0 of 100 used');
    // The key's window gauge appears with the subscription's first event: the subscriptions are in place.
    const windowGauge = page.locator(`[data-key-id="${key.id}"]`).getByRole('meter', { name: 'per-minute' });
    await windowGauge.waitFor();
    await page.getByText('Live', { exact: true }).waitFor();
    await page.screenshot({ path: screenshotPath('console-overview-before.png'), fullPage: true });

    const delays: number[] = [];
    for (let call = 1; call <= 3; call += 1) {
      const verified = await server.gql(VERIFY, { input: { key: key.secret } });
      expect(verified.body.data.verifyKey).toEqual({ valid: true, code: 'VALID' });
      const answered = Date.now();
      await page.waitForFunction(
        (used) => [...(globalThis as any).document.querySelectorAll('[role="meter"]')].some((meter: any) => meter.getAttribute('aria-label') === 'REQUESTS / MONTH' && meter.getAttribute('aria-valuetext').startsWith(`${used} of 100 used`)),
        call,
        { timeout: LIVE_WITHIN_MS },
      ).catch(async () => {
        throw new Error(`the quota gauge did not show ${call} of 100 within ${LIVE_WITHIN_MS} ms; it shows ${await quotaGauge.getAttribute('aria-valuetext')}`);
      });
      await page.getByTestId('event-feed').getByText(`Quota REQUESTS / MONTH: ${call} of 100 used`).waitFor({ timeout: Math.max(1, LIVE_WITHIN_MS - (Date.now() - answered)) });
      delays.push(Date.now() - answered);
    }
    expect(delays.every((delay) => delay <= LIVE_WITHIN_MS)).toBe(true);
    await expect(windowGauge.getAttribute('aria-valuetext')).resolves.toContain('57 of 60 left');
    const feed = await page.getByTestId('event-feed').locator('li').allTextContents();
    // Every event is kept, newest first, each with its time.
    expect(feed.filter((line) => line.includes('Quota REQUESTS / MONTH'))).toHaveLength(3);
    expect(feed.some((line) => line.includes('window per-minute: 57 of 60 left'))).toBe(true);
    expect(await page.getByTestId('event-feed').locator('li time').count()).toBe(feed.length);
    // The requests-per-minute line counted them.
    await page.getByRole('figure').filter({ hasText: 'Requests per minute' }).locator('summary').click();
    const perMinute = await page.getByRole('figure').filter({ hasText: 'Requests per minute' }).locator('.chart-data tbody tr td:nth-child(2)').allTextContents();
    expect(perMinute.map(Number).reduce((sum, value) => sum + value, 0)).toBe(3);
    await page.screenshot({ path: screenshotPath('console-overview-live.png'), fullPage: true });
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it('shows what a reservation holds on the TOKENS gauge, and the settled usage once it is settled', async () => {
    const organization = await createOrganization(server, { name: uniqueName('Budget org'), quotas: [{ meter: 'TOKENS', period: 'MONTH', limit: 1000 }] });
    const key = await createKey(server, { organizationId: organization.id, name: uniqueName('budget key'), preset: 'INFERENCE', rateLimits: [] });
    const opened = await open();
    const { page } = opened;
    await signIn(page, server.adminKey);
    await selectOrganization(page, organization.name);
    const gauge = page.getByRole('meter', { name: 'TOKENS / MONTH' });
    await expect(gauge.getAttribute('aria-valuetext')).resolves.toContain('0 of 1,000 used');
    await page.getByText('Live', { exact: true }).waitFor();

    const reserved = await server.gql('mutation($input: ReserveUsageInput!) { reserveUsage(input: $input) { id } }', {
      input: { key: key.secret, tokens: 300, idempotencyKey: uniqueName('console-reserve') },
    });
    const reservationId = reserved.body.data.reserveUsage.id;
    await page.waitForFunction(
      () => [...(globalThis as any).document.querySelectorAll('[role="meter"]')].some((meter: any) => meter.getAttribute('aria-label') === 'TOKENS / MONTH' && meter.getAttribute('aria-valuetext').includes('0 of 1,000 used, 300 held')),
      undefined, { timeout: LIVE_WITHIN_MS },
    );
    await server.gql('mutation($input: SettleUsageInput!) { settleUsage(input: $input) { recorded } }', { input: { reservationId, tokens: 120 } });
    await page.waitForFunction(
      () => [...(globalThis as any).document.querySelectorAll('[role="meter"]')].some((meter: any) => meter.getAttribute('aria-label') === 'TOKENS / MONTH' && meter.getAttribute('aria-valuetext').startsWith('120 of 1,000 used') && !meter.getAttribute('aria-valuetext').includes('held')),
      undefined, { timeout: LIVE_WITHIN_MS },
    );
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it('renders usage charts, breakdowns and verification outcomes from recorded usage', async () => {
    const tenant = await createTenant(server, { name: uniqueName('Usage org') });
    const key = await createKey(server, { organizationId: tenant.organizationId, name: uniqueName('usage key'), preset: 'INFERENCE', rateLimits: [] });
    server.clock.set(new Date().toISOString());
    const record = await server.gql('mutation($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }', {
      input: { apiKeyId: key.id, operation: 'POST /v1/chat', tokens: 1234, costUsd: 0.5, idempotencyKey: uniqueName('idem') },
    });
    expect(record.body.data.recordUsage.recorded).toBe(true);
    for (let i = 0; i < 2; i += 1) await server.gql(VERIFY, { input: { key: key.secret } });
    await server.gql(VERIFY, { input: { key: key.secret, requiredScopes: ['keys:write'] } });

    const opened = await open();
    const { page } = opened;
    await signIn(page, tenant.key.secret);
    await goTo(page, 'Usage');
    const tokens = page.locator('.totals div', { hasText: 'Tokens' }).locator('dd');
    await expect(tokens.textContent()).resolves.toBe('1,234');

    const chart = page.getByRole('figure').filter({ hasText: 'Tokens per hour' });
    const canvas = chart.locator('canvas');
    await canvas.first().waitFor();
    const size = await canvas.first().boundingBox();
    expect(size!.width).toBeGreaterThan(200);
    await chart.locator('summary').click();
    await expect(chart.locator('.chart-data tbody').textContent()).resolves.toContain('1,234');

    const outcomes = page.getByRole('region', { name: 'Verification outcomes' });
    await expect(outcomes.locator('.outcome-totals').textContent()).resolves.toMatch(/VALID\s*2.*INSUFFICIENT_SCOPE\s*1/);
    await outcomes.getByRole('figure').waitFor();
    await expect(page.getByRole('region', { name: 'By operation' }).textContent()).resolves.toContain('POST /v1/chat');
    await page.screenshot({ path: screenshotPath('console-usage.png'), fullPage: true });
    await expectClean(opened);
  }, BROWSER_TIMEOUT);

  it('adds a webhook endpoint showing its signing secret once, sends a test, and retries the failed delivery by hand', async () => {
    const hooks = await WebhookReceiver.start();
    try {
      const tenant = await createTenant(server, { name: uniqueName('Hooks org') });
      hooks.answer(500);
      const opened = await open();
      const { page } = opened;
      await signIn(page, tenant.key.secret);
      await goTo(page, 'Webhooks');
      await page.getByText('No endpoints yet — add one to hear of quotas, keys and sessions.').waitFor();

      await page.getByRole('button', { name: 'Add endpoint' }).click();
      let dialog = page.getByRole('dialog');
      await dialog.getByLabel('URL').fill(hooks.url());
      await dialog.getByLabel('Description').fill('billing backend');
      await dialog.getByLabel('Key revoked').check();
      await dialog.getByRole('button', { name: 'Add endpoint' }).click();

      dialog = page.getByRole('dialog', { name: 'Endpoint created' });
      const secret = await dialog.getByLabel('Secret').inputValue();
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(await placesShowing(page, secret)).toBe(1);
      const shown = await pageText(page);
      expect(shown.storage.session).not.toContain(secret);
      expect(shown.storage.local).not.toContain(secret);
      await page.screenshot({ path: screenshotPath('console-webhook-secret-once.png') });
      await dialog.getByRole('button', { name: 'I have stored it' }).click();
      await dialog.waitFor({ state: 'detached' });
      const row = page.locator('tbody tr', { hasText: hooks.url() });
      await row.waitFor();
      await expect(row.textContent()).resolves.toContain('QUOTA_THRESHOLD, QUOTA_EXHAUSTED, KEY_REVOKED');
      expect(await placesShowing(page, secret)).toBe(0);

      await row.getByRole('button', { name: `Manage ${hooks.url()}` }).click();
      dialog = page.getByRole('dialog', { name: `Endpoint: ${hooks.url()}` });
      await dialog.getByRole('button', { name: 'Send test' }).click();
      const delivery = dialog.locator('tbody tr').first();
      await delivery.getByText('HTTP 500').waitFor();
      await delivery.locator('.badge-pending').waitFor();
      await delivery.getByRole('button', { name: 'Retry' }).click();
      await delivery.locator('.badge-succeeded').waitFor();
      expect(hooks.received.map((request) => request.answeredWith)).toEqual([500, 200]);
      expect(hooks.received[1].headers['webhook-id']).toBe(hooks.received[0].headers['webhook-id']);
      expect(verifySignature(secret, hooks.received[1])).toEqual(hooks.received[1].json);
      await page.screenshot({ path: screenshotPath('console-webhook-deliveries.png'), fullPage: true });

      await dialog.getByRole('button', { name: 'Disable' }).click();
      await dialog.locator('.badge-disabled').waitFor();
      await dialog.getByRole('button', { name: 'Close' }).click();
      await row.locator('.badge-disabled').waitFor();
      expect((await pageText(page)).text).not.toContain(secret);
      await expectClean(opened);
    } finally {
      await hooks.close();
    }
  }, BROWSER_TIMEOUT);

  for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]] as const) {
    it(`fits a ${viewport.width}×${viewport.height} screen on every page without scrolling sideways, and is reachable by keyboard`, async () => {
      const opened = await open(viewport);
      const { page } = opened;
      // The key field has focus on arrival; Tab moves on to the button.
      await expect(page.evaluate(() => (globalThis as any).document.activeElement?.id)).resolves.toBe('api-key');
      await page.keyboard.type(server.adminKey);
      await page.keyboard.press('Enter');
      await page.locator('.topbar').waitFor();
      for (const label of ['Overview', 'Keys', 'Usage', 'Sessions', 'Audit log', 'Webhooks', 'Organizations']) {
        await goTo(page, label);
        await page.waitForLoadState('networkidle');
        const overflow = await page.evaluate(() => {
          const document = (globalThis as any).document;
          const width = (globalThis as any).innerWidth;
          const wide = [...document.querySelectorAll('body *')]
            .filter((element: any) => element.getBoundingClientRect().right > width + 1 && !element.closest('.table-scroll, .feed'))
            .map((element: any) => `${element.tagName.toLowerCase()}.${element.className}`);
          return { by: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
        });
        expect({ page: label, overflow: Math.max(0, overflow.by), wide: overflow.wide }).toEqual({ page: label, overflow: 0, wide: [] });
        await page.screenshot({ path: screenshotPath(`console-${name}-${label.toLowerCase().replace(/\s+/g, '-')}.png`), fullPage: true });
      }
      // Keyboard: from the top of a freshly loaded page (still signed in), Tab reaches the navigation's links.
      await page.reload();
      await page.locator('.topbar').waitFor();
      const reached: string[] = [];
      for (let press = 0; press < 8; press += 1) {
        await page.keyboard.press('Tab');
        reached.push(await page.evaluate(() => (globalThis as any).document.activeElement?.textContent ?? ''));
      }
      expect(reached).toEqual(expect.arrayContaining(['Keys', 'Usage']));
      await expectClean(opened);
    }, BROWSER_TIMEOUT);
  }
});
