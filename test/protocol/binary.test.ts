import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { addMulModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';
import { buildGateway, infer } from '../helpers/gateway.ts';

/** A binary-extension request: the JSON header, then the blobs in order. */
function binaryRequest(app: FastifyInstance, key: string, header: unknown, blobs: Buffer[], headerLength?: string) {
  const json = Buffer.from(JSON.stringify(header));
  return app.inject({
    method: 'POST', url: `/v2/models/${key}/infer`, payload: Buffer.concat([json, ...blobs]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': headerLength ?? String(json.length) },
  });
}

/** Splits a binary response into its JSON header and the bytes after it. */
function parseBinary(response: { rawPayload: Buffer; headers: Record<string, unknown> }) {
  const length = Number(response.headers['inference-header-content-length']);
  return { header: JSON.parse(response.rawPayload.subarray(0, length).toString()), rest: response.rawPayload.subarray(length) };
}

function strings(values: string[]): Buffer {
  return Buffer.concat(values.flatMap((value) => {
    const bytes = Buffer.from(value);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    return [length, bytes];
  }));
}

const bytesOf = (array: ArrayBufferView) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);

const CASES: Array<[string, ElemType, Buffer, number]> = [
  ['BOOL', 'bool', Buffer.from([1, 0, 1]), 3],
  ['UINT8', 'uint8', Buffer.from([0, 7, 255]), 3],
  ['UINT16', 'uint16', bytesOf(new Uint16Array([0, 7, 65535])), 3],
  ['UINT32', 'uint32', bytesOf(new Uint32Array([0, 7, 4294967295])), 3],
  ['UINT64', 'uint64', bytesOf(new BigUint64Array([0n, 7n, 18446744073709551615n])), 3],
  ['INT8', 'int8', bytesOf(new Int8Array([-128, 0, 127])), 3],
  ['INT16', 'int16', bytesOf(new Int16Array([-32768, 0, 32767])), 3],
  ['INT32', 'int32', bytesOf(new Int32Array([-2147483648, 0, 2147483647])), 3],
  ['INT64', 'int64', bytesOf(new BigInt64Array([-9223372036854775808n, 0n, 9223372036854775807n])), 3],
  ['FP16', 'float16', bytesOf(new Uint16Array([0x3c00, 0xc100, 0x7bff])), 3],
  ['FP32', 'float32', bytesOf(new Float32Array([0.1, Number.NaN, -Infinity])), 3],
  ['FP64', 'float64', bytesOf(new Float64Array([0.1, 1e300, -0])), 3],
  ['BYTES', 'string', strings(['hello', '', 'ünïcödé']), 3],
];

t.test('every datatype round-trips in binary, byte for byte; the raw-body form too', async (t) => {
  const files: Record<string, Uint8Array> = {};
  const models = [];
  for (const [datatype, elem] of CASES) {
    files[`${datatype}.onnx`] = identityModel(elem, ['n']);
    models.push({ name: datatype, path: `${datatype}.onnx` });
  }
  const { app } = await buildGateway(t, files, { models });
  t.match((await app.inject({ url: '/v2' })).json().extensions, ['binary_tensor_data']);
  for (const [datatype, , blob, count] of CASES) {
    const response = await binaryRequest(app, datatype, {
      id: datatype,
      inputs: [{ name: 'x', datatype, shape: [count], parameters: { binary_data_size: blob.length } }],
      outputs: [{ name: 'y', parameters: { binary_data: true } }],
    }, [blob]);
    t.equal(response.statusCode, 200, datatype);
    t.equal(response.headers['content-type'], 'application/octet-stream');
    const { header, rest } = parseBinary(response);
    t.same(header, { model_name: datatype, id: datatype, outputs: [{ name: 'y', datatype, shape: [count], parameters: { binary_data_size: blob.length } }] }, datatype);
    t.ok(rest.equals(blob), `${datatype}: the same bytes back`);

    const raw = await app.inject({ method: 'POST', url: `/v2/models/${datatype}/infer`, payload: blob, headers: { 'content-type': 'application/octet-stream' } });
    t.equal(raw.statusCode, 200, `${datatype} raw body`);
    t.same(raw.json().outputs[0].shape, [count], `${datatype} raw body: the dynamic dimension is inferred`);
  }
});

t.test('binary and JSON inputs mix; binary_data_output makes every output binary; JSON requests can ask for binary outputs', async (t) => {
  const { app } = await buildGateway(t, { 'am.onnx': addMulModel('int32', ['n']) }, { models: [{ name: 'am', path: 'am.onnx' }] });
  const a = new Int32Array([1, -2, 3]);
  const mixed = await binaryRequest(app, 'am', {
    inputs: [
      { name: 'a', datatype: 'INT32', shape: [3], parameters: { binary_data_size: 12 } },
      { name: 'b', datatype: 'INT32', shape: [3], data: [10, 20, 30] },
    ],
    parameters: { binary_data_output: true },
  }, [bytesOf(a)]);
  const { header, rest } = parseBinary(mixed);
  t.same(header.outputs.map((output: { name: string; parameters: unknown }) => [output.name, output.parameters]), [['sum', { binary_data_size: 12 }], ['product', { binary_data_size: 12 }]]);
  t.same([...new Int32Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 24))], [11, 18, 33, 10, -40, 90]);

  const json = await infer(app, 'am', {
    inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [2] }, { name: 'b', datatype: 'INT32', shape: [1], data: [5] }],
    outputs: [{ name: 'sum' }, { name: 'product', parameters: { binary_data: true } }],
  });
  const parsed = parseBinary(json);
  t.same(parsed.header.outputs, [
    { name: 'sum', datatype: 'INT32', shape: [1], data: [7] },
    { name: 'product', datatype: 'INT32', shape: [1], parameters: { binary_data_size: 4 } },
  ]);
  t.equal(parsed.rest.readInt32LE(0), 10);
});

t.test('bad binary requests get 400 naming what is wrong', async (t) => {
  const { app } = await buildGateway(t, { 'f.onnx': identityModel('float32', ['n']), 'b.onnx': identityModel('bool', ['n']), 's.onnx': identityModel('string', ['n']), 'am.onnx': addMulModel('float32', ['n']) }, {
    models: [{ name: 'f', path: 'f.onnx' }, { name: 'b', path: 'b.onnx' }, { name: 's', path: 's.onnx' }, { name: 'am', path: 'am.onnx' }],
  });
  const four = bytesOf(new Float32Array([1, 2, 3, 4]));
  const input = (size: unknown, shape = [4]) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape, parameters: { binary_data_size: size } }] });
  const cases: Array<[string, Promise<{ statusCode: number; json(): { error: string } }>, RegExp]> = [
    ['negative header length', binaryRequest(app, 'f', input(16), [four], '-1'), /Inference-Header-Content-Length '-1' must be a byte count within the body/],
    ['non-numeric header length', binaryRequest(app, 'f', input(16), [four], 'abc'), /Inference-Header-Content-Length 'abc'/],
    ['header length past the body', binaryRequest(app, 'f', input(16), [four], '9999'), /within the body \(\d+ bytes\)/],
    ['header length cutting the JSON', binaryRequest(app, 'f', input(16), [four], '10'), /the JSON header \(Inference-Header-Content-Length 10\) is not valid JSON/],
    ['size disagreeing with shape', binaryRequest(app, 'f', input(12), [four]), /input 'x': binary data has 12 bytes but shape and FP32 need 4 × 4 = 16/],
    ['size past the end', binaryRequest(app, 'f', input(32), [four]), /input 'x': binary_data_size 32 runs past the end of the body \(16 bytes left\)/],
    ['negative size', binaryRequest(app, 'f', input(-4), [four]), /input 'x': binary_data_size must be a non-negative integer/],
    ['trailing bytes', binaryRequest(app, 'f', input(12, [3]), [four]), /the body has 4 bytes beyond the inputs' binary_data_size/],
    ['data and binary both', binaryRequest(app, 'f', { inputs: [{ name: 'x', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4], parameters: { binary_data_size: 16 } }] }, [four]), /has both 'data' and binary_data_size/],
    ['binary size in a JSON request', infer(app, 'f', input(16)), /binary_data_size needs the binary extension/],
    ['BOOL byte of 2', binaryRequest(app, 'b', { inputs: [{ name: 'x', datatype: 'BOOL', shape: [2], parameters: { binary_data_size: 2 } }] }, [Buffer.from([1, 2])]), /BOOL bytes must be 0 or 1/],
    ['truncated BYTES', binaryRequest(app, 's', { inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } }] }, [Buffer.from([9, 0, 0, 0, 65, 66])]), /BYTES element 0 runs past its data/],
    ['BYTES count', binaryRequest(app, 's', { inputs: [{ name: 'x', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 5 } }] }, [strings(['a'])]), /holds 1 BYTES elements, but the shape needs 2/],
    ['raw body, two inputs', app.inject({ method: 'POST', url: '/v2/models/am/infer', payload: four, headers: { 'content-type': 'application/octet-stream' } }), /needs a model with one input; this one has 2/],
    ['raw body, ragged', app.inject({ method: 'POST', url: '/v2/models/f/infer', payload: Buffer.alloc(6), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' } }), /a raw body of 6 bytes does not fill shape \[-1\] of FP32/],
    ['binary_data not a boolean', infer(app, 'f', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }], outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }), /'binary_data' must be a boolean/],
  ];
  for (const [what, pending, message] of cases) {
    const response = await pending;
    t.equal(response.statusCode, 400, what);
    t.match(response.json(), { error: message }, what);
  }
  t.equal((await binaryRequest(app, 'f', input(16), [four])).statusCode, 200, 'still serving');
});
