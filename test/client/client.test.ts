/**
 * modelgate/client against a running gateway on a real socket: every
 * datatype both ways, exact 64-bit integers, retries, aborts, errors and the
 * admin helpers.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { ModelgateClient, ModelgateError, type InputTensor } from '@modelgate/client';
import { addMulModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';
import { eventually, buildGateway, scaleModel, slowModel, slowRequest, TOKEN } from '../helpers/gateway.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Per datatype: the ONNX element type and data as the client takes it (typed arrays, exact at the extremes). */
const SAMPLES: Array<[InputTensor['datatype'], ElemType, InputTensor['data']]> = [
  ['BOOL', 'bool', new Uint8Array([1, 0, 1])],
  ['UINT8', 'uint8', new Uint8Array([0, 7, 255])],
  ['UINT16', 'uint16', new Uint16Array([0, 7, 65535])],
  ['UINT32', 'uint32', new Uint32Array([0, 7, 4294967295])],
  ['UINT64', 'uint64', new BigUint64Array([0n, 9007199254740993n, 18446744073709551615n])],
  ['INT8', 'int8', new Int8Array([-128, 0, 127])],
  ['INT16', 'int16', new Int16Array([-32768, 0, 32767])],
  ['INT32', 'int32', new Int32Array([-2147483648, 0, 2147483647])],
  ['INT64', 'int64', new BigInt64Array([-9223372036854775808n, 1152921504606846977n, 9223372036854775807n])],
  ['FP16', 'float16', new Uint16Array([0x3800, 0xc000, 0x7bff])],
  ['FP32', 'float32', new Float32Array([0.1, -2.25, Number.NaN])],
  ['FP64', 'float64', new Float64Array([0.1, -1e-300, Infinity])],
  ['BYTES', 'string', ['hello', '', 'ünïcödé']],
];

async function serve(t: Parameters<typeof buildGateway>[0], extra: Record<string, unknown> = {}) {
  const files: Record<string, Uint8Array> = { 'addmul.onnx': addMulModel('int64'), 'double.onnx': scaleModel(2), 'slow.onnx': slowModel() };
  const models: Array<Record<string, unknown>> = [
    { name: 'addmul', path: 'addmul.onnx' }, { name: 'double', path: 'double.onnx' }, { name: 'slow', path: 'slow.onnx', batching: false },
  ];
  for (const [datatype, elem] of SAMPLES) {
    files[`${datatype}.onnx`] = identityModel(elem, ['n']);
    models.push({ name: datatype, path: `${datatype}.onnx` });
  }
  const { models: more = [], ...rest } = extra as { models?: Array<Record<string, unknown>> };
  const gateway = await buildGateway(t, files, { models: [...models, ...more], ...rest });
  const url = await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  const client = new ModelgateClient({ url, token: TOKEN, connections: 4 });
  t.teardown(() => client.close());
  return { ...gateway, url, client };
}

t.test('every datatype round-trips exactly, binary and JSON, plain and compressed', async (t) => {
  const { client } = await serve(t);
  for (const [datatype, , data] of SAMPLES) {
    for (const binary of [true, false]) {
      for (const compress of [false, true]) {
        const what = `${datatype} ${binary ? 'binary' : 'JSON'}${compress ? ' gzip' : ''}`;
        const answer = await client.infer(datatype, [{ name: 'x', datatype, shape: [3], data }], { binary, compress, id: what });
        t.equal(answer.modelName, datatype, what);
        t.equal(answer.id, what);
        t.equal(answer.outputs.length, 1);
        const [output] = answer.outputs;
        t.same([output?.name, output?.datatype, output?.shape], ['y', datatype, [3]], what);
        t.equal(output?.data.constructor, data.constructor, `${what}: the datatype's own array type`);
        t.same(Array.from(output?.data as ArrayLike<unknown>), Array.from(data as ArrayLike<unknown>), what);
      }
    }
  }
  // Plain arrays are converted with the server's rules.
  const plain = await client.infer('INT64', [{ name: 'x', datatype: 'INT64', shape: [2], data: [1, 2n ** 62n] }], { binary: false });
  t.same(Array.from(plain.outputs[0]?.data as BigInt64Array), [1n, 2n ** 62n]);
  const bytes = await client.infer('BYTES', [{ name: 'x', datatype: 'BYTES', shape: [2], data: [Buffer.from('ab'), new Uint8Array([0xc3, 0xa9])] }]);
  t.same(bytes.outputs[0]?.data, ['ab', 'é'], 'BYTES as Uint8Array go out as bytes and come back as UTF-8 text');
});

t.test('exact INT64 arithmetic beyond 2^53, chosen outputs, metadata, readiness, statistics', async (t) => {
  const { client } = await serve(t);
  const a = new BigInt64Array([1152921504606846976n, -4611686018427387904n, 3037000499n]);
  const b = new BigInt64Array([1n, -4611686018427387904n, 3037000499n]);
  const inputs: InputTensor[] = [{ name: 'a', datatype: 'INT64', shape: [3], data: a }, { name: 'b', datatype: 'INT64', shape: [3], data: b }];
  for (const binary of [true, false]) {
    const answer = await client.infer('addmul', inputs, { binary, outputs: ['product', { name: 'sum', binary: !binary }] });
    t.same(answer.outputs.map((output) => output.name), ['product', 'sum']);
    t.same(Array.from(answer.outputs[0]?.data as BigInt64Array), Array.from(a, (x, i) => BigInt.asIntN(64, x * (b[i] as bigint))));
    t.same(Array.from(answer.outputs[1]?.data as BigInt64Array), Array.from(a, (x, i) => BigInt.asIntN(64, x + (b[i] as bigint))));
  }
  t.same(await client.metadata('double'), { name: 'double', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }] });
  t.equal(await client.ready('double'), true);
  t.equal(await client.ready('nope'), false);
  t.equal(await client.live(), true);
  t.equal(await client.serverReady(), true);
  t.match(await client.serverMetadata(), { name: 'modelgate', extensions: ['binary_tensor_data', 'classification', 'model_repository', 'statistics'] });
  const [stats] = await client.stats('addmul');
  // Two requests of three rows along the dynamic first dimension.
  t.match(stats, { name: 'addmul', inference_count: 6, execution_count: 2, inference_stats: { success: { count: 2 }, fail: { count: 0 } } });
  t.equal((await client.stats()).length, SAMPLES.length + 3);
  const classes = await client.infer('double', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([1.5]) }], { outputs: [{ name: 'y', classification: 1 }] });
  t.same(classes.outputs[0]?.data, ['3:0']);
});

t.test('errors carry the status and the server\'s message; nothing but a 503 is retried', async (t) => {
  const { client, url } = await serve(t);
  const error = await client.infer('nope', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([1]) }]).catch((caught: unknown) => caught);
  t.ok(error instanceof ModelgateError);
  t.match(error, { status: 404, message: "Key 'nope' is not served by this gateway", retryAfter: undefined });
  const bad = await client.infer('double', [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: new Float32Array([1, 2]) }]).catch((caught: unknown) => caught);
  t.match(bad, { status: 400, message: "input 'x': shape [1,2] does not match the model's [-1,1] (-1: any size)" });
  const [stats] = await client.stats('double');
  t.equal(stats?.inference_stats.fail.count, 1, 'a 400 is not retried');
  await t.rejects(client.infer('double', [{ name: 'x', datatype: 'FP32', shape: [2, 1], data: new Float32Array([1]) }]), { name: 'TypeError', message: "input 'x': data has 1 elements but shape [2,1] needs 2" });
  t.throws(() => new ModelgateClient({ url: 'ftp://x' }), /must be http:\/\/, https:\/\/, grpc:\/\/ or grpcs:\/\//);
  t.throws(() => new ModelgateClient({ url: 'http://x', connections: 0 }), /'connections' must be a whole number above 0/);
  const admin = await new ModelgateClient({ url }).admin.models.list().catch((caught: unknown) => caught);
  t.match(admin, { status: 401, message: 'Admin API needs a bearer token' });
});

t.test('a 503 with Retry-After is retried: a model whose file appears after a failed load', async (t) => {
  const { client, app, repository, url } = await serve(t, { registry: { loadFailureBackoffMs: 300 }, models: [{ name: 'late', path: 'late.onnx' }, { name: 'never', path: 'never.onnx' }] });
  const started = Date.now();
  const answer = client.infer('late', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([4]) }]);
  await eventually('the first load to fail', () => app.registry.status().some((model) => model.name === 'late' && model.state === 'failed'));
  writeFileSync(path.join(repository, 'late.onnx'), scaleModel(3));
  const result = await answer;
  t.same(Array.from(result.outputs[0]?.data as Float32Array), [12]);
  t.ok(Date.now() - started >= 1000, 'waited the Retry-After (1 s) before trying again');
  const noRetry = new ModelgateClient({ url, maxRetries: 0 });
  t.teardown(() => noRetry.close());
  const failed = await noRetry.infer('never', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([4]) }]).catch((caught: unknown) => caught);
  t.match(failed, { status: 503, retryAfter: 1, message: /^Model 'never' failed to load/ });
  const [stats] = await client.stats('never');
  t.equal(stats?.inference_stats.fail.count, 1, 'with retries off, one attempt');
});

t.test('a call can be aborted, before it is sent or while it runs', async (t) => {
  const { client, executor } = await serve(t);
  const request = slowRequest(64);
  const input: InputTensor = { name: 'x', datatype: 'FP32', shape: [64, 512], data: new Float32Array(request.inputs[0]?.data as number[]) };
  const early = await client.infer('slow', [input], { signal: AbortSignal.abort() }).catch((caught: unknown) => caught);
  t.match(early, { status: 0, message: 'the call was aborted' });
  const controller = new AbortController();
  // The run is held until the call is aborted, so the abort always lands while it runs.
  const open = executor.hold('slow');
  const running = client.infer('slow', [input], { signal: controller.signal });
  await eventually('the slow run to start', () => (executor.runsStarted.get('slow') ?? 0) >= 1);
  controller.abort();
  t.match(await running.catch((caught: unknown) => caught), { name: 'ModelgateError', status: 0, message: 'the call was aborted' });
  open();
  const after = await client.infer('double', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([2]) }]);
  t.same(Array.from(after.outputs[0]?.data as Float32Array), [4], 'the client serves on');
});

t.test('admin helpers: models and live routes, with the ETag handled', async (t) => {
  const { client } = await serve(t, { routes: [{ key: 'ab', split: { variants: [{ target: 'double', weight: 1 }] } }] });
  t.same((await client.admin.models.list()).map((model) => model.name).slice(0, 3), ['addmul', 'double', 'slow']);
  t.match(await client.admin.models.load('double'), { name: 'double', state: 'resident' });
  t.match(await client.admin.models.unload('double'), { name: 'double', state: 'unloaded' });
  const route = await client.admin.routes.get('ab');
  t.match(route, { key: 'ab', kind: 'split', version: 1 });
  t.same((await client.admin.routes.list()).map((view) => view.key), ['ab']);
  const patched = await client.admin.routes.patch('ab', { split: { variants: [{ target: 'double', weight: 3 }] } }, { ifMatch: route.version });
  t.equal(patched.version, 2);
  const stale = await client.admin.routes.patch('ab', { split: { variants: [{ target: 'double', weight: 5 }] } }, { ifMatch: route.version }).catch((caught: unknown) => caught);
  t.match(stale, { status: 412 });
  const created = await client.admin.routes.put('chain', { sequence: { steps: [{ name: 'first', target: 'double' }, { name: 'second', target: 'double' }] } });
  t.match(created, { key: 'chain', kind: 'sequence' });
  const answer = await client.infer('chain', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([1.25]) }]);
  t.same(Array.from(answer.outputs[0]?.data as Float32Array), [5]);
  await client.infer('ab', [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([1]) }]);
  t.match(await client.admin.routes.stats('ab'), { key: 'ab', sinceChange: { variants: [{ target: 'double', requests: 1 }] } });
  await client.admin.routes.delete('chain', { ifMatch: created.version });
  t.match(await client.admin.routes.get('chain').catch((caught: unknown) => caught), { status: 404 });
});

t.test('a tenant\'s API key: sent on data-plane calls, REST and gRPC, never on admin calls; a 429 is an error with its Retry-After', async (t) => {
  const digest = `sha256:${createHash('sha256').update('client-key').digest('hex')}`;
  const { client: admin, url, app } = await serve(t, { tenants: [{ name: 'team', apiKeys: [digest], allow: ['double'], rateLimit: { requestsPerSecond: 1, burst: 2 } }], grpc: { port: 0 } });
  const x = [{ name: 'x', datatype: 'FP32' as const, shape: [1, 1], data: new Float32Array([2]) }];
  t.match(await admin.infer('double', x).catch((caught: unknown) => caught), { status: 401 }, 'the admin token is not an API key');
  const client = new ModelgateClient({ url, apiKey: 'client-key', token: TOKEN });
  t.teardown(() => client.close());
  t.same(Array.from((await client.infer('double', x)).outputs[0]?.data as Float32Array), [4]);
  t.match(await client.admin.models.list(), [{ name: 'addmul' }], 'admin calls still carry the admin token');
  const grpcPort = await app.grpc.listen('127.0.0.1', 0);
  const overGrpc = new ModelgateClient({ url: `grpc://127.0.0.1:${grpcPort}`, apiKey: 'client-key' });
  t.teardown(() => overGrpc.close());
  t.same(Array.from((await overGrpc.infer('double', x)).outputs[0]?.data as Float32Array), [4], 'as gRPC metadata');
  const limited = await client.infer('double', x).catch((caught: unknown) => caught);
  t.match(limited, { status: 429, retryAfter: 1, message: /Rate limit exceeded/ });
});

t.test('the client package loads undici and its own files only: neither the server, onnxruntime nor fastify', async (t) => {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); seen.push(result.url); return result; } });
    await import('@modelgate/client');
    console.log(JSON.stringify(seen));`;
  // Both ways the package resolves: its sources (as tests see it) and its built dist/ (as applications do).
  for (const conditions of [['--conditions=modelgate-source'], []]) {
    const child = spawnSync(process.execPath, [...conditions, '--input-type=module', '-e', script], { encoding: 'utf8', cwd: ROOT });
    t.equal(child.status, 0, child.stderr);
    const loaded = (JSON.parse(child.stdout) as string[]).filter((url) => url.startsWith('file:'));
    t.ok(loaded.some((url) => url.includes('/node_modules/undici/')), 'undici is loaded');
    const own = `${pathToFileURL(path.join(ROOT, 'packages/client')).href}/`;
    t.same(loaded.filter((url) => !url.startsWith(own) && !url.includes('/node_modules/undici/')), [], `nothing else is loaded (${conditions.join(' ') || 'dist/'})`);
    t.ok(loaded.every((url) => !url.startsWith(own) || url.includes(conditions.length > 0 ? '/src/' : '/dist/')), 'from the files the condition selects');
  }
});
