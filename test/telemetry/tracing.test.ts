/**
 * OpenTelemetry traces as a collector receives them: real gateways exporting over OTLP/HTTP
 * (protobuf and JSON) to an in-test receiver on a loopback port, spans decoded and checked for
 * their names, parents, links and attributes.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ModelgateClient } from '@modelgate/client';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { eventually, makeRepository, metricsOf, scaleModel, scaleRequest, TOKEN, writeFiles, type TestContext } from '../helpers/gateway.ts';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.ts';
import { freePort } from '../helpers/programs.ts';

const BUILT_CLI = path.resolve(import.meta.dirname, '../../dist/cli.js');
const FILES = { 'double.onnx': scaleModel(2), 'triple.onnx': scaleModel(3), 'ten.onnx': scaleModel(10) };
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

interface Traced {
  app: Awaited<ReturnType<typeof buildApp>>;
  receiver: OtlpReceiver;
  lines: string[];
  repository: string;
}

/** A gateway over FILES exporting to a fresh receiver every 20 ms; `environment` adds to the OTEL_ variables it reads. */
async function tracedGateway(t: TestContext, config: Record<string, unknown>, environment: Record<string, string> = {}, receiver?: OtlpReceiver): Promise<Traced> {
  const collector = receiver ?? await OtlpReceiver.start();
  if (receiver === undefined) t.teardown(() => collector.close());
  const repository = makeRepository(t, FILES);
  const lines: string[] = [];
  const validated = validateConfig({ admin: { token: TOKEN }, ...config, modelRepository: repository }, repository, {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, OTEL_BSP_SCHEDULE_DELAY: '20', ...environment,
  });
  const app = await buildApp(validated, { executor: new OnnxExecutor(validated.modelRepository), logger: { level: 'info', stream: { write: (line: string) => { lines.push(line); } } } });
  t.teardown(() => app.close());
  await app.ready();
  return { app, receiver: collector, lines, repository };
}

function one(spans: readonly ReceivedSpan[], name: string, what = name): ReceivedSpan {
  const found = spans.filter((span) => span.name === name);
  if (found.length !== 1) throw new Error(`${what}: ${found.length} spans named ${name}, not 1 (${spans.map((span) => span.name).join(', ')})`);
  return found[0] as ReceivedSpan;
}

const CHAIN = {
  models: [{ name: 'double', path: 'double.onnx', batching: { maxBatchSize: 8 } }, { name: 'triple', path: 'triple.onnx', batching: false }],
  routes: [{ key: 'chain', sequence: { steps: [{ name: 'first', target: 'double' }, { name: 'second', target: 'triple' }] } }],
};

t.test('a chain\'s request continuing a sampled traceparent: one trace, a span per step, queue, load, batch and run under them', async (t) => {
  const { app, receiver, lines } = await tracedGateway(t, { ...CHAIN, tracing: { protocol: 'http/json', serviceName: 'gw', sampleRatio: 0 } });
  const answer = await app.inject({ method: 'POST', url: '/v2/models/chain/infer', payload: scaleRequest(1.5), headers: { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`, 'x-request-id': 'req-1' } });
  t.equal(answer.statusCode, 200);
  t.same((answer.json() as { outputs: Array<{ data: number[] }> }).outputs[0]?.data, [9], '1.5 doubled, then tripled');
  await receiver.waitFor('the chain\'s spans', (spans) => spans.filter((span) => span.name === 'modelgate.run').length === 2);
  t.ok(receiver.requests.every((type) => type.includes('json')), 'http/json: the exporter sent JSON');
  const spans = receiver.trace(PARENT_TRACE);
  t.equal(spans.length, receiver.spans.length, 'every span is in the caller\'s trace');
  const request = one(spans, 'modelgate.infer');
  t.equal(request.parentSpanId, PARENT_SPAN, 'the request span is the child of the caller\'s');
  t.equal(request.kind, SERVER);
  t.equal(request.service, 'gw', 'service.name from tracing.serviceName');
  t.match(request.attributes, { 'modelgate.key': 'chain', 'modelgate.route.kind': 'sequence', 'http.response.status_code': 200, 'modelgate.request_id': 'req-1', 'http.request.method': 'POST' });
  const steps = spans.filter((span) => span.name === 'modelgate.sequence.step');
  t.same(steps.map((span) => span.attributes['modelgate.node']).sort(), ['first', 'second'], 'a span per step');
  t.ok(steps.every((span) => span.parentSpanId === request.spanId), 'steps are children of the request span');
  const first = steps.find((span) => span.attributes['modelgate.node'] === 'first') as ReceivedSpan;
  const second = steps.find((span) => span.attributes['modelgate.node'] === 'second') as ReceivedSpan;
  t.ok(first.endNs <= second.startNs, 'the second step starts after the first ends');
  const under = (parent: ReceivedSpan, name: string) => spans.filter((span) => span.parentSpanId === parent.spanId && span.name === name);
  for (const [step, model] of [[first, 'double'], [second, 'triple']] as const) {
    const [queue] = under(step, 'modelgate.queue');
    const [run] = under(step, 'modelgate.run');
    t.ok(queue !== undefined && run !== undefined, `step ${model}: a queue span and a run span under it`);
    t.equal(queue?.attributes['modelgate.model'], model);
    t.equal(run?.attributes['modelgate.model'], model);
    t.ok((queue?.endNs ?? 0n) <= (run?.startNs ?? 0n), `${model}: the run starts when the queue wait ends`);
    t.ok((step.startNs <= (queue?.startNs ?? 0n)) && (run?.endNs ?? 0n) <= step.endNs, `${model}: queue and run lie within the step`);
    const [load] = spans.filter((span) => span.parentSpanId === queue?.spanId && span.name === 'modelgate.load');
    t.ok(load !== undefined, `${model}: a cold model's load is a span inside its queue wait`);
    t.match(load?.attributes, { 'modelgate.model': model, 'modelgate.load.evicted': false, 'modelgate.load.joined': false, 'modelgate.load.warmup_runs': 1 });
  }
  const batch = one(spans, 'modelgate.batch');
  t.equal(batch.parentSpanId, first.spanId, 'the batching model\'s batch span is in the request\'s trace, under its step (the other model does not batch)');
  t.match(batch.attributes, { 'modelgate.model': 'double', 'modelgate.batch.rows': 1, 'modelgate.batch.requests': 1 });
  t.same(batch.links, [{ traceId: PARENT_TRACE, spanId: first.spanId }], 'linked to the span of the request it serves');
  const firstRun = under(first, 'modelgate.run')[0] as ReceivedSpan;
  t.same(firstRun.links, [{ traceId: PARENT_TRACE, spanId: batch.spanId }], 'the run links to its batch');
  const log = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'request');
  t.equal(log?.traceId, PARENT_TRACE, 'the access-log line carries the trace id');
  t.equal(log?.requestId, 'req-1');
});

t.test('sampling: at 0, nothing without a sampled parent; a sampled parent is recorded; an unsampled one is not', async (t) => {
  const { app, receiver, lines } = await tracedGateway(t, { models: [{ name: 'double', path: 'double.onnx' }], tracing: { sampleRatio: 0 } });
  const call = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: scaleRequest(1), headers });
  for (let i = 0; i < 20; i++) t.equal((await call({})).statusCode, 200);
  t.equal((await call({ traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-00` })).statusCode, 200);
  t.equal((await call({ traceparent: 'not-a-traceparent' })).statusCode, 200, 'a malformed traceparent is a root, left to the ratio');
  t.equal((await call({ traceparent: `00-${'0'.repeat(32)}-${PARENT_SPAN}-01` })).statusCode, 200, 'as is an invalid (all-zero) trace id');
  const sampledTrace = 'a'.repeat(32);
  t.equal((await call({ traceparent: `00-${sampledTrace}-${PARENT_SPAN}-01` })).statusCode, 200);
  await receiver.waitFor('the sampled request\'s spans', (spans) => spans.some((span) => span.name === 'modelgate.infer'));
  // Another export interval: anything else queued would have arrived by now.
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same([...new Set(receiver.spans.map((span) => span.traceId))], [sampledTrace], 'only the request whose parent was sampled was recorded');
  t.ok(receiver.requests.every((type) => type === 'application/x-protobuf'), 'http/protobuf by default');
  const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request');
  t.equal(logged.filter((line) => line.traceId !== undefined).length, 1, 'only the recorded request\'s log line names a trace');
});

t.test('eight concurrent requests batched together: one batch span, linked from all eight and linking to each', async (t) => {
  const { app, receiver } = await tracedGateway(t, {
    models: [{ name: 'double', path: 'double.onnx', pinned: true, batching: { maxBatchSize: 8, maxQueueDelayMicros: 200_000 } }],
    tracing: { sampleRatio: 1 },
  });
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: scaleRequest(i) })));
  t.same(answers.map((answer) => (answer.json() as { outputs: Array<{ data: number[] }> }).outputs[0]?.data[0]), [0, 2, 4, 6, 8, 10, 12, 14]);
  await receiver.waitFor('eight runs', (spans) => spans.filter((span) => span.name === 'modelgate.run').length === 8);
  const batch = one(receiver.spans, 'modelgate.batch');
  t.match(batch.attributes, { 'modelgate.batch.rows': 8, 'modelgate.batch.requests': 8 });
  const requests = receiver.named('modelgate.infer');
  t.equal(new Set(requests.map((span) => span.traceId)).size, 8, 'eight requests, eight traces');
  t.same(batch.links.map((link) => link.spanId).sort(), requests.map((span) => span.spanId).sort(), 'the batch links to every request it served');
  for (const run of receiver.named('modelgate.run')) {
    t.same(run.links, [{ traceId: batch.traceId, spanId: batch.spanId }], 'each run links to the one batch');
    t.match(run.attributes, { 'modelgate.batch.rows': 8, 'modelgate.batch.requests': 8 });
  }
  t.ok(requests.some((span) => span.traceId === batch.traceId), 'the batch span lives in one of its requests\' traces');
});

t.test('a load that evicts another model says so; a request that joins a load under way says that', async (t) => {
  const { app, receiver } = await tracedGateway(t, { registry: { maxResidentModels: 1 }, models: [{ name: 'double', path: 'double.onnx' }, { name: 'triple', path: 'triple.onnx' }], tracing: { sampleRatio: 1 } });
  const call = (key: string) => app.inject({ method: 'POST', url: `/v2/models/${key}/infer`, payload: scaleRequest(1) });
  t.equal((await call('double')).statusCode, 200);
  const both = await Promise.all([call('triple'), call('triple')]);
  t.same(both.map((answer) => answer.statusCode), [200, 200]);
  await receiver.waitFor('three loads', (spans) => spans.filter((span) => span.name === 'modelgate.load').length === 3);
  const loads = receiver.named('modelgate.load').filter((span) => span.attributes['modelgate.model'] === 'triple');
  t.equal(loads.length, 2, 'both requests waited for triple\'s one load');
  t.ok(loads.every((span) => span.attributes['modelgate.load.evicted'] === true), 'it evicted another model');
  t.same(loads.map((span) => span.attributes['modelgate.load.evicted_models']), [['double'], ['double']], 'named');
  t.same(loads.map((span) => span.attributes['modelgate.load.joined']).sort(), [false, true], 'one started it, the other joined it');
  t.equal(receiver.named('modelgate.load').find((span) => span.attributes['modelgate.model'] === 'double')?.attributes['modelgate.load.evicted'], false, 'the first load evicted nothing');
});

t.test('errors set the span status with the V2 message', async (t) => {
  const { app, receiver } = await tracedGateway(t, { models: [{ name: 'double', path: 'double.onnx' }], tracing: { sampleRatio: 1 } });
  const bad = await app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: { inputs: [{ name: 'nope', shape: [1, 1], datatype: 'FP32', data: [1] }] } });
  t.equal(bad.statusCode, 400);
  const message = (bad.json() as { error: string }).error;
  await receiver.waitFor('the failed request\'s span', (spans) => spans.some((span) => span.name === 'modelgate.infer'));
  const span = one(receiver.spans, 'modelgate.infer');
  t.same(span.status, { code: ERROR, message }, 'status error, with the message the client got');
  t.equal(span.attributes['http.response.status_code'], 400);
});

t.test('graph nodes: ensemble members, switch cases and cascade steps are spans of their own; a shadow copy is a trace of its own, linked', async (t) => {
  const { app, receiver } = await tracedGateway(t, {
    models: [{ name: 'double', path: 'double.onnx' }, { name: 'triple', path: 'triple.onnx' }, { name: 'ten', path: 'ten.onnx', pinned: true }],
    routes: [
      { key: 'both', ensemble: { members: [{ target: 'double' }, { target: 'triple' }] } },
      { key: 'pick', switch: { cases: [{ when: { header: 'x-size', equals: 'big' }, target: 'ten' }], default: 'double' } },
      { key: 'cheap-first', cascade: { steps: [{ target: 'double', accept: { output: 'y', min: 5 } }, { target: 'ten' }] } },
      { key: 'ab', split: { variants: [{ target: 'double', weight: 1 }], shadow: { target: 'ten', percent: 100 } } },
    ],
    tracing: { sampleRatio: 1 },
  });
  const traceOf = async (key: string, body: unknown, headers: Record<string, string> = {}) => {
    const answer = await app.inject({ method: 'POST', url: `/v2/models/${key}/infer`, payload: body as Record<string, unknown>, headers });
    t.equal(answer.statusCode, 200, `${key} answers`);
    let found: ReceivedSpan | undefined;
    await receiver.waitFor(`${key}'s request span`, (spans) => {
      found = spans.find((span) => span.name === 'modelgate.infer' && span.attributes['modelgate.key'] === key);
      return found !== undefined;
    });
    return found as ReceivedSpan;
  };
  const both = await traceOf('both', scaleRequest(1));
  await receiver.waitFor('both members', (spans) => spans.filter((span) => span.name === 'modelgate.ensemble.member' && span.traceId === both.traceId).length === 2);
  const members = receiver.trace(both.traceId).filter((span) => span.name === 'modelgate.ensemble.member');
  t.same(members.map((span) => span.attributes['modelgate.target']).sort(), ['double', 'triple']);
  t.ok(members.every((span) => span.parentSpanId === both.spanId && span.attributes['modelgate.route'] === 'both'));

  const pick = await traceOf('pick', scaleRequest(1), { 'x-size': 'big' });
  await receiver.waitFor('the case span', (spans) => spans.some((span) => span.name === 'modelgate.switch.case' && span.traceId === pick.traceId));
  t.match(receiver.trace(pick.traceId).find((span) => span.name === 'modelgate.switch.case')?.attributes, { 'modelgate.case': '0', 'modelgate.target': 'ten' });

  const cascade = await traceOf('cheap-first', { inputs: [{ name: 'x', shape: [2, 1], datatype: 'FP32', data: [1, 3] }] });
  await receiver.waitFor('both cascade steps', (spans) => spans.filter((span) => span.name === 'modelgate.cascade.step' && span.traceId === cascade.traceId).length === 2);
  const steps = receiver.trace(cascade.traceId).filter((span) => span.name === 'modelgate.cascade.step').sort((a, b) => Number(a.startNs - b.startNs));
  t.same(steps.map((span) => [span.attributes['modelgate.node'], span.attributes['modelgate.cascade.rows']]), [['0', 2], ['1', 1]], 'the second step ran on the row the first did not accept (2 < 5)');

  const ab = await traceOf('ab', scaleRequest(1));
  t.equal(ab.attributes['modelgate.variant'], 'double', 'the split\'s variant on the request span');
  await receiver.waitFor('the shadow span', (spans) => spans.some((span) => span.name === 'modelgate.shadow'));
  const shadow = one(receiver.spans, 'modelgate.shadow');
  t.not(shadow.traceId, ab.traceId, 'the shadow copy is a trace of its own');
  t.equal(shadow.parentSpanId, '', 'rooted');
  t.same(shadow.links, [{ traceId: ab.traceId, spanId: ab.spanId }], 'linked to the primary request');
  await receiver.waitFor('the shadow\'s model spans', (spans) => spans.some((span) => span.traceId === shadow.traceId && span.name === 'modelgate.run'));
  t.equal(receiver.trace(shadow.traceId).find((span) => span.name === 'modelgate.run')?.attributes['modelgate.model'], 'ten');
});

t.test('a collector that refuses connections loses no request; spans are dropped and counted, and export recovers when it returns', async (t) => {
  const receiver = await OtlpReceiver.start();
  const port = receiver.port;
  await receiver.close();
  const { app, lines } = await tracedGateway(t, { models: [{ name: 'double', path: 'double.onnx' }], tracing: { sampleRatio: 1 } }, { OTEL_EXPORTER_OTLP_TIMEOUT: '500' }, receiver);
  t.teardown(() => receiver.close());
  for (let i = 0; i < 30; i++) {
    const answer = await app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: scaleRequest(i) });
    t.equal(answer.statusCode, 200, `request ${i} answered while the collector is down`);
  }
  const dropped = async () => Number(/^modelgate_trace_spans_dropped_total(?:\{[^}]*\})? (\d+)/m.exec(await metricsOf(app))?.[1] ?? 0);
  await eventually('dropped spans counted', async () => await dropped() > 0, 20_000, 20);
  const failing = () => lines.filter((line) => line.includes('trace export failing'));
  t.equal(failing().length, 1, 'the outage is logged once');
  t.notOk(failing()[0]?.includes('"level":50'), 'as a warning, not an error');
  await receiver.restart();
  t.equal(receiver.port, port);
  await eventually('export recovered', async () => {
    await app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: scaleRequest(1) });
    return receiver.spans.length > 0;
  }, 30_000, 100);
  await eventually('recovery logged', () => lines.some((line) => line.includes('trace export recovered')), 5000, 10);
  t.equal(failing().length, 1, 'still one outage line');
  t.ok(await dropped() > 0, `${await dropped()} spans dropped in all`);
});

t.test('gRPC: traceparent metadata is continued, the span says rpc.system grpc', async (t) => {
  const { app, receiver } = await tracedGateway(t, { models: [{ name: 'double', path: 'double.onnx' }], tracing: { sampleRatio: 0 } });
  const grpcPort = await app.grpc.listen('127.0.0.1', 0);
  const client = new ModelgateClient({ url: `grpc://127.0.0.1:${grpcPort}` });
  t.teardown(() => client.close());
  const answer = await client.infer('double', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([4]) }], { headers: { traceparent: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` } });
  t.same([...answer.outputs[0]?.data as Float32Array], [8]);
  await receiver.waitFor('the call\'s span', (spans) => spans.some((span) => span.name === 'modelgate.infer'));
  const span = one(receiver.spans, 'modelgate.infer');
  t.equal(span.traceId, PARENT_TRACE);
  t.equal(span.parentSpanId, PARENT_SPAN);
  t.match(span.attributes, { 'rpc.system': 'grpc', 'rpc.method': 'ModelInfer', 'modelgate.key': 'double', 'rpc.grpc.status_code': 0 });
});

t.test('a remote hop to a second gateway process: both processes\' spans in one trace', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const port = await freePort();
  const { app, repository } = await tracedGateway(t, {
    models: [{ name: 'far', keys: ['far'], remote: { url: `http://127.0.0.1:${port}`, model: 'double' } }],
    tracing: { sampleRatio: 1, serviceName: 'gateway-a' },
  }, {}, receiver);
  // The second gateway's files beside the first's (t.testdir() is one directory per test).
  const dir = path.join(repository, 'second');
  writeFiles(dir, { 'models/double.onnx': scaleModel(2) });
  writeFileSync(path.join(dir, 'b.yaml'), 'modelRepository: models\nmodels:\n  - name: double\n    path: double.onnx\n');
  const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--config', path.join(dir, 'b.yaml'), '--port', String(port), '--host', '127.0.0.1'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: 'gateway-b', OTEL_TRACES_SAMPLER_ARG: '0', OTEL_BSP_SCHEDULE_DELAY: '20', MODELGATE_LOG_LEVEL: 'warn' },
  });
  t.teardown(() => { child.kill('SIGKILL'); });
  const remote = new ModelgateClient({ url: `http://127.0.0.1:${port}` });
  t.teardown(() => remote.close());
  await eventually('the second gateway is ready', () => remote.serverReady().catch(() => false), 20_000, 50);
  const answer = await app.inject({ method: 'POST', url: '/v2/models/far/infer', payload: scaleRequest(5) });
  t.equal(answer.statusCode, 200, answer.body);
  t.same((answer.json() as { outputs: Array<{ data: number[] }> }).outputs[0]?.data, [10]);
  await receiver.waitFor('both gateways\' request spans', (spans) => spans.filter((span) => span.name === 'modelgate.infer').length === 2 && spans.some((span) => span.name === 'modelgate.run'), 20_000);
  const a = receiver.spans.find((span) => span.name === 'modelgate.infer' && span.service === 'gateway-a') as ReceivedSpan;
  const b = receiver.spans.find((span) => span.name === 'modelgate.infer' && span.service === 'gateway-b') as ReceivedSpan;
  t.ok(a !== undefined && b !== undefined, 'a request span from each process');
  t.equal(b.traceId, a.traceId, 'one trace across the hop (the second process samples at 0: the parent decided)');
  const hop = one(receiver.trace(a.traceId), 'modelgate.remote');
  t.equal(hop.kind, CLIENT, 'the remote call is a client span');
  t.equal(hop.parentSpanId, a.spanId);
  t.equal(b.parentSpanId, hop.spanId, 'the second gateway\'s request span is the child of the first\'s client span');
  t.match(hop.attributes, { 'server.address': '127.0.0.1', 'server.port': port, 'modelgate.remote.model': 'double' });
  t.equal(receiver.trace(a.traceId).find((span) => span.name === 'modelgate.run')?.service, 'gateway-b', 'the model ran on the second gateway, in the same trace');
});

t.test('a request the ratio leaves out tells the remote not to sample it: the next gateway records nothing, though its own ratio is 1', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const second = await tracedGateway(t, { models: [{ name: 'double', path: 'double.onnx' }], tracing: { sampleRatio: 1, serviceName: 'second' } }, {}, receiver);
  await second.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = second.app.server.address() as { port: number };
  const { app } = await tracedGateway(t, {
    models: [{ name: 'far', keys: ['far'], remote: { url: `http://127.0.0.1:${port}`, model: 'double' } }],
    tracing: { sampleRatio: 0, serviceName: 'first' },
  }, {}, receiver);
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ method: 'POST', url: '/v2/models/far/infer', payload: scaleRequest(i) })).statusCode, 200);
  // The control: a direct request to the second gateway is recorded.
  t.equal((await second.app.inject({ method: 'POST', url: '/v2/models/double/infer', payload: scaleRequest(1) })).statusCode, 200);
  await receiver.waitFor('the direct request\'s span', (spans) => spans.some((span) => span.name === 'modelgate.infer'));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(receiver.named('modelgate.infer').length, 1, 'only the direct request was recorded');
  t.notOk(receiver.spans.some((span) => span.service === 'first'), 'the first gateway recorded nothing at ratio 0');
});

t.test('tracing configuration: the OTEL_ environment fills what the file leaves out', async (t) => {
  const repository = makeRepository(t, {});
  const config = (document: Record<string, unknown>, environment: Record<string, string>) => validateConfig({ ...document, modelRepository: repository }, repository, environment).tracing;
  t.equal(config({}, {}), undefined, 'no section, no endpoint: off');
  t.same(config({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_SERVICE_NAME: 'svc', OTEL_TRACES_SAMPLER_ARG: '0.5', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b,x=1' }), {
    url: 'http://collector:4318/v1/traces', protocol: 'http/protobuf', sampleRatio: 0.5, serviceName: 'svc', headers: { 'api-key': 'a b', x: '1' }, exportDelayMs: 5000, exportTimeoutMs: 10_000,
  }, 'the standard variables, /v1/traces added to the base endpoint');
  t.match(config({ tracing: { otlpEndpoint: 'https://c.example/v1/traces', sampleRatio: 1, protocol: 'http/json' } }, { OTEL_TRACES_SAMPLER_ARG: '0.5', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' }), { url: 'https://c.example/v1/traces', sampleRatio: 1, protocol: 'http/json', serviceName: 'modelgate' }, 'the file wins');
  t.equal(config({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), undefined, 'OTEL_SDK_DISABLED turns it off');
  t.equal(config({ tracing: { otlpEndpoint: 'http://c:4318' } }, {})?.sampleRatio, 0.01, 'default ratio 1%');
  t.throws(() => config({ tracing: {} }, {}), /tracing\.otlpEndpoint: the collector's URL is needed/);
  t.throws(() => config({ tracing: { otlpEndpoint: 'ftp://c' } }, {}), /tracing\.otlpEndpoint: must be an http/);
  t.throws(() => config({ tracing: { sampleRatio: 2, otlpEndpoint: 'http://c' } }, {}), /tracing\/sampleRatio|tracing\.sampleRatio/);
  t.throws(() => config({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /OTEL_EXPORTER_OTLP_PROTOCOL: must be http\/protobuf or http\/json/);
  t.throws(() => config({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_SAMPLER_ARG: 'half' }), /OTEL_TRACES_SAMPLER_ARG: must be a number/);
});
