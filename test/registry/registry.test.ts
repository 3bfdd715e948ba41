import t from 'tap';
import { affineModel, unsupportedOpModel } from '../../src/onnx/builder.ts';
import { eventually, AUTH, buildGateway, infer, scaleModel, scaleRequest as request, writeFiles } from '../helpers/gateway.ts';

function models(count: number, extra: Record<string, unknown> = {}) {
  const files: Record<string, Uint8Array> = {};
  const list = [];
  for (let i = 1; i <= count; i++) {
    files[`m${i}.onnx`] = scaleModel(i);
    // One run per request, so the tests can count and hold runs; batching has its own tests.
    list.push({ name: `m${i}`, path: `m${i}.onnx`, batching: false, ...extra });
  }
  return { files, list };
}

t.test('keys that share a model load it once', async (t) => {
  const { app, executor } = await buildGateway(t, { 'a.onnx': scaleModel(3) }, {
    models: [{ name: 'a', path: 'a.onnx', keys: ['k1', 'k2', 'k3'] }],
  });
  for (const key of ['k1', 'k2', 'k3', 'k1']) {
    const response = await infer(app, key, request(2));
    t.equal(response.statusCode, 200, key);
    t.same(response.json().outputs[0].data, [6]);
    t.equal(response.json().model_name, 'a');
  }
  t.equal(executor.loads.get('a'), 1);
  const status = (await app.inject({ url: '/admin/models', headers: AUTH })).json().models[0];
  t.match(status, { name: 'a', keys: ['k1', 'k2', 'k3'], state: 'resident', inFlight: 0, loads: 1, evictions: 0 });
  t.ok(Date.parse(status.lastUsedAt) <= Date.now());
});

t.test('the cap holds at every moment while 5 models are called round-robin with cap 2', async (t) => {
  const { files, list } = models(5);
  const { app, executor } = await buildGateway(t, files, { registry: { maxResidentModels: 2 }, models: list });
  let maxResident = 0;
  const sampler = setInterval(() => { maxResident = Math.max(maxResident, app.registry.residentCount); }, 0);
  t.teardown(() => clearInterval(sampler));
  for (let round = 0; round < 3; round++) {
    // Sequential calls: every one needs a load, as the cap is below the working set.
    for (let i = 1; i <= 5; i++) {
      const response = await infer(app, `m${i}`, request(10));
      t.equal(response.statusCode, 200);
      t.same(response.json().outputs[0].data, [10 * i]);
      maxResident = Math.max(maxResident, app.registry.residentCount);
    }
    // Concurrent calls to all five at once.
    const responses = await Promise.all([1, 2, 3, 4, 5].map((i) => infer(app, `m${i}`, request(i))));
    responses.forEach((response, index) => t.same(response.json().outputs[0].data, [(index + 1) ** 2]));
  }
  t.ok(maxResident <= 2, `resident count never above 2 (saw ${maxResident})`);
  t.ok(executor.maxOpen <= 2, `open sessions never above 2 (saw ${executor.maxOpen})`);
  const evictions = app.registry.status().reduce((sum, model) => sum + model.evictions, 0);
  const loads = [...executor.loads.values()].reduce((a, b) => a + b, 0);
  const releases = [...executor.releases.values()].reduce((a, b) => a + b, 0);
  t.equal(releases, evictions, 'every eviction released one session');
  t.equal(loads - releases, app.registry.residentCount);
});

t.test('eviction while a request is in flight: nothing fails, the session is released once, afterwards', async (t) => {
  const { files, list } = models(2);
  const { app, executor } = await buildGateway(t, files, { registry: { maxResidentModels: 1 }, models: list });
  t.equal((await infer(app, 'm1', request(1))).statusCode, 200);
  const open = executor.hold();
  const slow = infer(app, 'm1', request(5));
  await eventually('m1 to be running', () => executor.runsStarted.get('m1') === 2);
  // m2 needs m1's slot: m1 leaves the resident set but keeps its session while its request runs.
  const other = infer(app, 'm2', request(7));
  await eventually('m1 to be evicted', () => app.registry.status()[0]?.state === 'unloaded');
  t.equal(executor.releases.get('m1'), undefined, 'not released under the running request');
  t.equal(app.registry.status()[0]?.inFlight, 1);
  open();
  const [first, second] = await Promise.all([slow, other]);
  t.equal(first.statusCode, 200);
  t.same(first.json().outputs[0].data, [5]);
  t.same(second.json().outputs[0].data, [14]);
  t.equal(executor.releases.get('m1'), 1, 'released exactly once');
  t.equal(executor.maxOpen, 1, 'm2 loaded only after m1 was released');
});

t.test('a busy model is drained so a waiting load is not starved', async (t) => {
  const { files, list } = models(2);
  const { app, executor } = await buildGateway(t, files, { registry: { maxResidentModels: 1 }, models: list });
  const open = executor.hold();
  const busy = Array.from({ length: 5 }, (_, i) => infer(app, 'm1', request(i)));
  await eventually('condition', () => executor.runsStarted.get('m1') === 5);
  const waiting = infer(app, 'm2', request(1));
  // New requests for the draining m1 wait for its reload instead of extending its stay.
  await eventually('condition', () => app.registry.status()[0]?.state === 'unloaded');
  const late = infer(app, 'm1', request(100));
  open();
  const results = await Promise.all([...busy, waiting, late]);
  t.same(results.map((response) => response.statusCode), [200, 200, 200, 200, 200, 200, 200]);
  t.same(results.map((response) => response.json().outputs[0].data[0]), [0, 1, 2, 3, 4, 2, 100]);
  t.equal(executor.loads.get('m1'), 2);
  t.equal(executor.maxOpen, 1);
});

t.test('50 concurrent requests on a cold model load it once', async (t) => {
  const { app, executor } = await buildGateway(t, { 'a.onnx': scaleModel(2) }, { models: [{ name: 'a', path: 'a.onnx', batching: false }] });
  const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => infer(app, 'a', request(i))));
  t.same(responses.map((response) => response.json().outputs[0].data[0]), Array.from({ length: 50 }, (_, i) => 2 * i));
  t.equal(executor.attempts.get('a'), 1);
});

t.test('a model that fails to load answers 503 with Retry-After, is not retried by every request, and harms no other model', async (t) => {
  const files = { 'good.onnx': scaleModel(2), 'corrupt.onnx': 'this is not a protobuf', 'unsupported.onnx': unsupportedOpModel() };
  const { app, executor, repository } = await buildGateway(t, files, {
    registry: { loadFailureBackoffMs: 60_000 },
    models: [{ name: 'good', path: 'good.onnx' }, { name: 'corrupt', path: 'corrupt.onnx' }, { name: 'unsupported', path: 'unsupported.onnx' }, { name: 'missing', path: 'sub/missing.onnx' }],
  });
  for (const name of ['corrupt', 'unsupported', 'missing']) {
    for (let i = 0; i < 3; i++) {
      const response = await infer(app, name, request(1));
      t.equal(response.statusCode, 503, name);
      const retryAfter = Number(response.headers['retry-after']);
      t.ok(retryAfter > 0 && retryAfter <= 60, `${name}: Retry-After ${retryAfter}`);
      const { error } = response.json();
      t.match(error, new RegExp(`^Model '${name}' failed to load: .+`));
      t.notMatch(error, repository, 'no file system path');
      t.notMatch(error, /\/(tmp|work|home)\//);
    }
    t.ok((executor.attempts.get(name) ?? 0) <= 1, `${name} was tried at most once`);
    t.equal((await app.inject({ url: `/v2/models/${name}/ready` })).statusCode, 503);
    // Metadata comes from the file where it parses (unsupported's does: only its operator is unknown).
    t.equal((await app.inject({ url: `/v2/models/${name}` })).statusCode, name === 'unsupported' ? 200 : 503, `${name} metadata`);
  }
  t.match((await infer(app, 'missing', request(1))).json().error, /its file is not in the model repository/);
  t.match((await infer(app, 'unsupported', request(1))).json().error, /NoSuchOperator/);
  const good = await infer(app, 'good', request(4));
  t.same(good.json().outputs[0].data, [8]);
  t.equal((await app.inject({ url: '/v2/health/ready' })).statusCode, 200);
  const states = Object.fromEntries(app.registry.status().map((model) => [model.name, model.state]));
  t.same(states, { good: 'resident', corrupt: 'failed', unsupported: 'failed', missing: 'failed' });

  // An admin load retries at once: fix the file, load, serve.
  writeFiles(repository, { 'sub/missing.onnx': scaleModel(5) });
  const loaded = await app.inject({ method: 'POST', url: '/admin/models/missing/load', headers: AUTH });
  t.equal(loaded.statusCode, 200);
  t.equal(loaded.json().state, 'resident');
  t.same((await infer(app, 'missing', request(2))).json().outputs[0].data, [10]);
  const again = await app.inject({ method: 'POST', url: '/admin/models/corrupt/load', headers: AUTH });
  t.equal(again.statusCode, 503);
  t.equal(executor.attempts.get('corrupt'), 2);
});

t.test('maxResidentBytes caps the resident set by file size', async (t) => {
  const { files, list } = models(3);
  const size = files['m1.onnx']?.byteLength ?? 0;
  const { app, executor } = await buildGateway(t, { ...files, 'big.onnx': affineModel({ inFeatures: 64, outFeatures: 64, weights: new Array(4096).fill(0), bias: new Array(64).fill(0) }) }, {
    registry: { maxResidentBytes: size * 2 },
    models: [...list, { name: 'big', path: 'big.onnx' }],
  });
  for (const i of [1, 2, 3, 1, 2, 3]) t.same((await infer(app, `m${i}`, request(1))).json().outputs[0].data, [i]);
  t.equal(executor.maxOpen, 2);
  const big = await infer(app, 'big', { inputs: [{ name: 'x', shape: [1, 64], datatype: 'FP32', data: new Array(64).fill(1) }] });
  t.equal(big.statusCode, 503);
  t.match(big.json().error, /larger than registry.maxResidentBytes/);
});

t.test('pinned models load at start-up and are never evicted', async (t) => {
  const { files, list } = models(3);
  list[0] = { ...list[0], pinned: true } as (typeof list)[number];
  const { app, executor } = await buildGateway(t, files, { registry: { maxResidentModels: 2 }, models: list });
  t.equal(executor.loads.get('m1'), 1, 'loaded before the first request');
  for (const i of [2, 3, 2, 3]) t.same((await infer(app, `m${i}`, request(1))).json().outputs[0].data, [i]);
  t.equal(app.registry.status()[0]?.state, 'resident');
  t.equal(app.registry.status()[0]?.evictions, 0);
  const unload = await app.inject({ method: 'POST', url: '/admin/models/m1/unload', headers: AUTH });
  t.equal(unload.statusCode, 409);
  t.match(unload.json().error, /pinned/);
});

t.test('an admin unload waits for in-flight requests, then releases the session', async (t) => {
  const { app, executor } = await buildGateway(t, { 'a.onnx': scaleModel(2) }, { models: [{ name: 'a', path: 'a.onnx', batching: false }] });
  t.equal((await infer(app, 'a', request(1))).statusCode, 200);
  const open = executor.hold();
  const inFlight = infer(app, 'a', request(3));
  await eventually('condition', () => executor.runsStarted.get('a') === 2);
  let unloaded = false;
  const unload = app.inject({ method: 'POST', url: '/admin/models/a/unload', headers: AUTH }).then((response) => {
    unloaded = true;
    return response;
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(unloaded, false, 'the unload waits');
  t.equal(executor.releases.get('a'), undefined);
  open();
  t.same((await inFlight).json().outputs[0].data, [6]);
  const response = await unload;
  t.equal(response.statusCode, 200);
  t.match(response.json(), { name: 'a', state: 'unloaded', inFlight: 0, evictions: 1 });
  t.equal(executor.releases.get('a'), 1);
  // It loads again on the next request.
  t.same((await infer(app, 'a', request(4))).json().outputs[0].data, [8]);
  t.equal(executor.loads.get('a'), 2);
});
