/**
 * Signatures read from ONNX files without a session agree with what
 * onnxruntime reports, skip the weights unread, and let metadata, docs and
 * validation work with zero loads.
 */
import { writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { validateConfig } from '../../src/config/load.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { demoModels } from '../../src/demo/build-models.ts';
import { addMulModel, affineModel, buildModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';
import { readSignature } from '../../src/onnx/signature.ts';
import { buildGateway, makeRepository, metricsOf, scaleModel } from '../helpers/gateway.ts';

const ELEMS: ElemType[] = ['bool', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64', 'float16', 'float32', 'float64', 'string'];

/** y = x W + B with W also declared a graph input (an overridable initializer, as older exporters write). */
function initializerAsInput(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }, { name: 'W', type: 'float32', shape: [2, 1] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
    initializers: [{ name: 'W', type: 'float32', dims: [2, 1], values: [1, 2] }],
    nodes: [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }],
  });
}

t.test('the file says what onnxruntime says, for every datatype and the demo models', async (t) => {
  const files: Record<string, Uint8Array> = {
    'addmul.onnx': addMulModel('int64'), 'affine.onnx': affineModel({ inFeatures: 3, outFeatures: 2, weights: [1, 2, 3, 4, 5, 6], bias: [0, 1], batch: 4 }),
    'initializer-input.onnx': initializerAsInput(), 'fixed.onnx': identityModel('float32', [2, 'n', 3]),
  };
  for (const elem of ELEMS) files[`${elem}.onnx`] = identityModel(elem, ['n']);
  for (const [name, bytes] of demoModels()) files[name] = bytes;
  const repository = makeRepository(t, files);
  const config = validateConfig({ modelRepository: repository, models: Object.keys(files).map((file, i) => ({ name: `m${i}`, path: file })) }, repository, {});
  const executor = new OnnxExecutor(config.modelRepository);
  for (const model of config.models) {
    const loaded = await executor.load(model);
    t.same(await readSignature(model.file), loaded.signature, model.path);
    await loaded.release();
  }
});

t.test('weights are skipped unread; files that are not ONNX are refused', async (t) => {
  const floats = 4 * 1024 * 1024;
  const big = buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: [1, 1] }],
    outputs: [{ name: 'y', type: 'float32', shape: [1, 1] }],
    initializers: [{ name: 'W', type: 'float32', dims: [floats], values: new Float32Array(floats).fill(0.5) as unknown as number[] }],
    nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
  const repository = makeRepository(t, { 'big.onnx': big, 'garbage.onnx': 'not a protobuf at all', 'truncated.onnx': big.subarray(0, 1000), 'empty.onnx': '' });
  // Count what is read through FileHandle.read while the signature is read.
  const probe = await open(path.join(repository, 'big.onnx'));
  const prototype = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
  await probe.close();
  const original = prototype.read;
  let bytesRead = 0;
  prototype.read = async function (this: unknown, ...args: unknown[]) {
    const result = await original.apply(this, args);
    bytesRead += result.bytesRead;
    return result;
  };
  t.teardown(() => { prototype.read = original; });
  t.same(await readSignature(path.join(repository, 'big.onnx')), { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 1] }] });
  t.ok(big.length > 16 * 1024 * 1024, `the file is ${big.length} bytes`);
  t.ok(bytesRead < 256 * 1024, `${bytesRead} bytes read`);
  for (const file of ['garbage.onnx', 'truncated.onnx', 'empty.onnx']) await t.rejects(readSignature(path.join(repository, file)), file);
});

t.test('ten models under a cap of 1: metadata, readiness, docs and validation with zero loads', async (t) => {
  const files: Record<string, Uint8Array> = {};
  const models = [];
  for (let i = 0; i < 10; i++) {
    files[`m${i}.onnx`] = scaleModel(i + 1);
    models.push({ name: `m${i}`, path: `m${i}.onnx` });
  }
  const { app, executor } = await buildGateway(t, files, { models, registry: { maxResidentModels: 1 } });
  const loads = async () => Number(/^modelgate_model_loads_total\{model="m3"\} (\d+)/m.exec(await metricsOf(app))?.[1] ?? 0);
  for (let i = 0; i < 10; i++) {
    t.same((await app.inject({ url: `/v2/models/m${i}` })).json().inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
    t.equal((await app.inject({ url: `/v2/models/m${i}/ready` })).statusCode, 200);
    const bad = await app.inject({ method: 'POST', url: `/v2/models/m${i}/infer`, payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] } });
    t.equal(bad.statusCode, 400, 'a request that does not match the file gets its 400 before any load');
  }
  const docs = (await app.inject({ url: '/docs/json' })).json();
  t.ok(JSON.stringify(docs).includes('`x` FP32 [-1,1]'), 'the per-key docs show the tensors of models that never loaded');
  t.equal(executor.attempts.size, 0, 'no model was loaded');
  t.equal(await loads(), 0);
  const good = await app.inject({ method: 'POST', url: '/v2/models/m3/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [2] }] } });
  t.same(good.json().outputs[0].data, [8]);
  t.equal(await loads(), 1, 'inference loads, once');
});

t.test('a file replaced on disk: the session that loads it wins, and the stored signature follows', async (t) => {
  const { app, repository } = await buildGateway(t, { 'm.onnx': scaleModel(2) }, { models: [{ name: 'm', path: 'm.onnx' }] });
  t.same((await app.inject({ url: '/v2/models/m' })).json().inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
  writeFileSync(path.join(repository, 'm.onnx'), identityModel('int32', ['n']));
  await app.inject({ method: 'POST', url: '/admin/models/m/load', headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' } });
  t.same((await app.inject({ url: '/v2/models/m' })).json().inputs, [{ name: 'x', datatype: 'INT32', shape: [-1] }]);
});
