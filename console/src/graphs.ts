/**
 * The page of an ensemble, a switch or a cascade: its nodes (members, cases or steps) with
 * their targets and what the route says of each, beside their statistics since the last change.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { admin, type RouteStats, type RouteView } from './api.ts';
import { percent } from './charts.ts';
import { HistoryCharts } from './history.ts';
import { keyHref, Link, messageOf, Problem, REFRESH_MS, usePolling } from './common.ts';

interface Node { readonly label: string; readonly target: string; readonly rule: string }

function nodesOf(view: RouteView): Node[] {
  if (view.ensemble !== undefined) {
    return view.ensemble.members.map((member) => ({
      label: member.name ?? member.target,
      target: member.target,
      rule: [member.required === false ? 'optional' : 'required', member.weight === undefined ? '' : `weight ${member.weight}`].filter(Boolean).join(', '),
    }));
  }
  if (view.switch !== undefined) {
    const cases = view.switch.cases.map(({ when, target }, index) => {
      const field = when.header !== undefined ? `header ${when.header}` : `parameter ${when.parameter ?? ''}`;
      const test = when.matches !== undefined ? `matches /${when.matches}/` : when.in !== undefined ? `in [${when.in.join(', ')}]` : `= ${String(when.equals)}`;
      return { label: String(index), target, rule: `${field} ${test}` };
    });
    return view.switch.default === undefined ? cases : [...cases, { label: 'default', target: view.switch.default, rule: 'when no case holds' }];
  }
  return (view.cascade?.steps ?? []).map((step, index) => ({
    label: String(index),
    target: step.target,
    rule: step.accept === undefined ? 'every row left' : `rows whose largest ${step.accept.output} is ${step.accept.min !== undefined ? `≥ ${step.accept.min}` : `≤ ${step.accept.max ?? ''}`}`,
  }));
}

/** A route's targets in a line, for the list of every key. */
export function routeSummary(route: RouteView): string {
  if (route.split !== undefined) return route.split.variants.map((variant) => `${variant.target} ${variant.weight}`).join(' · ');
  if (route.sequence !== undefined) return route.sequence.steps.map((step) => step.target).join(' → ');
  if (route.ensemble !== undefined) return `all of ${route.ensemble.members.map((member) => member.target).join(', ')}${route.ensemble.combine === undefined ? '' : ` (${route.ensemble.combine.op})`}`;
  if (route.cascade !== undefined) return route.cascade.steps.map((step) => step.target).join(' ⇢ ');
  return `${nodesOf(route).map((node) => `${node.label}: ${node.target}`).join(' · ')}`;
}

export function GraphPage({ view }: { view: RouteView }) {
  const [stats, setStats] = useState<RouteStats | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  usePolling(async () => {
    try {
      setStats((await admin<RouteStats>('GET', `/admin/routes/${encodeURIComponent(view.key)}/stats`)).body);
      setError(undefined);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }, REFRESH_MS, [view.key]);
  const window = stats?.sinceChange;
  const entries = window?.members ?? window?.cases ?? window?.steps ?? [];
  const combine = view.ensemble?.combine;
  const heading = view.kind === 'ensemble' ? 'Members' : view.kind === 'switch' ? 'Cases' : 'Steps';
  return html`<section>
    <${Problem} error=${error} />
    ${combine === undefined ? null : html`<p>Combines <code>${combine.output}</code> by ${combine.op} into <code>${combine.as ?? combine.output}</code>.</p>`}
    <h2>${heading}</h2>
    <table class="stats">
      <thead><tr><th scope="col">${heading.slice(0, -1)}</th><th scope="col">Target</th><th scope="col">Rule</th><th scope="col">Requests</th><th scope="col">Errors</th><th scope="col">p95 ms</th>${view.kind === 'cascade' ? html`<th scope="col">Rows</th><th scope="col">Answered</th>` : null}</tr></thead>
      <tbody>${nodesOf(view).map((node) => {
        const entry = entries.find((candidate) => candidate.target === node.label);
        const step = window?.steps?.find((candidate) => candidate.target === node.label);
        return html`<tr>
          <th scope="row">${node.label}</th>
          <td><${Link} href=${keyHref(node.target)}>${node.target}</${Link}></td>
          <td>${node.rule}</td>
          <td>${entry?.requests ?? 0}</td>
          <td>${entry?.errors ?? 0}</td>
          <td>${entry?.latencyMs.p95 ?? '–'}</td>
          ${view.kind === 'cascade' ? html`<td>${step?.rows ?? 0}</td><td>${step === undefined || step.acceptedShare === null ? '–' : `${step.accepted} (${percent(step.acceptedShare, 1)})`}</td>` : null}
        </tr>`;
      })}</tbody>
    </table>
    ${window === undefined ? null : html`<p class="muted">Since ${new Date(window.since).toLocaleString()}.</p>`}
    <${HistoryCharts} routeKey=${view.key} noun=${heading.slice(0, -1).toLowerCase()} />
  </section>`;
}
