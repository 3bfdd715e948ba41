/**
 * A route's statistics as the admin API answers them: the entries its kind records, by the
 * names they were recorded under (a split's variants and shadow, an ensemble's members, a
 * switch's cases, a cascade's steps).
 */
import type { RouteStats as RouteStatsView } from '@modelgate/client/wire';
import { memberName } from '../config/graph-schema.ts';
import type { RouteSpec } from '../config/schema.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { caseLabels } from '../routing/switch.ts';

export function snapshotOf(route: RouteSpec, stats: RouteStats): Pick<RouteStatsView, 'sinceChange' | 'sinceStart'> {
  const { split, ensemble, cascade } = route;
  const choice = route.switch;
  if (ensemble !== undefined) return stats.snapshot(ensemble.members.map(memberName), undefined, 'members');
  if (choice !== undefined) return stats.snapshot(caseLabels(choice), undefined, 'cases');
  if (cascade !== undefined) return stats.snapshot(cascade.steps.map((_, index) => String(index)), undefined, 'steps');
  return stats.snapshot(split?.variants.map((variant) => variant.target) ?? [], split?.shadow?.target);
}
