import t from 'tap';
import type { RolloutStatus, RouteSpec } from '../../src/config/schema.ts';
import { decide, effectiveWeights, startRollout, withStatus } from '../../src/experiments/rollouts.ts';

const route: RouteSpec = { key: 'ab', split: {
  variants: [{ target: 'a', weight: 2 }, { target: 'b', weight: 6 }, { target: 'new', weight: 0 }],
  rollout: { candidate: 'new', steps: [25, 75], stepMs: 10, minRequests: 4, maxErrorRate: 0.5 },
} };
const at = (state: RolloutStatus['state'], weight: number): RolloutStatus => ({ state, step: 1, weight, since: '2026-01-01T00:00:00.000Z' });
const weightsOf = (spec: RouteSpec) => spec.split?.variants.map((variant) => variant.weight);

t.test('a rollout step takes its share of the total from the others in proportion', async (t) => {
  const started = startRollout(route, new Date('2026-01-01T00:00:00Z'));
  t.same(effectiveWeights(started.split!), [1.5, 4.5, 2], '25% of 8 on the candidate, 75% of 8 split 2:6');
  t.same(weightsOf(started), [2, 6, 0], 'a step in progress leaves the variants as configured');
  t.same(weightsOf(withStatus(started, at('paused', 75))), [2, 6, 0]);
});

t.test('an ended rollout writes the weights in force into the variants, and they give the same traffic', async (t) => {
  const completed = withStatus(startRollout(route), at('completed', 75));
  t.same(weightsOf(completed), [0.5, 1.5, 6], 'completed at 75%: the candidate keeps 75% of 8');
  t.same(effectiveWeights(completed.split!), [0.5, 1.5, 6], 'read again, the same weights');
  const rolledBack = withStatus(startRollout(route), at('rolled_back', 0));
  t.same(weightsOf(rolledBack), [2, 6, 0]);
  const full = withStatus(startRollout(route), at('completed', 100));
  t.same(weightsOf(full), [0, 0, 8]);
  t.same(effectiveWeights(full.split!), [0, 0, 8]);
  t.equal(full.split?.rollout?.status?.state, 'completed');
});

t.test('decide: a step moves on after stepMs with minRequests healthy answers, and rolls back on errors at once', async (t) => {
  const rollout = startRollout(route, new Date('2026-01-01T00:00:00Z')).split!.rollout!;
  const healthy = { candidate: { requests: 4, errors: 0, p99: 1 }, othersP99: 1 };
  t.equal(decide(rollout, healthy, new Date('2026-01-01T00:00:00.005Z')), undefined, 'before stepMs');
  t.match(decide(rollout, healthy, new Date('2026-01-01T00:00:01Z')), { state: 'progressing', step: 1, weight: 75 });
  t.match(decide(rollout, { ...healthy, candidate: { requests: 5, errors: 3, p99: 1 } }, new Date('2026-01-01T00:00:00.001Z')), { state: 'rolled_back', weight: 0 });
});
