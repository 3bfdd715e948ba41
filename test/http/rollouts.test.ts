/**
 * Guarded rollouts under concurrent traffic: a healthy candidate ramps to
 * completion with zero failed requests; a broken one is pulled after a few
 * failures; pause, resume, abort, manual weight changes refused, and a
 * restart that resumes at the step reached.
 */
import path from 'node:path';
import t from 'tap';
import { unsupportedOpModel } from '../../src/onnx/builder.ts';
import type { FastifyInstance } from 'fastify';
import { bucketBounds } from '../../src/routing/split.ts';
import { effectiveWeights } from '../../src/experiments/rollouts.ts';
import { AUTH, buildGateway, eventually, infer, JSON_AUTH, makeRepository, metricsOf, scaleModel, scaleRequest, startGateway, TOKEN } from '../helpers/gateway.ts';

const files = { 'one.onnx': scaleModel(1), 'two.onnx': scaleModel(2), 'broken.onnx': unsupportedOpModel() };
const models = [{ name: 'one', path: 'one.onnx' }, { name: 'two', path: 'two.onnx' }, { name: 'broken', path: 'broken.onnx' }];

function route(candidate: string, rollout: Record<string, unknown> = {}) {
  return { key: 'ab', split: { variants: [{ target: 'one', weight: 3 }, { target: candidate, weight: 1 }], rollout: { candidate, steps: [10, 50, 100], stepMs: 100, minRequests: 10, maxErrorRate: 0.1, ...rollout } } };
}

const status = async (app: FastifyInstance) => (await app.inject({ url: '/admin/routes/ab', headers: AUTH })).json().split.rollout.status;

/** Clients sending to 'ab' until `stop()`; counts answers by status and variant. */
function traffic(app: FastifyInstance, clients = 4) {
  let running = true;
  const seen = { statuses: new Map<number, number>(), variants: new Map<string, number>() };
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      const response = await infer(app, 'ab', scaleRequest(1));
      seen.statuses.set(response.statusCode, (seen.statuses.get(response.statusCode) ?? 0) + 1);
      const variant = String(response.headers['x-modelgate-variant']);
      seen.variants.set(variant, (seen.variants.get(variant) ?? 0) + 1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  return { seen, stop: async () => { running = false; await Promise.all(loops); } };
}

t.test('a healthy candidate ramps through every step with zero failed requests and ends with all traffic', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [route('two')] });
  t.match(await status(app), { state: 'progressing', step: 0, weight: 10 });
  const load = traffic(app);
  await eventually('the rollout to complete', () => app.router.get('ab').route.split?.rollout?.status?.state === 'completed');
  await load.stop();
  t.match(await status(app), { state: 'completed', step: 2, weight: 100 });
  const completed = (await app.inject({ url: '/admin/routes/ab', headers: AUTH })).json().split.variants;
  t.same(completed, [{ target: 'one', weight: 0 }, { target: 'two', weight: 4 }], 'the route shows the weights in force: all of the total (3 + 1) on the candidate');
  t.same([...load.seen.statuses.keys()], [200], 'no request failed');
  t.ok(load.seen.variants.get('ab=two') ?? 0 > 0);
  const after = await Promise.all(Array.from({ length: 30 }, () => infer(app, 'ab', scaleRequest(1))));
  t.same([...new Set(after.map((response) => response.headers['x-modelgate-variant']))], ['ab=two'], 'all traffic on the candidate');
  const metrics = await metricsOf(app);
  t.match(metrics, /modelgate_rollout_transitions_total\{route="ab",to="progressing"\} 2/);
  t.match(metrics, /modelgate_rollout_transitions_total\{route="ab",to="completed"\} 1/);
});

t.test('a candidate that fails at run time is rolled back after a few failed requests, with a reason', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [route('broken', { steps: [50, 100], stepMs: 60_000 })], registry: { loadFailureBackoffMs: 10 } });
  const load = traffic(app, 2);
  await eventually('the rollback', () => app.router.get('ab').route.split?.rollout?.status?.state === 'rolled_back');
  await new Promise((resolve) => setTimeout(resolve, 50));
  await load.stop();
  const now = await status(app);
  t.same((await app.inject({ url: '/admin/routes/ab', headers: AUTH })).json().split.variants, [{ target: 'one', weight: 4 }, { target: 'broken', weight: 0 }], 'the route shows the weights in force: none on the rolled-back candidate');
  t.match(now, { state: 'rolled_back', weight: 0, reason: /^error rate [\d.]+ > 0\.1 over \d+ requests \(\d+ errors, more than maxErrorRate × minRequests\)$/ });
  const failed = [...load.seen.statuses].filter(([code]) => code !== 200).reduce((sum, [, count]) => sum + count, 0);
  t.ok(failed >= 2 && failed <= 6, `${failed} failed requests`);
  const after = await Promise.all(Array.from({ length: 20 }, () => infer(app, 'ab', scaleRequest(1))));
  t.same([...new Set(after.map((response) => response.statusCode))], [200], 'the others serve everything');
});

t.test('pause holds the weight under traffic, resume goes on; abort rolls back; manual weight changes are refused', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [route('two', { stepMs: 50 })] });
  const post = (action: string) => app.inject({ method: 'POST', url: `/admin/routes/ab/rollout/${action}`, headers: AUTH });
  t.equal((await post('pause')).statusCode, 200);
  t.match(await status(app), { state: 'paused', weight: 10 });
  const load = traffic(app, 2);
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.match(await status(app), { state: 'paused', step: 0, weight: 10 }, 'held while paused, under traffic');
  const patch = await app.inject({ method: 'PATCH', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split: { variants: [{ target: 'one', weight: 1 }, { target: 'two', weight: 1 }] } } });
  t.equal(patch.statusCode, 409);
  t.match(patch.json().error, /^route 'ab' is rolling out 'two' \(paused\): the rollout drives its weights; abort it, or PUT the route with a new rollout$/);
  t.equal((await app.inject({ method: 'PUT', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split: { variants: [{ target: 'one', weight: 1 }] } } })).statusCode, 409);
  t.equal((await post('resume')).statusCode, 200);
  await eventually('a step up after resume', () => (app.router.get('ab').route.split?.rollout?.status?.step ?? 0) >= 1);
  t.equal((await post('abort')).statusCode, 200);
  await load.stop();
  t.match(await status(app), { state: 'rolled_back', weight: 0, reason: 'aborted' });
  t.equal((await post('abort')).statusCode, 409, 'nothing left to abort');
  t.equal((await post('resume')).statusCode, 409);
  const after = await Promise.all(Array.from({ length: 20 }, () => infer(app, 'ab', scaleRequest(1))));
  t.same([...new Set(after.map((response) => response.headers['x-modelgate-variant']))], ['ab=one']);
  const fresh = await app.inject({ method: 'PUT', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split: route('two', { steps: [20, 100], stepMs: 60_000 }).split } });
  t.equal(fresh.statusCode, 200, 'a PUT with a new rollout starts it');
  t.match(fresh.json().split.rollout.status, { state: 'progressing', step: 0, weight: 20 });
  t.equal((await app.inject({ method: 'POST', url: '/admin/routes/nope/rollout/pause', headers: AUTH })).statusCode, 404);
});

t.test('rollout definitions are validated like everything else', async (t) => {
  const { app } = await buildGateway(t, files, { models, routes: [] });
  const cases: Array<[unknown, RegExp]> = [
    [route('two', { candidate: 'nope' }).split, /rollout.candidate: 'nope' is not one of the split's variant targets/],
    [route('two', { steps: [50, 10] }).split, /rollout.steps: steps must increase/],
    [route('two', { maxErrorRate: 2 }).split, /maxErrorRate/],
    [route('two', { extra: 1 }).split, /extra/],
    [{ variants: [{ target: 'two', weight: 1 }], rollout: route('two').split.rollout }, /a rollout needs another variant with a positive weight/],
  ];
  for (const [split, message] of cases) {
    const response = await app.inject({ method: 'PUT', url: '/admin/routes/ab', headers: JSON_AUTH, payload: { split } });
    t.equal(response.statusCode, 400);
    t.match(response.json().error, message);
  }
});

t.test('a restart mid-rollout resumes at the step reached', async (t) => {
  const repository = makeRepository(t, files);
  const document = { admin: { token: TOKEN }, modelRepository: repository, stateFile: path.join(repository, 'state.json'), models, routes: [route('two', { steps: [10, 50, 100], stepMs: 50 })] };
  const start = () => startGateway(document, repository);
  const first = await start();
  const load = traffic(first, 2);
  await eventually('step 1', () => app1Step(first) >= 1);
  t.equal((await first.inject({ method: 'POST', url: '/admin/routes/ab/rollout/pause', headers: AUTH })).statusCode, 200);
  await load.stop();
  const reached = await status(first);
  await first.close();
  const second = await start();
  t.teardown(() => second.close());
  t.match(await status(second), { state: 'paused', step: reached.step, weight: reached.weight }, 'resumed where it was, never back to the start');
});

function app1Step(app: FastifyInstance): number {
  return app.router.get('ab').route.split?.rollout?.status?.step ?? 0;
}

t.test('sticky users on the candidate stay on it as it grows, wherever it stands among the variants', async (t) => {
  for (const position of [0, 1, 2]) {
    const targets = ['a', 'b', 'c'];
    const candidate = targets[position] as string;
    const rangeAt = (weight: number) => {
      const split = { variants: targets.map((target, index) => ({ target, weight: index + 1 })), rollout: { candidate, steps: [weight], stepMs: 1, minRequests: 1, maxErrorRate: 0, status: { state: 'progressing' as const, step: 0, weight, since: new Date(0).toISOString() } } };
      const weights = effectiveWeights(split);
      t.equal(Math.round(((weights[position] as number) / weights.reduce((a, b) => a + b, 0)) * 1000) / 10, weight, `${candidate} at ${weight}%`);
      const bounds = bucketBounds(weights);
      return [position === 0 ? 0 : bounds[position - 1] as number, bounds[position] as number];
    };
    let previous = rangeAt(5);
    for (const weight of [25, 50, 100]) {
      const range = rangeAt(weight);
      t.ok((range[0] as number) <= (previous[0] as number) && (range[1] as number) >= (previous[1] as number), `${candidate}: its buckets at ${weight}% contain those before`);
      previous = range;
    }
  }
});
