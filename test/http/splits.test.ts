import path from 'node:path';
import t from 'tap';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { identityModel } from '../../src/onnx/builder.ts';
import { adminRequest, eventually, AUTH, buildGateway, infer, makeRepository, scaleModel, scaleRequest, TOKEN, writeFiles } from '../helpers/gateway.ts';

const files = {
  'one.onnx': scaleModel(1), 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3),
  'corrupt.onnx': 'not a model', 'int.onnx': identityModel('int32', ['n', 1]),
};
// One run per request, so shadow runs can be held and counted; batching has its own tests.
const models = [
  { name: 'one', path: 'one.onnx' }, { name: 'two', path: 'two.onnx' }, { name: 'three', path: 'three.onnx' },
  { name: 'corrupt', path: 'corrupt.onnx' }, { name: 'int', path: 'int.onnx' },
].map((model) => ({ ...model, batching: false }));
const split = (weights: Record<string, number>, extra: Record<string, unknown> = {}) =>
  ({ variants: Object.entries(weights).map(([target, weight]) => ({ target, weight })), ...extra });

/** The variant that answered, from the model's output (y = k x with x = 1). */
async function variantOf(response: { json(): { outputs: Array<{ data: number[] }> } }): Promise<number> {
  return response.json().outputs[0]?.data[0] as number;
}

t.test('shares follow the weights, and the variant header names the decision', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'ab', split: split({ one: 90, two: 10 }) }] });
  const counts = new Map<number, number>();
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const response = await infer(app, 'ab', scaleRequest(1));
    const variant = await variantOf(response);
    counts.set(variant, (counts.get(variant) ?? 0) + 1);
    t.equal(response.headers['x-modelgate-variant'], `ab=${variant === 1 ? 'one' : 'two'}`);
    if (i === 0) t.equal(response.json().model_name, variant === 1 ? 'one' : 'two');
  }
  const sigma = Math.sqrt(n * 0.1 * 0.9);
  t.ok(Math.abs((counts.get(2) ?? 0) - n * 0.1) < 5 * sigma, `10% variant got ${counts.get(2)} of ${n}`);
  t.equal((counts.get(1) ?? 0) + (counts.get(2) ?? 0), n);
  const stats = (await app.inject(adminRequest('GET', '/admin/routes/ab/stats'))).json();
  t.same(stats.sinceChange.variants.map((v: { target: string; requests: number }) => [v.target, v.requests]), [['one', counts.get(1)], ['two', counts.get(2)]]);
  t.ok(stats.sinceStart.variants[0].latencyMs.p50 > 0);
  t.ok(stats.sinceStart.variants[0].latencyMs.p99 >= stats.sinceStart.variants[0].latencyMs.p50);
  const reset = (await app.inject(adminRequest('POST', '/admin/routes/ab/stats/reset'))).json();
  t.same(reset.sinceChange.variants.map((v: { requests: number }) => v.requests), [0, 0]);
  t.equal(reset.sinceStart.variants[0].requests, counts.get(1), 'since start survives a reset');
});

t.test('sticky users stay put, and 90/10 -> 80/20 keeps every user of the 10% variant', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'ab', split: split({ one: 90, two: 10 }, { stickyHeader: 'x-user-id' }) }] });
  const assigned = new Map<string, number>();
  for (let user = 0; user < 400; user++) {
    const first = await variantOf(await infer(app, 'ab', scaleRequest(1), { 'x-user-id': `u${user}` }));
    const second = await variantOf(await infer(app, 'ab', scaleRequest(1), { 'x-user-id': `u${user}` }));
    t.equal(second, first, `u${user} stays`);
    assigned.set(`u${user}`, first);
  }
  const patched = await app.inject(adminRequest('PATCH', '/admin/routes/ab', { split: { variants: [{ target: 'one', weight: 80 }, { target: 'two', weight: 20 }] } }));
  t.equal(patched.statusCode, 200);
  t.same(patched.json().split.stickyHeader, 'x-user-id', 'a patch keeps the fields it does not name');
  let moved = 0;
  for (const [user, before] of assigned) {
    const after = await variantOf(await infer(app, 'ab', scaleRequest(1), { 'x-user-id': user }));
    if (before === 2) t.equal(after, 2, `${user} stays on the 10% variant`);
    if (after !== before) moved += 1;
  }
  t.ok(moved > 0 && moved < 100, `${moved} of 400 users moved`);
});

t.test('live changes under load: no failed request, each from the old or the new table, the new at once', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'live', split: split({ one: 1 }) }] });
  let stop = false;
  let changedAt = Infinity;
  const seen: Array<{ startedAt: number; variant: number; status: number }> = [];
  const worker = async () => {
    while (!stop) {
      const startedAt = performance.now();
      const response = await infer(app, 'live', scaleRequest(1));
      seen.push({ startedAt, status: response.statusCode, variant: response.statusCode === 200 ? await variantOf(response) : -1 });
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  await eventually('condition', () => seen.length > 200);
  const flips: Array<[Record<string, number>, number]> = [[{ two: 1 }, 2], [{ one: 1, three: 0 }, 1], [{ three: 1 }, 3]];
  let last = 0;
  for (const [weights, expected] of flips) {
    const response = await app.inject(adminRequest('PUT', '/admin/routes/live', { split: split(weights) }));
    t.equal(response.statusCode, 200);
    changedAt = performance.now();
    last = expected;
    const count = seen.length;
    await eventually('condition', () => seen.length > count + 200);
  }
  stop = true;
  await Promise.all(workers);
  t.same(seen.filter((entry) => entry.status !== 200), [], 'no request failed');
  t.ok(seen.every((entry) => [1, 2, 3].includes(entry.variant)));
  const afterLast = seen.filter((entry) => entry.startedAt > changedAt);
  t.ok(afterLast.length > 100);
  t.ok(afterLast.every((entry) => entry.variant === last), 'every request started after the change saw the new table');
  t.equal((await app.inject(adminRequest('GET', '/admin/routes/live'))).json().version, 4);
});

t.test('invalid and impossible changes leave the route exactly as it was', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'ab', split: split({ one: 1, two: 1 }) }] });
  const before = await app.inject(adminRequest('GET', '/admin/routes/ab'));
  t.equal(before.headers.etag, '"1"');
  const cases: Array<[string, unknown, number, RegExp, 'PUT' | 'PATCH']> = [
    ['unknown field', { split: { ...split({ one: 1 }), wat: 1 } }, 400, /split\.wat: Unexpected property/, 'PUT'],
    ['unknown target', { split: split({ one: 1, nope: 1 }) }, 400, /split\.variants\[1\]\.target: unknown key 'nope'/, 'PUT'],
    ['negative weight', { split: split({ one: -1 }) }, 400, /split\.variants\[0\]\.weight: Expected number to be greater or equal to 0/, 'PUT'],
    ['no positive weight', { split: split({ one: 0 }) }, 400, /at least one weight must be positive/, 'PUT'],
    ['not an object', [], 400, /body: Expected object/, 'PUT'],
    ['a cycle', { split: split({ ab: 1 }) }, 409, /route cycle: ab -> ab/, 'PUT'],
    ['incompatible variant', { split: split({ one: 1, int: 1 }) }, 400, /variants disagree: 'int' takes input 'x' as INT32, but 'one' as FP32/, 'PUT'],
    ['a target that cannot load', { split: split({ one: 1, corrupt: 1 }) }, 409, /route 'ab' cannot serve: Model 'corrupt' failed to load/, 'PUT'],
    ['a shadow that cannot load', { split: { ...split({ one: 1 }), shadow: { target: 'corrupt', percent: 5 } } }, 409, /cannot serve/, 'PUT'],
    ['patch: unknown field', { split: { variants: [{ target: 'one', weight: 1 }], extra: 1 } }, 400, /split\.extra: Unexpected property/, 'PATCH'],
    ['patch: unknown target', { split: { variants: [{ target: 'zzz', weight: 1 }] } }, 400, /unknown key 'zzz'/, 'PATCH'],
    ['patch: a sequence', { sequence: {} }, 400, /sequence: Unexpected property/, 'PATCH'],
  ];
  for (const [what, body, status, message, method] of cases) {
    const response = await app.inject(adminRequest(method, '/admin/routes/ab', body));
    t.equal(response.statusCode, status, what);
    t.match(response.json(), { error: message }, what);
  }
  const after = await app.inject(adminRequest('GET', '/admin/routes/ab'));
  t.same(after.json(), before.json(), 'unchanged');
  t.equal(after.headers.etag, '"1"');
  t.equal((await infer(app, 'ab', scaleRequest(1))).statusCode, 200, 'still serving');
});

t.test('If-Match: a stale version gets 412 and changes nothing', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'ab', split: split({ one: 1 }) }] });
  const change = (weights: Record<string, number>, ifMatch: string) => app.inject(adminRequest('PUT', '/admin/routes/ab', { split: split(weights) }, { 'if-match': ifMatch }));
  const first = await change({ two: 1 }, '"1"');
  t.equal(first.statusCode, 200);
  t.equal(first.headers.etag, '"2"');
  const stale = await change({ three: 1 }, '"1"');
  t.equal(stale.statusCode, 412);
  t.match(stale.json(), { error: /route 'ab' is at version "2", not "1"/ });
  t.same((await app.inject(adminRequest('GET', '/admin/routes/ab'))).json().split, split({ two: 1 }));
  t.equal((await app.inject(adminRequest('PATCH', '/admin/routes/ab', { split: split({ one: 1 }) }, { 'if-match': '"2"' }))).statusCode, 200);
  t.equal((await app.inject(adminRequest('DELETE', '/admin/routes/ab', undefined, { 'if-match': '"2"' }))).statusCode, 412);
  t.equal((await app.inject(adminRequest('PUT', '/admin/routes/new', { split: split({ one: 1 }) }, { 'if-match': '*' }))).statusCode, 412, 'If-Match * needs an existing route');
});

t.test('create, list, delete; a route in use cannot be deleted; metadata of a split', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'inner', split: split({ one: 1, two: 1 }) }] });
  const created = await app.inject(adminRequest('PUT', '/admin/routes/outer', { split: split({ inner: 1, three: 1 }) }));
  t.equal(created.statusCode, 201);
  t.match(created.json(), { key: 'outer', kind: 'split', version: 2 });
  const list = (await app.inject(adminRequest('GET', '/admin/routes'))).json().routes;
  t.same(list.map((route: { key: string; version: number }) => [route.key, route.version]), [['inner', 1], ['outer', 2]]);
  const nested = await infer(app, 'outer', scaleRequest(1));
  t.match(nested.headers['x-modelgate-variant'], /^outer=(three|inner,inner=(one|two))$/);
  const metadata = (await app.inject({ url: '/v2/models/outer' })).json();
  t.same(metadata.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
  t.same(metadata.outputs, [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }]);
  const inUse = await app.inject(adminRequest('DELETE', '/admin/routes/inner'));
  t.equal(inUse.statusCode, 409);
  t.match(inUse.json(), { error: "route 'inner' is a target of 'outer'" });
  t.equal((await app.inject(adminRequest('DELETE', '/admin/routes/outer'))).statusCode, 204);
  t.equal((await infer(app, 'outer', scaleRequest(1))).statusCode, 404);
  t.equal((await app.inject(adminRequest('GET', '/admin/routes/outer'))).statusCode, 404);
  t.equal((await app.inject(adminRequest('PUT', '/admin/routes/one', { split: split({ two: 1 }) }))).statusCode, 400, 'a model key cannot become a route');
});

t.test('shadow traffic: errors and slowness never reach the primary; agreement is measured', async (t) => {
  const { app, executor, repository } = await buildGateway(t, { ...files, 'one-again.onnx': scaleModel(1) }, {
    models: [...models, { name: 'one-again', path: 'one-again.onnx', batching: false }],
    routes: [
      // Room for every copy of the first 20 requests: on a slow machine the shadow's first load can outlast
      // several primaries, and the default of 8 in flight would drop some.
      { key: 'same', split: split({ one: 1 }, { shadow: { target: 'one-again', percent: 100, maxInFlight: 32 } }) },
      { key: 'differs', split: split({ one: 1 }, { shadow: { target: 'two', percent: 100 } }) },
    ],
  });
  for (let i = 0; i < 20; i++) t.equal((await infer(app, 'same', scaleRequest(i))).statusCode, 200);
  await eventually('condition', () => (executor.runsStarted.get('one-again') ?? 0) === 20);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const same = (await app.inject(adminRequest('GET', '/admin/routes/same/stats'))).json().sinceChange.shadow;
  t.match(same, { target: 'one-again', sent: 20, errors: 0, compared: 20, agreement: 1, dropped: 0 });

  // The shadow is slow: the primary answers anyway, and excess shadow work is dropped, not queued.
  const open = executor.hold('two');
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => infer(app, 'differs', scaleRequest(i + 1))));
  t.same(answers.map((response) => response.json().outputs[0].data[0]), Array.from({ length: 30 }, (_, i) => i + 1), 'primary answers, unaffected');
  await eventually('condition', () => (executor.runsStarted.get('two') ?? 0) >= 8);
  await new Promise((resolve) => setTimeout(resolve, 20));
  open();
  await eventually('condition', () => (app.router.stats('differs').sinceChange.shadow?.sent ?? 0) === 8);
  const differs = app.router.stats('differs').sinceChange.shadow;
  t.match(differs, { sent: 8, dropped: 22, compared: 8, agreement: 0 });

  // A failing shadow: the route still answers, and the failure is counted.
  writeFiles(repository, { 'one-again.onnx': 'now corrupt' });
  t.equal((await app.inject(adminRequest('POST', '/admin/models/one-again/unload'))).statusCode, 200);
  for (let i = 0; i < 5; i++) t.same((await infer(app, 'same', scaleRequest(i))).json().outputs[0].data, [i]);
  await eventually('condition', () => app.router.stats('same').sinceChange.shadow?.errors === 5);
  t.equal(app.router.stats('same').sinceChange.shadow?.sent, 25);
  t.equal((await app.inject(adminRequest('PUT', '/admin/routes/same', { split: split({ one: 1 }, { shadow: { target: 'int', percent: 100 } }) }))).statusCode, 400, 'a shadow must take the same inputs');
});

t.test('live changes survive a restart; a hand-edited route wins over its live change', async (t) => {
  const repository = makeRepository(t, files);
  const stateFile = path.join(repository, 'gateway.state.json');
  const config = (routes: unknown[]) => validateConfig({ admin: { token: TOKEN }, modelRepository: repository, stateFile, models, routes }, repository, {});
  const original = [{ key: 'ab', split: split({ one: 90, two: 10 }) }, { key: 'cd', split: split({ one: 1 }) }];
  const first = await buildApp(config(original));
  t.equal((await first.inject(adminRequest('PATCH', '/admin/routes/ab', { split: split({ one: 50, two: 50 }) }))).statusCode, 200);
  t.equal((await first.inject(adminRequest('PUT', '/admin/routes/ef', { split: split({ three: 1 }) }))).statusCode, 201);
  t.equal((await first.inject(adminRequest('DELETE', '/admin/routes/cd'))).statusCode, 204);
  await first.close();

  const second = await buildApp(config(original));
  t.teardown(() => second.close());
  const routes = (await second.inject(adminRequest('GET', '/admin/routes'))).json().routes;
  t.same(routes.map((route: { key: string; version: number; split: unknown }) => [route.key, route.version, route.split]), [
    ['ab', 3, split({ one: 50, two: 50 })],
    ['ef', 4, split({ three: 1 })],
  ]);
  t.same((await infer(second, 'ef', scaleRequest(1))).json().outputs[0].data, [3]);
  // The next change gets a version never used before.
  t.equal((await second.inject(adminRequest('PATCH', '/admin/routes/ef', { split: split({ two: 1 }) }))).json().version, 6);

  const edited = [{ key: 'ab', split: split({ three: 1 }) }, { key: 'cd', split: split({ one: 1 }) }];
  const third = await buildApp(config(edited));
  t.teardown(() => third.close());
  const after = (await third.inject(adminRequest('GET', '/admin/routes'))).json().routes;
  t.same(after.map((route: { key: string; split: unknown }) => [route.key, route.split]), [
    ['ab', split({ three: 1 })], ['ef', split({ two: 1 })],
  ], 'ab: the file changed, so it wins; cd: deleted live, unchanged in the file, so it stays deleted; ef: live');
});

t.test('a split is ready while its weighted variants are; a broken state file stops the start', async (t) => {
  const { app, repository } = await buildGateway(t, files, { models, routes: [{ key: 'ab', split: split({ one: 1, two: 0 }) }, { key: 'seq', sequence: { steps: [{ target: 'ab' }] } }] });
  t.same((await app.inject({ url: '/v2/models/ab/ready' })).json(), { name: 'ab', ready: true });
  t.same((await app.inject({ url: '/v2/models/seq/ready' })).json(), { name: 'seq', ready: true });
  writeFiles(repository, { 'one.onnx': 'broken now' });
  await app.inject(adminRequest('POST', '/admin/models/one/unload'));
  t.equal((await infer(app, 'ab', scaleRequest(1))).statusCode, 503);
  t.equal((await app.inject({ url: '/v2/models/ab/ready' })).statusCode, 503);
  t.equal((await app.inject({ url: '/v2/models/seq/ready' })).statusCode, 503);

  const stateFile = path.join(repository, 'broken.state.json');
  writeFiles(repository, { 'broken.state.json': '{"format": 2}' });
  await t.rejects(buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, stateFile, models }, repository, {})), /not a modelgate route state file/);
});

t.test('a live change that cannot be saved is not applied, and says why', async (t) => {
  const repository = makeRepository(t, files);
  const stateFile = path.join(repository, 'no-such-directory', 'gateway.state.json');
  const app = await buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, stateFile, models, routes: [{ key: 'ab', split: split({ one: 1 }) }] }, repository, {}));
  t.teardown(() => app.close());
  const response = await app.inject(adminRequest('PUT', '/admin/routes/ab', { split: split({ two: 1 }) }));
  t.equal(response.statusCode, 500);
  t.same(response.json(), { error: 'The change was not applied: the state file cannot be written (ENOENT); check that stateFile is writable' });
  t.same((await app.inject(adminRequest('GET', '/admin/routes/ab'))).json().split, split({ one: 1 }), 'unchanged');
});
