import t from 'tap';
import { addMulModel, affineModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';
import { buildGateway, infer } from '../helpers/gateway.ts';

/** Every V2 datatype with the ONNX element type behind it and sample JSON data, echoed back exactly by Identity. */
const DATATYPES: Array<[string, ElemType, unknown[]]> = [
  ['BOOL', 'bool', [true, false, true]],
  ['UINT8', 'uint8', [0, 7, 255]],
  ['UINT16', 'uint16', [0, 7, 65535]],
  ['UINT32', 'uint32', [0, 7, 4294967295]],
  ['UINT64', 'uint64', [0, 7, 9007199254740991]],
  ['INT8', 'int8', [-128, 0, 127]],
  ['INT16', 'int16', [-32768, 0, 32767]],
  ['INT32', 'int32', [-2147483648, 0, 2147483647]],
  ['INT64', 'int64', [-9007199254740991, 0, 9007199254740991]],
  ['FP16', 'float16', [0.5, -2, 65504]],
  ['FP32', 'float32', [0.5, -2.25, 2 ** 127]],
  ['FP64', 'float64', [0.1, -1e-300, 1e300]],
  ['BYTES', 'string', ['hello', '', 'ünïcödé']],
];

t.test('every datatype round-trips through a model, at rank 1 and rank 0', async (t) => {
  const files: Record<string, Uint8Array> = {};
  const models = [];
  for (const [datatype, elem] of DATATYPES) {
    files[`${datatype}.onnx`] = identityModel(elem, ['n']);
    files[`${datatype}-scalar.onnx`] = identityModel(elem, []);
    models.push({ name: datatype, path: `${datatype}.onnx` }, { name: `${datatype}-scalar`, path: `${datatype}-scalar.onnx` });
  }
  const { app } = await buildGateway(t, files, { models });
  for (const [datatype, , data] of DATATYPES) {
    const metadata = (await app.inject({ url: `/v2/models/${datatype}` })).json();
    t.same(metadata, { name: datatype, versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'x', datatype, shape: [-1] }], outputs: [{ name: 'y', datatype, shape: [-1] }] });
    const response = await infer(app, datatype, { id: `id-${datatype}`, inputs: [{ name: 'x', datatype, shape: [3], data }] });
    t.equal(response.statusCode, 200, datatype);
    t.same(response.json(), { model_name: datatype, id: `id-${datatype}`, outputs: [{ name: 'y', datatype, shape: [3], data }] }, datatype);
    const scalar = await infer(app, `${datatype}-scalar`, { inputs: [{ name: 'x', datatype, shape: [], data: data[2] }] });
    t.same(scalar.json().outputs, [{ name: 'y', datatype, shape: [], data: [data[2]] }], `${datatype} rank 0`);
  }
});

t.test('64-bit integers beyond 2^53 are exact both ways, as decimal strings in and exact numbers out', async (t) => {
  const { app } = await buildGateway(t, { 'i.onnx': identityModel('int64', [2]), 'u.onnx': identityModel('uint64', [1]) }, {
    models: [{ name: 'i', path: 'i.onnx' }, { name: 'u', path: 'u.onnx' }],
  });
  const signed = await infer(app, 'i', { inputs: [{ name: 'x', datatype: 'INT64', shape: [2], data: ['-9223372036854775808', '9223372036854775807'] }] });
  t.match(signed.body, /"data":\[-9223372036854775808,9223372036854775807\]/);
  const unsigned = await infer(app, 'u', { inputs: [{ name: 'x', datatype: 'UINT64', shape: [1], data: ['18446744073709551615'] }] });
  t.match(unsigned.body, /"data":\[18446744073709551615\]/);
});

t.test('non-finite floats travel as strings', async (t) => {
  const { app } = await buildGateway(t, { 'f.onnx': identityModel('float32', [3]) }, { models: [{ name: 'f', path: 'f.onnx' }] });
  const response = await infer(app, 'f', { inputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: ['NaN', 'Infinity', '-Infinity'] }] });
  t.same(response.json().outputs[0].data, ['NaN', 'Infinity', '-Infinity']);
});

t.test('a multi-input, multi-output model, nested data and output selection', async (t) => {
  const { app } = await buildGateway(t, { 'am.onnx': addMulModel('int32', ['n', 2]) }, { models: [{ name: 'am', path: 'am.onnx' }] });
  const a = [[1, -2], [30, 4]];
  const b = [[5, 6], [-7, 1000]];
  const body = {
    inputs: [
      { name: 'b', datatype: 'INT32', shape: [2, 2], data: b.flat() },
      { name: 'a', datatype: 'INT32', shape: [2, 2], data: a },
    ],
  };
  const all = (await infer(app, 'am', body)).json();
  t.same(all.outputs, [
    { name: 'sum', datatype: 'INT32', shape: [2, 2], data: [6, 4, 23, 1004] },
    { name: 'product', datatype: 'INT32', shape: [2, 2], data: [5, -12, -210, 4000] },
  ]);
  const some = (await infer(app, 'am', { ...body, outputs: [{ name: 'product' }] })).json();
  t.same(some.outputs.map((output: { name: string }) => output.name), ['product']);
  const reversed = (await infer(app, 'am', { ...body, outputs: [{ name: 'product' }, { name: 'sum' }] })).json();
  t.same(reversed.outputs.map((output: { name: string }) => output.name), ['product', 'sum']);
});

t.test('an affine model gives x W + b, computed here independently', async (t) => {
  const weights = [0.5, -1, 2, 0.25, 3, -0.5]; // [in=3][out=2]
  const bias = [0.1, -0.2];
  const { app } = await buildGateway(t, { 'lin.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights, bias }) }, {
    models: [{ name: 'lin', path: 'lin.onnx', keys: ['lin', 'linear'] }],
  });
  const x = [[1, 2, 3], [-1, 0.5, 4]];
  const expected = x.flatMap((row) => [0, 1].map((j) => Math.fround(row.reduce((sum, v, i) => sum + v * (weights[i * 2 + j] as number), 0) + (bias[j] as number))));
  const response = (await infer(app, 'linear', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: x }] })).json();
  t.equal(response.model_name, 'lin');
  t.same(response.outputs[0].shape, [2, 2]);
  response.outputs[0].data.forEach((value: number, index: number) => {
    t.ok(Math.abs(value - (expected[index] as number)) <= 1e-6 * Math.max(1, Math.abs(expected[index] as number)), `element ${index}: ${value} vs ${expected[index]}`);
  });
});
