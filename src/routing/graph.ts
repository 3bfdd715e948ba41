/**
 * Checks a set of routes as a graph over keys, for the configuration file and
 * for live changes alike: every key names one thing, every target exists, no
 * route reaches itself, and nesting stays shallow.
 */
import type { RouteSpec } from '../config/schema.ts';

/** Deepest chain of routes inside routes (a split whose variant is a sequence whose step is a split...). */
export const MAX_ROUTE_DEPTH = 8;

/** A problem with one route: `path` is inside the route, e.g. `split.variants[1].target`. */
export interface RouteIssue {
  /** Position of the route in the list checked. */
  readonly index: number;
  readonly key: string;
  readonly path: string;
  readonly message: string;
}

/** Keys a route calls, with where each is named. */
export function routeTargets(route: RouteSpec): Array<{ target: string; path: string }> {
  const targets: Array<{ target: string; path: string }> = [];
  route.split?.variants.forEach((variant, index) => targets.push({ target: variant.target, path: `split.variants[${index}].target` }));
  if (route.split?.shadow !== undefined) targets.push({ target: route.split.shadow.target, path: 'split.shadow.target' });
  return targets;
}

export function checkRoutes(routes: readonly RouteSpec[], modelKeys: ReadonlySet<string>): RouteIssue[] {
  const issues: RouteIssue[] = [];
  const byKey = new Map<string, RouteSpec>();
  const indexOf = new Map<string, number>();
  routes.forEach((route, index) => {
    const issue = (path: string, message: string) => issues.push({ index, key: route.key, path, message });
    if (modelKeys.has(route.key)) issue('key', `'${route.key}' is already a model key`);
    else if (byKey.has(route.key)) issue('key', `'${route.key}' is already the key of another route`);
    else {
      byKey.set(route.key, route);
      indexOf.set(route.key, index);
    }
    const kinds = (route.split === undefined ? 0 : 1) + (route.sequence === undefined ? 0 : 1);
    if (kinds !== 1) issue('', 'a route has exactly one of split or sequence');
    if (route.sequence !== undefined) issue('sequence', 'sequence routes are not supported yet');
    if (route.split !== undefined && !route.split.variants.some((variant) => variant.weight > 0)) {
      issue('split.variants', 'at least one weight must be positive');
    }
  });
  for (const route of byKey.values()) {
    for (const { target, path } of routeTargets(route)) {
      if (!modelKeys.has(target) && !byKey.has(target)) {
        issues.push({ index: indexOf.get(route.key) as number, key: route.key, path, message: `unknown key '${target}'` });
      }
    }
  }
  if (issues.length === 0) issues.push(...checkCycles(byKey, indexOf));
  return issues;
}

/** Depth-first search; a key on the current path seen again is a cycle. */
function checkCycles(byKey: ReadonlyMap<string, RouteSpec>, indexOf: ReadonlyMap<string, number>): RouteIssue[] {
  const depthOf = new Map<string, number>();
  const onPath: string[] = [];
  const visit = (key: string): number => {
    const known = depthOf.get(key);
    if (known !== undefined) return known;
    const route = byKey.get(key);
    if (route === undefined) return 0;
    if (onPath.includes(key)) throw new CycleError([...onPath.slice(onPath.indexOf(key)), key]);
    onPath.push(key);
    let depth = 1;
    for (const { target } of routeTargets(route)) depth = Math.max(depth, 1 + visit(target));
    onPath.pop();
    depthOf.set(key, depth);
    return depth;
  };
  try {
    for (const route of byKey.values()) {
      const depth = visit(route.key);
      if (depth > MAX_ROUTE_DEPTH) {
        return [{ index: indexOf.get(route.key) as number, key: route.key, path: '', message: `routes nest ${depth} deep; at most ${MAX_ROUTE_DEPTH}` }];
      }
    }
  } catch (error) {
    if (error instanceof CycleError) {
      const key = error.keys[0] as string;
      return [{ index: indexOf.get(key) as number, key, path: '', message: `route cycle: ${error.keys.join(' -> ')}` }];
    }
    throw error;
  }
  return [];
}

class CycleError extends Error {
  readonly keys: readonly string[];
  constructor(keys: readonly string[]) {
    super('cycle');
    this.keys = keys;
  }
}
