/**
 * The registry on its own, without HTTP: a ModelRegistry over real onnxruntime
 * sessions (in process), driven through acquire, lease release, load, unload
 * and remove, as the data plane and the admin API drive it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { DeadlineExceededError, ModelLoadFailedError, ModelNotFoundError, ModelPinnedError, QueueFullError } from '../../src/errors.ts';
import type { ModelRegistry } from '../../src/registry/registry.ts';
import { registryOf, scalarInput as input, scalarOf } from '../helpers/registry.ts';

async function runOn(models: ModelRegistry, name: string, x: number): Promise<number> {
  const lease = await models.acquire(name);
  try {
    return scalarOf(await lease.model.run(input(x), ['y']));
  } finally {
    lease.release();
  }
}

const state = (models: ModelRegistry, name: string) => models.status().find((model) => model.name === name)?.state;

t.test('nothing loads until a lease is asked for, and many callers at once share one load', async (t) => {
  const { models, executor } = registryOf(t, 1);
  t.equal(state(models, 'm1'), 'unloaded');
  t.equal(executor.attempts.get('m1'), undefined, 'no load at construction');
  const leases = await Promise.all(Array.from({ length: 8 }, () => models.acquire('m1')));
  t.equal(executor.loads.get('m1'), 1, 'eight callers, one load');
  t.match(models.status().find((model) => model.name === 'm1'), { state: 'resident', inFlight: 8, loads: 1, evictions: 0 });
  for (const lease of leases) lease.release();
  t.equal(models.status().find((model) => model.name === 'm1')?.inFlight, 0);
  t.equal(await runOn(models, 'm1', 2.5), 2.5, 'the session answers: 2.5 × 1');
});

t.test('under a cap of one, a model held by a lease is not released until the lease is', async (t) => {
  const { models, executor } = registryOf(t, 2, { maxResidentModels: 1, scheduling: 'fifo' });
  const held = await models.acquire('m1');
  const second = models.acquire('m2');
  // Long enough for m2's admission to have asked m1 to make room.
  await sleep(20);
  t.equal(executor.releases.get('m1'), undefined, 'm1 is not released while its lease is held');
  t.equal(executor.loads.get('m2'), undefined, 'and m2 does not load beside it');
  const outputs = await held.model.run(input(3), ['y']);
  t.same(Array.from(outputs.get('y')?.data as Float32Array), [3], 'the held model still runs');
  held.release();
  const lease = await second;
  t.equal(executor.releases.get('m1'), 1, 'released once its last lease went');
  t.same(Array.from((await lease.model.run(input(3), ['y'])).get('y')?.data as Float32Array), [6], 'm2 answers: 3 × 2');
  lease.release();
  t.equal(executor.maxOpen, 1, 'never two sessions at once');
  t.match(models.capacity(), { maxResidentModels: 1, residentModels: 1 });
});

t.test('round-robin over three models with a cap of two: the cap holds and every answer is the model\'s own', async (t) => {
  const { models, executor } = registryOf(t, 3, { maxResidentModels: 2 });
  for (let round = 0; round < 3; round++) {
    for (let k = 1; k <= 3; k++) t.equal(await runOn(models, `m${k}`, 1.5), 1.5 * k, `round ${round}, m${k}`);
    t.ok(models.residentCount <= 2);
  }
  t.ok(executor.maxOpen <= 2, `at most ${executor.maxOpen} sessions open at once`);
  const evictions = models.status().reduce((sum, model) => sum + model.evictions, 0);
  t.ok(evictions >= 1, `${evictions} evictions`);
});

t.test('a model that fails to load backs off: 503 with Retry-After, no second attempt until load() asks', async (t) => {
  const { models, executor } = registryOf(t, 1);
  const first = await models.acquire('broken').then(() => undefined, (error: unknown) => error);
  t.ok(first instanceof ModelLoadFailedError, 'the load failure');
  t.match(first, { statusCode: 503, retryAfterSeconds: 30 });
  t.notMatch((first as Error).message, /\/tmp|\.onnx'/, 'no file path in the message');
  const again = await models.acquire('broken').then(() => undefined, (error: unknown) => error);
  t.ok(again instanceof ModelLoadFailedError, 'still failing during the back-off');
  t.equal(executor.attempts.get('broken'), 1, 'without another attempt');
  t.equal(state(models, 'broken'), 'failed');
  t.type(models.failureReason('broken'), 'string');
  await t.rejects(models.load('broken'), ModelLoadFailedError, 'load() tries again at once');
  t.equal(executor.attempts.get('broken'), 2);
  t.equal(await runOn(models, 'm1', 4), 4, 'the other model is unharmed');
});

t.test('unload waits for the model\'s leases; a pinned model refuses; an unknown one is 404', async (t) => {
  const { models, executor } = registryOf(t, 2, {}, (name) => ({ pinned: name === 'm2' }));
  await models.loadPinned();
  t.equal(state(models, 'm2'), 'resident', 'pinned models load at start');
  const lease = await models.acquire('m1');
  let unloaded = false;
  const unloading = models.unload('m1').then((status) => { unloaded = true; return status; });
  await sleep(20);
  t.equal(unloaded, false, 'unload waits for the lease');
  lease.release();
  t.match(await unloading, { name: 'm1', state: 'unloaded' });
  t.equal(executor.releases.get('m1'), 1);
  await t.rejects(models.unload('m2'), ModelPinnedError);
  await t.rejects(models.acquire('nope'), ModelNotFoundError);
});

t.test('maxQueueSize bounds the requests waiting for or holding a model; a deadline stops a wait', async (t) => {
  const { models } = registryOf(t, 2, { maxResidentModels: 1, scheduling: 'fifo' }, () => ({ maxQueueSize: 2 }));
  const holding = [await models.acquire('m1'), await models.acquire('m1')];
  await t.rejects(models.acquire('m1'), QueueFullError, 'a third request for m1 is refused at once');
  // m2 needs m1's slot, which two leases hold: its wait ends at its deadline.
  await t.rejects(models.acquire('m2', { deadline: performance.now() + 30 }), DeadlineExceededError);
  for (const lease of holding) lease.release();
  t.equal(await runOn(models, 'm2', 1), 2, 'once m1 is free, m2 loads and answers');
});

t.test('remove() lets the requests holding a model finish, then releases it and forgets it', async (t) => {
  const { models, executor } = registryOf(t, 1);
  const lease = await models.acquire('m1');
  const removing = models.remove('m1');
  await t.rejects(models.acquire('m1'), ModelNotFoundError, 'no new lease once removal began');
  t.same(Array.from((await lease.model.run(input(2), ['y'])).get('y')?.data as Float32Array), [2], 'the held lease still runs');
  lease.release();
  await removing;
  t.equal(models.has('m1'), false);
  t.equal(executor.releases.get('m1'), 1);
});

t.test('with tenants: the next cold model to load is weighed by shares, not by how many requests one tenant sent', async (t) => {
  const { models, executor } = registryOf(t, 3, { maxResidentModels: 1 });
  const busy = await models.acquire('m1');
  const order: string[] = [];
  const flood = { name: 'flood', share: 1 };
  const small = { name: 'small', share: 2 };
  // Twenty requests of one tenant wait for m2, then two of another (twice the share) for m3.
  const waits = [
    ...Array.from({ length: 20 }, () => models.acquire('m2', { flow: flood }).then((lease) => { order.push('m2'); lease.release(); })),
    ...Array.from({ length: 2 }, () => models.acquire('m3', { flow: small }).then((lease) => { order.push('m3'); lease.release(); })),
  ];
  await sleep(20);
  busy.release();
  await Promise.all(waits);
  t.equal(order[0], 'm3', `m3 loads first: weight 2 (its tenant's share) against 1 for the flood (${order.slice(0, 3).join(', ')}…)`);
  t.equal(executor.loads.get('m2'), 1, 'and the flood is served with one load of its own after');
});

t.test('with tenants: a full queue still takes a request of a tenant below its share of it, up to twice maxQueueSize', async (t) => {
  const { models, executor } = registryOf(t, 1, {}, () => ({ maxQueueSize: 4 }));
  const open = executor.hold();
  const flood = { name: 'flood', share: 1 };
  const other = { name: 'other', share: 1 };
  const running = Array.from({ length: 4 }, () => models.acquire('m1', { flow: flood }).then(async (lease) => {
    try { return await lease.model.run(input(1), ['y']); } finally { lease.release(); }
  }));
  await sleep(10);
  await t.rejects(models.acquire('m1', { flow: flood }), QueueFullError, 'the flooding tenant is at the limit');
  const others = [models.acquire('m1', { flow: other }), models.acquire('m1', { flow: other })];
  const leases = await Promise.all(others);
  t.pass('the other tenant still gets in: it holds less than its half');
  await t.rejects(models.acquire('m1', { flow: other }), QueueFullError, 'until it holds its share (2 of 4)');
  await t.rejects(models.acquire('m1'), QueueFullError, 'a request without a tenant: the plain limit');
  for (const lease of leases) lease.release();
  open();
  await Promise.all(running);
});
