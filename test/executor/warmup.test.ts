/**
 * Warm-up: runs on zeros from the signature after a load and before the first request, on the
 * thread that will run the model; counted in the load, never in the inference metrics; a
 * warm-up that fails leaves the model serving; never for a remote model.
 */
import t from 'tap';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { ModelConfig } from '../../src/config/schema.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { warmupInputs } from '../../src/executor/warmup.ts';
import { WorkerExecutor } from '../../src/executor/workers.ts';
import { buildModel, identityModel } from '../../src/onnx/builder.ts';
import { adminRequest, buildGateway, infer, makeRepository, modelConfig, metricsOf, scaleModel, scaleRequest, TOKEN } from '../helpers/gateway.ts';

/** y = reshape(x, [-1, 4]) on x [batch, k]: runs only when batch × k is a multiple of 4, so not on a 1 × 1 warm-up. */
function reshapeModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'k'] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['rows', 4] }],
    initializers: [{ name: 'shape', type: 'int64', dims: [2], values: [-1n, 4n] }],
    nodes: [{ op: 'Reshape', inputs: ['x', 'shape'], outputs: ['y'] }],
  });
}


t.test('warm-up inputs are zeros in the shape of the signature: the batch in a dynamic first dimension, 1 in any other dynamic one', async (t) => {
  const inputs = warmupInputs({
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [-1, 4] },
      { name: 'b', datatype: 'INT64', shape: [-1, -1, 3] },
      { name: 'c', datatype: 'BOOL', shape: [2, 2] },
      { name: 'd', datatype: 'BYTES', shape: [-1] },
      { name: 'e', datatype: 'FP16', shape: [3, -1] },
    ],
    outputs: [],
  }, 8);
  t.same([...inputs.keys()], ['a', 'b', 'c', 'd', 'e']);
  t.same(inputs.get('a'), { datatype: 'FP32', shape: [8, 4], data: new Float32Array(32) });
  t.same(inputs.get('b'), { datatype: 'INT64', shape: [8, 1, 3], data: new BigInt64Array(24) });
  t.same(inputs.get('c'), { datatype: 'BOOL', shape: [2, 2], data: new Uint8Array(4) });
  t.same(inputs.get('d'), { datatype: 'BYTES', shape: [8], data: new Array(8).fill('') });
  t.same(inputs.get('e'), { datatype: 'FP16', shape: [3, 1], data: new Uint16Array(3) });
});

t.test('warmup.inputs gives an input its shape: -1 first takes the batch, the rest stand for dynamic dimensions; a shape that does not fit is refused, naming the field', async (t) => {
  const signature = {
    inputs: [{ name: 'image', datatype: 'FP32' as const, shape: [-1, 3, -1, -1] }, { name: 'scale', datatype: 'INT32' as const, shape: [-1, -1] }],
    outputs: [],
  };
  const inputs = warmupInputs(signature, 2, { image: { shape: [-1, 3, 32, 24] } });
  t.same(inputs.get('image'), { datatype: 'FP32', shape: [2, 3, 32, 24], data: new Float32Array(2 * 3 * 32 * 24) });
  t.same(inputs.get('scale'), { datatype: 'INT32', shape: [2, 1], data: new Int32Array(2) }, 'an input not named keeps the default shape');
  t.same(warmupInputs(signature, 2, { image: { shape: [5, 3, 8, 8] } }).get('image')?.shape, [5, 3, 8, 8], 'a size in place of -1 is used as it is');
  const refused = (given: Record<string, { shape: number[] }>, message: RegExp, what: string) => t.throws(() => warmupInputs(signature, 2, given), message, what);
  refused({ image: { shape: [-1, 3, 32] } }, /^warmup\.inputs\.image\.shape: 3 dimensions, but the model's input 'image' has 4 \(\[-1, 3, -1, -1\]\)$/, 'the wrong rank');
  refused({ image: { shape: [-1, 4, 32, 32] } }, /^warmup\.inputs\.image\.shape: dimension 1 is 3 in the model, not 4$/, 'a fixed dimension changed');
  refused({ image: { shape: [-1, 3, -1, 32] } }, /^warmup\.inputs\.image\.shape: -1 \(the batch size\) only in a dynamic first dimension, not at 2$/, '-1 past the first');
  refused({ image: { shape: [-1, 3, 4096, 4096] } }, /^warm-up input 'image' of shape \[2, 3, 4096, 4096\] has more than 16777216 elements$/, 'too large to allocate');
});

t.test('a load runs the warm-up on the real session: each distinct batch size, `runs` times; a fixed first dimension once per run; false none', async (t) => {
  const repository = makeRepository(t, { 'scale.onnx': scaleModel(2), 'fixed.onnx': identityModel('float32', [3]), 'reshape.onnx': reshapeModel() });
  const executor = new OnnxExecutor(repository);
  const model = (name: string, file: string, warmup: ModelConfig['warmup']) => modelConfig(repository, { name, path: file, batching: false, warmup });
  const check = async (config: ModelConfig, runs: number | undefined, failure?: RegExp) => {
    const loaded = await executor.load(config);
    t.teardown(() => loaded.release());
    if (runs === undefined) t.equal(loaded.warmup, undefined, `${config.name}: not warmed up`);
    else t.match(loaded.warmup, { runs, milliseconds: Number, ...(failure === undefined ? {} : { failure }) }, `${config.name}: ${runs} warm-up runs`);
    if (failure === undefined) t.notOk(loaded.warmup?.failure, `${config.name}: no failure`);
    return loaded;
  };
  await check(model('scale', 'scale.onnx', { batchSizes: [1, 8, 8, 64], runs: 2 }), 6);
  await check(model('fixed', 'fixed.onnx', { batchSizes: [1, 8], runs: 3 }), 3);
  await check(model('off', 'scale.onnx', false), undefined);
  // The run that fails ends the warm-up, and says why; the model still serves rows it can run.
  const reshape = await check(model('reshape', 'reshape.onnx', { batchSizes: [1], runs: 2 }), 0, /reshape|Reshape|shape/i);
  const answer = await reshape.run(new Map([['x', { datatype: 'FP32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }]]), ['y']);
  t.same(answer.get('y'), { datatype: 'FP32', shape: [1, 4], data: new Float32Array([1, 2, 3, 4]) });
  // Given a shape it can run, the same model warms up: x is [1, 4] and [3, 4], each reshaped to rows of 4.
  await check(model('reshape-shaped', 'reshape.onnx', { batchSizes: [1, 3], runs: 2, inputs: { x: { shape: [-1, 4] } } }), 4);
  // A name the model has no input of: nothing runs, and the failure says so (the model still loads).
  await check(model('reshape-misnamed', 'reshape.onnx', { batchSizes: [1], runs: 1, inputs: { image: { shape: [-1, 4] }, x: { shape: [-1, 4] } } }), 0,
    /^warmup\.inputs: 'image' is not an input of the model \(its inputs: x\)$/);
});

t.test('on worker threads, the warm-up is done before the first request: logged with the load, counted in its time, not in the inference metrics', async (t) => {
  const repository = makeRepository(t, { 'scale.onnx': scaleModel(2), 'reshape.onnx': reshapeModel() });
  const lines: Array<Record<string, unknown>> = [];
  const config = validateConfig({
    admin: { token: TOKEN }, modelRepository: repository,
    models: [
      { name: 'scale', path: 'scale.onnx', runIn: 'worker', instances: 2, warmup: { batchSizes: [1, 8], runs: 2 } },
      { name: 'plain', path: 'scale.onnx', runIn: 'worker' },
      { name: 'cold', path: 'scale.onnx', runIn: 'worker', warmup: false },
      { name: 'reshape', path: 'reshape.onnx', runIn: 'worker', batching: false },
    ],
  }, repository, {});
  const app = await buildApp(config, {
    executor: new WorkerExecutor(config.modelRepository, 2),
    logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } } },
  });
  t.teardown(() => app.close());
  await app.ready();
  for (const [key, x, y] of [['scale', 4, 8], ['plain', 5, 10], ['cold', 6, 12]] as const) {
    const response = await infer(app, key, scaleRequest(x));
    t.same(response.json().outputs[0].data, [y], `${key}: answered`);
  }
  const order = lines.filter((line) => line.msg === 'model loaded' || line.msg === 'request').map((line) => `${String(line.msg)} ${String(line.model ?? line.url)}`);
  t.same(order, ['model loaded scale', 'request /v2/models/scale/infer', 'model loaded plain', 'request /v2/models/plain/infer', 'model loaded cold', 'request /v2/models/cold/infer'], 'each load, warm-up included, was over before its first request was answered');
  const loaded = (name: string) => lines.find((line) => line.msg === 'model loaded' && line.model === name) as { milliseconds: number; warmup?: { runs: number; milliseconds: number } };
  // Two instances, each two runs at batch 1 and two at batch 8.
  t.equal(loaded('scale').warmup?.runs, 8, 'both instances warmed up at both batch sizes');
  t.ok((loaded('scale').warmup?.milliseconds ?? Infinity) <= loaded('scale').milliseconds, 'the warm-up is part of the load time');
  t.equal(loaded('plain').warmup?.runs, 1, 'by default, one run at batch 1');
  t.equal(loaded('cold').warmup, undefined, 'warmup: false');
  const metrics = await metricsOf(app);
  for (const name of ['scale', 'plain', 'cold']) {
    t.match(metrics, new RegExp(`^modelgate_inference_duration_seconds_count\\{model="${name}"\\} 1$`, 'm'), `${name}: the one request is the one inference counted`);
    t.match(metrics, new RegExp(`^modelgate_model_load_duration_seconds_count\\{model="${name}"\\} 1$`, 'm'), `${name}: one load`);
  }
  t.notMatch(metrics, /modelgate_batch_size_count\{model="scale"\} [^1]/, 'the warm-up is not a batch');

  // A warm-up that fails is a warning; the model loads and serves.
  const reshaped = await infer(app, 'reshape', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 8], data: [1, 2, 3, 4, 5, 6, 7, 8] }] });
  t.equal(reshaped.statusCode, 200);
  t.same(reshaped.json().outputs[0], { name: 'y', datatype: 'FP32', shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] });
  const warning = lines.find((line) => line.msg === 'model warm-up failed: it serves, cold');
  t.match(warning, { level: 40, model: 'reshape', reason: String });
  t.notMatch(String(warning?.reason), new RegExp(repository.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no file path in the reason');
  t.equal(loaded('reshape').warmup?.runs, 0);
});

t.test('warmup.inputs through the admin API: a malformed shape is a 400 naming it; a good one is kept, shown and used at the load', async (t) => {
  const { app } = await buildGateway(t, { 'reshape.onnx': reshapeModel() }, { models: [] });
  const put = (warmup: unknown) => app.inject(adminRequest('PUT', '/admin/models/shaped', { path: 'reshape.onnx', batching: false, warmup }));
  for (const [warmup, field] of [
    [{ inputs: { x: { shape: [-2, 4] } } }, /^warmup\.inputs\.x\.shape\[0\]: Expected integer to be greater or equal to -1$/],
    [{ inputs: { x: { shape: '[-1, 4]' } } }, /^warmup\.inputs\.x\.shape: Expected array$/],
    [{ inputs: { x: { dims: [-1, 4] } } }, /^warmup\.inputs\.x\.shape: Expected required property; warmup\.inputs\.x\.dims: Unexpected property/],
  ] as const) {
    const response = await put(warmup);
    t.equal(response.statusCode, 400, response.body);
    t.match(response.json(), { error: field }, `names ${String(field)}`);
  }
  const created = await put({ batchSizes: [2], runs: 1, inputs: { x: { shape: [-1, 4] } } });
  t.equal(created.statusCode, 201, created.body);
  const view = (await app.inject(adminRequest('GET', '/admin/models/shaped'))).json();
  t.same(view.warmup, { batchSizes: [2], runs: 1, inputs: { x: { shape: [-1, 4] } } });
  const answered = await infer(app, 'shaped', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
  t.same(answered.json().outputs[0].data, [1, 2, 3, 4]);
});

t.test('a remote model is never warmed up: its server runs only the requests sent to it', async (t) => {
  // The remote: another gateway on a loopback port, its own model warmed up by itself at its load.
  const { app: server, repository } = await buildGateway(t, { 'seven.onnx': scaleModel(7) }, { models: [{ name: 'seven', path: 'seven.onnx', warmup: false }] });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const ranOnRemote = async () => Number(/^modelgate_inference_duration_seconds_count\{model="seven"\} (\d+)$/m.exec(await metricsOf(server))?.[1] ?? 0);
  // (t.testdir() is one folder per test: the front gateway shares the remote's, having no files.)
  const app = await buildApp(validateConfig({
    admin: { token: TOKEN }, modelRepository: repository,
    models: [{ name: 'far', remote: { url, model: 'seven' }, warmup: { batchSizes: [4], runs: 3 } }],
  }, repository, {}), { executor: new OnnxExecutor(repository) });
  t.teardown(() => app.close());
  await app.ready();
  t.equal(await ranOnRemote(), 0, 'nothing was run on the remote at start-up');
  const response = await infer(app, 'far', scaleRequest(3));
  t.equal(response.statusCode, 200, response.body);
  t.same(response.json().outputs[0].data, [21]);
  t.equal(await ranOnRemote(), 1, 'the remote ran exactly the one request, no warm-up before it');
});
