import t, { type Test } from 'tap';
import type { Tensor, TensorMap, TensorSpec } from '@modelgate/client/codec';
import type { PostprocessSpec } from '../../src/config/schema.ts';
import { applyOps, describeOps, type Plugin } from '../../src/ops/postprocess.ts';
import { closeTo } from '../helpers/gateway.ts';

const f32 = (data: number[], shape: number[]): Tensor => ({ datatype: 'FP32', shape, data: new Float32Array(data) });
const noPlugins = new Map<string, Plugin>();

async function run(tensor: Tensor, op: PostprocessSpec): Promise<TensorMap> {
  return applyOps(new Map([['x', tensor]]), [op], noPlugins, 'test');
}

function values(tensor: Tensor | undefined): unknown[] {
  return Array.from(tensor?.data as ArrayLike<unknown>, (value) => (typeof value === 'bigint' ? Number(value) : value));
}

t.test('softmax along the last axis and along axis 0', async (t) => {
  const x = f32([1, 2, 3, 1, 1, 1], [2, 3]);
  const last = (await run(x, { op: 'softmax', output: 'x' })).get('x');
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const sum = e[0]! + e[1]! + e[2]!;
  closeTo(t, values(last), [e[0]! / sum, e[1]! / sum, e[2]! / sum, 1 / 3, 1 / 3, 1 / 3], 'axis -1');
  const first = (await run(x, { op: 'softmax', output: 'x', axis: 0, as: 'p' })).get('p');
  const column = (a: number, b: number) => [Math.exp(a) / (Math.exp(a) + Math.exp(b)), Math.exp(b) / (Math.exp(a) + Math.exp(b))];
  const [c0, c1, c2] = [column(1, 1), column(2, 1), column(3, 1)];
  closeTo(t, values(first), [c0[0]!, c1[0]!, c2[0]!, c0[1]!, c1[1]!, c2[1]!], 'axis 0');
});

t.test('argmax, with and without keepdims; ties go to the first', async (t) => {
  const x = f32([0.1, 0.7, 0.2, 5, 5, 1], [2, 3]);
  const plain = (await run(x, { op: 'argmax', output: 'x', as: 'label' })).get('label');
  t.same({ datatype: plain?.datatype, shape: plain?.shape, data: values(plain) }, { datatype: 'INT64', shape: [2], data: [1, 0] });
  const kept = (await run(x, { op: 'argmax', output: 'x', axis: 0, keepdims: true })).get('x');
  t.same({ shape: kept?.shape, data: values(kept) }, { shape: [1, 3], data: [1, 1, 1] });
});

t.test('topk gives values and indices, largest first', async (t) => {
  const out = await run(f32([3, 1, 4, 1, 5, 9, 2, 6], [2, 4]), { op: 'topk', output: 'x', k: 2 });
  t.same([...out.keys()], ['x_values', 'x_indices'], 'replaces the input');
  t.same(values(out.get('x_values')), [4, 3, 9, 6]);
  t.same(values(out.get('x_indices')), [2, 0, 1, 3]);
  t.same(out.get('x_indices')?.shape, [2, 2]);
  await t.rejects(run(f32([1, 2], [1, 2]), { op: 'topk', output: 'x', k: 3 }), /postprocess\[0\] \(topk\): k 3 is larger than dimension 2 of 'x'/);
});

t.test('cast, scale, threshold', async (t) => {
  const x = f32([-1.7, 0, 2.5], [3]);
  t.same(values((await run(x, { op: 'cast', output: 'x', to: 'INT32' })).get('x')), [-1, 0, 2]);
  t.same(values((await run(x, { op: 'cast', output: 'x', to: 'INT64' })).get('x')), [-1, 0, 2]);
  t.same(values((await run(x, { op: 'cast', output: 'x', to: 'BOOL' })).get('x')), [1, 0, 1]);
  t.same(values((await run(x, { op: 'cast', output: 'x', to: 'UINT8' })).get('x')), [255, 0, 2], 'wraps as C does');
  closeTo(t, values((await run(x, { op: 'scale', output: 'x', multiply: 2, add: 0.5 })).get('x')), [-2.9, 0.5, 5.5], 'scale');
  const above = (await run(x, { op: 'threshold', output: 'x', value: 0 })).get('x');
  t.same({ datatype: above?.datatype, data: values(above) }, { datatype: 'BOOL', data: [0, 0, 1] });
  await t.rejects(run({ datatype: 'INT32', shape: [1], data: new Int32Array([1]) }, { op: 'scale', output: 'x', multiply: 2 }), /\(scale\): does not apply to INT32/);
});

t.test('reshape and slice', async (t) => {
  const x = f32([0, 1, 2, 3, 4, 5], [2, 3]);
  t.same((await run(x, { op: 'reshape', output: 'x', shape: [0, -1, 1] })).get('x')?.shape, [2, 3, 1]);
  t.same((await run(x, { op: 'reshape', output: 'x', shape: [-1] })).get('x')?.shape, [6]);
  await t.rejects(run(x, { op: 'reshape', output: 'x', shape: [4, -1] }), /cannot reshape \[2,3\] into \[4,-1\]/);
  const sliced = (await run(x, { op: 'slice', output: 'x', starts: [1], ends: [-0 + 3], axes: [-1] })).get('x');
  t.same({ shape: sliced?.shape, data: values(sliced) }, { shape: [2, 2], data: [1, 2, 4, 5] });
  const rows = (await run(x, { op: 'slice', output: 'x', starts: [-1, 0], ends: [100, 2] })).get('x');
  t.same({ shape: rows?.shape, data: values(rows) }, { shape: [1, 2], data: [3, 4] });
});

t.test('ops check their tensor and axis', async (t) => {
  await t.rejects(run(f32([1], [1]), { op: 'softmax', output: 'nope' }), /test: postprocess\[0\] \(softmax\): no tensor 'nope'/);
  await t.rejects(run(f32([1], [1]), { op: 'argmax', output: 'x', axis: 1 }), /axis 1 is out of range for rank 1/);
  t.throws(() => describeOps([{ name: 'y', datatype: 'FP32', shape: [-1, 3] }], [{ op: 'topk', output: 'y', k: 4 }], noPlugins, 'step'), /k 4 is larger than dimension 3/);
  t.same(describeOps([{ name: 'y', datatype: 'FP32', shape: [-1, 3] }], [{ op: 'softmax', output: 'y' }, { op: 'argmax', output: 'y', as: 'label' }], noPlugins, 'step'),
    [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }, { name: 'label', datatype: 'INT64', shape: [-1] }]);
});

t.test('plugins: described, undescribed, failing, returning junk', async (t) => {
  const double: Plugin = {
    transform: (tensors) => new Map([['doubled', f32(Array.from(tensors.get('x')?.data as Float32Array, (v) => v * 2), [...(tensors.get('x')?.shape ?? [])])]]),
    describe: (specs) => [{ ...(specs[0] as TensorSpec), name: 'doubled' }],
  };
  const plugins = new Map<string, Plugin>([
    ['double', double],
    ['opaque', { transform: (tensors) => tensors }],
    ['broken', { transform: () => { throw new Error('boom'); } }],
    ['junk', { transform: () => ({ y: { datatype: 'FP32', shape: [3], data: new Float32Array(2) } as Tensor }) }],
  ]);
  const out = await applyOps(new Map([['x', f32([1, 2], [2])]]), [{ op: 'plugin', name: 'double' }], plugins, 'step');
  t.same(values(out.get('doubled')), [2, 4]);
  t.same(describeOps([{ name: 'x', datatype: 'FP32', shape: [2] }], [{ op: 'plugin', name: 'double' }], plugins, 'step'), [{ name: 'doubled', datatype: 'FP32', shape: [2] }]);
  t.equal(describeOps([{ name: 'x', datatype: 'FP32', shape: [2] }], [{ op: 'plugin', name: 'opaque' }], plugins, 'step'), undefined);
  await t.rejects(applyOps(new Map([['x', f32([1], [1])]]), [{ op: 'plugin', name: 'broken' }], plugins, 'step'), { statusCode: 500, message: /step: postprocess\[0\] \(plugin\): the plugin failed: boom/ });
  await t.rejects(applyOps(new Map(), [{ op: 'plugin', name: 'junk' }], plugins, 'step'), { statusCode: 500, message: /returned 'y', which is not a tensor whose data fits its shape/ });
});
