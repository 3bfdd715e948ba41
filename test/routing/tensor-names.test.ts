/**
 * Tensor names are data, never object keys: a model whose inputs and outputs are named like
 * members of Object.prototype works as a model, a split variant and sequence steps (with
 * input mappings and post-processing), configured and set live, in process and on a worker.
 */
import t from 'tap';
import { buildModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, infer } from '../helpers/gateway.ts';

/** toString = __proto__ + constructor, valueOf = __proto__ * constructor, on [n]. */
const oddNames = buildModel({
  inputs: [{ name: '__proto__', type: 'float32', shape: ['n'] }, { name: 'constructor', type: 'float32', shape: ['n'] }],
  outputs: [{ name: 'toString', type: 'float32', shape: ['n'] }, { name: 'valueOf', type: 'float32', shape: ['n'] }],
  nodes: [
    { op: 'Add', inputs: ['__proto__', 'constructor'], outputs: ['toString'] },
    { op: 'Mul', inputs: ['__proto__', 'constructor'], outputs: ['valueOf'] },
  ],
});

const request = { inputs: [
  { name: '__proto__', datatype: 'FP32', shape: [2], data: [2, 3] },
  { name: 'constructor', datatype: 'FP32', shape: [2], data: [5, 7] },
] };

/** A JSON object with an own key named `__proto__` (an object literal would set the prototype instead). */
const own = (entries: Array<[string, unknown]>) => JSON.parse(JSON.stringify(Object.fromEntries(entries))) as Record<string, unknown>;

const routes = [
  { key: 'odd-split', split: { variants: [{ target: 'odd', weight: 1 }] } },
  {
    key: 'odd-chain',
    sequence: { steps: [
      { target: 'odd', name: 'first', inputs: own([['constructor', 'request.constructor'], ['__proto__', 'request.__proto__']]) },
      // Second pass: __proto__ = 2 + 5 = 7 and 3 + 7 = 10; constructor = 2 * 5 = 10 and 3 * 7 = 21.
      { target: 'odd', name: 'second', inputs: own([['__proto__', 'first.toString'], ['constructor', 'first.valueOf']]), postprocess: [{ op: 'scale', output: 'toString', multiply: 2 }] },
    ] },
  },
];

for (const workers of [0, 1]) {
  t.test(`inputs and outputs named like Object members, in every route kind (${workers === 0 ? 'in process' : 'on a worker thread'})`, async (t) => {
    const { app } = await buildGateway(t, { 'odd.onnx': oddNames }, { executor: { workers }, models: [{ name: 'odd', path: 'odd.onnx', batching: false, runIn: workers === 0 ? 'eventLoop' : 'worker' }], routes });
    const model = await infer(app, 'odd', request);
    t.equal(model.statusCode, 200, model.body);
    t.same(model.json().outputs.map((output: { name: string; data: number[] }) => [output.name, output.data]), [['toString', [7, 10]], ['valueOf', [10, 21]]]);
    const split = await infer(app, 'odd-split', { ...request, outputs: [{ name: 'valueOf' }] });
    t.equal(split.statusCode, 200, split.body);
    t.same(split.json().outputs.map((output: { name: string; data: number[] }) => [output.name, output.data]), [['valueOf', [10, 21]]]);
    const chain = await infer(app, 'odd-chain', request);
    t.equal(chain.statusCode, 200, chain.body);
    // second: toString = (7 + 10, 10 + 21) * 2, valueOf = (7 * 10, 10 * 21).
    t.same(chain.json().outputs.map((output: { name: string; data: number[] }) => [output.name, output.data]).sort(), [['toString', [34, 62]], ['valueOf', [70, 210]]]);
    const metadata = (await app.inject({ url: '/v2/models/odd-chain' })).json();
    t.same(metadata.inputs.map((input: { name: string }) => input.name).sort(), ['__proto__', 'constructor']);
    const missing = await infer(app, 'odd', { inputs: [request.inputs[1]] });
    t.equal(missing.statusCode, 400);
    t.match(missing.json().error, /__proto__/, 'the missing input is named');
    const live = await app.inject({ method: 'PUT', url: '/admin/routes/odd-live', headers: AUTH, payload: { sequence: { steps: [{ target: 'odd', inputs: own([['toString', 'request.x']]) }] } } });
    t.equal(live.statusCode, 400, 'a mapping to an input the model does not take is refused, not taken for a member of Object');
    t.match(live.json().error, /inputs names 'toString', which 'odd' does not take/);
  });
}
