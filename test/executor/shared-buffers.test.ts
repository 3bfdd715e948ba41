/**
 * The row path without copies: a batch's input is one buffer the worker thread takes over, and
 * each request's outputs are views of the batch's output. Checked on real worker threads and
 * in the event loop: every request gets exactly its rows, a view never sees a later batch's
 * data, a request's own inputs stay readable (other targets read them), and a client that goes
 * away while its batch runs costs nobody else their answer.
 */
import t from 'tap';
import type { Tensor, TensorMap } from '@modelgate/client/codec';
import type { ModelConfig } from '../../src/config/schema.ts';
import { BatchingExecutor } from '../../src/executor/batching.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { handedOver, type Executor } from '../../src/executor/types.ts';
import { WorkerExecutor } from '../../src/executor/workers.ts';
import { affineModel } from '../../src/onnx/builder.ts';
import { buildGateway, CountingExecutor, eventually, makeRepository, metricsOf, modelConfig, slowModel } from '../helpers/gateway.ts';

/** y = x W + b on [batch, 3] -> [batch, 2], small integers: exact in float32. */
const W = [1, 2, 0, -1, 3, 1];
const B = [10, -5];
const expected = (x: readonly number[]) => {
  const y: number[] = [];
  for (let row = 0; row < x.length / 3; row++) {
    for (let j = 0; j < 2; j++) y.push(B[j] as number + [0, 1, 2].reduce((sum, i) => sum + (x[row * 3 + i] as number) * (W[i * 2 + j] as number), 0));
  }
  return y;
};

const config = (repository: string, runIn: ModelConfig['runIn'], instances: number) => modelConfig(repository, {
  name: 'affine', path: 'affine.onnx', batching: { maxBatchSize: 16, maxQueueDelayMicros: 0 }, instances, runIn, warmup: false,
});

/** `rows` rows of request `n`: distinct integers, so a row in the wrong answer shows. */
const rowsOf = (n: number, rows: number) => Array.from({ length: rows * 3 }, (_, i) => n * 100 + i);
const input = (x: number[]): TensorMap => new Map([['x', { datatype: 'FP32', shape: [x.length / 3, 3], data: new Float32Array(x) }]]);

for (const [where, runner, instances] of [
  ['two worker threads', (repository: string) => new WorkerExecutor(repository, 2), 2],
  ['the event loop', (repository: string) => new OnnxExecutor(repository), 1],
] as Array<[string, (repository: string) => Executor, number]>) {
  t.test(`${where}: batches split back exactly as views of one output, and later batches never show through`, async (t) => {
    const repository = makeRepository(t, { 'affine.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: W, bias: B }) });
    const inner = runner(repository);
    const batches: Array<[rows: number, requests: number]> = [];
    const executor = new BatchingExecutor(inner, (_model, rows, requests) => batches.push([rows, requests]));
    t.teardown(() => executor.close());
    const model = await executor.load(config(repository, instances === 2 ? 'worker' : 'eventLoop', instances));
    t.teardown(() => model.release());
    const kept: Array<{ x: number[]; inputs: TensorMap; answer: Tensor }> = [];
    for (let round = 0; round < 6; round++) {
      // Forty requests of 1 to 3 rows at once: several batches in flight on both instances.
      const requests = Array.from({ length: 40 }, (_, i) => rowsOf(round * 40 + i, 1 + ((i + round) % 3)));
      const inputs = requests.map(input);
      const answers = await Promise.all(inputs.map((each) => model.run(each, ['y'])));
      answers.forEach((answer, i) => {
        const y = answer.get('y') as Tensor;
        const x = requests[i] as number[];
        t.same({ shape: y.shape, data: [...(y.data as Float32Array)] }, { shape: [x.length / 3, 2], data: expected(x) }, `round ${round}, request ${i}: its own rows`);
        kept.push({ x, inputs: inputs[i] as TensorMap, answer: y });
      });
    }
    const merged = batches.filter(([, requests]) => requests > 1).length;
    t.ok(merged > 0, `requests were merged (${batches.length} batches for 240 requests)`);
    // Answers of merged batches are views: their buffer is the batch's, larger than their rows.
    t.ok(kept.some(({ answer }) => (answer.data as Float32Array).buffer.byteLength > (answer.data as Float32Array).byteLength), 'answers share their batch output buffer');
    // Every answer still holds its own rows after all the later batches ran.
    t.ok(kept.every(({ x, answer }) => JSON.stringify([...(answer.data as Float32Array)]) === JSON.stringify(expected(x))), 'no answer changed after later batches ran');
    // The batch's input went over by transfer; the requests' own inputs are intact.
    t.ok(kept.every(({ x, inputs }) => JSON.stringify([...((inputs.get('x') as Tensor).data as Float32Array)]) === JSON.stringify(x)), 'every request\'s input is still readable, unchanged');
  });
}

t.test('a worker thread takes over the batcher\'s buffers and copies everyone else\'s', async (t) => {
  const repository = makeRepository(t, { 'affine.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: W, bias: B }) });
  const executor = new WorkerExecutor(repository, 1);
  t.teardown(() => executor.close());
  const model = await executor.load(config(repository, 'worker', 1));
  t.teardown(() => model.release());
  const x = rowsOf(1, 2);
  const own = new Float32Array(x);
  const batch = new Float32Array(x);
  handedOver.add(batch);
  // A view of part of a larger buffer is never transferred (the rest of it is not the batch's).
  const part = new Float32Array(new ArrayBuffer(4 * (x.length + 3)), 12, x.length);
  part.set(x);
  handedOver.add(part);
  for (const [what, data] of [['a request\'s own input', own], ['a batch\'s input', batch], ['a marked view of a larger buffer', part]] as const) {
    const answer = await model.run(new Map([['x', { datatype: 'FP32', shape: [2, 3], data }]]), ['y']);
    t.same([...((answer.get('y') as Tensor).data as Float32Array)], expected(x), `${what}: answered`);
  }
  t.same([...own], x, 'a request\'s own input is copied: still there');
  t.equal(batch.byteLength, 0, 'the batch\'s input was transferred: detached here');
  t.same([...part], x, 'the view is copied: still there');
});

t.test('clients that go away while their batch runs or waits: the others get their rows, the server goes on', async (t) => {
  const { app, executor } = await buildGateway(t, { 'slow.onnx': slowModel() }, {
    models: [{ name: 'slow', path: 'slow.onnx', instances: 2, runIn: 'worker', batching: { maxBatchSize: 16, maxQueueDelayMicros: 0 } }],
  }, (repository) => new CountingExecutor(new WorkerExecutor(repository, 2)));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  // y = x W^30 with W all 1/512: a constant row c comes back as c, exactly for small integers.
  const body = (c: number) => JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 512], data: new Array(2 * 512).fill(c) }] });
  const send = (c: number, signal?: AbortSignal) => fetch(`${url}/v2/models/slow/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(c), ...(signal === undefined ? {} : { signal }) });
  t.equal((await send(1)).status, 200, 'loaded');
  // The first batch is held as it starts; the rest wait behind it.
  const open = executor.hold('slow');
  const aborts = new Map<number, AbortController>();
  const sent = Array.from({ length: 24 }, (_, i) => {
    const c = i + 1;
    const controller = new AbortController();
    if (c % 5 === 0 || c === 1) aborts.set(c, controller);
    return send(c, controller.signal).then(async (response) => ({ c, status: response.status, y: (await response.json() as { outputs: Array<{ data: number[] }> }).outputs[0]?.data }), () => ({ c, status: 0, y: undefined }));
  });
  await eventually('every request to arrive', async () => /^modelgate_model_in_flight\{model="slow"\} 24$/m.test(await metricsOf(app)), 10_000, 10);
  // One batch after the first request's: held as it starts (request 1 came first, so it is in it).
  await eventually('a batch to start', () => (executor.runsStarted.get('slow') ?? 0) >= 2, 10_000, 5);
  for (const controller of aborts.values()) controller.abort();
  open();
  const outcomes = await Promise.all(sent);
  for (const outcome of outcomes) {
    if (aborts.has(outcome.c)) {
      t.equal(outcome.status, 0, `request ${outcome.c}: its client went away`);
      continue;
    }
    t.equal(outcome.status, 200, `request ${outcome.c}: answered`);
    t.ok(outcome.y?.length === 2 * 512 && outcome.y.every((value) => value === outcome.c), `request ${outcome.c}: its own rows`);
  }
  const after = await send(7);
  t.equal(after.status, 200);
  t.ok(((await after.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]?.data.every((value) => value === 7), 'the next request is served');
  await eventually('nothing left in flight', async () => /^modelgate_model_in_flight\{model="slow"\} 0$/m.test(await metricsOf(app)), 10_000, 10);
});
