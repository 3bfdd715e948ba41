import t from 'tap';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { affineModel, buildModel, identityModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, infer, makeRepository, TOKEN, writeFiles } from '../helpers/gateway.ts';

// scale: z = x W1 + b1 (2 -> 2); head: logits = z W2 + b2 (2 -> 3); names: label -> class name.
const W1 = [2, 0, 0, 0.5];
const B1 = [-1, 1];
const W2 = [1, -1, 0.5, 0.25, 2, -3];
const B2 = [0, 0.1, -0.2];
const NAMES = ['setosa', 'versicolor', 'virginica'];

function namesModel(names: readonly string[]): Uint8Array {
  return buildModel({
    inputs: [{ name: 'label', type: 'int64', shape: ['n'] }],
    outputs: [{ name: 'name', type: 'string', shape: ['n'] }],
    initializers: [{ name: 'table', type: 'string', dims: [names.length], values: names }],
    nodes: [{ op: 'Gather', inputs: ['table', 'label'], outputs: ['name'], attributes: { axis: 0 } }],
  });
}

const files = {
  'scale.onnx': affineModel({ inFeatures: 2, outFeatures: 2, weights: W1, bias: B1 }),
  'head.onnx': affineModel({ inFeatures: 2, outFeatures: 3, weights: W2, bias: B2 }),
  'head-b.onnx': affineModel({ inFeatures: 2, outFeatures: 3, weights: W2.map((w) => -w), bias: B2 }),
  'names.onnx': namesModel(NAMES),
  'int.onnx': identityModel('int32', ['n', 2]),
};
const models = [
  { name: 'scale', path: 'scale.onnx' }, { name: 'head', path: 'head.onnx' }, { name: 'head-b', path: 'head-b.onnx' },
  { name: 'names', path: 'names.onnx' }, { name: 'int', path: 'int.onnx' },
];
const chain = {
  steps: [
    { target: 'scale' },
    { target: 'head', postprocess: [{ op: 'softmax', output: 'y' }, { op: 'argmax', output: 'y', as: 'label' }] },
    { target: 'names' },
  ],
};

/** The pipeline computed here, in float64, independently of onnxruntime. */
function expected(x: number[][], w2 = W2) {
  return x.map((row) => {
    const z = [0, 1].map((j) => row[0]! * W1[j]! + row[1]! * W1[2 + j]! + B1[j]!);
    const logits = [0, 1, 2].map((k) => z[0]! * w2[k]! + z[1]! * w2[3 + k]! + B2[k]!);
    const max = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const p = e.map((v) => v / sum);
    const label = p.indexOf(Math.max(...p));
    return { z, p, label, name: NAMES[label] };
  });
}

const X = [[1, 2], [-3, 0.5], [0.2, -4], [5, 5]];
const body = (x = X, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [x.length, 2], data: x }], ...extra });

t.test('a three-model chain with post-processing equals the composition computed here', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [{ key: 'pipeline', sequence: chain }] });
  const response = await infer(app, 'pipeline', body());
  t.equal(response.statusCode, 200);
  const json = response.json();
  t.equal(json.model_name, 'pipeline');
  t.same(json.outputs, [{ name: 'name', datatype: 'BYTES', shape: [4], data: expected(X).map((row) => row.name) }]);
  t.not(new Set(expected(X).map((row) => row.label)).size, 1, 'the inputs exercise more than one class');
  const metadata = (await app.inject({ url: '/v2/models/pipeline' })).json();
  t.same(metadata.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }], "the first step's inputs");
  t.same(metadata.outputs, [{ name: 'name', datatype: 'BYTES', shape: [-1] }], "the last step's outputs");

  const all = (await infer(app, 'pipeline', body(X, { parameters: { return_intermediate: true } }))).json();
  const byName = new Map<string, { data: unknown[] }>(all.outputs.map((output: { name: string; data: unknown[] }) => [output.name, output]));
  t.same([...byName.keys()], ['name', 'scale.y', 'head.y', 'head.label', 'names.name']);
  const rows = expected(X);
  (byName.get('scale.y')?.data as number[]).forEach((v, i) => t.ok(Math.abs(v - rows[Math.floor(i / 2)]!.z[i % 2]!) < 1e-5));
  (byName.get('head.y')?.data as number[]).forEach((v, i) => t.ok(Math.abs(v - rows[Math.floor(i / 3)]!.p[i % 3]!) < 1e-5));
  t.same(byName.get('head.label')?.data, rows.map((row) => row.label));
});

t.test('explicit mappings, request inputs in later steps, and unmapped inputs', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [] });
  const put = (sequence: unknown) => app.inject({ method: 'PUT', url: '/admin/routes/seq', headers: AUTH, payload: { sequence } as Record<string, unknown> });
  const explicit = await put({ steps: [
    { name: 'first', target: 'scale', inputs: { x: 'request.x' } },
    { name: 'second', target: 'head', inputs: { x: 'first.y' } },
  ] });
  t.equal(explicit.statusCode, 201, explicit.body);
  const out = (await infer(app, 'seq', body())).json().outputs[0].data as number[];
  expected(X).forEach((row, r) => {
    const logits = [0, 1, 2].map((k) => row.z[0]! * W2[k]! + row.z[1]! * W2[3 + k]! + B2[k]!);
    logits.forEach((v, k) => t.ok(Math.abs(out[r * 3 + k]! - v) < 1e-5));
  });
  // The request's own input skips the scaler.
  t.equal((await put({ steps: [{ name: 'first', target: 'scale' }, { target: 'head', inputs: { x: 'request.x' } }] })).statusCode, 200);
  const direct = (await infer(app, 'seq', body([[1, 0]]))).json().outputs[0].data as number[];
  [0, 1, 2].forEach((k) => t.ok(Math.abs(direct[k]! - (W2[k]! + B2[k]!)) < 1e-6));

  const cases: Array<[unknown, number, RegExp]> = [
    [{ steps: [{ target: 'head' }, { target: 'int' }] }, 400, /step 'int': input 'x' takes INT32, but 'head.y' is FP32/],
    [{ steps: [{ target: 'scale', postprocess: [{ op: 'argmax', output: 'y', as: 'k' }] }, { target: 'names' }] }, 400, /step 'names': input 'label' is unmapped: 'scale' gives \(y, k\); map it with inputs/],
    [{ steps: [{ target: 'scale', inputs: { x: 'later.y' } }, { name: 'later', target: 'head' }] }, 400, /sequence\.steps\[0\]\.inputs\.x: 'later\.y' names no earlier step/],
    [{ steps: [{ target: 'scale', inputs: { nope: 'request.x' } }] }, 400, /step 'scale': inputs names 'nope', which 'scale' does not take/],
    [{ steps: [{ target: 'scale' }, { target: 'scale' }] }, 400, /sequence\.steps\[1\]\.name: step name 'scale' is already used/],
    [{ steps: [{ target: 'scale', postprocess: [{ op: 'topk', output: 'y' }] }] }, 400, /sequence\.steps\[0\]\.postprocess\[0\]\.k: Expected required property/],
    [{ steps: [{ target: 'scale', postprocess: [{ op: 'fft', output: 'y' }] }] }, 400, /sequence\.steps\[0\]\.postprocess\[0\]\.op: /],
    [{ steps: [{ target: 'scale', postprocess: [{ op: 'plugin', name: 'missing' }] }] }, 400, /no plugin 'missing'/],
    [{ steps: [{ target: 'head', postprocess: [{ op: 'topk', output: 'y', k: 4 }] }] }, 400, /step 'head': postprocess\[0\] \(topk\): k 4 is larger than dimension 3/],
    [{ steps: [{ target: 'ghost' }] }, 400, /sequence\.steps\[0\]\.target: unknown key 'ghost'/],
    [{ steps: [{ target: 'seq' }] }, 409, /route cycle: seq -> seq/],
    [{ steps: [] }, 400, /sequence\.steps: Expected array length to be greater or equal to 1/],
  ];
  for (const [sequence, status, message] of cases) {
    const response = await put(sequence);
    t.equal(response.statusCode, status, String(message));
    t.match(response.json(), { error: message });
  }
  t.equal((await app.inject({ url: '/admin/routes/seq', headers: AUTH })).json().version, 2, 'none of them changed the route');
});

t.test('an error in a step names it, with its status, and later steps do not run', async (t) => {
  const { app, executor, repository } = await buildGateway(t, files, { models, routes: [{ key: 'pipeline', sequence: chain }] });
  t.equal((await infer(app, 'pipeline', body())).statusCode, 200);
  writeFiles(repository, { 'head.onnx': 'corrupted' });
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/head/unload', headers: AUTH })).statusCode, 200);
  const namesRuns = executor.runsStarted.get('names');
  const response = await infer(app, 'pipeline', body());
  t.equal(response.statusCode, 503);
  t.ok(Number(response.headers['retry-after']) > 0);
  t.match(response.json(), { error: /^step 'head': Model 'head' failed to load: / });
  t.equal(executor.runsStarted.get('names'), namesRuns, 'the last step did not run');
  const bad = await infer(app, 'pipeline', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] });
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { error: /^input 'x': shape \[1,3\] does not match/ });
});

t.test('a three-model chain completes under concurrent load with room for one model', async (t) => {
  const { app, executor } = await buildGateway(t, files, { registry: { maxResidentModels: 1 }, models, routes: [{ key: 'pipeline', sequence: chain }] });
  const inputs = Array.from({ length: 24 }, (_, i) => [[i - 12, (i % 5) - 2]]);
  const responses = await Promise.all(inputs.map((x) => infer(app, 'pipeline', body(x))));
  responses.forEach((response, i) => {
    t.equal(response.statusCode, 200);
    t.same(response.json().outputs[0].data, [expected(inputs[i]!)[0]!.name]);
  });
  t.equal(executor.maxOpen, 1, 'never more than one session');
});

t.test('splits compose: a split as a step, and a chain as a variant', async (t) => {
  const { app } = await buildGateway(t, files, {
    models,
    routes: [
      { key: 'heads', split: { variants: [{ target: 'head', weight: 1 }, { target: 'head-b', weight: 1 }], stickyHeader: 'x-user' } },
      { key: 'chain', sequence: { steps: [{ target: 'scale' }, { name: 'classify', target: 'heads', postprocess: [{ op: 'argmax', output: 'y', as: 'label' }] }, { target: 'names' }] } },
      { key: 'outer', split: { variants: [{ target: 'chain', weight: 1 }, { target: 'pipeline', weight: 0 }] } },
      { key: 'pipeline', sequence: chain },
    ],
  });
  const seen = new Set<string>();
  for (let user = 0; user < 40; user++) {
    const response = await infer(app, 'outer', body([[1, 2]]), { 'x-user': `u${user}` });
    const variant = response.headers['x-modelgate-variant'] as string;
    t.match(variant, /^outer=chain,heads=(head|head-b)$/);
    seen.add(variant);
    const weights = variant.endsWith('head-b') ? W2.map((w) => -w) : W2;
    t.same(response.json().outputs[0].data, [expected([[1, 2]], weights)[0]!.name]);
    t.equal(response.json().model_name, 'chain');
  }
  t.equal(seen.size, 2, 'both heads were used');
});

t.test('a plugin from the plugins directory; a start-up with a broken chain fails', async (t) => {
  const repository = makeRepository(t, files);
  writeFiles(repository, {
    'plugins/round.mjs': [
      'export function transform(tensors) {',
      "  const y = tensors.get('y');",
      "  return { rounded: { datatype: 'INT32', shape: y.shape, data: Int32Array.from(y.data, Math.round) } };",
      '}',
      "export function describe(specs) { return [{ name: 'rounded', datatype: 'INT32', shape: specs[0].shape }]; }",
    ].join('\n'),
  });
  const config = (routes: unknown[]) => validateConfig({ admin: { token: TOKEN }, modelRepository: '.', plugins: 'plugins', models, routes }, repository, {});
  const app = await buildApp(config([{ key: 'rounded', sequence: { steps: [{ target: 'scale', postprocess: [{ op: 'plugin', name: 'round' }] }] } }]));
  t.teardown(() => app.close());
  await app.ready();
  const response = (await infer(app, 'rounded', body())).json();
  t.same(response.outputs, [{ name: 'rounded', datatype: 'INT32', shape: [4, 2], data: expected(X).flatMap((row) => row.z.map(Math.round)) }]);

  t.throws(() => config([{ key: 'r', sequence: { steps: [{ target: 'scale', postprocess: [{ op: 'plugin', name: 'nope' }] }] } }]), /routes\[0\]\.sequence\.steps\[0\]\.postprocess\[0\]\.name: no plugin 'nope' in the plugins directory/);
  const broken = await buildApp(config([{ key: 'r', sequence: { steps: [{ target: 'head' }, { target: 'int' }] } }]));
  await t.rejects(async () => { await broken.ready(); }, /route 'r': step 'int': input 'x' takes INT32, but 'head.y' is FP32/);
  await broken.close();
});
