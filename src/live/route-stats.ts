/**
 * A route's statistics as the admin API answers them: the entries its kind records, by the
 * names they were recorded under (a split's variants and shadow, an ensemble's members, a
 * switch's cases, a cascade's steps).
 */
import type { RouteStats as RouteStatsView } from '@modelgate/client/wire';
import { memberName } from '../config/graph-schema.ts';
import { stepName } from '../config/route-graph.ts';
import type { HistoryBucket, HistoryWindow } from '../experiments/history.ts';
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

/** What a route's history answers: its nodes' buckets, under the field its kind's statistics use. */
export type RouteHistory = Partial<Record<'variants' | 'members' | 'cases' | 'steps', Array<{ target: string; buckets: HistoryBucket[] }>>>;

export function historyOf(route: RouteSpec, stats: RouteStats, window: HistoryWindow, last: number): RouteHistory {
  const { split, ensemble, cascade, sequence } = route;
  const choice = route.switch;
  if (ensemble !== undefined) return { members: stats.historyOf(ensemble.members.map(memberName), window, last) };
  if (choice !== undefined) return { cases: stats.historyOf(caseLabels(choice), window, last) };
  if (cascade !== undefined) return { steps: stats.historyOf(cascade.steps.map((_, index) => String(index)), window, last) };
  if (sequence !== undefined) return { steps: stats.historyOf(sequence.steps.map(stepName), window, last) };
  return { variants: stats.historyOf(split?.variants.map((variant) => variant.target) ?? [], window, last) };
}
