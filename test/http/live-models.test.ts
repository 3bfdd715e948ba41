/**
 * Live models through the admin API: create, replace, upload, reload and
 * remove without a restart, with every error case, atomic key moves and zero
 * failed requests across updates under concurrent traffic.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { identityModel, unsupportedOpModel } from '../../src/onnx/builder.ts';
import { AUTH, JSON_AUTH, buildGateway, eventually, infer, makeRepository, scaleModel, scaleRequest, TOKEN, startGateway } from '../helpers/gateway.ts';


function factor(response: { statusCode: number; json(): { outputs: Array<{ data: number[] }> } }, x: number): number {
  if (response.statusCode !== 200) return Number.NaN;
  return (response.json().outputs[0]?.data[0] as number) / x;
}

t.test('create, read, replace and delete a model; keys follow at once', async (t) => {
  const files = { 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3), 'four.onnx': scaleModel(4) };
  const { app } = await buildGateway(t, files, { models: [{ name: 'base', path: 'two.onnx' }] });
  const put = (name: string, payload: unknown, headers: Record<string, string> = {}, query = '') => app.inject({ method: 'PUT', url: `/admin/models/${name}${query}`, headers: { ...JSON_AUTH, ...headers }, payload: payload as Record<string, unknown> });
  t.equal((await infer(app, 'new', scaleRequest(1))).statusCode, 404);
  const created = await put('new', { path: 'three.onnx', keys: ['new', 'new-alias'], batching: false });
  t.equal(created.statusCode, 201);
  t.match(created.json(), { name: 'new', path: 'three.onnx', keys: ['new', 'new-alias'], state: 'resident', batching: false, loads: 1 });
  const etag = created.headers.etag as string;
  t.match(etag, /^"\d+"$/);
  t.equal(factor(await infer(app, 'new-alias', scaleRequest(2)), 2), 3);
  const read = await app.inject({ url: '/admin/models/new', headers: AUTH });
  t.equal(read.headers.etag, etag);
  t.same((await app.inject({ url: '/v2/models/new' })).json().inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);

  const stale = await put('new', { path: 'four.onnx' }, { 'if-match': '"999"' });
  t.equal(stale.statusCode, 412);
  t.equal(factor(await infer(app, 'new', scaleRequest(1)), 1), 3, 'a refused change changed nothing');
  const replaced = await put('new', { path: 'four.onnx', keys: ['new'] }, { 'if-match': etag });
  t.equal(replaced.statusCode, 200);
  t.not(replaced.headers.etag, etag);
  t.equal(factor(await infer(app, 'new', scaleRequest(1)), 1), 4);
  t.equal((await infer(app, 'new-alias', scaleRequest(1))).statusCode, 404, 'a dropped key answers 404');

  const route = await app.inject({ method: 'PUT', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split: { variants: [{ target: 'new', weight: 1 }, { target: 'base', weight: 1 }] } } });
  t.equal(route.statusCode, 201, 'a route created live targets a model created live');
  const inUse = await app.inject({ method: 'DELETE', url: '/admin/models/new', headers: AUTH });
  t.equal(inUse.statusCode, 409);
  t.same(inUse.json(), { error: "model 'new' is a target of route 'ab'" });
  t.equal((await app.inject({ method: 'DELETE', url: '/admin/routes/ab', headers: AUTH })).statusCode, 204);
  const deleted = await app.inject({ method: 'DELETE', url: '/admin/models/new', headers: { ...AUTH, 'if-match': replaced.headers.etag as string } });
  t.equal(deleted.statusCode, 204);
  t.equal((await infer(app, 'new', scaleRequest(1))).statusCode, 404);
  t.equal((await app.inject({ url: '/admin/models/new', headers: AUTH })).statusCode, 404);
  t.same((await app.inject({ url: '/admin/models', headers: AUTH })).json().models.map((model: { name: string }) => model.name), ['base']);
});

t.test('every refusal names what is wrong and changes nothing', async (t) => {
  const files = { 'two.onnx': scaleModel(2), 'bad.onnx': unsupportedOpModel(), 'garbage.onnx': 'not a model' };
  const { app, repository } = await buildGateway(t, files, { models: [{ name: 'base', path: 'two.onnx', keys: ['base', 'b'] }], routes: [{ key: 'r', split: { variants: [{ target: 'base', weight: 1 }] } }] });
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['an absolute path', { path: path.join(repository, 'two.onnx') }, 400, /^path: path must be relative to modelRepository, not absolute$/],
    ['a path outside', { path: '../two.onnx' }, 400, /^path: path '..\/two.onnx' must not contain '..'$/],
    ['a missing file', { path: 'nope.onnx' }, 400, /^path: 'nope.onnx' is not a file in the model repository$/],
    ['an unknown field', { path: 'two.onnx', color: 'red' }, 400, /color/],
    ['a wrong type', { path: 'two.onnx', keys: 'x' }, 400, /^keys: /],
    ['another name in the body', { name: 'other', path: 'two.onnx' }, 400, /^name: the body names 'other', the path 'm'$/],
    ['not an object', [1], 400, /must be a JSON object/],
    ['a key another model serves', { path: 'two.onnx', keys: ['b'] }, 409, /^key 'b' is served by model 'base'$/],
    ['a key a route serves', { path: 'two.onnx', keys: ['r'] }, 409, /^key 'r' is served by route 'r'$/],
    ['a file onnxruntime cannot load', { path: 'bad.onnx' }, 422, /^Model 'm' does not load: .*NoSuchOperator.*; nothing changed$/],
    ['a file that is not ONNX', { path: 'garbage.onnx' }, 422, /^Model 'm' does not load: its file is not an ONNX model/],
  ];
  for (const [what, payload, status, message] of cases) {
    const response = await app.inject({ method: 'PUT', url: '/admin/models/m', headers: JSON_AUTH, payload: JSON.stringify(payload) });
    t.equal(response.statusCode, status, what);
    t.same(Object.keys(response.json()), ['error'], what);
    t.match(response.json().error, message, what);
    t.notMatch(response.json().error, repository, `${what}: no path leaked`);
  }
  t.same((await app.inject({ url: '/admin/models', headers: AUTH })).json().models.map((model: { name: string }) => model.name), ['base']);
  const dropRouted = await app.inject({ method: 'PUT', url: '/admin/models/base', headers: JSON_AUTH, payload: { path: 'two.onnx', keys: ['b'] } });
  t.equal(dropRouted.statusCode, 409);
  t.match(dropRouted.json().error, /route 'r' targets key 'base', which the change would drop/);
  t.same((await app.inject({ method: 'PUT', url: '/admin/models/m', headers: AUTH })).json(), { error: 'the body must be a JSON object: a model entry as in the configuration file, without its name' }, 'no body at all');
  t.equal((await app.inject({ method: 'PUT', url: '/admin/models/m', headers: { 'content-type': 'application/json' }, payload: { path: 'two.onnx' } })).statusCode, 401);
  t.equal((await app.inject({ method: 'DELETE', url: '/admin/models/nope', headers: AUTH })).statusCode, 404);
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/nope/reload', headers: AUTH })).statusCode, 404);
  t.equal(factor(await infer(app, 'base', scaleRequest(1)), 1), 2);
});

t.test('a new version whose signature differs while a route depends on it: 409, unless forced', async (t) => {
  const files = { 'two.onnx': scaleModel(2), 'int.onnx': identityModel('int32', ['n']) };
  const { app } = await buildGateway(t, files, { models: [{ name: 'base', path: 'two.onnx' }], routes: [{ key: 'r', split: { variants: [{ target: 'base', weight: 1 }] } }] });
  const refused = await app.inject({ method: 'PUT', url: '/admin/models/base', headers: JSON_AUTH, payload: { path: 'int.onnx' } });
  t.equal(refused.statusCode, 409);
  t.match(refused.json().error, /^model 'base': the new version's inputs or outputs differ, and route 'r' depends on them \(force: true applies it anyway\)$/);
  t.equal(factor(await infer(app, 'r', scaleRequest(1)), 1), 2);
  const forced = await app.inject({ method: 'PUT', url: '/admin/models/base?force=true', headers: JSON_AUTH, payload: { path: 'int.onnx' } });
  t.equal(forced.statusCode, 200);
  t.same((await app.inject({ url: '/v2/models/base' })).json().inputs, [{ name: 'x', datatype: 'INT32', shape: [-1] }]);
});

t.test('uploads: a file the gateway names, validated by loading it first', async (t) => {
  const { app, repository } = await buildGateway(t, { 'two.onnx': scaleModel(2) }, { models: [{ name: 'base', path: 'two.onnx' }], admin: { token: TOKEN, maxModelBytes: 64 * 1024 } });
  const upload = (name: string, bytes: Uint8Array | string, headers: Record<string, string> = {}) => app.inject({ method: 'PUT', url: `/admin/models/${name}/file`, headers: { ...AUTH, 'content-type': 'application/octet-stream', ...headers }, payload: Buffer.from(bytes) });
  const created = await upload('fresh', scaleModel(5));
  t.equal(created.statusCode, 201);
  t.match(created.json(), { name: 'fresh', keys: ['fresh'], path: /^\.uploads\/fresh\/\d+-[0-9a-f]{12}\.onnx$/ });
  t.ok(existsSync(path.join(repository, created.json().path)));
  t.equal(factor(await infer(app, 'fresh', scaleRequest(1)), 1), 5);
  const replaced = await upload('base', scaleModel(7), { 'if-match': '"0"' });
  t.equal(replaced.statusCode, 200);
  t.equal(factor(await infer(app, 'base', scaleRequest(1)), 1), 7);
  const garbage = await upload('base', 'not a model at all');
  t.equal(garbage.statusCode, 422);
  t.match(garbage.json().error, /^Model 'base' does not load/);
  t.equal(factor(await infer(app, 'base', scaleRequest(1)), 1), 7, 'the served version stays');
  const tooBig = await upload('base', Buffer.alloc(65 * 1024));
  t.equal(tooBig.statusCode, 413);
  t.same(Object.keys(tooBig.json()), ['error']);
  t.equal((await upload('../evil', scaleModel(1))).statusCode, 404, 'a name with a slash is not a route');
  t.equal((await upload('.hidden', scaleModel(1))).statusCode, 400);
  // Where the upload must go cannot be written (here a file stands where its folder would be; in
  // production, a repository mounted read-only, as the container example mounts it).
  writeFileSync(path.join(repository, '.uploads', 'another'), 'in the way');
  const blocked = await upload('another', scaleModel(1));
  t.equal(blocked.statusCode, 500);
  t.match(blocked.json(), { error: /^The upload was not applied: the model repository cannot be written \(E[A-Z]+\); mount it writable to upload models$/ });
  t.equal((await infer(app, 'another', scaleRequest(1))).statusCode, 404);
});

t.test('20 updates under concurrent traffic: zero failed requests, each answer from one version', async (t) => {
  for (const cap of [undefined, 1]) {
    await t.test(`maxResidentModels ${cap ?? 'none'}`, async (t) => {
      const files = { 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3), 'other.onnx': scaleModel(5) };
      const { app, executor } = await buildGateway(t, files, { models: [{ name: 'm', path: 'two.onnx', batching: { maxBatchSize: 16, maxQueueDelayMicros: 500 } }, { name: 'other', path: 'other.onnx' }], ...(cap === undefined ? {} : { registry: { maxResidentModels: cap } }) });
      let running = true;
      const seen = { answers: 0, failures: [] as string[], factors: new Set<number>() };
      const client = async () => {
        while (running) {
          const response = await infer(app, 'm', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 1], data: [1, 2] }] });
          if (response.statusCode !== 200) {
            seen.failures.push(`${response.statusCode} ${response.body}`);
            continue;
          }
          const [a, b] = response.json().outputs[0].data as number[];
          if (b !== 2 * (a as number)) seen.failures.push(`a mixed answer ${a}, ${b}`);
          seen.factors.add(a as number);
          seen.answers += 1;
        }
      };
      const clients = Array.from({ length: 6 }, client);
      for (let update = 0; update < 20; update++) {
        const response = update % 5 === 4
          ? await app.inject({ method: 'POST', url: '/admin/models/m/reload', headers: AUTH })
          : await app.inject({ method: 'PUT', url: '/admin/models/m', headers: JSON_AUTH, payload: { path: update % 2 === 0 ? 'three.onnx' : 'two.onnx', batching: { maxBatchSize: 16, maxQueueDelayMicros: 500 } } });
        t.equal(response.statusCode, 200, `update ${update}: ${response.body}`);
        if (cap === 1) t.equal((await infer(app, 'other', scaleRequest(1))).statusCode, 200);
        // On a loaded machine all 20 updates can land before the first load answers; traffic must overlap each one.
        const before = seen.answers;
        await eventually(`an answer after update ${update}`, () => seen.answers > before, 5000);
      }
      running = false;
      await Promise.all(clients);
      t.same(seen.failures, [], 'no request failed');
      t.ok(seen.answers > 20, `${seen.answers} answers`);
      t.same([...seen.factors].sort(), [2, 3], 'answers came from both versions');
      t.equal(app.registry.status().find((model) => model.name === 'm')?.state, 'resident');
      if (cap !== undefined) t.equal(executor.maxOpen, cap, 'the cap counted both versions: never more sessions open at once');
    });
  }
});

t.test('a reload whose file no longer loads: 422, and the old version serves on', async (t) => {
  const { app, repository } = await buildGateway(t, { 'm.onnx': scaleModel(2) }, { models: [{ name: 'm', path: 'm.onnx' }] });
  t.equal(factor(await infer(app, 'm', scaleRequest(1)), 1), 2);
  writeFileSync(path.join(repository, 'm.onnx'), unsupportedOpModel());
  const reload = await app.inject({ method: 'POST', url: '/admin/models/m/reload', headers: AUTH });
  t.equal(reload.statusCode, 422);
  t.equal(factor(await infer(app, 'm', scaleRequest(1)), 1), 2);
  writeFileSync(path.join(repository, 'm.onnx'), scaleModel(6));
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/m/reload', headers: AUTH })).statusCode, 200);
  t.equal(factor(await infer(app, 'm', scaleRequest(1)), 1), 6);
});

t.test('live model changes survive a restart; a deleted model stays deleted', async (t) => {
  const repository = makeRepository(t, { 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3), 'four.onnx': scaleModel(4) });
  const document = { admin: { token: TOKEN }, modelRepository: repository, stateFile: 'gateway.state.json', models: [{ name: 'kept', path: 'two.onnx' }, { name: 'gone', path: 'two.onnx', keys: ['gone'] }] };
  const start = () => startGateway(document, repository);
  const first = await start();
  t.equal((await first.inject({ method: 'PUT', url: '/admin/models/added', headers: JSON_AUTH, payload: { path: 'three.onnx' } })).statusCode, 201);
  t.equal((await first.inject({ method: 'PUT', url: '/admin/models/kept', headers: JSON_AUTH, payload: { path: 'four.onnx' } })).statusCode, 200);
  t.equal((await first.inject({ method: 'DELETE', url: '/admin/models/gone', headers: AUTH })).statusCode, 204);
  t.equal((await first.inject({ method: 'PUT', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split: { variants: [{ target: 'added', weight: 1 }] } } })).statusCode, 201);
  const version = (await first.inject({ url: '/admin/models/added', headers: AUTH })).headers.etag;
  await first.close();
  const second = await start();
  t.teardown(() => second.close());
  t.same((await second.inject({ url: '/admin/models', headers: AUTH })).json().models.map((model: { name: string }) => model.name).sort(), ['added', 'kept']);
  t.equal(factor(await infer(second, 'added', scaleRequest(1)), 1), 3);
  t.equal(factor(await infer(second, 'kept', scaleRequest(1)), 1), 4);
  t.equal(factor(await infer(second, 'ab', scaleRequest(1)), 1), 3);
  t.equal((await infer(second, 'gone', scaleRequest(1))).statusCode, 404);
  t.equal((await second.inject({ url: '/admin/models/added', headers: AUTH })).headers.etag, version, 'versions survive too');
});

t.test('keys move atomically: a key kept across a replace never answers 404 under traffic', async (t) => {
  const { app } = await buildGateway(t, { 'two.onnx': scaleModel(2) }, { models: [{ name: 'm', path: 'two.onnx', keys: ['m', 'a'] }] });
  let running = true;
  const statuses = { m: new Map<number, number>(), a: new Map<number, number>() };
  const client = async (key: 'm' | 'a') => {
    while (running) {
      const { statusCode } = await infer(app, key, scaleRequest(1));
      statuses[key].set(statusCode, (statuses[key].get(statusCode) ?? 0) + 1);
    }
  };
  const clients = [client('m'), client('m'), client('a')];
  for (let i = 0; i < 10; i++) {
    const response = await app.inject({ method: 'PUT', url: '/admin/models/m', headers: JSON_AUTH, payload: { path: 'two.onnx', keys: i % 2 === 0 ? ['m', 'b'] : ['m', 'a'] } });
    t.equal(response.statusCode, 200);
  }
  running = false;
  await Promise.all(clients);
  t.same([...statuses.m.keys()], [200], 'the kept key always answered');
  t.same([...statuses.a.keys()].sort(), [200, 404], 'the moving key answered while it was served, 404 while not');
});
