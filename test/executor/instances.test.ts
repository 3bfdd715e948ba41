import t, { type Test } from 'tap';
import { WorkerExecutor } from '../../src/executor/workers.ts';
import { buildGateway, eventually, infer, metricsOf, scaleModel, slowLoadingModel } from '../helpers/gateway.ts';

/** A gateway on real worker threads: every model instance on a thread of its own. */
const gateway = (t: Test, files: Record<string, Uint8Array>, document: Record<string, unknown>) => buildGateway(t, files, document, (repository) => new WorkerExecutor(repository, 1));

/** A request of `rows` rows for scaleModel: x = base, base + 1, ... */
function rowsRequest(base: number, rows: number) {
  return { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 1], data: Array.from({ length: rows }, (_, i) => base + i) }] };
}

async function metric(app: Awaited<ReturnType<typeof gateway>>['app'], pattern: RegExp): Promise<number> {
  const text = await metricsOf(app);
  return [...text.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0);
}

t.test('two instances with pipelining: batches run on both threads and split back row for row', async (t) => {
  const { app, executor } = await gateway(t, { 'scale.onnx': scaleModel(3) }, {
    models: [{ name: 'scale', path: 'scale.onnx', instances: 2, runIn: 'worker', batching: { maxBatchSize: 8, maxQueueDelayMicros: 200 } }],
  });
  t.equal((await infer(app, 'scale', rowsRequest(1, 1))).statusCode, 200);
  t.equal(executor.threadsOf('scale').length, 2, 'two threads, one per instance');
  for (let round = 0; round < 5; round++) {
    const sizes = Array.from({ length: 40 }, (_, i) => 1 + ((i * 7 + round) % 3));
    const answers = await Promise.all(sizes.map((rows, i) => infer(app, 'scale', rowsRequest(1000 * round + 10 * i, rows))));
    answers.forEach((answer, i) => {
      const rows = sizes[i] as number;
      t.same(answer.json().outputs[0], { name: 'y', datatype: 'FP32', shape: [rows, 1], data: Array.from({ length: rows }, (_, r) => 3 * (1000 * round + 10 * i + r)) }, `request ${i} of round ${round}`);
    });
  }
  const batches = await metric(app, /^modelgate_batch_requests_count\{model="scale"\} (\S+)$/gm);
  const requests = await metric(app, /^modelgate_batch_requests_sum\{model="scale"\} (\S+)$/gm);
  t.equal(requests, 201, 'every request went through the batcher');
  t.ok(batches < requests, `requests were merged (${requests} requests in ${batches} batches)`);
});

t.test('a queue delay holds a lone request for about that long; a full batch goes at once', async (t) => {
  const { app } = await gateway(t, { 'scale.onnx': scaleModel(2) }, {
    models: [{ name: 'scale', path: 'scale.onnx', runIn: 'worker', batching: { maxBatchSize: 4, maxQueueDelayMicros: 300_000 } }],
  });
  t.equal((await infer(app, 'scale', rowsRequest(1, 1))).statusCode, 200, 'loaded');
  let begin = performance.now();
  t.same((await infer(app, 'scale', rowsRequest(5, 1))).json().outputs[0].data, [10]);
  const lone = performance.now() - begin;
  t.ok(lone >= 299 && lone < 3000, `a lone request waited its delay (${lone.toFixed(0)} ms for 300)`);
  begin = performance.now();
  const full = await Promise.all([1, 2, 3, 4].map((x) => infer(app, 'scale', rowsRequest(x, 1))));
  const elapsed = performance.now() - begin;
  t.same(full.map((answer) => answer.json().outputs[0].data[0]), [2, 4, 6, 8]);
  t.ok(elapsed < 250, `four rows filled the batch and it went before the delay (${elapsed.toFixed(0)} ms)`);
});

t.test('a cold model loading does not hold a resident model\'s requests', async (t) => {
  const { app, executor } = await gateway(t, { 'fast.onnx': scaleModel(2), 'cold.onnx': slowLoadingModel(6000) }, {
    models: [{ name: 'fast', path: 'fast.onnx', runIn: 'worker' }, { name: 'cold', path: 'cold.onnx', runIn: 'worker' }],
  });
  t.equal((await infer(app, 'fast', rowsRequest(1, 1))).statusCode, 200);
  const events: string[] = [];
  const cold = infer(app, 'cold', rowsRequest(1, 1)).then((answer) => {
    events.push('cold answered');
    return answer;
  });
  await eventually('the cold load to start', () => app.registry.status().some((model) => model.name === 'cold' && model.state === 'loading'));
  for (let i = 0; i < 10; i++) {
    t.same((await infer(app, 'fast', rowsRequest(i, 1))).json().outputs[0].data, [2 * i]);
    events.push('fast answered');
  }
  t.same((await cold).json().outputs[0].data, [6001], 'y = x + 6000');
  t.same(events.slice(0, 10), new Array(10).fill('fast answered'), 'ten answers of the resident model came while the cold one loaded');
  t.not(executor.threadsOf('fast')[0], executor.threadsOf('cold')[0]);
});

t.test('an instance lost with its thread: its requests fail with 503, the model loads again, others unharmed', async (t) => {
  const { app, executor } = await gateway(t, { 'scale.onnx': scaleModel(2), 'other.onnx': scaleModel(5) }, {
    models: [{ name: 'scale', path: 'scale.onnx', instances: 2, runIn: 'worker', batching: false }, { name: 'other', path: 'other.onnx', runIn: 'worker' }],
  });
  t.equal((await infer(app, 'scale', rowsRequest(1, 1))).statusCode, 200);
  t.equal((await infer(app, 'other', rowsRequest(1, 1))).statusCode, 200);
  const [first] = executor.threadsOf('scale');
  executor.crash(first as NonNullable<typeof first>);
  // Two at once: the instance with nothing in flight takes each, so one lands on the crashing thread.
  const answers = await Promise.all([infer(app, 'scale', rowsRequest(1, 1)), infer(app, 'scale', rowsRequest(2, 1))]);
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 503]);
  t.equal(answers.find((answer) => answer.statusCode === 503)?.headers['retry-after'], '1');
  await eventually('the dead thread gone', () => !executor.threads.includes(first as NonNullable<typeof first>));
  t.same((await infer(app, 'other', rowsRequest(3, 1))).json().outputs[0].data, [15], 'the other model still serves');
  t.same((await infer(app, 'scale', rowsRequest(4, 1))).json().outputs[0].data, [8], 'the lost model loads again');
  const now = executor.threadsOf('scale');
  t.equal(now.length, 2, 'two instances again');
  t.notOk(now.includes(first as NonNullable<typeof first>), 'not on the dead thread');
  t.not(now[0], now[1]);
  t.equal(app.registry.status().find((model) => model.name === 'scale')?.loads, 2);
});

t.test('maxResidentBytes counts every instance', async (t) => {
  const model = scaleModel(2);
  const { app } = await gateway(t, { 'scale.onnx': model }, {
    registry: { maxResidentBytes: model.length * 2 + 10 },
    models: [{ name: 'three', path: 'scale.onnx', instances: 3, runIn: 'worker' }, { name: 'two', path: 'scale.onnx', instances: 2, runIn: 'worker' }],
  });
  const refused = await infer(app, 'three', rowsRequest(1, 1));
  t.equal(refused.statusCode, 503);
  t.match(refused.json().error, `its 3 instances (${model.length * 3} bytes) are larger than registry.maxResidentBytes`);
  t.same((await infer(app, 'two', rowsRequest(1, 1))).json().outputs[0].data, [2]);
});

t.test('runIn: auto moves a model that runs in microseconds into the event loop; worker and eventLoop stay put', async (t) => {
  const { app, executor } = await gateway(t, { 'scale.onnx': scaleModel(2) }, {
    models: [
      { name: 'auto', path: 'scale.onnx', batching: false },
      { name: 'worker', path: 'scale.onnx', runIn: 'worker', batching: false },
      { name: 'loop', path: 'scale.onnx', runIn: 'eventLoop', batching: false },
    ],
  });
  t.same((await infer(app, 'loop', rowsRequest(4, 1))).json().outputs[0].data, [8]);
  t.equal(executor.threadsOf('loop').length, 0, 'eventLoop: no thread');
  t.equal((await infer(app, 'auto', rowsRequest(1, 1))).statusCode, 200);
  t.equal(executor.threadsOf('auto').length, 1, 'auto starts on a worker');
  let sent = 0;
  // The hop costs tens of µs more than this model's run, however loaded the machine: bounded in count anyway.
  while (executor.threadsOf('auto').length > 0 && sent < 2000) {
    const answers = await Promise.all([0, 1, 2, 3].map((i) => infer(app, 'auto', rowsRequest(sent + i, 1))));
    answers.forEach((answer, i) => t.equal(answer.json().outputs?.[0].data[0], 2 * (sent + i), answer.body));
    sent += 4;
  }
  t.equal(executor.threadsOf('auto').length, 0, `moved into the event loop after ${sent} requests`);
  t.same((await infer(app, 'auto', rowsRequest(21, 1))).json().outputs[0].data, [42], 'and answers the same from there');
  for (let i = 0; i < 100; i++) await infer(app, 'worker', rowsRequest(i, 1));
  t.equal(executor.threadsOf('worker').length, 1, 'worker: stays on its thread');
});

t.test('threads freed by evictions are reused by later loads, not started anew', async (t) => {
  const { app, executor } = await gateway(t, { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3) }, {
    registry: { maxResidentModels: 1 },
    models: [{ name: 'a', path: 'a.onnx', runIn: 'worker' }, { name: 'b', path: 'b.onnx', runIn: 'worker' }],
  });
  const seen = new Set(executor.threads);
  for (let i = 0; i < 10; i++) {
    t.same((await infer(app, i % 2 === 0 ? 'a' : 'b', rowsRequest(i, 1))).json().outputs[0].data, [(i % 2 === 0 ? 2 : 3) * i]);
    for (const thread of executor.threads) seen.add(thread);
  }
  t.equal(app.registry.status().reduce((sum, model) => sum + model.loads, 0), 10, 'ten loads');
  t.ok(seen.size <= 3, `on ${seen.size} threads in all`);
});
