/**
 * The gRPC service over a real socket, called with @grpc/grpc-js stubs made
 * from proto/grpc_service.proto as any client would, against real onnxruntime
 * sessions; expected values computed here.
 */
import { createHash } from 'node:crypto';
import { Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { floatToHalf } from '@modelgate/client/codec';
import { addMulModel, identityModel } from '../../src/onnx/builder.ts';
import { buildGateway, eventually, scaleModel, TOKEN } from '../helpers/gateway.ts';
import { clientOf, HealthService, InferenceService, ReflectionService } from '../helpers/grpc.ts';


type Unary = (request: unknown, metadata: Metadata, options: { deadline?: number }, callback: (error: ServiceError | null, response: unknown) => void) => unknown;

interface Rpc {
  call<T = Record<string, unknown>>(method: string, request?: unknown, metadata?: Record<string, string>, deadlineMs?: number): Promise<T>;
  client: Client;
  port: number;
}

function metadataOf(entries: Record<string, string>): Metadata {
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(entries)) metadata.set(name, value);
  return metadata;
}

/** A gateway over `files` and `config`, listening for gRPC on a free loopback port, with a client. */
async function grpcGateway(t: Test, files: Record<string, Uint8Array | string>, config: Record<string, unknown>) {
  const gateway = await buildGateway(t, files, config);
  const port = await gateway.app.grpc.listen('127.0.0.1', 0);
  const client = clientOf(InferenceService, `127.0.0.1:${port}`);
  t.teardown(() => client.close());
  const rpc: Rpc = {
    client,
    port,
    call: (method, request = {}, metadata = {}, deadlineMs) => new Promise((resolve, reject) => {
      ((client as unknown as Record<string, Unary>)[method] as Unary).call(client, request, metadataOf(metadata), deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs }, (error, response) => (error === null ? resolve(response as never) : reject(error)));
    }),
  };
  return { ...gateway, rpc };
}

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: ServiceError) => ({ code: status[error.code], details: error.details }));
const f32 = (values: number[]) => Buffer.from(new Float32Array(values).buffer);

t.test('health, metadata, config and statistics of a key', async (t) => {
  const { rpc } = await grpcGateway(t, { 'scale.onnx': scaleModel(3) }, { models: [{ name: 'scale', path: 'scale.onnx', keys: ['scale', 'alias'], batching: { maxBatchSize: 8, maxQueueDelayMicros: 100 } }] });
  t.same(await rpc.call('ServerLive'), { live: true });
  t.same(await rpc.call('ServerReady'), { ready: true });
  t.same(await rpc.call('ModelReady', { name: 'alias' }), { ready: true });
  t.match(await rpc.call('ServerMetadata'), { name: 'modelgate', extensions: ['binary_tensor_data', 'classification', 'model_repository', 'statistics'] });
  t.same(await rpc.call('ModelMetadata', { name: 'alias' }), { name: 'alias', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'x', datatype: 'FP32', shape: ['-1', '1'] }], outputs: [{ name: 'y', datatype: 'FP32', shape: ['-1', '1'] }] });
  const { config } = await rpc.call<{ config: Record<string, unknown> }>('ModelConfig', { name: 'scale' });
  t.match(config, { name: 'scale', platform: 'onnxruntime_onnx', backend: 'onnxruntime', max_batch_size: 8, input: [{ name: 'x', data_type: 'TYPE_FP32', dims: ['1'] }], output: [{ name: 'y', data_type: 'TYPE_FP32', dims: ['1'] }], instance_group: [{ count: 1, kind: 'KIND_CPU' }], dynamic_batching: { max_queue_delay_microseconds: '100' } });
  t.same(await failure(rpc.call('ModelMetadata', { name: 'nope' })), { code: 'NOT_FOUND', details: "Key 'nope' is not served by this gateway" });
  t.same(await failure(rpc.call('ModelMetadata', { name: 'scale', version: '2' })), { code: 'NOT_FOUND', details: "Key 'scale' has no version '2': every key serves version 1" });
  await rpc.call('ModelInfer', { model_name: 'scale', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 1] }], raw_input_contents: [f32([1, 2])] });
  const stats = await rpc.call<{ model_stats: Array<Record<string, unknown>> }>('ModelStatistics', { name: 'scale' });
  t.match(stats.model_stats, [{ name: 'scale', version: '1', inference_count: '2', execution_count: '1', inference_stats: { success: { count: '1' } } }]);
  t.same(await failure(rpc.call('SystemSharedMemoryStatus')), { code: 'UNIMPLEMENTED', details: 'SystemSharedMemoryStatus: modelgate does not implement shared memory' });
  const probe = clientOf(HealthService, `127.0.0.1:${rpc.port}`);
  t.teardown(() => probe.close());
  const check = (service: string) => new Promise((resolve, reject) => (probe as unknown as Record<string, Unary>).Check?.call(probe, { service }, new Metadata(), {}, (error, response) => (error === null ? resolve(response) : reject(error))));
  t.same(await check(''), { status: 'SERVING' });
  t.same(await check('inference.GRPCInferenceService'), { status: 'SERVING' });
});

t.test('ModelInfer: exact values in raw and typed contents, for FP32, INT64 beyond 2^53, BYTES and FP16', async (t) => {
  const { rpc } = await grpcGateway(t, {
    'int64.onnx': addMulModel('int64'), 'bytes.onnx': identityModel('string', ['n']), 'half.onnx': identityModel('float16', ['n']), 'scale.onnx': scaleModel(2),
  }, { models: [{ name: 'int64', path: 'int64.onnx' }, { name: 'bytes', path: 'bytes.onnx' }, { name: 'half', path: 'half.onnx' }, { name: 'scale', path: 'scale.onnx' }] });
  const big = 2n ** 62n + 1n;
  const raw = await rpc.call<{ outputs: Array<{ name: string }>; raw_output_contents: Buffer[]; id: string; model_name: string }>('ModelInfer', {
    model_name: 'int64', id: 'r1',
    inputs: [{ name: 'a', datatype: 'INT64', shape: [2] }, { name: 'b', datatype: 'INT64', shape: [2] }],
    outputs: [{ name: 'sum' }],
    raw_input_contents: [Buffer.from(new BigInt64Array([big, -3n]).buffer), Buffer.from(new BigInt64Array([1n, 10n]).buffer)],
  });
  t.equal(raw.id, 'r1');
  t.equal(raw.model_name, 'int64');
  t.same(raw.outputs.map((output) => output.name), ['sum']);
  const sum = raw.raw_output_contents[0] as Buffer;
  t.same([sum.readBigInt64LE(0), sum.readBigInt64LE(8)], [big + 1n, 7n], 'INT64 beyond 2^53, raw');
  const typed = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', {
    model_name: 'int64',
    inputs: [{ name: 'a', datatype: 'INT64', shape: [1], contents: { int64_contents: [String(big)] } }, { name: 'b', datatype: 'INT64', shape: [1], contents: { int64_contents: ['2'] } }],
    outputs: [{ name: 'product' }],
  });
  t.equal((typed.raw_output_contents[0] as Buffer).readBigInt64LE(0), BigInt.asIntN(64, big * 2n), 'INT64 typed contents, exact (wrapping as int64 does)');
  const elements = ['', 'ünïcode', 'x'.repeat(300), ''];
  const framed = Buffer.concat(elements.flatMap((element) => { const bytes = Buffer.from(element); const length = Buffer.alloc(4); length.writeUInt32LE(bytes.length); return [length, bytes]; }));
  const bytes = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', { model_name: 'bytes', inputs: [{ name: 'x', datatype: 'BYTES', shape: [4] }], raw_input_contents: [framed] });
  t.same(bytes.raw_output_contents[0], framed, 'BYTES, empty elements included, as 4-byte length-prefixed elements');
  const typedBytes = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', { model_name: 'bytes', inputs: [{ name: 'x', datatype: 'BYTES', shape: [4], contents: { bytes_contents: elements.map((element) => Buffer.from(element)) } }] });
  t.same(typedBytes.raw_output_contents[0], framed, 'BYTES in bytes_contents');
  const halves = Buffer.from(Uint16Array.from([0.5, -2, 65504], floatToHalf).buffer);
  const half = await rpc.call<{ outputs: Array<{ datatype: string }>; raw_output_contents: Buffer[] }>('ModelInfer', { model_name: 'half', inputs: [{ name: 'x', datatype: 'FP16', shape: [3] }], raw_input_contents: [halves] });
  t.same([half.outputs[0]?.datatype, half.raw_output_contents[0]], ['FP16', halves], 'FP16 raw, bit for bit');
  const floats = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', { model_name: 'scale', inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 1], contents: { fp32_contents: [1.5, -2, 0.25] } }] });
  t.same(Array.from(new Float32Array(new Uint8Array(floats.raw_output_contents[0] as Buffer).buffer)), [3, -4, 0.5], 'FP32 typed contents');
  t.same(await failure(rpc.call('ModelInfer', { model_name: 'half', inputs: [{ name: 'x', datatype: 'FP16', shape: [1], contents: { fp32_contents: [1] } }] })), { code: 'INVALID_ARGUMENT', details: "input 'x': FP16 has no typed contents field: send it in raw_input_contents" });
  const wrong = await failure(rpc.call('ModelInfer', { model_name: 'scale', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 1] }], raw_input_contents: [f32([1])] }));
  t.equal(wrong?.code, 'INVALID_ARGUMENT');
  t.match(wrong?.details, /input 'x'.*4 bytes.*2 × 4/, 'the message REST gives for the same mistake');
  t.same(await failure(rpc.call('ModelInfer', { model_name: 'scale', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }, { name: 'y', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [f32([1])] })), { code: 'INVALID_ARGUMENT', details: 'raw_input_contents holds 1 tensors but inputs names 2: one each, in the same order' });
});

t.test('splits stick by metadata and say the variant; chains and classification work as over REST', async (t) => {
  const { rpc } = await grpcGateway(t, { 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3) }, {
    models: [{ name: 'two', path: 'two.onnx' }, { name: 'three', path: 'three.onnx' }],
    routes: [
      { key: 'ab', split: { variants: [{ target: 'two', weight: 1 }, { target: 'three', weight: 1 }], stickyHeader: 'x-user-id' } },
      { key: 'chain', sequence: { steps: [{ target: 'two' }, { target: 'three' }] } },
    ],
  });
  const answer = (key: string, user: string) => new Promise<{ value: number; variant: string | undefined }>((resolve, reject) => {
    const call = (rpc.client as unknown as Record<string, Unary>).ModelInfer?.call(rpc.client, { model_name: key, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [f32([1])] }, metadataOf({ 'x-user-id': user }), {}, (error, response) => {
      if (error !== null) return reject(error);
      resolve({ value: (response as { raw_output_contents: Buffer[] }).raw_output_contents[0]?.readFloatLE(0) as number, variant });
    }) as { on(event: 'metadata', listener: (metadata: Metadata) => void): void };
    let variant: string | undefined;
    call.on('metadata', (metadata) => { variant = metadata.get('x-modelgate-variant')[0] as string | undefined; });
  });
  const users = Array.from({ length: 12 }, (_, index) => `user-${index}`);
  const first = await Promise.all(users.map((user) => answer('ab', user)));
  const again = await Promise.all(users.map((user) => answer('ab', user)));
  t.same(again, first, 'each user keeps its variant');
  t.ok(first.every(({ value, variant }) => (variant === 'ab=two' && value === 2) || (variant === 'ab=three' && value === 3)), 'the variant metadata names the model that answered');
  t.ok(new Set(first.map(({ variant }) => variant)).size === 2, 'both variants serve some user');
  t.equal((await answer('chain', 'u')).value, 6);
  const classified = await rpc.call<{ outputs: Array<{ datatype: string; shape: string[] }>; raw_output_contents: Buffer[] }>('ModelInfer', {
    model_name: 'two', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 1] }], raw_input_contents: [f32([1.5, -1])], outputs: [{ name: 'y', parameters: { classification: { int64_param: '1' } } }],
  });
  t.same(classified.outputs[0], { name: 'y', datatype: 'BYTES', shape: ['2', '1'], parameters: {}, contents: null });
  const text = classified.raw_output_contents[0] as Buffer;
  t.same([text.toString('utf8', 4, 4 + text.readUInt32LE(0))], ['3:0'], 'classification over gRPC: score:index');
});

t.test('a stream of 1,000 requests with bad ones among them: every one answered with its id, the stream open to the end', async (t) => {
  const { rpc } = await grpcGateway(t, { 'scale.onnx': scaleModel(2) }, { models: [{ name: 'scale', path: 'scale.onnx' }] });
  const stream = (rpc.client as unknown as { ModelStreamInfer(): NodeJS.ReadWriteStream & { write(message: unknown): boolean; end(): void } }).ModelStreamInfer();
  const answers = new Map<string, { error_message: string; infer_response: { id: string; raw_output_contents: Buffer[] } }>();
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (message: { error_message: string; infer_response: { id: string; raw_output_contents: Buffer[] } }) => answers.set(message.infer_response.id, message));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (let index = 0; index < 1000; index++) {
    const bad = index % 7 === 3;
    stream.write({ model_name: bad && index % 2 === 0 ? 'nope' : 'scale', id: `r${index}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [bad ? f32([]) : f32([index])] });
  }
  stream.end();
  await done;
  t.equal(answers.size, 1000, 'every request answered');
  let wrong = 0;
  for (let index = 0; index < 1000; index++) {
    const answer = answers.get(`r${index}`);
    const bad = index % 7 === 3;
    if (bad ? answer?.error_message === '' : answer?.error_message !== '' || answer.infer_response.raw_output_contents[0]?.readFloatLE(0) !== index * 2) wrong += 1;
  }
  t.equal(wrong, 0, 'good ones with their own answer, bad ones with an error_message');
  t.match(answers.get('r3')?.error_message, /input 'x'/);
  t.match(answers.get('r10')?.error_message, "Key 'nope' is not served by this gateway");
});

t.test('a deadline: a request still waiting at it answers DEADLINE_EXCEEDED and never runs; a cancelled one is dropped', async (t) => {
  const { rpc, executor, app } = await grpcGateway(t, { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3) }, {
    registry: { maxResidentModels: 1 },
    models: [{ name: 'a', path: 'a.onnx', batching: false }, { name: 'b', path: 'b.onnx', batching: false }],
  });
  const request = (key: string) => ({ model_name: key, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [f32([1])] });
  await rpc.call('ModelInfer', request('a'));
  const release = executor.hold('a');
  t.teardown(release);
  const busy = rpc.call('ModelInfer', request('a'));
  await eventually('a\'s run to be held', () => executor.runsStarted.get('a') === 2);
  // b needs a's slot, which a holds past b's deadline.
  t.match(await failure(rpc.call('ModelInfer', request('b'), {}, 150)), { code: 'DEADLINE_EXCEEDED' });
  const cancelled = (rpc.client as unknown as Record<string, Unary>).ModelInfer?.call(rpc.client, request('b'), new Metadata(), {}, () => undefined) as { cancel(): void };
  await eventually('b to wait for a slot', () => app.registry.status()[1]?.state === 'loading' || (app.registry.status()[1]?.inFlight ?? 0) > 0);
  cancelled.cancel();
  release();
  await busy;
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(executor.runsStarted.get('b') ?? 0, 0, 'neither the expired nor the cancelled request for b ran');
  const after = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', request('b'));
  t.equal(after.raw_output_contents[0]?.readFloatLE(0), 3, 'b serves afterwards');
});

t.test('the repository RPCs need the admin token', async (t) => {
  const { rpc } = await grpcGateway(t, { 'scale.onnx': scaleModel(2) }, { models: [{ name: 'scale', path: 'scale.onnx' }] });
  t.same(await failure(rpc.call('RepositoryIndex')), { code: 'UNAUTHENTICATED', details: 'The repository RPCs need the admin token as authorization metadata (Bearer <token>)' });
  t.same(await failure(rpc.call('RepositoryModelLoad', { model_name: 'scale' }, { authorization: 'Bearer wrong' })), { code: 'UNAUTHENTICATED', details: 'Admin token is not valid' });
  const auth = { authorization: `Bearer ${TOKEN}` };
  t.same(await rpc.call('RepositoryIndex', {}, auth), { models: [{ name: 'scale', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' }] });
  t.same(await rpc.call('RepositoryModelLoad', { model_name: 'scale' }, auth), {});
  t.same(await rpc.call('RepositoryIndex', { ready: true }, auth), { models: [{ name: 'scale', version: '1', state: 'READY', reason: '' }] });
  t.same(await rpc.call('RepositoryModelUnload', { model_name: 'scale' }, auth), {});
  t.same(await failure(rpc.call('RepositoryModelLoad', { model_name: 'nope' }, auth)), { code: 'NOT_FOUND', details: "Model 'nope' is not configured" });
});

t.test('health Watch turns NOT_SERVING when the gateway closes', async (t) => {
  const { app, rpc } = await grpcGateway(t, { 'scale.onnx': scaleModel(2) }, { models: [{ name: 'scale', path: 'scale.onnx' }] });
  const probe = clientOf(HealthService, `127.0.0.1:${rpc.port}`);
  t.teardown(() => probe.close());
  const watch = (probe as unknown as { Watch(request: unknown): NodeJS.ReadableStream & { cancel(): void } }).Watch({ service: '' });
  const seen: string[] = [];
  watch.on('data', (message: { status: string }) => seen.push(message.status));
  watch.on('error', () => undefined);
  await eventually('SERVING', () => seen.includes('SERVING'));
  const closing = app.close();
  await eventually('NOT_SERVING', () => seen.includes('NOT_SERVING'));
  await closing;
  t.same(seen.slice(0, 2), ['SERVING', 'NOT_SERVING']);
});

t.test('messages past server.bodyLimitBytes are RESOURCE_EXHAUSTED; gzip requests are read; calls are counted with protocol grpc (grpc-js refuses the oversized message before the gateway sees it)', async (t) => {
  const { rpc, app } = await grpcGateway(t, { 'big.onnx': identityModel('float32', ['n']) }, { server: { bodyLimitBytes: 64 * 1024 }, models: [{ name: 'big', path: 'big.onnx' }] });
  const request = (floats: number) => ({ model_name: 'big', inputs: [{ name: 'x', datatype: 'FP32', shape: [floats] }], raw_input_contents: [Buffer.alloc(floats * 4)] });
  t.match(await failure(rpc.call('ModelInfer', request(32 * 1024))), { code: 'RESOURCE_EXHAUSTED' }, '128 KiB against a 64 KiB limit');
  const zipped = clientOf(InferenceService, `127.0.0.1:${rpc.port}`, { 'grpc.default_compression_algorithm': 2 });
  t.teardown(() => zipped.close());
  const answer = await new Promise<{ raw_output_contents: Buffer[] }>((resolve, reject) => {
    (zipped as unknown as Record<string, Unary>).ModelInfer?.call(zipped, request(4096), new Metadata(), {}, (error, response) => (error === null ? resolve(response as never) : reject(error)));
  });
  t.equal(answer.raw_output_contents[0]?.length, 4096 * 4, 'a gzip-compressed request answered');
  const text = (await app.inject({ url: '/metrics' })).body;
  t.match(text, /^modelgate_requests_total\{key="big",code="200",protocol="grpc"[^}]*\} 1$/m);
});

t.test('server reflection lists the services, as grpcurl asks; BYTES holding NUL are refused as over REST', async (t) => {
  const { rpc } = await grpcGateway(t, { 'bytes.onnx': identityModel('string', ['n']) }, { models: [{ name: 'bytes', path: 'bytes.onnx' }] });
  const client = clientOf(ReflectionService, `127.0.0.1:${rpc.port}`);
  t.teardown(() => client.close());
  const stream = (client as unknown as { ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(message: unknown): boolean; end(): void } }).ServerReflectionInfo();
  const listed = new Promise<string[]>((resolve, reject) => {
    stream.on('data', (message: { list_services_response?: { service: Array<{ name: string }> } }) => resolve((message.list_services_response?.service ?? []).map((service) => service.name)));
    stream.on('error', reject);
  });
  stream.write({ list_services: '' });
  const services = await listed;
  stream.end();
  t.ok(services.includes('inference.GRPCInferenceService'), `listed: ${services.join(', ')}`);
  const nul = Buffer.from([1, 0, 0, 0, 0]);
  t.match(await failure(rpc.call('ModelInfer', { model_name: 'bytes', inputs: [{ name: 'x', datatype: 'BYTES', shape: [1] }], raw_input_contents: [nul] })), { code: 'INVALID_ARGUMENT', details: /input 'x': BYTES element 0 holds a NUL character/ });
});

t.test('typed contents of every integer and float datatype, range-checked; parameters of every kind', async (t) => {
  const types = { int8: 'INT8', int16: 'INT16', int32: 'INT32', uint8: 'UINT8', uint16: 'UINT16', uint32: 'UINT32', uint64: 'UINT64', bool: 'BOOL', float64: 'FP64' } as const;
  const files = Object.fromEntries(Object.keys(types).map((type) => [`${type}.onnx`, identityModel(type as never, ['n'])]));
  const { rpc } = await grpcGateway(t, { ...files, 'two.onnx': scaleModel(2) }, {
    models: [...Object.keys(types).map((type) => ({ name: type, path: `${type}.onnx` })), { name: 'two', path: 'two.onnx' }],
    routes: [{ key: 'chain', sequence: { steps: [{ name: 'first', target: 'two' }, { name: 'second', target: 'two' }] } }],
  });
  const cases: Array<[keyof typeof types, Record<string, unknown>, Buffer]> = [
    ['int8', { int_contents: [-128, 0, 127] }, Buffer.from(Int8Array.from([-128, 0, 127]).buffer)],
    ['int16', { int_contents: [-32768, 5, 32767] }, Buffer.from(Int16Array.from([-32768, 5, 32767]).buffer)],
    ['int32', { int_contents: [-7, 0, 2147483647] }, Buffer.from(Int32Array.from([-7, 0, 2147483647]).buffer)],
    ['uint8', { uint_contents: [0, 9, 255] }, Buffer.from(Uint8Array.from([0, 9, 255]).buffer)],
    ['uint16', { uint_contents: [0, 9, 65535] }, Buffer.from(Uint16Array.from([0, 9, 65535]).buffer)],
    ['uint32', { uint_contents: [0, 9, 4294967295] }, Buffer.from(Uint32Array.from([0, 9, 4294967295]).buffer)],
    ['uint64', { uint64_contents: ['0', '9', String(2n ** 64n - 1n)] }, Buffer.from(BigUint64Array.from([0n, 9n, 2n ** 64n - 1n]).buffer)],
    ['bool', { bool_contents: [true, false, true] }, Buffer.from([1, 0, 1])],
    ['float64', { fp64_contents: [0.1, -2.5, 1e300] }, Buffer.from(Float64Array.from([0.1, -2.5, 1e300]).buffer)],
  ];
  for (const [type, contents, expected] of cases) {
    const answer = await rpc.call<{ raw_output_contents: Buffer[] }>('ModelInfer', { model_name: type, inputs: [{ name: 'x', datatype: types[type], shape: [3], contents }] });
    t.same(answer.raw_output_contents[0], expected, `${types[type]} typed contents, exact`);
  }
  t.same(await failure(rpc.call('ModelInfer', { model_name: 'int8', inputs: [{ name: 'x', datatype: 'INT8', shape: [1], contents: { int_contents: [128] } }] })), { code: 'INVALID_ARGUMENT', details: "input 'x': element 0 (128) is out of range for INT8" });
  const intermediate = await rpc.call<{ outputs: Array<{ name: string }> }>('ModelInfer', {
    model_name: 'chain', id: 'p', parameters: { return_intermediate: { bool_param: true }, note: { string_param: 'x' }, weight: { double_param: 0.5 }, big: { int64_param: String(2n ** 60n) } },
    inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [f32([1])],
  });
  t.same(intermediate.outputs.map((output) => output.name), ['y', 'first.y', 'second.y'], 'a bool parameter (return_intermediate) read; the others carried');
});

t.test('with tenants, the data-plane RPCs need an API key in metadata, as REST does; probes and server metadata stay open', async (t) => {
  const digest = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;
  const { rpc } = await grpcGateway(t, { 'scale.onnx': scaleModel(2), 'other.onnx': scaleModel(3) }, {
    models: [{ name: 'scale', path: 'scale.onnx' }, { name: 'other', path: 'other.onnx' }],
    tenants: [{ name: 'team', apiKeys: [digest('team-key')], allow: ['sc*'], rateLimit: { requestsPerSecond: 1, burst: 3 } }],
  });
  const key = { authorization: 'Bearer team-key' };
  const request = (name: string, x: number, id = '') => ({ model_name: name, id, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [f32([x])] });
  t.same(await rpc.call('ServerLive'), { live: true });
  t.match(await rpc.call('ServerMetadata'), { name: 'modelgate' });
  t.same(await failure(rpc.call('ModelReady', { name: 'scale' })), { code: 'UNAUTHENTICATED', details: 'This gateway needs an API key: send authorization: Bearer <API key>' });
  t.same(await failure(rpc.call('ModelInfer', request('scale', 1), { authorization: 'Bearer wrong' })), { code: 'UNAUTHENTICATED', details: 'authorization: the API key is not valid' });
  t.same(await failure(rpc.call('ModelMetadata', { name: 'other' }, key)), { code: 'PERMISSION_DENIED', details: "This API key may not call key 'other'" });

  // The answer's metadata names the tenant; the third call spends the burst.
  const metadata = await new Promise<Metadata>((resolve, reject) => {
    const call = (rpc.client as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: ServiceError | null) => void) => { on(event: 'metadata', listener: (metadata: Metadata) => void): void }>).ModelInfer?.call(rpc.client, request('scale', 4), metadataOf(key), (error) => { if (error !== null) reject(error); });
    call?.on('metadata', resolve);
  });
  t.same(metadata.get('x-modelgate-tenant'), ['team']);
  t.same(await rpc.call('ModelReady', { name: 'scale' }, key), { ready: true });
  const stats = await rpc.call<{ model_stats: Array<{ name: string }> }>('ModelStatistics', { name: '' }, key);
  t.same(stats.model_stats.map((entry) => entry.name), ['scale'], "every key's statistics: the tenant's only");
  const limited = await new Promise<ServiceError>((resolve) => {
    (rpc.client as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: ServiceError | null) => void) => void>).ModelInfer?.call(rpc.client, request('scale', 1), metadataOf(key), (error) => resolve(error as ServiceError));
  });
  t.equal(status[limited.code], 'RESOURCE_EXHAUSTED');
  t.match(limited.details, /Rate limit exceeded/);
  t.same(limited.metadata.get('retry-after'), ['1'], 'Retry-After travels as a trailer');
  t.same(limited.metadata.get('x-modelgate-tenant'), ['team']);

  // In a stream each request is a call of its own: the one outside allow is refused, the stream goes on.
  const stream = (rpc.client as unknown as { ModelStreamInfer(metadata: Metadata): NodeJS.ReadWriteStream & { write(message: unknown): boolean; end(): void } }).ModelStreamInfer(metadataOf(key));
  const answers: Array<{ error_message: string; infer_response: { id: string } }> = [];
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('data', (message: { error_message: string; infer_response: { id: string } }) => answers.push(message));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  await new Promise((resolve) => setTimeout(resolve, 1100));
  stream.write(request('other', 1, 'denied'));
  stream.write(request('scale', 5, 'allowed'));
  stream.end();
  await ended;
  const byId = new Map(answers.map((answer) => [answer.infer_response.id, answer.error_message]));
  t.equal(byId.get('denied'), "This API key may not call key 'other'");
  t.equal(byId.get('allowed'), '', 'a token refilled: served');
});
