/**
 * Inference graphs over HTTP: ensembles, switches and cascades as the
 * configuration file and the admin API set them, on real onnxruntime sessions,
 * with every expected value computed here from the models' known weights.
 */
import t from 'tap';
import { addMulModel, affineModel } from '../../src/onnx/builder.ts';
import { adminRequest, AUTH, buildGateway, closeTo, infer, JSON_AUTH, makeRepository, metricsOf, startGateway, TOKEN } from '../helpers/gateway.ts';
import { A, B, C, failingModel, labelsOf, linearModel, scoresOf } from '../helpers/graphs.ts';

const FILES = { 'a.onnx': linearModel(A), 'b.onnx': linearModel(B), 'c.onnx': linearModel(C), 'broken.onnx': 'not a model' };
const MODELS = [
  { name: 'a', path: 'a.onnx', batching: false }, { name: 'b', path: 'b.onnx', batching: false },
  { name: 'c', path: 'c.onnx', batching: false }, { name: 'broken', path: 'broken.onnx', batching: false },
];
/** Rows that the three models classify differently, as two-feature rows. */
const X = [3, 1, 1, 3, 0.2, 0.1, 2, 2.5];
const body = (x: readonly number[] = X, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [x.length / 2, 2], data: x }], ...extra });
const outputOf = (json: { outputs: Array<{ name: string; data: unknown[] }> }, name: string) => json.outputs.find((output) => output.name === name)?.data;

t.test('an ensemble without combine answers every member\'s outputs, renamed <member>.<output>', async (t) => {
  const { app } = await buildGateway(t, FILES, { models: MODELS, routes: [{ key: 'all', ensemble: { members: [{ target: 'a' }, { target: 'b', name: 'bee' }] } }] });
  const metadata = (await app.inject({ url: '/v2/models/all' })).json();
  t.same(metadata.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }]);
  t.same(metadata.outputs.map((output: { name: string }) => output.name), ['a.y', 'a.label', 'bee.y', 'bee.label']);
  const response = await infer(app, 'all', body());
  t.equal(response.statusCode, 200, response.body);
  const json = response.json();
  t.equal(json.model_name, 'all');
  t.same(json.outputs.map((output: { name: string }) => output.name), ['a.y', 'a.label', 'bee.y', 'bee.label']);
  closeTo(t, outputOf(json, 'a.y') as number[], scoresOf(A, X), 'a.y');
  t.same(outputOf(json, 'bee.label'), labelsOf(B, X));
  const some = (await infer(app, 'all', body(X, { outputs: [{ name: 'bee.y' }] }))).json();
  t.same(some.outputs.map((output: { name: string }) => output.name), ['bee.y'], 'outputs asked for by their renamed names');
  t.equal((await infer(app, 'all', body(X, { outputs: [{ name: 'y' }] }))).statusCode, 400, 'an output of no member');
});

t.test('combine: mean, weighted_mean, max, min and vote, each checked element by element', async (t) => {
  const members = [{ target: 'a', weight: 3 }, { target: 'b' }, { target: 'c' }];
  const routes = ['mean', 'weighted_mean', 'max', 'min'].map((op) => ({ key: op, ensemble: { members, combine: { op, output: 'y', as: 'scores' } } }));
  routes.push({ key: 'vote', ensemble: { members, combine: { op: 'vote', output: 'label' } } } as never);
  const { app } = await buildGateway(t, FILES, { models: MODELS, routes });
  const [a, b, c] = [scoresOf(A, X), scoresOf(B, X), scoresOf(C, X)];
  const expected: Record<string, number[]> = {
    mean: a.map((value, i) => (value + (b[i] as number) + (c[i] as number)) / 3),
    weighted_mean: a.map((value, i) => (3 * value + (b[i] as number) + (c[i] as number)) / 5),
    max: a.map((value, i) => Math.max(value, b[i] as number, c[i] as number)),
    min: a.map((value, i) => Math.min(value, b[i] as number, c[i] as number)),
  };
  for (const [op, values] of Object.entries(expected)) {
    const json = (await infer(app, op, body())).json();
    t.same(json.outputs.map((output: { name: string }) => output.name), ['scores'], `${op}: the combined output only, by default`);
    closeTo(t, outputOf(json, 'scores') as number[], values, op, 1e-5);
  }
  const labels = [labelsOf(A, X), labelsOf(B, X), labelsOf(C, X)];
  const votes = (labels[0] as number[]).map((_, row) => {
    const seen = labels.map((list) => list[row] as number);
    const count = (label: number) => seen.filter((value) => value === label).length;
    const most = Math.max(...seen.map(count));
    return seen.find((label) => count(label) === most) as number;
  });
  t.ok(labels[0]?.some((label, row) => label !== labels[1]?.[row] && labels[1]?.[row] !== labels[2]?.[row] && label !== labels[2]?.[row]), 'some row is a three-way tie (the earliest member wins)');
  t.same(outputOf((await infer(app, 'vote', body())).json(), 'label'), votes);
  const intermediate = (await infer(app, 'mean', body(X, { parameters: { return_intermediate: true } }))).json();
  t.same(intermediate.outputs.map((output: { name: string }) => output.name), ['scores', 'a.y', 'a.label', 'b.y', 'b.label', 'c.y', 'c.label'], 'return_intermediate adds the members\' raw outputs');
});

t.test('combine is checked when the route is set: shapes, datatypes and the op\'s types, naming the members', async (t) => {
  const { app } = await buildGateway(t, { ...FILES, 'wide.onnx': affineModel({ inFeatures: 2, outFeatures: 4, weights: new Array(8).fill(1), bias: [0, 0, 0, 0] }) }, { models: [...MODELS, { name: 'wide', path: 'wide.onnx' }] });
  const put = (ensemble: unknown) => app.inject(adminRequest('PUT', '/admin/routes/e', { ensemble }));
  const shapes = await put({ members: [{ target: 'a' }, { target: 'wide' }], combine: { op: 'mean', output: 'y' } });
  t.equal(shapes.statusCode, 400);
  t.match(shapes.json().error, "members 'a' and 'wide' give 'y' as FP32 [-1,3] and FP32 [-1,4]");
  const types = await put({ members: [{ target: 'a' }, { target: 'b' }], combine: { op: 'mean', output: 'label' } });
  t.match(types.json().error, "mean cannot reduce 'label' of member 'a', a INT64 tensor");
  const names = await put({ members: [{ target: 'a' }, { target: 'a' }] });
  t.match(names.json().error, "member name 'a' is already used");
  t.equal((await app.inject({ url: '/admin/routes/e', headers: AUTH })).statusCode, 404, 'nothing was set');
});

t.test('members run at once: both members\' runs are in flight together', async (t) => {
  const { app, executor } = await buildGateway(t, FILES, { models: MODELS, routes: [{ key: 'two', ensemble: { members: [{ target: 'a' }, { target: 'b' }] } }] });
  await infer(app, 'two', body());
  const release = executor.hold();
  const pending = infer(app, 'two', body());
  const started = (model: string) => executor.runsStarted.get(model) ?? 0;
  for (let tries = 0; tries < 2000 && (started('a') < 2 || started('b') < 2); tries++) await new Promise((resolve) => setTimeout(resolve, 1));
  t.same([started('a'), started('b')], [2, 2], 'the second member started while the first was still held');
  release();
  t.equal((await pending).statusCode, 200);
});

t.test('optional members: a failure leaves them out and says so; a required one fails the request naming it', async (t) => {
  const { app } = await buildGateway(t, { ...FILES, 'f.onnx': failingModel() }, {
    models: [...MODELS, { name: 'f', path: 'f.onnx', batching: false }],
    routes: [
      { key: 'opt', ensemble: { members: [{ target: 'a' }, { target: 'c', required: false }, { target: 'f', name: 'flaky', required: false }], combine: { op: 'mean', output: 'y' } } },
      { key: 'req', ensemble: { members: [{ target: 'a' }, { target: 'f', name: 'flaky' }] } },
      { key: 'none', ensemble: { members: [{ target: 'f', name: 'one', required: false }, { target: 'f', name: 'two', required: false }] } },
    ],
  });
  const optional = await infer(app, 'opt', body());
  t.equal(optional.statusCode, 200, optional.body);
  t.same(optional.json().parameters, { ensemble_missing: ['flaky'] });
  const [a, c] = [scoresOf(A, X), scoresOf(C, X)];
  closeTo(t, outputOf(optional.json(), 'y') as number[], a.map((value, i) => (value + (c[i] as number)) / 2), 'the mean over the members that answered', 1e-5);
  const required = await infer(app, 'req', body());
  t.equal(required.statusCode, 500);
  t.match(required.json().error, /^ensemble member 'flaky': Inference failed in model 'f'/);
  const none = await infer(app, 'none', body());
  t.equal(none.statusCode, 502);
  t.match(none.json().error, /^No member of ensemble 'none' answered: one: [\s\S]*; two: /);
  t.equal((await infer(app, 'a', body())).statusCode, 200, 'every other model unharmed');
  const stats = (await app.inject({ url: '/admin/routes/opt/stats', headers: AUTH })).json();
  t.match(stats.sinceStart.members, [{ target: 'a', requests: 1, errors: 0 }, { target: 'c', requests: 1, errors: 0 }, { target: 'flaky', requests: 1, errors: 1, errorRate: { value: 1 } }]);
});

t.test('a switch takes the first case that holds, by header or parameter, else the default; x-modelgate-case says which', async (t) => {
  const { app } = await buildGateway(t, FILES, {
    models: MODELS,
    routes: [
      { key: 'tiers', switch: { cases: [
        { when: { header: 'x-tier', in: ['gold', 'platinum'] }, target: 'b' },
        { when: { parameter: 'model_hint', equals: 'fast' }, target: 'c' },
        { when: { header: 'x-region', matches: 'eu-[a-z]+-[0-9]' }, target: 'c' },
      ], default: 'a' } },
      { key: 'strict', switch: { cases: [{ when: { parameter: 'version', equals: 2 }, target: 'b' }] } },
    ],
  });
  const cases: Array<[Record<string, string>, Record<string, unknown>, string, number[]]> = [
    [{ 'x-tier': 'platinum' }, {}, '0', labelsOf(B, X)],
    [{ 'x-tier': 'bronze' }, { model_hint: 'fast' }, '1', labelsOf(C, X)],
    [{ 'x-tier': 'gold' }, { model_hint: 'fast' }, '0', labelsOf(B, X)],
    [{ 'x-region': 'eu-west-1' }, {}, '2', labelsOf(C, X)],
    [{ 'x-region': 'eu-west-1x' }, {}, 'default', labelsOf(A, X)],
    [{}, {}, 'default', labelsOf(A, X)],
  ];
  for (const [headers, parameters, label, labels] of cases) {
    const response = await infer(app, 'tiers', body(X, { parameters }), headers);
    t.equal(response.headers['x-modelgate-case'], label, `${JSON.stringify(headers)} ${JSON.stringify(parameters)}`);
    t.same(outputOf(response.json(), 'label'), labels);
  }
  t.equal((await infer(app, 'strict', body(X, { parameters: { version: 2 } }))).statusCode, 200, 'a number parameter compared as text');
  const none = await infer(app, 'strict', body(X, { parameters: { version: 3 } }));
  t.equal(none.statusCode, 400);
  t.match(none.json().error, "No case of switch 'strict' holds for this request, and it has no default: its cases test parameter 'version'");
  const stats = (await app.inject({ url: '/admin/routes/tiers/stats', headers: AUTH })).json();
  t.same(stats.sinceStart.cases.map((entry: { target: string; requests: number }) => [entry.target, entry.requests]), [['0', 2], ['1', 1], ['2', 1], ['default', 2]]);
});

t.test('a switch refuses, when set, a pattern that could backtrack, conditions without one test, and cases that take other inputs', async (t) => {
  const { app } = await buildGateway(t, { ...FILES, 'one.onnx': affineModel({ inFeatures: 1, outFeatures: 1, weights: [1], bias: [0] }) }, { models: [...MODELS, { name: 'one', path: 'one.onnx' }] });
  const put = (spec: unknown) => app.inject(adminRequest('PUT', '/admin/routes/s', { switch: spec }));
  const backtracking = await put({ cases: [{ when: { header: 'x-a', matches: '(a+)\\1' }, target: 'a' }] });
  t.equal(backtracking.statusCode, 400);
  t.match(backtracking.json().error, "switch.cases[0].when.matches: '(a+)\\1' cannot run in linear time");
  t.match((await put({ cases: [{ when: { header: 'x-a', equals: 'x', in: ['y'] }, target: 'a' }] })).json().error, 'switch.cases[0].when: needs exactly one of equals, in or matches');
  t.match((await put({ cases: [{ when: { equals: 'x' }, target: 'a' }] })).json().error, 'switch.cases[0].when: needs exactly one of header or parameter');
  const inputs = await put({ cases: [{ when: { header: 'x-a', equals: 'x' }, target: 'one' }], default: 'a' });
  t.equal(inputs.statusCode, 400);
  t.match(inputs.json().error, /'a' takes input 'x' with shape \[-1,2\], incompatible with \[-1,1\] of 'one'/);
});

t.test('a cascade answers each row from the step that accepted it, in the request\'s order, and counts the rows', async (t) => {
  // Step 0 (a) accepts rows whose largest score is at least 2.5; the rest go to c.
  const { app } = await buildGateway(t, FILES, {
    models: MODELS,
    routes: [{ key: 'cheap-first', cascade: { steps: [{ target: 'a', accept: { output: 'y', min: 2.5 } }, { target: 'c' }] } }],
  });
  const x = [3, 1, 0.5, 0.2, 0.1, 4, 1, 1, 2.6, 0, 0, 0];
  const a = scoresOf(A, x);
  const accepted = Array.from({ length: 6 }, (_, row) => Math.max(...a.slice(row * 3, row * 3 + 3)) >= 2.5);
  t.same(accepted, [true, false, true, false, true, false], 'accepted and passed rows interleave');
  const c = scoresOf(C, x);
  const expected = accepted.flatMap((yes, row) => (yes ? a : c).slice(row * 3, row * 3 + 3));
  const response = await infer(app, 'cheap-first', body(x, { outputs: [{ name: 'y' }, { name: 'label' }, { name: 'cascade_step' }] }));
  t.equal(response.statusCode, 200, response.body);
  const json = response.json();
  closeTo(t, outputOf(json, 'y') as number[], expected, 'y, row by row from the step that answered');
  t.same(outputOf(json, 'label'), accepted.map((yes, row) => (yes ? labelsOf(A, x) : labelsOf(C, x))[row]));
  t.same(outputOf(json, 'cascade_step'), accepted.map((yes) => (yes ? 0 : 1)));
  t.same((await infer(app, 'cheap-first', body(x))).json().outputs.map((output: { name: string }) => output.name), ['y', 'label'], 'cascade_step only when asked for');
  const steps = (await app.inject({ url: '/admin/routes/cheap-first/stats', headers: AUTH })).json().sinceStart.steps;
  t.match(steps, [{ target: '0', requests: 2, rows: 12, accepted: 6, acceptedShare: 0.5 }, { target: '1', requests: 2, rows: 6, accepted: 6, acceptedShare: 1 }]);
  const metrics = await metricsOf(app);
  t.match(metrics, 'modelgate_cascade_rows_total{route="cheap-first",node="0",outcome="accepted"} 6');
  t.match(metrics, 'modelgate_cascade_rows_total{route="cheap-first",node="0",outcome="passed"} 6');
  const uneven = await infer(app, 'cheap-first', { inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] }], parameters: {} });
  t.equal(uneven.statusCode, 200, 'a batch where every row is passed on');
});

t.test('graphs nest: a split over a cascade whose last step is an ensemble; the answers are exact', async (t) => {
  const { app } = await buildGateway(t, FILES, {
    models: MODELS,
    routes: [
      { key: 'pair', ensemble: { members: [{ target: 'b' }, { target: 'c' }], combine: { op: 'mean', output: 'y' } } },
      { key: 'tiered', cascade: { steps: [{ target: 'a', accept: { output: 'y', min: 2.5 } }, { target: 'pair' }] } },
      { key: 'ab', split: { variants: [{ target: 'tiered', weight: 1 }] } },
    ],
  });
  const x = [3, 1, 0.5, 0.2];
  const [a, b, c] = [scoresOf(A, x), scoresOf(B, x), scoresOf(C, x)];
  const response = await infer(app, 'ab', body(x, { outputs: [{ name: 'y' }, { name: 'cascade_step' }] }));
  t.equal(response.statusCode, 200, response.body);
  t.equal(response.headers['x-modelgate-variant'], 'ab=tiered');
  closeTo(t, outputOf(response.json(), 'y') as number[], [...a.slice(0, 3), ...[3, 4, 5].map((i) => ((b[i] as number) + (c[i] as number)) / 2)], 'row 0 from a, row 1 the mean of b and c', 1e-5);
  t.same(outputOf(response.json(), 'cascade_step'), [0, 1]);
  const cycle = await app.inject(adminRequest('PUT', '/admin/routes/pair', { ensemble: { members: [{ target: 'b' }, { target: 'ab' }] } }));
  t.equal(cycle.statusCode, 409);
  t.match(cycle.json().error, 'route cycle: pair -> ab -> tiered -> pair');
});

t.test('under a cap of one, a three-member ensemble completes for 32 requests at once', async (t) => {
  const { app } = await buildGateway(t, FILES, {
    registry: { maxResidentModels: 1 },
    models: MODELS,
    routes: [{ key: 'three', ensemble: { members: [{ target: 'a' }, { target: 'b' }, { target: 'c' }], combine: { op: 'vote', output: 'label' } } }],
  });
  const answers = await Promise.all(Array.from({ length: 32 }, () => infer(app, 'three', body())));
  t.same(answers.map((answer) => answer.statusCode), new Array(32).fill(200));
  const expected = (await infer(app, 'three', body())).json();
  t.ok(answers.every((answer) => JSON.stringify(answer.json().outputs) === JSON.stringify(expected.outputs)), 'every answer the same');
  t.ok(app.registry.residentCount <= 1);
});

t.test('graph routes through the admin API: If-Match, the route as set, and kept across a restart', async (t) => {
  const repository = makeRepository(t, FILES);
  const document = { admin: { token: TOKEN }, modelRepository: repository, stateFile: 'gateway.state.json', models: MODELS };
  const first = await startGateway(document, repository);
  const spec = { cascade: { steps: [{ target: 'a', accept: { output: 'y', max: 10 } }, { target: 'b' }] } };
  const created = await first.inject({ method: 'PUT', url: '/admin/routes/g', headers: JSON_AUTH, payload: spec });
  t.equal(created.statusCode, 201, created.body);
  t.match(created.json(), { key: 'g', kind: 'cascade', ...spec });
  const etag = created.headers.etag as string;
  const patch = await first.inject({ method: 'PATCH', url: '/admin/routes/g', headers: JSON_AUTH, payload: { split: { stickyHeader: 'x-user' } } });
  t.equal(patch.statusCode, 400);
  t.match(patch.json().error, "route 'g' is a cascade: a patch changes a split's fields only (PUT replaces any route)");
  const replace = { switch: { cases: [{ when: { header: 'x-a', equals: '1' }, target: 'b' }], default: 'a' } };
  t.equal((await first.inject({ method: 'PUT', url: '/admin/routes/g', headers: { ...JSON_AUTH, 'if-match': '"999"' }, payload: replace })).statusCode, 412);
  const replaced = await first.inject({ method: 'PUT', url: '/admin/routes/g', headers: { ...JSON_AUTH, 'if-match': etag }, payload: replace });
  t.equal(replaced.statusCode, 200);
  t.match(replaced.json(), { kind: 'switch', switch: replace.switch });
  await first.close();
  const second = await startGateway(document, repository);
  t.teardown(() => second.close());
  const kept = await second.inject({ url: '/admin/routes/g', headers: AUTH });
  t.match(kept.json(), { key: 'g', kind: 'switch', switch: replace.switch });
  t.equal(kept.headers.etag, replaced.headers.etag, 'its version too');
  const answer = await infer(second, 'g', body(), { 'x-a': '1' });
  t.same(outputOf(answer.json(), 'label'), labelsOf(B, X));
});

t.test('a cascade is checked when set: accept rules, shared outputs, rows to pass on; a request\'s inputs must share their rows', async (t) => {
  const { app } = await buildGateway(t, { ...FILES, 'one.onnx': affineModel({ inFeatures: 2, outFeatures: 3, weights: [1, 0, 0, 0, 1, 0], bias: [0, 0, 0], batch: 4 }), 'addmul.onnx': addMulModel() }, {
    models: [...MODELS, { name: 'fixed', path: 'one.onnx' }, { name: 'addmul', path: 'addmul.onnx' }],
    routes: [{ key: 'pairs', cascade: { steps: [{ target: 'addmul', accept: { output: 'sum', min: 1 } }, { target: 'addmul' }] } }],
  });
  const put = async (cascade: unknown) => (await app.inject(adminRequest('PUT', '/admin/routes/k', { cascade }))).json().error as string;
  t.match(await put({ steps: [{ target: 'a' }, { target: 'b' }] }), 'cascade.steps[0].accept: every step but the last says which rows it answers');
  t.match(await put({ steps: [{ target: 'a', accept: { output: 'y', min: 1 } }, { target: 'b', accept: { output: 'y', min: 1 } }] }), 'cascade.steps[1].accept: the last step takes every row left');
  t.match(await put({ steps: [{ target: 'a', accept: { output: 'y', min: 1, max: 2 } }, { target: 'b' }] }), 'cascade.steps[0].accept: needs exactly one of min or max');
  t.match(await put({ steps: [{ target: 'a', accept: { output: 'nope', min: 1 } }, { target: 'b' }] }), "step 0 ('a'): accept.output 'nope' is not one of its outputs");
  t.match(await put({ steps: [{ target: 'fixed', accept: { output: 'y', min: 1 } }, { target: 'fixed' }] }), "input 'x' has no dynamic first dimension (shape [4,2]): a cascade passes rows on");
  t.match(await put({ steps: [{ target: 'a', accept: { output: 'y', min: 1 } }, { target: 'f' }] }), /takes inputs|unknown key 'f'/);
  const uneven = await infer(app, 'pairs', { inputs: [{ name: 'a', datatype: 'FP32', shape: [2], data: [1, 2] }, { name: 'b', datatype: 'FP32', shape: [3], data: [1, 2, 3] }] });
  t.equal(uneven.statusCode, 400);
  t.match(uneven.json().error, "input 'b' has 3 rows and input 'a' 2: a cascade's inputs share their first dimension");
  const pairs = await infer(app, 'pairs', { inputs: [{ name: 'a', datatype: 'FP32', shape: [3], data: [1, -5, 2] }, { name: 'b', datatype: 'FP32', shape: [3], data: [1, 1, 2] }], outputs: [{ name: 'product' }, { name: 'cascade_step' }] });
  t.same(pairs.json().outputs.map((output: { data: unknown[] }) => output.data), [[1, -5, 4], [0, 1, 0]], 'both steps compute the same here; the rows say which answered');
});

t.test('a switch pattern that does not compile is refused, naming the field', async (t) => {
  const { app } = await buildGateway(t, FILES, { models: MODELS });
  const response = await app.inject(adminRequest('PUT', '/admin/routes/s', { switch: { cases: [{ when: { header: 'x-a', matches: '[' }, target: 'a' }] } }));
  t.equal(response.statusCode, 400);
  t.match(response.json().error, "switch.cases[0].when.matches: '[' is not a valid regular expression");
});

t.test('an optional member still running at the request\'s deadline is left out; the others answer in time', async (t) => {
  const { app, executor } = await buildGateway(t, FILES, {
    models: MODELS,
    routes: [{ key: 'timed', ensemble: { members: [{ target: 'a' }, { target: 'b', required: false }] } }],
  });
  t.equal((await infer(app, 'timed', body())).statusCode, 200, 'both loaded and answering');
  const release = executor.hold('b');
  t.teardown(release);
  const response = await infer(app, 'timed', body(X, { parameters: { timeout: 200_000 } }));
  t.equal(response.statusCode, 200, response.body);
  t.same(response.json().parameters, { ensemble_missing: ['b'] }, 'b, held past the 200 ms deadline, is left out');
  t.same(response.json().outputs.map((output: { name: string }) => output.name), ['a.y', 'a.label']);
  release();
});
