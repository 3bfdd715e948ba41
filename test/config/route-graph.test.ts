/**
 * The route-graph checks on their own: the issues checkRoutes finds in a set of
 * routes over a set of model keys, each with the route, the path inside it and
 * the message a configuration error or a 400 carries.
 */
import t from 'tap';
import { checkRoutes, MAX_ROUTE_DEPTH, routeTargets, stepName } from '../../src/config/route-graph.ts';
import type { RouteSpec } from '../../src/config/schema.ts';

const MODELS = new Set(['a', 'b', 'c']);
const split = (key: string, targets: readonly string[], extra: Record<string, unknown> = {}): RouteSpec =>
  ({ key, split: { variants: targets.map((target) => ({ target, weight: 1 })), ...extra } }) as RouteSpec;
const sequence = (key: string, steps: readonly Record<string, unknown>[]): RouteSpec => ({ key, sequence: { steps } }) as unknown as RouteSpec;
const issues = (routes: readonly RouteSpec[], plugins?: ReadonlySet<string>) =>
  checkRoutes(routes, MODELS, plugins).map(({ key, path, message }) => `${key} ${path}: ${message}`);

t.test('routes over models and other routes, nested, with a shadow, pass', async (t) => {
  const routes = [
    split('ab', ['a', 'b'], { shadow: { target: 'c', percent: 10 } }),
    sequence('chain', [{ target: 'ab' }, { name: 'last', target: 'c', inputs: { x: 'request.x' } }]),
    split('outer', ['chain', 'a']),
  ];
  t.same(issues(routes), []);
  t.same(routeTargets(routes[0] as RouteSpec), [
    { target: 'a', path: 'split.variants[0].target' }, { target: 'b', path: 'split.variants[1].target' }, { target: 'c', path: 'split.shadow.target' },
  ]);
  t.equal(stepName({ target: 'ab' }), 'ab');
  t.equal(stepName({ name: 'last', target: 'c' }), 'last');
});

t.test('each problem is reported at its route and path', async (t) => {
  t.same(issues([split('a', ['b'])]), ["a key: 'a' is already a model key"]);
  t.same(issues([split('r', ['a']), split('r', ['b'])]), ["r key: 'r' is already the key of another route"]);
  t.same(issues([split('r', ['a', 'nope'])]), ["r split.variants[1].target: unknown key 'nope'"]);
  t.same(issues([split('r', ['a'], { shadow: { target: 'gone', percent: 5 } })]), ["r split.shadow.target: unknown key 'gone'"]);
  t.same(issues([{ key: 'r', split: { variants: [{ target: 'a', weight: 0 }] } } as RouteSpec]), ['r split.variants: at least one weight must be positive']);
  t.same(issues([{ key: 'r' } as RouteSpec]), ['r : a route has exactly one of split, sequence, ensemble, switch, cascade']);
  t.same(issues([sequence('s', [{ target: 'a' }, { target: 'a' }])]), ["s sequence.steps[1].name: step name 'a' is already used (or reserved)"]);
  t.same(issues([sequence('s', [{ name: 'request', target: 'a' }])]), ["s sequence.steps[0].name: step name 'request' is already used (or reserved)"]);
  t.same(issues([sequence('s', [{ target: 'a', inputs: { x: 'later.y' } }, { name: 'later', target: 'b' }])]), ["s sequence.steps[0].inputs.x: 'later.y' names no earlier step (nor request)"]);
  t.same(issues([sequence('s', [{ target: 'a', postprocess: [{ op: 'plugin', name: 'missing' }] }])], new Set(['present'])), ["s sequence.steps[0].postprocess[0].name: no plugin 'missing' in the plugins directory"]);
  t.match(issues([sequence('s', [{ target: 'a', postprocess: [{ op: 'topk', output: 'y' }] }])]), [/^s sequence\.steps\[0\]\.postprocess\[0\]\.k: /], 'an op without its required argument');
});

t.test('rollouts: a candidate among the variants, another variant to fall back to, increasing steps', async (t) => {
  const rollout = (candidate: string, steps: number[]) => ({ rollout: { candidate, steps, stepMs: 1000, minRequests: 10, maxErrorRate: 0.1 } });
  t.same(issues([split('r', ['a', 'b'], rollout('b', [10, 50, 100]))]), []);
  t.same(issues([split('r', ['a', 'b'], rollout('c', [10]))]), ["r split.rollout.candidate: 'c' is not one of the split's variant targets"]);
  t.same(issues([split('r', ['b'], rollout('b', [10]))]), ['r split.variants: a rollout needs another variant with a positive weight to fall back to']);
  t.same(issues([split('r', ['a', 'b'], rollout('b', [50, 50]))]), ['r split.rollout.steps: steps must increase: [50,50]']);
});

t.test('cycles are named along their path, and nesting is bounded', async (t) => {
  t.same(issues([split('x', ['y']), split('y', ['z']), sequence('z', [{ target: 'x' }])]), ['x : route cycle: x -> y -> z -> x']);
  t.same(issues([split('self', ['a'], { shadow: { target: 'self', percent: 1 } })]), ['self : route cycle: self -> self'], 'a shadow counts');
  const chain = (depth: number) => Array.from({ length: depth }, (_, index) => split(`r${index}`, [index === depth - 1 ? 'a' : `r${index + 1}`]));
  t.same(issues(chain(MAX_ROUTE_DEPTH)), [], `${MAX_ROUTE_DEPTH} deep`);
  t.same(issues(chain(MAX_ROUTE_DEPTH + 1)), [`r0 : routes nest ${MAX_ROUTE_DEPTH + 1} deep; at most ${MAX_ROUTE_DEPTH}`]);
});
