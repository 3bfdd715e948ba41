import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { formatOpenApi, generateOpenApi } from '../../src/openapi-document.ts';
import { eventually, AUTH, buildGateway, infer, makeRepository, metricsOf, scaleModel, scaleRequest, TOKEN } from '../helpers/gateway.ts';

const files = { 'one.onnx': scaleModel(1), 'two.onnx': scaleModel(2) };
const models = [{ name: 'one', path: 'one.onnx' }, { name: 'two', path: 'two.onnx', keys: ['two', 'deux'] }];
const routes = [
  { key: 'ab', split: { variants: [{ target: 'one', weight: 1 }, { target: 'two', weight: 1 }], shadow: { target: 'two', percent: 100 } } },
  { key: 'chain', sequence: { steps: [{ target: 'one' }, { target: 'two' }] } },
];

t.test('the committed OpenAPI document is what the code generates (npm run openapi rewrites it)', async (t) => {
  const committed = readFileSync(path.resolve(import.meta.dirname, '../../openapi/openapi.json'), 'utf8');
  t.equal(formatOpenApi(await generateOpenApi()), committed, 'openapi/openapi.json is stale: run `npm run openapi`');
  const document = JSON.parse(committed);
  t.same(document.paths['/admin/models'].get.security, [{ bearerAuth: [] }]);
  // The data plane: a tenant's key, or nothing when there is no tenants section; probes stay open.
  t.same(document.paths['/v2/models/{key}/infer'].post.security, [{ tenantKey: [] }, {}]);
  t.ok(document.paths['/v2/models/{key}/infer'].post.responses['429'], 'a rate-limited answer is documented');
  t.equal(document.paths['/v2/health/ready'].get.security, undefined);
  t.ok(document.paths['/v2/models/{key}/infer'].post.requestBody.content['application/json'].schema);
  t.equal(document.components.schemas.ErrorBody.required[0], 'error');
});

t.test('per-key docs: tensors and a ready-to-send request for a model, a split and a sequence, following live changes', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes });
  const docs = async () => (await app.inject({ url: '/docs/json' })).json();
  let paths = (await docs()).paths;
  t.same(paths['/v2/models/ab/infer'].post.summary, 'ab (split)');
  t.same(paths['/v2/models/chain/infer'].post.summary, 'chain (sequence)');
  t.match(paths['/v2/models/chain/infer'].post.description, /Inputs: `x` FP32 \[-1,1\]/);
  t.same(paths['/v2/models/chain/infer'].post.requestBody.content['application/json'].example, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [0.5] }] });
  t.same(paths['/v2/models/deux/infer'].post.summary, 'deux (model)');
  // The example is ready to send: it runs.
  const example = paths['/v2/models/deux/infer'].post.requestBody.content['application/json'].example;
  t.same((await infer(app, 'deux', example)).json().outputs[0].data, [1]);

  t.equal((await app.inject({ method: 'PUT', url: '/admin/routes/fresh', headers: AUTH, payload: { split: { variants: [{ target: 'deux', weight: 1 }] } } })).statusCode, 201);
  t.equal((await app.inject({ method: 'DELETE', url: '/admin/routes/ab', headers: AUTH })).statusCode, 204);
  paths = (await docs()).paths;
  t.same(paths['/v2/models/fresh/infer'].post.summary, 'fresh (split)');
  t.notOk(paths['/v2/models/ab/infer'], 'a deleted route leaves the docs');
  t.ok((await app.inject({ url: '/docs' })).statusCode < 400, 'Swagger UI is served');
});

t.test('metrics: requests, latency, models and routes, with bounded labels', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes });
  for (let i = 0; i < 3; i++) await infer(app, 'deux', scaleRequest(1));
  await infer(app, 'deux', { inputs: [] });
  await infer(app, 'no-such-key', scaleRequest(1));
  for (let i = 0; i < 4; i++) await infer(app, 'ab', scaleRequest(1));
  await eventually('condition', () => (app.router.stats('ab').sinceStart.shadow?.sent ?? 0) === 4);
  const text = await metricsOf(app);
  /** A series' value; 0 when it has not been created (no such event yet). */
  const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  t.equal(value('modelgate_requests_total{key="deux",code="200",protocol="http"}'), 3);
  t.equal(value('modelgate_requests_total{key="deux",code="400",protocol="http"}'), 1);
  t.equal(value('modelgate_requests_total{key="",code="404",protocol="http"}'), 1, 'unknown keys do not make new series');
  t.equal(value('modelgate_request_duration_seconds_count{key="deux",protocol="http"}'), 4);
  t.equal(value('modelgate_model_loads_total{model="two"}'), 1);
  t.equal(value('modelgate_model_resident{model="two"}'), 1);
  t.equal(value('modelgate_model_in_flight{model="two"}'), 0);
  t.ok(value('modelgate_inference_duration_seconds_count{model="two"}') >= 3);
  t.equal(value('modelgate_queue_duration_seconds_count{model="two"}'), value('modelgate_inference_duration_seconds_count{model="two"}'));
  t.ok(value('modelgate_batch_size_count{model="two"}') >= 1, 'batch sizes');
  const perVariant = value('modelgate_route_requests_total{route="ab",variant="one"}') + value('modelgate_route_requests_total{route="ab",variant="two"}');
  t.equal(perVariant, 4);
  t.equal(value('modelgate_shadow_requests_total{route="ab",variant="two",outcome="agreed"}') + value('modelgate_shadow_requests_total{route="ab",variant="two",outcome="disagreed"}'), 4);
  t.match(text, /^modelgate_nodejs_eventloop_lag_p99_seconds \S+$/m);
  t.match(text, /^modelgate_process_resident_memory_bytes \S+$/m);
  t.match(text, /^modelgate_nodejs_heap_size_used_bytes \S+$/m);
});

t.test('every answer names its replica, every series carries it; x-model-key must agree with the path', async (t) => {
  const repository = makeRepository(t, files);
  const named = await buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, models, server: { replica: '${POD_NAME}-a' } }, repository, { POD_NAME: 'gw-7' }));
  t.teardown(() => named.close());
  const unnamed = await buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, models, server: { port: 9123 } }, repository, {}));
  t.teardown(() => unnamed.close());
  for (const url of ['/v2/models/one/infer', '/v2/health/ready', '/no-such-page', '/admin/models']) {
    const response = await named.inject({ method: url.endsWith('infer') ? 'POST' : 'GET', url, ...(url.endsWith('infer') ? { payload: scaleRequest(1) } : {}) });
    t.equal(response.headers['x-modelgate-replica'], 'gw-7-a', url);
  }
  t.equal((await infer(unnamed, 'one', scaleRequest(1))).headers['x-modelgate-replica'], `${hostname()}:9123`, 'default: <hostname>:<port>');
  // Port 0: the name is the port the server got.
  const listening = await buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, models, server: { port: 0 } }, repository, {}));
  t.teardown(() => listening.close());
  await listening.listen({ host: '127.0.0.1', port: 0 });
  const port = (listening.server.address() as { port: number }).port;
  const answer = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
  t.equal(answer.headers.get('x-modelgate-replica'), `${hostname()}:${port}`);
  t.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), new RegExp(`^modelgate_process_resident_memory_bytes\\{replica="${hostname()}:${port}"\\} \\d+$`, 'm'));
  const text = (await named.inject({ url: '/metrics' })).body;
  t.match(text, /^modelgate_requests_total\{key="one",code="200",protocol="http",replica="gw-7-a"\} 1$/m);
  t.match(text, /^modelgate_process_resident_memory_bytes\{replica="gw-7-a"\} \d+$/m);

  // A mesh hashing on x-model-key placed the request by the header: it must name the path's key.
  const agreeing = await infer(named, 'deux', scaleRequest(1), { 'x-model-key': 'deux' });
  t.equal(agreeing.statusCode, 200);
  for (const url of ['/v2/models/deux/infer', '/v2/models/deux', '/v2/models/deux/ready', '/v2/models/deux/versions/1/infer']) {
    const response = await named.inject({ method: url.endsWith('infer') ? 'POST' : 'GET', url, headers: { 'x-model-key': 'one' }, ...(url.endsWith('infer') ? { payload: scaleRequest(1) } : {}) });
    t.equal(response.statusCode, 400, url);
    t.same(response.json(), { error: "x-model-key: the header names 'one', the path the key 'deux': send the path's key, or no header" });
  }
  const long = await infer(named, 'deux', scaleRequest(1), { 'x-model-key': 'k'.repeat(300) });
  t.equal(long.statusCode, 400);
  t.ok(long.json().error.length < 200, 'a long header is cut short in the message');
});

t.test('logs: one line per request with its id, no tensor data, no token', async (t) => {
  const repository = makeRepository(t, files);
  const lines: string[] = [];
  const app = await buildApp(validateConfig({ admin: { token: TOKEN }, modelRepository: repository, models }, repository, {}), {
    logger: { level: 'info', stream: { write: (line: string) => { lines.push(line); } } },
  });
  t.teardown(() => app.close());
  await app.ready();
  const response = await app.inject({ method: 'POST', url: '/v2/models/deux/infer', payload: scaleRequest(24680.125), headers: { 'x-request-id': 'trace-42' } });
  t.equal(response.headers['x-request-id'], 'trace-42', 'echoed');
  const generated = await infer(app, 'one', scaleRequest(1));
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'generated when absent');
  await app.inject({ url: '/admin/models', headers: AUTH });
  const requests = lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'request');
  t.equal(requests.length, 3, 'one line per request');
  t.match(requests[0], { requestId: 'trace-42', method: 'POST', url: '/v2/models/deux/infer', key: 'deux', status: 200, ms: Number });
  t.equal(requests[1].requestId, generated.headers['x-request-id']);
  const all = lines.join('');
  t.notMatch(all, /24680/, 'no tensor data');
  t.notMatch(all, /49361/, 'no output data');
  t.notMatch(all, new RegExp(TOKEN), 'no token');
  t.match(all, /"msg":"model loaded"/);
});

t.test('draining: not ready at once, new requests 503 with Connection: close, in-flight ones finish', async (t) => {
  // One run per request, so the three can be held in flight and counted.
  const { app, executor } = await buildGateway(t, files, { models: models.map((model) => ({ ...model, batching: false })) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  t.equal((await infer(app, 'one', scaleRequest(1))).statusCode, 200);
  const open = executor.hold();
  const inFlight = [1, 2, 3].map((x) => request(`${address}/v2/models/one/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(scaleRequest(x)) }));
  await eventually('condition', () => (executor.runsStarted.get('one') ?? 0) === 4);
  app.drain.begin();
  app.dataPlane.ready = false;
  const ready = await app.inject({ url: '/v2/health/ready' });
  t.equal(ready.statusCode, 503);
  t.equal((await app.inject({ url: '/v2/health/live' })).statusCode, 200, 'still live');
  const late = await infer(app, 'one', scaleRequest(1));
  t.equal(late.statusCode, 503);
  t.equal(late.headers.connection, 'close');
  t.same(late.json(), { error: 'The gateway is shutting down' });
  open();
  const answers = await Promise.all(inFlight);
  t.same(answers.map((answer) => answer.statusCode), [200, 200, 200]);
  t.same(answers.map((answer) => answer.headers.connection), ['close', 'close', 'close'], 'their connections close, so shutdown need not wait for keep-alive');
  t.same(await Promise.all(answers.map(async (answer) => ((await answer.body.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]?.data[0])), [1, 2, 3]);
});

t.test('examples in the docs: sample values per datatype, none for huge inputs', async (t) => {
  const { exampleRequest } = await import('../../src/http/docs.ts');
  t.same(exampleRequest({ inputs: [{ name: 'b', datatype: 'BOOL', shape: [2] }, { name: 's', datatype: 'BYTES', shape: [-1] }, { name: 'i', datatype: 'INT64', shape: [] }], outputs: [] }), {
    inputs: [{ name: 'b', datatype: 'BOOL', shape: [2], data: [true, true] }, { name: 's', datatype: 'BYTES', shape: [1], data: ['text'] }, { name: 'i', datatype: 'INT64', shape: [], data: [1] }],
  });
  t.equal(exampleRequest({ inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, 224, 224] }], outputs: [] }), undefined);
});
