import t from 'tap';
import { request } from 'undici';
import { eventually, AUTH, buildGateway, infer, scaleModel, scaleRequest } from '../helpers/gateway.ts';

const files = { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3) };

t.test('beyond maxQueueSize, 503 with Retry-After at once; other models unaffected', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models: [{ name: 'a', path: 'a.onnx', maxQueueSize: 3, batching: false }, { name: 'b', path: 'b.onnx' }],
  });
  t.equal((await infer(app, 'a', scaleRequest(1))).statusCode, 200);
  const open = executor.hold('a');
  const queued = [1, 2, 3].map((x) => infer(app, 'a', scaleRequest(x)));
  await eventually('condition', () => app.registry.status()[0]?.inFlight === 3);
  const refused = await infer(app, 'a', scaleRequest(9));
  t.equal(refused.statusCode, 503);
  t.equal(refused.headers['retry-after'], '1');
  t.match(refused.json(), { error: "Model 'a' has 3 requests waiting or running, its maxQueueSize: try again shortly" });
  t.same((await infer(app, 'b', scaleRequest(1))).json().outputs[0].data, [3], 'b still serves');
  open();
  t.same((await Promise.all(queued)).map((response) => response.json().outputs[0].data[0]), [2, 4, 6]);
});

t.test('a request whose deadline passes while it waits gets 504 and never runs', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    server: { defaultTimeoutMicros: 50_000 },
    registry: { maxResidentModels: 1 },
    models: [{ name: 'a', path: 'a.onnx', batching: false }, { name: 'b', path: 'b.onnx', batching: false }],
  });
  t.equal((await infer(app, 'a', scaleRequest(1))).statusCode, 200);
  const open = executor.hold('a');
  const busy = infer(app, 'a', { ...scaleRequest(1), parameters: { timeout: 10_000_000 } });
  await eventually('condition', () => executor.runsStarted.get('a') === 2);
  // b needs a's slot, which stays taken past b's deadline (50 ms by default).
  const late = await infer(app, 'b', scaleRequest(1));
  t.equal(late.statusCode, 504);
  t.match(late.json(), { error: "The request's deadline passed while it waited for model 'b'; it did not run" });
  const explicit = await infer(app, 'b', { ...scaleRequest(1), parameters: { timeout: 1000 } });
  t.equal(explicit.statusCode, 504, 'the timeout parameter, in µs');
  t.equal(executor.runsStarted.get('b') ?? 0, 0, 'b never ran');
  t.equal((await infer(app, 'b', { ...scaleRequest(1), parameters: { timeout: -5 } })).statusCode, 400);
  open();
  t.equal((await busy).statusCode, 200);
  // Its abandoned load finished and was released: b is usable.
  t.same((await infer(app, 'b', { ...scaleRequest(2), parameters: { timeout: 10_000_000 } })).json().outputs[0].data, [6]);
  t.equal(app.registry.status()[1]?.inFlight, 0);
});

t.test('deadlines also apply in the batch queue', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'a', path: 'a.onnx', batching: { maxBatchSize: 64, maxQueueDelayMicros: 200_000 } }] });
  t.equal((await infer(app, 'a', { ...scaleRequest(1), parameters: { timeout: 10_000_000 } })).statusCode, 200);
  const response = await infer(app, 'a', { ...scaleRequest(1), parameters: { timeout: 20_000 } });
  t.equal(response.statusCode, 504);
});

t.test('a client that disconnects has its queued work dropped', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    registry: { maxResidentModels: 1 },
    models: [{ name: 'a', path: 'a.onnx', batching: false }, { name: 'b', path: 'b.onnx', batching: false }],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  t.equal((await infer(app, 'a', scaleRequest(1))).statusCode, 200);
  const open = executor.hold('a');
  const busy = infer(app, 'a', scaleRequest(1));
  await eventually('condition', () => executor.runsStarted.get('a') === 2);
  const gone = new AbortController();
  const abandoned = request(`${url}/v2/models/b/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(scaleRequest(1)), signal: gone.signal }).catch((error: Error) => error.name);
  await eventually('b to wait for a slot', () => app.registry.status()[1]?.state === 'loading');
  gone.abort();
  t.equal(await abandoned, 'AbortError');
  open();
  t.equal((await busy).statusCode, 200);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(executor.runsStarted.get('b') ?? 0, 0, 'the dropped request never ran');
  t.same((await app.inject({ url: '/admin/models', headers: AUTH })).json().models.map((model: { inFlight: number }) => model.inFlight), [0, 0]);
});
