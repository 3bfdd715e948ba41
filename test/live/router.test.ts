/**
 * The router on its own, without HTTP: live route changes (put, patch, delete)
 * over model targets of a real registry, with their validation, If-Match, the
 * table they swap in, and the state file they persist to and start from.
 */
import path from 'node:path';
import t from 'tap';
import type { RouteSpec } from '../../src/config/schema.ts';
import { validateConfig } from '../../src/config/load.ts';
import { InvalidRouteError, PreconditionFailedError, RouteConflictError, RouteNotFoundError } from '../../src/errors.ts';
import { Router } from '../../src/live/router.ts';
import { StateFileStore } from '../../src/store/store.ts';
import { readState } from '../../src/store/state-file.ts';
import type { TestContext } from '../helpers/gateway.ts';
import { contextOf, modelTargets, registryOf, scalarInput, scalarOf } from '../helpers/registry.ts';

/** Routes as the configuration file gives them, with the schema's defaults filled in. */
function routesOf(routes: readonly unknown[], repository: string): readonly RouteSpec[] {
  return validateConfig({ modelRepository: repository, models: [{ name: 'm1', path: 'm1.onnx' }, { name: 'm2', path: 'm2.onnx' }, { name: 'm3', path: 'm3.onnx' }], routes }, repository).routes;
}

function routerOf(t: TestContext, routes: readonly unknown[] = [], stateFile?: string) {
  const { models, repository } = registryOf(t, 3);
  const file = stateFile ?? path.join(repository, 'state.json');
  const router = new Router(modelTargets(models), routesOf(routes, repository), { store: new StateFileStore(file) });
  return { router, models, repository, file };
}

async function answer(router: Router, key: string, x: number, headers: Record<string, string> = {}): Promise<number> {
  const target = router.table().get(key);
  if (target === undefined) throw new Error(`no target '${key}'`);
  return scalarOf((await target.infer({ inputs: scalarInput(x) }, contextOf(headers))).outputs);
}

const split = (weights: Record<string, number>, extra: Record<string, unknown> = {}) =>
  ({ split: { variants: Object.entries(weights).map(([target, weight]) => ({ target, weight })), ...extra } });

t.test('a put creates a route, goes live in the table at once, and is kept in the state file', async (t) => {
  const { router, file } = routerOf(t);
  t.equal(router.table().has('chain'), false);
  const { created, view } = await router.put('chain', { sequence: { steps: [{ target: 'm2' }, { target: 'm3' }] } }, undefined);
  t.equal(created, true);
  t.match(view, { key: 'chain', kind: 'sequence', version: 1 });
  t.equal(await answer(router, 'chain', 1.5), 1.5 * 2 * 3, 'the chain answers: 1.5 × 2 × 3');
  const saved = await readState(file);
  t.match(saved?.routes.chain, { version: 1, base: null, route: { key: 'chain', sequence: { steps: [{ target: 'm2' }, { target: 'm3' }] } } });
  const again = await router.put('chain', { sequence: { steps: [{ target: 'm3' }] } }, '"1"');
  t.match(again, { created: false, view: { version: 2 } });
  t.equal(await answer(router, 'chain', 1.5), 4.5);
});

t.test('If-Match: a stale version is 412 and changes nothing; * needs the route to exist', async (t) => {
  const { router } = routerOf(t, [{ key: 'ab', ...split({ m1: 1, m2: 0 }) }]);
  const { version } = router.get('ab');
  const patched = await router.patch('ab', { split: { variants: [{ target: 'm1', weight: 0 }, { target: 'm2', weight: 1 }] } }, `"${version}"`);
  t.equal(patched.version, version + 1);
  await t.rejects(router.patch('ab', { split: { variants: [{ target: 'm1', weight: 1 }] } }, `"${version}"`), PreconditionFailedError);
  t.equal(router.get('ab').version, version + 1, 'the stale patch changed nothing');
  t.equal(await answer(router, 'ab', 1, { 'x-user-id': 'u' }), 2, 'the patch that held went live (all to m2)');
  await t.rejects(router.put('fresh', split({ m1: 1 }), '*'), PreconditionFailedError, '* on a route that does not exist');
  t.equal(router.hasRoute('fresh'), false);
});

t.test('invalid changes are refused with the reason and leave every route as it was', async (t) => {
  const { router } = routerOf(t, [{ key: 'ab', ...split({ m1: 1, m2: 1 }) }, { key: 'outer', sequence: { steps: [{ target: 'ab' }] } }]);
  const before = router.list();
  await t.rejects(router.put('ab', split({ nope: 1 }), undefined), InvalidRouteError, 'an unknown target');
  await t.rejects(router.put('ab', split({ outer: 1 }), undefined), new RouteConflictError('route cycle: ab -> outer -> ab'), 'a route that would reach itself: 409');
  await t.rejects(router.put('ab', { split: { variants: [] } }, undefined), InvalidRouteError, 'no variants');
  await t.rejects(router.put('ab', { split: { variants: [{ target: 'm1', weight: 1 }] }, sequence: { steps: [{ target: 'm1' }] } }, undefined), InvalidRouteError, 'two kinds');
  await t.rejects(router.put('m9', { split: { variants: [{ target: 'broken', weight: 1 }] } }, undefined), RouteConflictError, 'a target that cannot load is 409');
  await t.rejects(router.remove('ab', undefined), RouteConflictError, 'a route another route targets');
  await t.rejects(router.remove('nope', undefined), RouteNotFoundError);
  t.same(router.list(), before, 'nothing changed');
  await router.remove('outer', undefined);
  await router.remove('ab', undefined);
  t.same(router.list(), []);
});

t.test('a new router over the same state file starts with the live changes, at their versions', async (t) => {
  const first = routerOf(t, [{ key: 'ab', ...split({ m1: 1, m2: 1 }) }]);
  const chain = await first.router.put('chain', { sequence: { steps: [{ target: 'm1' }, { target: 'm2' }] } }, undefined);
  const ab = await first.router.patch('ab', { split: { variants: [{ target: 'm1', weight: 0 }, { target: 'm3', weight: 1 }] } }, undefined);
  t.ok(chain.view.version < ab.version, 'every change takes the next version');
  const state = await readState(first.file);
  const again = new Router(modelTargets(first.models), routesOf([{ key: 'ab', ...split({ m1: 1, m2: 1 }) }], first.repository), { store: new StateFileStore(first.file), state });
  t.same(again.list().map((view) => [view.key, view.version]), [['ab', ab.version], ['chain', chain.view.version]]);
  t.equal(await answer(again, 'chain', 2), 4);
  t.equal(await answer(again, 'ab', 2, { 'x-user-id': 'anyone' }), 6, 'the patched weights: all to m3');
  // The configuration file changed the route since: its live change is dropped, the file's version serves.
  const logged: string[] = [];
  const changed = new Router(modelTargets(first.models), routesOf([{ key: 'ab', ...split({ m2: 1 }) }], first.repository), { store: new StateFileStore(first.file), state, log: (message) => logged.push(message) });
  t.same(changed.get('ab').route.split?.variants, [{ target: 'm2', weight: 1 }]);
  t.ok(logged.some((message) => message.startsWith('live change dropped')), 'and says so');
});
