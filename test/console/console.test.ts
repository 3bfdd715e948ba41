/**
 * The operator console in Debian's Chromium, driven by playwright-core, against a gateway
 * on a real socket: sign-in, keys, load/unload, weights saved with If-Match and a 412 shown,
 * statistics and the latency chart, a sequence, the one-request form; no request to another
 * origin, no console error, the token in no URL and not in localStorage; the CSP header.
 * CONSOLE_SCREENSHOTS=<dir> saves a screenshot of every page there.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { CONSOLE_CSP } from '../../src/http/console.ts';
import { AUTH, buildGateway, infer, scaleModel, scaleRequest, TOKEN } from '../helpers/gateway.ts';
import { eventually, findProgram, skipWithout } from '../helpers/programs.ts';

const files = { 'one.onnx': scaleModel(1), 'two.onnx': scaleModel(2), 'broken.onnx': 'not a model' };
const models = [
  { name: 'one', path: 'one.onnx', batching: false }, { name: 'two', path: 'two.onnx', batching: false },
  { name: 'broken', path: 'broken.onnx' },
];
const routes = [
  // Room for every copy: the page is checked for 40 sent and none dropped, however slowly the copies run.
  { key: 'ab', split: { variants: [{ target: 'one', weight: 50 }, { target: 'two', weight: 50 }], stickyHeader: 'x-user-id', shadow: { target: 'two', percent: 100, maxInFlight: 64 } } },
  {
    key: 'guarded',
    split: { variants: [{ target: 'one', weight: 100 }, { target: 'two', weight: 0 }], rollout: { candidate: 'two', steps: [10, 50, 100], stepMs: 600_000, minRequests: 100, maxErrorRate: 0.05 } },
  },
  { key: 'chain', sequence: { steps: [{ name: 'first', target: 'one' }, { name: 'second', target: 'two', inputs: { x: 'first.y' } }] } },
  { key: 'both', ensemble: { members: [{ target: 'one' }, { target: 'two', name: 'double', required: false }], combine: { op: 'mean', output: 'y' } } },
  { key: 'tiered', cascade: { steps: [{ target: 'one', accept: { output: 'y', min: 1 } }, { target: 'two' }] } },
];
const screenshots = process.env.CONSOLE_SCREENSHOTS;
const READER = 'console-reader-token-5678';

interface Session {
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
}

t.test('the console in a browser', { skip: skipWithout('chromium') }, async (t) => {
  const { app } = await buildGateway(t, files, {
    models, routes, registry: { maxResidentModels: 2, loadFailureBackoffMs: 0 },
    admin: { token: TOKEN, tokens: [{ token: `sha256:${createHash('sha256').update(READER).digest('hex')}`, role: 'read' }] },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const browser: Browser = await chromium.launch({ executablePath: findProgram('chromium') as string, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const sessions: Session[] = [];
  const open = async (where: string): Promise<Session> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const session: Session = { page, requests: [], errors: [] };
    page.on('request', (request) => session.requests.push(request.url()));
    page.on('console', (message) => { if (message.type() === 'error') session.errors.push(message.text()); });
    page.on('pageerror', (error) => session.errors.push(error.message));
    await page.goto(`${origin}${where}`);
    sessions.push(session);
    return session;
  };
  const shot = async (page: Page, name: string) => {
    if (screenshots !== undefined) await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
  };
  const signIn = async (page: Page, token = TOKEN) => {
    await page.getByLabel('Admin token').fill(token);
    await page.getByLabel('Admin token').press('Enter');
  };
  const route = async (key: string) => (await app.inject({ url: `/admin/routes/${key}`, headers: AUTH })).json();

  await t.test('a wrong token shows the server\'s 401 message and no data', async (t) => {
    const { page } = await open('/console');
    await shot(page, 'sign-in');
    await signIn(page, 'not-the-token');
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /Admin token is not valid/);
    t.equal(await page.locator('table').count(), 0, 'no data shown');
    t.equal(await page.evaluate(() => sessionStorage.length), 0, 'the wrong token is not kept');
    await shot(page, 'sign-in-wrong-token');
  });

  await t.test('keys: every key with its kind and state; load and unload', async (t) => {
    const { page } = await open('/console');
    await signIn(page);
    await page.getByRole('heading', { name: 'Keys' }).waitFor();
    await page.getByRole('row', { name: /^ab split/ }).waitFor();
    t.match(await page.getByRole('row', { name: /^chain/ }).textContent(), /sequence.*one → two/);
    t.match(await page.getByRole('row', { name: /^one model/ }).textContent(), /not loaded/);
    await page.getByRole('button', { name: 'Load one', exact: true }).click();
    await page.getByRole('row', { name: /^one model/ }).getByText('resident').waitFor();
    t.equal(app.registry.status().find((model) => model.name === 'one')?.state, 'resident', 'loaded through the console');
    t.match(await page.locator('.capacity').textContent(), /Resident models: 1 of 2/);
    await shot(page, 'keys-loaded');
    await page.getByRole('button', { name: 'Unload one', exact: true }).click();
    await page.getByRole('row', { name: /^one model/ }).getByText('not loaded').waitFor();
    t.equal(app.registry.status().find((model) => model.name === 'one')?.state, 'unloaded');
    await page.getByRole('button', { name: 'Load broken', exact: true }).click();
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /Load broken: Model 'broken' failed to load/);
    await page.getByRole('row', { name: /^broken model/ }).getByText(/failed: /).waitFor();
    await shot(page, 'keys-failed-load');
  });

  await t.test('a read-only token: everything shown, every control disabled, nothing changed', async (t) => {
    const { page } = await open('/console');
    await signIn(page, READER);
    await page.getByRole('heading', { name: 'Keys' }).waitFor();
    await page.getByText('read-only', { exact: true }).waitFor();
    await page.getByRole('row', { name: /^one model/ }).waitFor();
    t.ok(await page.getByRole('button', { name: 'Load one', exact: true }).isDisabled(), 'Load is disabled');
    await page.goto(`${origin}/console/keys/ab`);
    await page.getByRole('heading', { name: /^ab/ }).waitFor();
    t.ok(await page.getByRole('button', { name: 'Save' }).isDisabled(), 'Save is disabled');
    t.ok(await page.getByLabel('one').evaluate((input) => (input as unknown as { readOnly: boolean }).readOnly), 'weights are read-only');
    await shot(page, 'read-only');
  });

  await t.test('a split: weights saved with If-Match, a conflict shown and nothing overwritten, statistics and chart', async (t) => {
    // A deep link: the sign-in comes first and returns to it.
    const { page } = await open('/console/keys/ab');
    await signIn(page);
    await page.getByRole('heading', { name: /^ab/ }).waitFor();
    t.equal(new URL(page.url()).pathname, '/console/keys/ab');
    await page.getByLabel('one').fill('80');
    await page.getByLabel('two').fill('20');
    // The keyboard alone: Enter in a weight saves.
    await page.getByLabel('two').press('Enter');
    await page.getByRole('status').waitFor();
    t.match(await page.getByRole('status').textContent(), /Saved: version \d+/);
    t.same((await route('ab')).split.variants.map((variant: { weight: number }) => variant.weight), [80, 20], 'the API shows the new weights');

    // Someone else changes the route; this page still holds the old version.
    const elsewhere = await app.inject({ method: 'PATCH', url: '/admin/routes/ab', headers: AUTH, payload: { split: { variants: [{ target: 'one', weight: 30 }, { target: 'two', weight: 70 }] } } });
    t.equal(elsewhere.statusCode, 200);
    await page.getByLabel('one').fill('55');
    await page.getByLabel('two').fill('45');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /changed elsewhere.*nothing was saved/);
    t.same((await route('ab')).split.variants.map((variant: { weight: number }) => variant.weight), [30, 70], 'nothing overwritten');
    t.equal(await page.getByLabel('one').inputValue(), '30', 'the current weights are shown');
    t.equal(await page.getByLabel('two').inputValue(), '70');
    await shot(page, 'split-conflict');

    for (let i = 0; i < 40; i++) t.equal((await infer(app, 'ab', scaleRequest(1), { 'x-user-id': `u${i}` })).statusCode, 200);
    await page.locator('table.stats tbody tr').first().waitFor();
    // Read from here, not evaluated in the page: its CSP forbids string evaluation, rightly.
    await eventually('the statistics count the 40 requests', async () => (await page.locator('table.stats tbody tr td:nth-child(2)').allTextContents()).reduce((sum, cell) => sum + Number(cell), 0) === 40, 15_000);
    // The charts plot the gateway's history: each variant's p95 per 10 s bucket, its error rate below.
    const latencyChart = page.getByRole('img', { name: /^p95 latency in ms of each variant, last 10 minutes, per 10 s/ });
    const errorChart = page.getByRole('img', { name: /^Share of failed requests of each variant in percent/ });
    await eventually('the latency chart marks a bucket of each variant', async () => await latencyChart.locator('circle.mark').count() >= 2, 15_000);
    t.equal(await latencyChart.locator('polyline').count(), 2, 'a line per variant');
    t.equal(await errorChart.locator('polyline').count(), 2, 'and an error-rate line per variant');
    const history = (await app.inject({ url: '/admin/routes/ab/stats/history?window=10s&last=60', headers: AUTH })).json() as { variants: Array<{ target: string; buckets: Array<{ requests: number; latencyMs: { p95: number | null } }> }> };
    const withLatency = history.variants.flatMap((variant) => variant.buckets.filter((bucket) => bucket.latencyMs.p95 !== null)).length;
    t.equal(await latencyChart.locator('circle.mark').count(), withLatency, 'a mark per bucket with requests, as the API answers');
    const titles = await latencyChart.locator('circle.mark title').allTextContents();
    t.ok(titles.every((title) => /^(one|two) p95: \d+(\.\d+)? ms at /.test(title)), `each mark says its figure (${titles[0]})`);
    await page.getByLabel('Window').selectOption({ label: 'Last hour, per minute' });
    await page.getByRole('img', { name: /^p95 latency in ms of each variant, last hour, per minute/ }).waitFor();
    t.ok(await page.getByRole('img', { name: /^p95 latency in ms of each variant, last hour, per minute/ }).locator('circle.mark').count() >= 2, 'the minute buckets have the requests too');
    t.match(await page.locator('table.stats').textContent(), /not yet distinguishable from one; the interval includes zero/, 'the difference is said in words');
    t.equal(await page.locator('svg.interval').count(), 2, 'an interval drawn per variant');
    // Every request is mirrored to two: it agrees with itself, never with one (y = x against y = 2x).
    await eventually('the shadow line shows 40 compared', async () => /Shadow two: 40 sent, 0 dropped, 0 errors; agreement \d+\.\d% \(95% interval \d+\.\d% to \d+\.\d%\) of 40 compared/.test(await page.locator('main').textContent() ?? ''), 15_000);
    const agreement = await app.inject({ url: '/admin/routes/ab/stats', headers: AUTH });
    const { sinceChange } = agreement.json();
    t.equal(sinceChange.shadow.agreement, sinceChange.variants[1].requests / 40, 'the agreement shown is the share two answered');
    t.ok(await page.getByRole('img', { name: /one error rate 0\.00%, 95% interval/ }).isVisible());
    await shot(page, 'split-stats');
  });

  await t.test('a rollout: its state and steps, paused, resumed and aborted from the page', async (t) => {
    const { page } = await open('/console/keys/guarded');
    await signIn(page);
    await page.getByText(/Candidate two: progressing, step 1 of 3 \(10% of traffic\)/).waitFor();
    t.match(await page.getByText(/^Steps:/).textContent(), /10% → 50% → 100%/);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByText(/Candidate two: paused/).waitFor();
    t.equal((await route('guarded')).split.rollout.status.state, 'paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByText(/Candidate two: progressing/).waitFor();
    await page.getByRole('button', { name: 'Abort' }).click();
    await page.getByText(/Candidate two: rolled back.*: aborted/).waitFor();
    t.same((await route('guarded')).split.rollout.status.state, 'rolled_back');
    await shot(page, 'rollout');
  });

  await t.test('a sequence: its steps and their mapping', async (t) => {
    const { page } = await open('/console/keys/chain');
    await signIn(page);
    await page.getByRole('list', { name: 'Steps in order' }).waitFor();
    const text = await page.getByRole('list', { name: 'Steps in order' }).textContent();
    t.match(text, /request.*first.*target one.*second.*target two.*x ← first\.y/s);
    await shot(page, 'sequence');
  });

  await t.test('an ensemble and a cascade: their members and steps with their statistics', async (t) => {
    for (const x of [0.5, 2, 3]) t.equal((await app.inject({ method: 'POST', url: '/v2/models/tiered/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [x] }] } })).statusCode, 200);
    t.equal((await app.inject({ method: 'POST', url: '/v2/models/both/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [1] }] } })).statusCode, 200);
    const { page } = await open('/console/keys/both');
    await signIn(page);
    await page.getByRole('heading', { name: 'Members' }).waitFor();
    await page.getByRole('row', { name: /^double/ }).getByText('1', { exact: true }).first().waitFor();
    t.match(await page.getByRole('row', { name: /^double/ }).textContent(), /double\s*two\s*optional\s*1\s*0/);
    t.match(await page.getByText(/^Combines/).textContent(), /y by mean into y/);
    await shot(page, 'ensemble');
    const cascade = await open('/console/keys/tiered');
    await signIn(cascade.page);
    await cascade.page.getByRole('heading', { name: 'Steps' }).waitFor();
    await cascade.page.getByRole('row', { name: /^0/ }).getByText(/2 \(66\.7%\)/).waitFor();
    t.match(await cascade.page.getByRole('row', { name: /^0/ }).textContent(), /0\s*one\s*rows whose largest y is ≥ 1\s*3\s*0.*3\s*2 \(66\.7%\)/);
  });

  await t.test('a model: inputs and outputs, one request sent from the form', async (t) => {
    const { page } = await open('/console/keys/two');
    await signIn(page);
    await page.getByRole('heading', { name: 'Try a request' }).waitFor();
    t.match(await page.locator('table').first().textContent(), /x.*FP32.*\[-1, 1\]/);
    await page.getByLabel('Data of x').fill('[2.5]');
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.getByLabel('Answer').waitFor();
    const answer = JSON.parse(await page.getByLabel('Answer').textContent() as string);
    t.same(answer.outputs[0].data, [5], 'y = 2 x');
    await page.getByLabel('Data of x').fill('[1, 2');
    await page.getByRole('button', { name: 'Send request' }).click();
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /x: shape and data must be JSON arrays/);
    await shot(page, 'model');
  });

  await t.test('names from the address bar are shown as text, never as HTML', async (t) => {
    const { page } = await open(`/console/keys/${encodeURIComponent('<img src=x onerror=alert(1)>')}`);
    await signIn(page);
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /under the key '<img src=x onerror=alert\(1\)>'/);
    t.equal(await page.locator('main img').count(), 0, 'no element made from the name');
  });

  await t.test('the session: no other origin, no console error, the token in no URL and not in localStorage', async (t) => {
    for (const session of sessions) {
      for (const url of session.requests) {
        if (new URL(url).origin !== origin) t.fail(`a request to another origin: ${url}`);
        if (url.includes(TOKEN)) t.fail(`the token in a URL: ${url}`);
      }
      t.same(session.errors.filter((error) => !/the server responded with a status of (401|404|412|503)/.test(error)), [], 'no console error but the failed calls the tests asked for');
      t.equal(await session.page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    }
    t.ok(sessions.some((session) => session.requests.some((url) => url.endsWith('/admin/models'))), 'the admin API was called');
  });

  await t.test('security headers on console responses, none on the data plane', async (t) => {
    for (const url of ['/console', '/console/keys/ab', '/console/assets/app.js', '/console/assets/style.css']) {
      const response = await fetch(`${origin}${url}`);
      t.equal(response.status, 200, url);
      t.equal(response.headers.get('content-security-policy'), CONSOLE_CSP, url);
      t.match(response.headers.get('content-security-policy'), /default-src 'self'.*frame-ancestors 'none'/);
      t.notMatch(response.headers.get('content-security-policy'), /unsafe-inline|unsafe-eval/);
      t.equal(response.headers.get('x-content-type-options'), 'nosniff');
      t.equal(response.headers.get('referrer-policy'), 'no-referrer');
    }
    const page = await (await fetch(`${origin}/console`)).text();
    t.notMatch(page, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script');
    t.notMatch(page, /style=/, 'no inline style');
    const v2 = await fetch(`${origin}/v2/health/ready`);
    t.equal(v2.headers.get('content-security-policy'), null, 'the data plane pays nothing');
  });
});

t.test('console pages load without a token and hold no data', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes });
  const page = await app.inject({ url: '/console/keys/ab' });
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.notMatch(page.body, /weight|variants|one\.onnx/, 'no route or model data in the page');
  t.equal((await app.inject({ url: '/console/assets/index.html' })).statusCode, 404);
  t.equal((await app.inject({ url: '/console/assets/../../package.json' })).statusCode, 404);
  t.equal((await app.inject({ url: '/console/assets/app.js' })).statusCode, 200);
});

t.test('with tenants, a model page asks for an API key (the 401 shown), then sends it on the data plane only', { skip: skipWithout('chromium') }, async (t) => {
  const TENANT_KEY = 'console-tenant-key-2c7e91';
  const { app } = await buildGateway(t, files, {
    models,
    tenants: [{ name: 'team-a', apiKeys: [`sha256:${createHash('sha256').update(TENANT_KEY).digest('hex')}`], allow: ['two'] }],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const browser: Browser = await chromium.launch({ executablePath: findProgram('chromium') as string, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const sent: Array<{ url: string; authorization: string | undefined }> = [];
  page.on('request', (request) => sent.push({ url: new URL(request.url()).pathname, authorization: request.headers().authorization }));
  await page.goto(`${origin}/console/keys/two`);
  await page.getByLabel('Admin token').fill(TOKEN);
  await page.getByLabel('Admin token').press('Enter');
  await page.getByLabel('API key').waitFor();
  t.match(await page.getByRole('alert').textContent(), /API key/, "the gateway's 401 message");

  await page.getByLabel('API key').fill('not-the-key');
  await page.getByRole('button', { name: 'Use this key' }).click();
  await eventually('a wrong key: its 401 shown', async () => /not valid/.test(await page.getByRole('alert').textContent() ?? ''), 10_000, 20);

  await page.getByLabel('API key').fill(TENANT_KEY);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await page.getByRole('heading', { name: 'Try a request' }).waitFor();
  await page.getByLabel('Data of x').fill('[1.5]');
  await page.getByRole('button', { name: 'Send request' }).click();
  await page.getByLabel('Answer').waitFor();
  t.same(JSON.parse(await page.getByLabel('Answer').textContent() as string).outputs[0].data, [3], 'y = 2 x, as team-a');

  const v2 = sent.filter((request) => request.url.startsWith('/v2/'));
  t.ok(v2.some((request) => request.authorization === `Bearer ${TENANT_KEY}`), 'the key went with /v2 calls');
  t.notOk(sent.some((request) => request.url.startsWith('/admin/') && request.authorization?.includes(TENANT_KEY)), 'and never with /admin calls');
  t.notOk(v2.some((request) => request.authorization?.includes(TOKEN)), 'nor the admin token with /v2 calls');
  t.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
});
