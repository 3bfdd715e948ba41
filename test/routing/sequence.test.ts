/**
 * The sequence target on its own, without HTTP or a router: steps that are
 * model targets of a real registry, their input bindings, post-processing,
 * intermediate outputs and failures.
 */
import t from 'tap';
import type { PostprocessSpec, SequenceSpec, StepSpec } from '../../src/config/schema.ts';
import { StepFailedError } from '../../src/errors.ts';
import { SequenceTarget } from '../../src/routing/sequence.ts';
import type { Target } from '../../src/routing/target.ts';
import type { TestContext } from '../helpers/gateway.ts';
import { contextOf, modelTargets, registryOf, scalarInput, scalarOf } from '../helpers/registry.ts';

/** A post-processing op as a step holds it (the route's schema checks ops one by one, by kind). */
const op = (spec: PostprocessSpec) => spec as NonNullable<StepSpec['postprocess']>[number];

function sequenceOf(t: TestContext, spec: SequenceSpec) {
  const { models } = registryOf(t, 3);
  const targets = modelTargets(models);
  return new SequenceTarget('chain', spec, spec.steps.map((step) => targets.get(step.target) as Target), new Map());
}

t.test('each step\'s output feeds the next; the answer is the last step\'s, under the route\'s name', async (t) => {
  const chain = sequenceOf(t, { steps: [{ target: 'm2' }, { target: 'm3' }] });
  t.same(await chain.signature(), {
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }],
  }, 'the first step\'s inputs and the last step\'s outputs');
  const result = await chain.infer({ inputs: scalarInput(1.25) }, contextOf());
  t.equal(result.modelName, 'chain');
  t.same([...result.outputs.keys()], ['y']);
  t.equal(scalarOf(result.outputs), 1.25 * 2 * 3);
});

t.test('return_intermediate adds every step\'s outputs as <step>.<output>; a step may read the request', async (t) => {
  const chain = sequenceOf(t, { steps: [{ name: 'double', target: 'm2' }, { name: 'triple', target: 'm3', inputs: { x: 'request.x' } }] });
  const result = await chain.infer({ inputs: scalarInput(2), parameters: { return_intermediate: true } }, contextOf());
  t.same([...result.outputs.keys()], ['y', 'double.y', 'triple.y']);
  t.equal(scalarOf(result.outputs, 'double.y'), 4);
  t.equal(scalarOf(result.outputs, 'triple.y'), 6, 'the second step read the request\'s x, not the first step\'s y');
});

t.test('post-processing on a step: its results are what the next step and the answer see', async (t) => {
  const chain = sequenceOf(t, { steps: [{ name: 'first', target: 'm2', postprocess: [op({ op: 'scale', output: 'y', multiply: 10, add: 1 })] }, { target: 'm3' }] });
  // (0.5 × 2) × 10 + 1 = 11, then × 3.
  t.equal(scalarOf((await chain.infer({ inputs: scalarInput(0.5) }, contextOf())).outputs), 33);
  const typed = sequenceOf(t, { steps: [{ name: 'first', target: 'm2', postprocess: [op({ op: 'threshold', output: 'y', value: 3 })] }, { target: 'm3' }] });
  // A threshold gives BOOL, which the next step (FP32 x) cannot take: said when the plan is made, naming the step.
  await t.rejects(typed.signature(), { message: "step 'm3': input 'x' takes FP32, but 'first.y' is BOOL" });
});

t.test('a step whose model cannot load fails the sequence with the load\'s 503, and harms no other model', async (t) => {
  const { models } = registryOf(t, 2);
  const targets = modelTargets(models);
  const spec: SequenceSpec = { steps: [{ target: 'm1' }, { name: 'bad', target: 'broken' }] };
  const chain = new SequenceTarget('chain', spec, [targets.get('m1') as Target, targets.get('broken') as Target], new Map());
  // The plan needs every step's signature: the broken model's load fails first.
  const failure = await chain.infer({ inputs: scalarInput(1) }, contextOf()).catch((error: unknown) => error);
  t.match(failure, { statusCode: 503, message: /^Model 'broken' failed to load/ });
  t.notMatch((failure as Error).message, /\/tmp|\.onnx/, 'no file path');
  t.equal(scalarOf((await (targets.get('m2') as Target).infer({ inputs: scalarInput(1) }, contextOf())).outputs), 2, 'other models are unharmed');
});

t.test('a step whose run fails is a StepFailedError naming it, with its cause\'s status', async (t) => {
  const { models } = registryOf(t, 2);
  const targets = modelTargets(models);
  const chain = new SequenceTarget('chain', { steps: [{ name: 'one', target: 'm1' }, { name: 'two', target: 'm2' }] }, [targets.get('m1') as Target, targets.get('m2') as Target], new Map());
  await chain.signature();
  // A request the first step takes but whose rows break nothing until the model runs: a shape the model refuses.
  const bad = new Map([['x', { datatype: 'FP32' as const, shape: [1, 2], data: new Float32Array([1, 2]) }]]);
  const failure = await chain.infer({ inputs: bad }, contextOf()).catch((error: unknown) => error);
  t.ok(failure instanceof StepFailedError, 'a StepFailedError');
  t.match(failure, { message: /step 'one'/ });
  t.ok((failure as { statusCode: number }).statusCode >= 400);
});
