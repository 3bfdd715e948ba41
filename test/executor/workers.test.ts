import type { Worker } from 'node:worker_threads';
import t, { type Test } from 'tap';
import { WorkerExecutor } from '../../src/executor/workers.ts';
import { identityModel } from '../../src/onnx/builder.ts';
import { buildGateway, eventually, infer, scaleModel, scaleRequest, slowModel, slowRequest } from '../helpers/gateway.ts';

const files = {
  'slow.onnx': slowModel(), 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3), 'corrupt.onnx': 'nope',
  'half.onnx': identityModel('float16', ['n']), 'big.onnx': identityModel('int64', ['n']), 'text.onnx': identityModel('string', ['n']),
};
const models = ['slow', 'a', 'b', 'corrupt', 'half', 'big', 'text'].map((name) => ({ name, path: `${name}.onnx`, batching: false as const }));

/** A gateway on a real pool of two worker threads. */
const gateway = (t: Test) => buildGateway(t, files, { executor: { workers: 2 }, models }, (repository) => new WorkerExecutor(repository, 2));

t.test('models run in worker threads: tensors cross intact, load failures are reported', async (t) => {
  const { app } = await gateway(t);
  t.same((await infer(app, 'a', scaleRequest(4))).json().outputs[0].data, [8]);
  t.same((await infer(app, 'half', { inputs: [{ name: 'x', datatype: 'FP16', shape: [2], data: [0.5, -2] }] })).json().outputs[0].data, [0.5, -2]);
  t.match((await infer(app, 'big', { inputs: [{ name: 'x', datatype: 'INT64', shape: [1], data: ['-9223372036854775808'] }] })).body, /"data":\[-9223372036854775808\]/);
  t.same((await infer(app, 'text', { inputs: [{ name: 'x', datatype: 'BYTES', shape: [2], data: ['ä', ''] }] })).json().outputs[0].data, ['ä', '']);
  const corrupt = await infer(app, 'corrupt', scaleRequest(1));
  t.equal(corrupt.statusCode, 503);
  t.match(corrupt.json(), { error: /^Model 'corrupt' failed to load: Failed to load model because protobuf parsing failed/ });
});

t.test('the event loop answers while a model runs', async (t) => {
  const { app } = await gateway(t);
  t.equal((await infer(app, 'slow', slowRequest(1))).statusCode, 200);
  const order: string[] = [];
  const slow = infer(app, 'slow', slowRequest()).then((response) => { order.push('inference'); return response; });
  await new Promise((resolve) => setTimeout(resolve, 10));
  await app.inject({ url: '/v2/health/live' }).then(() => order.push('health'));
  t.equal((await slow).statusCode, 200);
  t.same(order, ['health', 'inference'], 'health was answered before the running inference finished');
});

t.test('a worker that dies fails only its own requests, and is replaced', async (t) => {
  const { app, executor } = await gateway(t);
  t.equal((await infer(app, 'slow', slowRequest(1))).statusCode, 200);
  t.equal((await infer(app, 'a', scaleRequest(1))).statusCode, 200, 'a loads on the other worker');
  const [slowThread] = executor.threadsOf('slow');
  const [otherThread] = executor.threadsOf('a');
  t.not(slowThread, otherThread, 'each model has a thread of its own');
  // The worker exits before it reads the run sent after: that request was in its hands when it died.
  executor.crash(slowThread as Worker);
  const lost = await infer(app, 'slow', slowRequest(1));
  t.equal(lost.statusCode, 503);
  t.equal(lost.headers['retry-after'], '1');
  t.match(lost.json(), { error: "Model 'slow' was lost with the worker thread running it; try again" });
  t.same((await infer(app, 'a', scaleRequest(5))).json().outputs[0].data, [10], 'the other worker still serves');
  await eventually('the dead thread gone', () => !executor.threads.includes(slowThread as Worker));
  t.equal((await infer(app, 'slow', slowRequest(1))).statusCode, 200, 'the lost model loads again');
  t.equal(app.registry.status()[0]?.loads, 2);
});
