/**
 * Route bodies of the admin API (PUT and PATCH /admin/routes/{key}), read
 * against the schemas the admin routes document, so what the docs say is what
 * is checked; every problem is named by its path, and nothing changes.
 */
import type { ValueError } from '@sinclair/typebox/errors';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { bodyProblems } from '../config/pointer.ts';
import { RouteBodySchema, RoutePatchSchema, type RouteSpec, type SplitSpec } from '../config/schema.ts';
import { InvalidRouteError } from '../errors.ts';

const routeBody = TypeCompiler.Compile(RouteBodySchema);
const patchBody = TypeCompiler.Compile(RoutePatchSchema);

/** A route's definition without its key (which the path gives); 400 naming each problem. */
export function readRouteBody(body: unknown): Omit<RouteSpec, 'key'> {
  return checkBody(routeBody, body) as Omit<RouteSpec, 'key'>;
}

/** The fields a patch changes; 400 naming each problem. */
export function readRoutePatch(body: unknown): { split?: Partial<SplitSpec> } {
  return checkBody(patchBody, body) as { split?: Partial<SplitSpec> };
}

function checkBody(checker: { Errors(value: unknown): Iterable<ValueError> }, body: unknown): unknown {
  const problems = bodyProblems(checker.Errors(body));
  if (problems.length > 0) throw new InvalidRouteError(problems.join('; '));
  return body;
}
