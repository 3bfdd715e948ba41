/**
 * The route table: an immutable snapshot of the routes as specified and the targets built from
 * them over the model targets. A live change builds a new table and swaps it in whole; a
 * request keeps the table it started with.
 */
import { routeTargets } from '../config/route-graph.ts';
import type { RouteSpec, SequenceSpec } from '../config/schema.ts';
import type { RouteStats } from '../experiments/stats.ts';
import type { Plugin } from '../ops/postprocess.ts';
import { CascadeTarget } from './cascade.ts';
import { EnsembleTarget } from './ensemble.ts';
import { SequenceTarget } from './sequence.ts';
import { SplitTarget, type RouteObserver } from './split.ts';
import { SwitchTarget } from './switch.ts';
import type { Target, TargetTable } from './target.ts';

export interface RouteTable {
  /** Every route by key, as specified. */
  readonly routes: ReadonlyMap<string, RouteSpec>;
  /** Every key's target: the models' and the routes'. */
  readonly targets: TargetTable;
}

/** What routes are built with, beside the models. */
export interface TableParts {
  /** The statistics a route records into (a split's variants, a graph's nodes), kept across tables. */
  readonly stats: (key: string) => RouteStats;
  /** Post-processing plugins by name. */
  readonly plugins: ReadonlyMap<string, Plugin>;
  /** Told of every split decision and shadow copy. */
  readonly observer?: RouteObserver | undefined;
}

/** Builds the targets of `routes` over `models` (each route's targets first); the routes have passed the graph checks. */
export function buildTable(routes: ReadonlyMap<string, RouteSpec>, models: ReadonlyMap<string, Target>, parts: TableParts): RouteTable {
  const targets = new Map<string, Target>(models);
  const build = (key: string): Target => {
    const existing = targets.get(key);
    if (existing !== undefined) return existing;
    const target = buildRoute(key, routes.get(key) as RouteSpec, build, parts);
    targets.set(key, target);
    return target;
  };
  for (const key of routes.keys()) build(key);
  return { routes, targets };
}

function buildRoute(key: string, route: RouteSpec, build: (key: string) => Target, parts: TableParts): Target {
  const { split, sequence, ensemble, cascade } = route;
  const choice = route.switch;
  if (split !== undefined) {
    return new SplitTarget(key, split, split.variants.map((variant) => build(variant.target)),
      split.shadow === undefined ? undefined : build(split.shadow.target), parts.stats(key), parts.observer);
  }
  if (ensemble !== undefined) return new EnsembleTarget(key, ensemble, ensemble.members.map((member) => build(member.target)), parts.stats(key), parts.observer);
  if (choice !== undefined) {
    return new SwitchTarget(key, choice, choice.cases.map((option) => build(option.target)),
      choice.default === undefined ? undefined : build(choice.default), parts.stats(key), parts.observer);
  }
  if (cascade !== undefined) return new CascadeTarget(key, cascade, cascade.steps.map((step) => build(step.target)), parts.stats(key), parts.observer);
  return new SequenceTarget(key, sequence as SequenceSpec, (sequence as SequenceSpec).steps.map((step) => build(step.target)), parts.plugins, parts.stats(key));
}

/** Whether route `from` calls `to`, directly or through other routes. */
export function reaches(routes: ReadonlyMap<string, RouteSpec>, from: string, to: string): boolean {
  if (from === to) return true;
  const route = routes.get(from);
  return route !== undefined && routeTargets(route).some(({ target }) => reaches(routes, target, to));
}

/** The routes that target any of `keys` directly. */
export function usersOf(routes: ReadonlyMap<string, RouteSpec>, keys: readonly string[]): string[] {
  return [...routes.values()].filter((route) => routeTargets(route).some(({ target }) => keys.includes(target))).map((route) => route.key);
}
