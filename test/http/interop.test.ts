/**
 * Existing V2 clients work unchanged: requests built byte for byte as
 * Triton's Python HTTP client builds them, sent over real sockets with the
 * headers it sends (no Content-Type), answered with exact values.
 */
import { connect } from 'node:net';
import { gunzipSync, inflateSync, gzipSync } from 'node:zlib';
import t from 'tap';
import { request } from 'undici';
import { addMulModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';
import { eventually, buildGateway } from '../helpers/gateway.ts';
import { readTritonResponse, serializeBytes, tritonRequest, type PyInput } from '../helpers/triton.ts';

/** Per datatype: the ONNX element type, three elements as numpy would hold them (raw bytes) and as Python's item() writes them in JSON. */
const SAMPLES: Array<[string, ElemType, Buffer, string]> = [
  ['BOOL', 'bool', Buffer.from([1, 0, 1]), '[true,false,true]'],
  ['UINT8', 'uint8', Buffer.from([0, 7, 255]), '[0,7,255]'],
  ['UINT16', 'uint16', bytes(new Uint16Array([0, 7, 65535])), '[0,7,65535]'],
  ['UINT32', 'uint32', bytes(new Uint32Array([0, 7, 4294967295])), '[0,7,4294967295]'],
  ['UINT64', 'uint64', bytes(new BigUint64Array([0n, 9007199254740993n, 18446744073709551615n])), '[0,9007199254740993,18446744073709551615]'],
  ['INT8', 'int8', bytes(new Int8Array([-128, 0, 127])), '[-128,0,127]'],
  ['INT16', 'int16', bytes(new Int16Array([-32768, 0, 32767])), '[-32768,0,32767]'],
  ['INT32', 'int32', bytes(new Int32Array([-2147483648, 0, 2147483647])), '[-2147483648,0,2147483647]'],
  ['INT64', 'int64', bytes(new BigInt64Array([-9223372036854775808n, 1152921504606846977n, 9223372036854775807n])), '[-9223372036854775808,1152921504606846977,9223372036854775807]'],
  // float16 0.5, -2, 65504: IEEE half bits.
  ['FP16', 'float16', bytes(new Uint16Array([0x3800, 0xc000, 0x7bff])), '[0.5,-2.0,65504.0]'],
  ['FP32', 'float32', bytes(new Float32Array([0.1, -2.25, 3.4028234663852886e38])), '[0.10000000149011612,-2.25,3.4028234663852886e+38]'],
  ['FP64', 'float64', bytes(new Float64Array([0.1, -1e-300, 1e300])), '[0.1,-1e-300,1e+300]'],
  ['BYTES', 'string', serializeBytes(['hello', '', 'ünïcödé']), '["hello","","ünïcödé"]'],
];

function bytes(array: ArrayBufferView): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

const files: Record<string, Uint8Array> = { 'addmul.onnx': addMulModel('int64') };
const models: Array<Record<string, unknown>> = [{ name: 'addmul', path: 'addmul.onnx' }];
for (const [datatype, elem] of SAMPLES) {
  files[`${datatype}.onnx`] = identityModel(elem, ['n']);
  models.push({ name: datatype, path: `${datatype}.onnx` });
}

async function serve(t: Parameters<typeof buildGateway>[0]) {
  const gateway = await buildGateway(t, files, { models, server: { bodyLimitBytes: 1024 * 1024 } });
  const address = await gateway.app.listen({ port: 0, host: '127.0.0.1' });
  return { ...gateway, address };
}

async function post(url: string, body: Buffer, headers: Record<string, string>) {
  const response = await request(url, { method: 'POST', body, headers });
  const raw = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, raw };
}

t.test('binary inputs and outputs for every datatype, with no Content-Type, plain, gzip and deflate', async (t) => {
  const { address } = await serve(t);
  for (const [datatype, , raw] of SAMPLES) {
    for (const compression of [undefined, 'gzip', 'deflate'] as const) {
      const what = `${datatype} ${compression ?? 'uncompressed'}`;
      const { body, headers } = tritonRequest([{ name: 'x', shape: [3], datatype, raw }], { compression, requestId: `r-${datatype}` });
      t.notOk(Object.keys(headers).some((name) => name.toLowerCase() === 'content-type'), `${what}: sent without a Content-Type`);
      const response = await post(`${address}/v2/models/${datatype}/infer`, body, headers);
      t.equal(response.status, 200, what);
      // Tiny answers come back as they are (below the compression threshold), as the client accepts.
      t.equal(response.headers['content-encoding'], undefined, `${what}: a small answer is not compressed`);
      const plain = response.raw;
      const { json, binary } = readTritonResponse(plain, response.headers['inference-header-content-length'] as string);
      t.same(json.outputs.map((output) => [output.name, output.datatype, output.shape]), [['y', datatype, [3]]], what);
      t.equal(json.id, `r-${datatype}`);
      t.same(binary.get('y'), raw, `${what}: the same bytes back`);
    }
  }
});

t.test('JSON inputs as Python writes them: 64-bit integers as plain numbers, exact both ways', async (t) => {
  const { address } = await serve(t);
  for (const [datatype, , , jsonData] of SAMPLES) {
    const { body, headers } = tritonRequest([{ name: 'x', shape: [3], datatype, jsonData }], { outputs: [{ name: 'y', binary: false }] });
    const response = await post(`${address}/v2/models/${datatype}/infer`, body, headers);
    t.equal(response.status, 200, datatype);
    const text = response.raw.toString('utf8');
    if (datatype === 'INT64' || datatype === 'UINT64') {
      t.match(text, `"data":${jsonData}`, `${datatype}: the exact integers come back as JSON numbers`);
    } else {
      t.same(JSON.parse(text).outputs[0].data, JSON.parse(jsonData), datatype);
    }
  }
  // Arithmetic beyond 2^53 is exact: a + b and a * b computed with bigints here.
  const a = [1152921504606846976n, -4611686018427387904n, 3037000499n];
  const b = [1n, -4611686018427387904n, 3037000499n];
  const { body, headers } = tritonRequest([
    { name: 'a', shape: [3], datatype: 'INT64', jsonData: `[${a.join(',')}]` },
    { name: 'b', shape: [3], datatype: 'INT64', jsonData: `[${b.join(',')}]` },
  ], { outputs: [{ name: 'sum', binary: false }, { name: 'product', binary: true }] });
  const response = await post(`${address}/v2/models/addmul/infer`, body, headers);
  const { json, binary } = readTritonResponse(response.raw, response.headers['inference-header-content-length'] as string);
  const wrap = (x: bigint) => BigInt.asIntN(64, x);
  // The JSON text is checked, not JSON.parse's rounded reading of it.
  t.match(response.raw.subarray(0, Number(response.headers['inference-header-content-length'])).toString(), `"data":[${a.map((x, i) => wrap(x + (b[i] as bigint))).join(',')}]`);
  t.same([...new BigInt64Array(new Uint8Array(binary.get('product') as Buffer).buffer)], a.map((x, i) => wrap(x * (b[i] as bigint))));
});

t.test('64-bit values outside the datatype, and NUL or non-UTF-8 BYTES: 400 naming the element', async (t) => {
  const { address } = await serve(t);
  const cases: Array<[string, PyInput, RegExp]> = [
    ['INT64 above its range', { name: 'x', shape: [2], datatype: 'INT64', jsonData: '[1,9223372036854775808]' }, /^input 'x': element 1: 9223372036854775808 is out of range for INT64$/],
    ['UINT64 negative', { name: 'x', shape: [1], datatype: 'UINT64', jsonData: '[-1]' }, /^input 'x': element 0: -1 is out of range for UINT64$/],
    ['UINT64 above its range', { name: 'x', shape: [1], datatype: 'UINT64', jsonData: '[18446744073709551616]' }, /^input 'x': element 0: 18446744073709551616 is out of range for UINT64$/],
    ['INT32 given a huge integer', { name: 'x', shape: [1], datatype: 'INT32', jsonData: '[99999999999999999999]' }, /^input 'x': element 0: 99999999999999999999 is out of range for INT32$/],
    ['JSON BYTES with NUL', { name: 'x', shape: [2], datatype: 'BYTES', jsonData: '["ok","a\\u0000b"]' }, /^input 'x': element 1 holds a NUL character/],
    ['binary BYTES with NUL', { name: 'x', shape: [2], datatype: 'BYTES', raw: serializeBytes(['ok', Buffer.from([0x61, 0, 0x62])]) }, /^input 'x': BYTES element 1 holds a NUL character/],
    ['binary BYTES not UTF-8', { name: 'x', shape: [1], datatype: 'BYTES', raw: serializeBytes([Buffer.from([0xff, 0xfe])]) }, /^input 'x': BYTES element 0 is not valid UTF-8/],
  ];
  for (const [what, input, message] of cases) {
    const model = input.datatype;
    const { body, headers } = tritonRequest([input]);
    const response = await post(`${address}/v2/models/${model}/infer`, body, headers);
    t.equal(response.status, 400, what);
    t.match(JSON.parse(response.raw.toString()), { error: message }, what);
  }
  // Floats still read as floats when their literal is long, and as Python writes NaN.
  const floats = tritonRequest([{ name: 'x', shape: [3], datatype: 'FP64', jsonData: '[12345678901234567890,NaN,-Infinity]' }], { outputs: [{ name: 'y', binary: false }] });
  const response = await post(`${address}/v2/models/FP64/infer`, floats.body, floats.headers);
  t.same(JSON.parse(response.raw.toString()).outputs[0].data, [12345678901234567000, 'NaN', '-Infinity']);
});

t.test('model versions in the path, classification, and answers compressed only when worth it', async (t) => {
  const { address } = await serve(t);
  const metadata = await request(`${address}/v2/models/FP32/versions/1`);
  t.same(await metadata.body.json(), { name: 'FP32', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] });
  const ready = await request(`${address}/v2/models/FP32/versions/1/ready`);
  t.equal(ready.statusCode, 200);
  await ready.body.dump();
  const missing = await request(`${address}/v2/models/FP32/versions/2/ready`);
  t.equal(missing.statusCode, 404);
  t.same(await missing.body.json(), { error: "Key 'FP32' has no version '2': every key serves version 1" });

  const scores = new Float32Array([0.25, 2.5, -1, 2.5, 0.5]);
  const { body, headers } = tritonRequest([{ name: 'x', shape: [5], datatype: 'FP32', raw: bytes(scores) }], { outputs: [{ name: 'y', classCount: 3, binary: true }] });
  const response = await post(`${address}/v2/models/FP32/versions/1/infer`, body, headers);
  t.equal(response.status, 200);
  const { json, binary } = readTritonResponse(response.raw, response.headers['inference-header-content-length'] as string);
  t.match(json, { model_name: 'FP32', model_version: '1', outputs: [{ name: 'y', datatype: 'BYTES', shape: [3] }] });
  t.same(binary.get('y'), serializeBytes(['2.5:1', '2.5:3', '0.5:4']), 'the top 3 classes, largest first, ties by index');

  // A small answer is not worth compressing; a large one is.
  const small = tritonRequest([{ name: 'x', shape: [3], datatype: 'FP32', raw: bytes(new Float32Array(3)) }], { responseCompression: 'gzip' });
  const smallAnswer = await post(`${address}/v2/models/FP32/infer`, small.body, small.headers);
  t.equal(smallAnswer.headers['content-encoding'], undefined);
  const big = new Float32Array(4096).map((_, i) => i / 7);
  const large = tritonRequest([{ name: 'x', shape: [4096], datatype: 'FP32', jsonData: JSON.stringify([...big]) }], { outputs: [{ name: 'y', binary: false }], responseCompression: 'deflate' });
  const largeAnswer = await post(`${address}/v2/models/FP32/infer`, large.body, large.headers);
  t.equal(largeAnswer.headers['content-encoding'], 'deflate');
  t.ok(largeAnswer.raw.length < Buffer.byteLength(JSON.stringify([...big])), 'smaller than its JSON');
  t.same(JSON.parse(inflateSync(largeAnswer.raw).toString()).outputs[0].data, [...big]);
  const gzipped = await post(`${address}/v2/models/FP32/infer`, large.body, { ...large.headers, 'Accept-Encoding': 'gzip' });
  t.equal(gzipped.headers['content-encoding'], 'gzip');
  t.same(JSON.parse(gunzipSync(gzipped.raw).toString()).outputs[0].data, [...big]);
  const binaryLarge = tritonRequest([{ name: 'x', shape: [4096], datatype: 'FP32', raw: bytes(big) }], { compression: 'gzip' });
  const binaryAnswer = await post(`${address}/v2/models/FP32/infer`, binaryLarge.body, binaryLarge.headers);
  t.equal(binaryAnswer.headers['content-encoding'], 'gzip', 'binary answers are compressed too');
  const unpacked = readTritonResponse(gunzipSync(binaryAnswer.raw), binaryAnswer.headers['inference-header-content-length'] as string);
  t.same(unpacked.binary.get('y'), bytes(big), 'Inference-Header-Content-Length counts the uncompressed body');
});

t.test('a zip bomb: 413 without inflating it all, and the server serves on', async (t) => {
  const { address, app } = await serve(t);
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  t.ok(bomb.length < 1024 * 1024, 'the compressed body is within the limit');
  const response = await post(`${address}/v2/models/FP32/infer`, bomb, { 'content-encoding': 'gzip' });
  t.equal(response.status, 413);
  t.same(JSON.parse(response.raw.toString()), { error: 'Request body is too large: the gzip body inflates to more than the limit of 1048576 bytes (server.bodyLimitBytes)' });
  const good = tritonRequest([{ name: 'x', shape: [1], datatype: 'FP32', raw: bytes(new Float32Array([1.5])) }]);
  t.equal((await post(`${address}/v2/models/FP32/infer`, good.body, good.headers)).status, 200);
  t.equal(app.dataPlane.ready, true);
});

t.test('statistics in Triton\'s shape, counted from the requests made', async (t) => {
  const { address } = await serve(t);
  const good = tritonRequest([{ name: 'x', shape: [2], datatype: 'INT32', raw: bytes(new Int32Array([1, 2])) }]);
  for (let i = 0; i < 3; i++) t.equal((await post(`${address}/v2/models/INT32/infer`, good.body, good.headers)).status, 200);
  const bad = tritonRequest([{ name: 'x', shape: [3], datatype: 'INT32', raw: bytes(new Int32Array([1, 2])) }]);
  t.equal((await post(`${address}/v2/models/INT32/infer`, bad.body, bad.headers)).status, 400);
  const before = Date.now();
  const one = await request(`${address}/v2/models/INT32/stats`);
  const stats = (await one.body.json() as { model_stats: Array<Record<string, any>> }).model_stats;
  t.equal(stats.length, 1);
  const entry = stats[0] as Record<string, any>;
  t.match(entry, {
    // Three requests of two rows each along the dynamic first dimension, each run as its own batch of 2.
    name: 'INT32', version: '1', inference_count: 6, execution_count: 3,
    inference_stats: { success: { count: 3 }, fail: { count: 1 }, queue: { count: 3 }, compute_input: { count: 3 }, compute_infer: { count: 3 }, compute_output: { count: 3 }, cache_hit: { count: 0, ns: 0 }, cache_miss: { count: 0, ns: 0 } },
    batch_stats: [{ batch_size: 2, compute_input: { count: 3 }, compute_infer: { count: 3 }, compute_output: { count: 3 } }],
  });
  t.ok(entry.last_inference > before - 60_000 && entry.last_inference <= before, 'last_inference is a recent time in ms');
  t.ok(entry.inference_stats.success.ns >= entry.inference_stats.compute_infer.ns, 'a request takes at least its run');
  const all = await request(`${address}/v2/models/stats`);
  const names = (await all.body.json() as { model_stats: Array<{ name: string; inference_count: number }> }).model_stats.map((s) => [s.name, s.inference_count]);
  t.same(names, [['addmul', 0], ...SAMPLES.map(([datatype]) => [datatype, datatype === 'INT32' ? 6 : 0])]);
  const unknown = await request(`${address}/v2/models/nope/stats`);
  t.equal(unknown.statusCode, 404);
  t.same(await unknown.body.json(), { error: "Key 'nope' is not served by this gateway" });
});

/** Sends raw bytes on a fresh connection and returns everything the server writes before closing. */
function raw(address: string, text: string): Promise<string> {
  const { hostname, port } = new URL(address);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
  });
}

t.test('requests the HTTP parser rejects are answered with a V2 error body too', async (t) => {
  const { address } = await serve(t);
  const cases: Array<[string, string, RegExp]> = [
    ['Content-Length with Transfer-Encoding', 'POST /v2/models/FP32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', /^Malformed HTTP request: .*Content-Length/],
    ['a malformed request line', 'GARBAGE\r\n\r\n', /^Malformed HTTP request: /],
  ];
  for (const [what, text, message] of cases) {
    const answer = await raw(address, text);
    t.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
    t.match(answer, /\r\nContent-Type: application\/json/, what);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    t.same(Object.keys(body), ['error'], what);
    t.match(body.error, message, what);
  }
});

t.test('statistics of batched requests: executions shared, batch sizes as run', async (t) => {
  const { app, executor } = await buildGateway(t, files, { models: [{ name: 'INT32', path: 'INT32.onnx', batching: { maxBatchSize: 8 } }] });
  const body = { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [5] }] };
  const send = () => app.inject({ method: 'POST', url: '/v2/models/INT32/infer', payload: body });
  await send();
  const release = executor.hold('INT32');
  const first = send();
  await eventually('the first held run', () => executor.runsStarted.get('INT32') === 2);
  // One batch runs at a time: these three wait and then run together.
  const rest = [send(), send(), send()];
  await eventually('the rest to queue', () => app.registry.status()[0]?.inFlight === 4);
  release();
  for (const response of await Promise.all([first, ...rest])) t.equal(response.statusCode, 200);
  const [stats] = app.dataPlane.statistics('INT32').model_stats;
  t.match(stats, { inference_count: 5, execution_count: 3, inference_stats: { success: { count: 5 } } });
  t.same(stats?.batch_stats.map((batch) => [batch.batch_size, batch.compute_infer.count]), [[1, 2], [3, 1]]);
});

t.test('classification of FP16 outputs, a class count above the classes, and a rank-0 output', async (t) => {
  const { app } = await buildGateway(t, { 'f16.onnx': identityModel('float16', ['n']), 'scalar.onnx': identityModel('float32', []) }, { models: [{ name: 'f16', path: 'f16.onnx' }, { name: 'scalar', path: 'scalar.onnx' }] });
  const halves = await app.inject({ method: 'POST', url: '/v2/models/f16/infer', payload: { inputs: [{ name: 'x', datatype: 'FP16', shape: [3], data: [0.5, -2, 1.5] }], outputs: [{ name: 'y', parameters: { classification: 5 } }] } });
  t.same(halves.json().outputs, [{ name: 'y', datatype: 'BYTES', shape: [3], data: ['1.5:2', '0.5:0', '-2:1'] }], 'every class when asked for more than there are');
  const scalar = await app.inject({ method: 'POST', url: '/v2/models/scalar/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [], data: 1 }], outputs: [{ name: 'y', parameters: { classification: 1 } }] } });
  t.equal(scalar.statusCode, 400);
  t.same(scalar.json(), { error: "requested output 'y': classification needs an output with at least one dimension" });
  const bad = await app.inject({ method: 'POST', url: '/v2/models/f16/infer', payload: { inputs: [{ name: 'x', datatype: 'FP16', shape: [1], data: [1] }], outputs: [{ name: 'y', parameters: { classification: 0 } }] } });
  t.same(bad.json(), { error: "requested output 'y': 'classification' must be a positive whole number of classes" });
  const url = await app.inject({ method: 'GET', url: '/v2/models/%E0%A4%A' });
  t.equal(url.statusCode, 400);
  t.same(Object.keys(url.json()), ['error'], 'a URL fastify cannot decode: a V2 error body');
});
