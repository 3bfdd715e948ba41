/**
 * The graph targets on their own, without HTTP or a router: model targets of a real
 * registry as their nodes, the statistics they record, and what they tell the context.
 */
import t from 'tap';
import { RouteStats } from '../../src/experiments/stats.ts';
import { CascadeTarget } from '../../src/routing/cascade.ts';
import { EnsembleTarget } from '../../src/routing/ensemble.ts';
import { SwitchTarget } from '../../src/routing/switch.ts';
import type { Target } from '../../src/routing/target.ts';
import { contextOf, modelTargets, registryOf, scalarInput, scalarOf } from '../helpers/registry.ts';

t.test('a switch reads headers and parameters as text; objects never match; the case goes on the context', async (t) => {
  const { models } = registryOf(t, 3);
  const targets = modelTargets(models);
  const stats = new RouteStats();
  const choice = new SwitchTarget('s', { cases: [{ when: { parameter: 'p', in: [1, 'two'] }, target: 'm2' }, { when: { header: 'x-h', matches: 'a+b' }, target: 'm3' }], default: 'm1' },
    [targets.get('m2') as Target, targets.get('m3') as Target], targets.get('m1') as Target, stats);
  const run = async (parameters: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const context = { ...contextOf(headers), cases: [] as string[] };
    const value = scalarOf((await choice.infer({ inputs: scalarInput(1), parameters }, context)).outputs);
    return [value, context.cases.join()];
  };
  t.same(await run({ p: 1 }), [2, '0'], 'the number 1 is the text 1');
  t.same(await run({ p: 'two' }), [2, '0']);
  t.same(await run({ p: { nested: 1 } }), [1, 'default'], 'an object is no value to compare');
  t.same(await run({}, { 'x-h': 'aaab' }), [3, '1']);
  t.same(await run({}, { 'x-h': 'aaabc' }), [1, 'default'], 'the whole value must match');
  t.same(stats.snapshot(['0', '1', 'default'], undefined, 'cases').sinceStart.cases?.map((entry) => entry.requests), [2, 1, 2]);
});

t.test('an ensemble\'s members share the request\'s context; a cascade records its rows', async (t) => {
  const { models } = registryOf(t, 3);
  const targets = modelTargets(models);
  const ensemble = new EnsembleTarget('e', { members: [{ target: 'm2' }, { target: 'm3' }], combine: { op: 'max', output: 'y', as: 'best' } }, [targets.get('m2') as Target, targets.get('m3') as Target], new RouteStats());
  await ensemble.signature();
  const result = await ensemble.infer({ inputs: scalarInput(-2) }, contextOf());
  t.same([...result.outputs.keys()], ['best']);
  t.equal(scalarOf(result.outputs, 'best'), -4, 'max of -4 and -6');
  const stats = new RouteStats();
  const cascade = new CascadeTarget('c', { steps: [{ target: 'm1', accept: { output: 'y', max: 0 } }, { target: 'm3' }] }, [targets.get('m1') as Target, targets.get('m3') as Target], stats);
  await cascade.signature();
  const rows = new Map([['x', { datatype: 'FP32' as const, shape: [3, 1], data: new Float32Array([-1, 2, 0]) }]]);
  const answer = await cascade.infer({ inputs: rows, outputs: ['y', 'cascade_step'] }, contextOf());
  t.same(Array.from(answer.outputs.get('y')?.data as Float32Array), [-1, 6, 0], 'rows at most 0 from m1, the other from m3');
  t.same(Array.from(answer.outputs.get('cascade_step')?.data as BigInt64Array), [0n, 1n, 0n]);
  t.match(stats.snapshot(['0', '1'], undefined, 'steps').sinceStart.steps, [{ rows: 3, accepted: 2, acceptedShare: 0.667 }, { rows: 1, accepted: 1, acceptedShare: 1 }]);
});
