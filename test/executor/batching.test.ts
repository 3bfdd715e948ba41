import t, { type Test } from 'tap';
import { canBatch } from '../../src/executor/batching.ts';
import { affineModel, identityModel } from '../../src/onnx/builder.ts';
import { buildGateway, closeTo, infer, metricsOf } from '../helpers/gateway.ts';

const W = [1, -2, 0.5, 3, -1, 0.25]; // [in=3][out=2]
const B = [0.5, -0.5];
const files = {
  'lin.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: W, bias: B }),
  'lin2.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: W.map((w) => 2 * w), bias: B }),
  'fixed.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: W, bias: B, batch: 2 }),
  'words.onnx': identityModel('string', ['n']),
  'grid.onnx': identityModel('int32', ['n', 'm']),
};

function rowsFor(request: number, count: number): number[][] {
  return Array.from({ length: count }, (_, r) => [request + r, -request * 0.5, r * 0.25 - 1]);
}

function expected(rows: number[][], scale = 1): number[] {
  return rows.flatMap((row) => [0, 1].map((j) => row.reduce((sum, v, i) => sum + v * scale * W[i * 2 + j]!, 0) + B[j]!));
}

function body(rows: number[][]) {
  return { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows.length, 3], data: rows }] };
}

t.test('requests of different sizes arriving together share a run, and each gets its own rows back', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models: [{ name: 'lin', path: 'lin.onnx' }, { name: 'lin2', path: 'lin2.onnx' }],
  });
  await infer(app, 'lin', body(rowsFor(0, 1)));
  await infer(app, 'lin2', body(rowsFor(0, 1)));
  const before = (executor.runsStarted.get('lin') ?? 0) + (executor.runsStarted.get('lin2') ?? 0);
  const requests = Array.from({ length: 12 }, (_, i) => ({ key: i % 3 === 2 ? 'lin2' : 'lin', rows: rowsFor(i, (i % 4) + 1) }));
  const responses = await Promise.all(requests.map((request) => infer(app, request.key, body(request.rows))));
  responses.forEach((response, i) => {
    const request = requests[i]!;
    t.equal(response.statusCode, 200);
    t.same(response.json().outputs[0].shape, [request.rows.length, 2]);
    closeTo(t, response.json().outputs[0].data, expected(request.rows, request.key === 'lin2' ? 2 : 1), `request ${i} (${request.key})`, 1e-4);
  });
  const runs = (executor.runsStarted.get('lin') ?? 0) + (executor.runsStarted.get('lin2') ?? 0) - before;
  t.ok(runs < requests.length, `${requests.length} requests ran in ${runs} runs`);
  t.ok(runs >= 2, 'batches never mix models');
  const metrics = await metricsOf(app);
  t.match(metrics, /^modelgate_batch_requests_sum\{model="lin"\} \d+$/m);
});

t.test('maxBatchSize bounds the rows of a batch', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'lin', path: 'lin.onnx', batching: { maxBatchSize: 4 } }] });
  const requests = Array.from({ length: 10 }, (_, i) => rowsFor(i, 1 + (i % 2)));
  const responses = await Promise.all(requests.map((rows) => infer(app, 'lin', body(rows))));
  responses.forEach((response, i) => closeTo(t, response.json().outputs[0].data, expected(requests[i]!), `request ${i}`), 1e-4);
  const big = await infer(app, 'lin', body(rowsFor(3, 9)));
  closeTo(t, big.json().outputs[0].data, expected(rowsFor(3, 9)), 'a request over maxBatchSize runs alone', 1e-4);
  const metrics = await metricsOf(app);
  const count = Number(/^modelgate_batch_size_count\{model="lin"\} (\d+)$/m.exec(metrics)?.[1]);
  const upTo4 = Number(/^modelgate_batch_size_bucket\{le="4",model="lin"\} (\d+)$/m.exec(metrics)?.[1]);
  t.ok(count > 0);
  t.equal(upTo4, count, 'every batch had at most 4 rows');
});

t.test('what cannot batch runs one request at a time', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models: [
      { name: 'fixed', path: 'fixed.onnx' },
      { name: 'off', path: 'lin.onnx', batching: false },
      { name: 'one', path: 'lin2.onnx', batching: { maxBatchSize: 1 } },
    ],
  });
  for (const key of ['fixed', 'off', 'one']) {
    const rows = key === 'fixed' ? 2 : 1;
    const requests = Array.from({ length: 6 }, (_, i) => rowsFor(i, rows));
    const before = executor.runsStarted.get(key) ?? 0;
    const responses = await Promise.all(requests.map((r) => infer(app, key, body(r))));
    responses.forEach((response, i) => closeTo(t, response.json().outputs[0].data, expected(requests[i]!, key === 'one' ? 2 : 1), `${key} ${i}`), 1e-4);
    t.equal((executor.runsStarted.get(key) ?? 0) - before, 6, `${key}: one run per request`);
  }
});

t.test('strings batch; different trailing dimensions never share a batch', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'words', path: 'words.onnx' }, { name: 'grid', path: 'grid.onnx' }] });
  const words = [['a'], ['b', 'c'], ['d', 'e', 'f']];
  const answers = await Promise.all(words.map((data) => infer(app, 'words', { inputs: [{ name: 'x', datatype: 'BYTES', shape: [data.length], data }] })));
  t.same(answers.map((response) => response.json().outputs[0].data), words);
  const grids = [[[1, 2]], [[3, 4, 5]], [[6, 7]], [[8, 9, 10], [11, 12, 13]]];
  const results = await Promise.all(grids.map((data) => infer(app, 'grid', { inputs: [{ name: 'x', datatype: 'INT32', shape: [data.length, data[0]!.length], data }] })));
  t.same(results.map((response) => response.json().outputs[0].data), grids.map((grid) => grid.flat()));
  t.same(results.map((response) => response.json().outputs[0].shape), grids.map((grid) => [grid.length, grid[0]!.length]));
});

t.test('canBatch needs a dynamic first dimension everywhere', async (t) => {
  t.ok(canBatch({ inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] }));
  t.notOk(canBatch({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] }));
  t.notOk(canBatch({ inputs: [{ name: 'x', datatype: 'FP32', shape: [] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] }));
  t.notOk(canBatch({ inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] }));
});
