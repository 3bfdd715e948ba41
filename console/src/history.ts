/**
 * A route's statistics over time, as the gateway keeps them (GET …/stats/history): latency
 * percentiles per bucket of each node, and below them its error rate, for the window the
 * operator picks. Each point is a bucket's own figure, not a cumulative one sampled by the page.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { admin, type HistoryBucket, type NodeHistory, type RouteHistory } from './api.ts';
import { LineChart, type Series } from './charts.ts';
import { messageOf, Problem, REFRESH_MS, usePolling } from './common.ts';

const WINDOWS = [
  { window: '10s', last: 60, label: 'Last 10 minutes, per 10 s' },
  { window: '1m', last: 60, label: 'Last hour, per minute' },
  { window: '1h', last: 48, label: 'Last 2 days, per hour' },
] as const;

const at = (bucket: HistoryBucket) => Date.parse(bucket.start);

/** Per node, one point per bucket that has the figure. */
function seriesOf(nodes: readonly NodeHistory[], figure: (bucket: HistoryBucket) => number | null, suffix: string): Series[] {
  return nodes.map((node) => ({
    name: `${node.target}${suffix}`,
    points: node.buckets.flatMap((bucket): Array<[number, number]> => {
      const value = figure(bucket);
      return value === null ? [] : [[at(bucket), value]];
    }),
  }));
}

export function HistoryCharts({ routeKey, noun }: { routeKey: string; noun: string }) {
  const [choice, setChoice] = useState(0);
  const [nodes, setNodes] = useState<readonly NodeHistory[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const { window, last, label } = WINDOWS[choice] ?? WINDOWS[0];
  usePolling(async () => {
    try {
      const answer = await admin<RouteHistory>('GET', `/admin/routes/${encodeURIComponent(routeKey)}/stats/history?window=${window}&last=${last}`);
      const body = answer.body;
      setNodes(body.variants ?? body.members ?? body.cases ?? body.steps ?? []);
      setError(undefined);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }, REFRESH_MS, [routeKey, window]);
  const shown = nodes ?? [];
  const what = label.toLowerCase();
  // The whole window on the x axis, so that quiet buckets show as gaps and the axis does not jump.
  const starts = shown.flatMap((node) => node.buckets.map(at));
  const span: [number, number] | undefined = starts.length === 0 ? undefined : [Math.min(...starts), Math.max(...starts)];
  return html`<div class="history">
    <h2>Latency over time</h2>
    <div class="field">
      <label for="history-window">Window</label>
      <select id="history-window" value=${String(choice)} onChange=${(event: Event) => setChoice(Number((event.target as HTMLSelectElement).value))}>
        ${WINDOWS.map((option, index) => html`<option value=${String(index)}>${option.label}</option>`)}
      </select>
    </div>
    <${Problem} error=${error} />
    ${nodes === undefined ? html`<p class="muted">Loading history…</p>` : html`
      <${LineChart} unit="ms" span=${span} series=${seriesOf(shown, (bucket) => bucket.latencyMs.p95, ' p95')}
        label=${`p95 latency in ms of each ${noun}, ${what}`} />
      <h3>Error rate</h3>
      <${LineChart} unit="%" span=${span} least=${1} series=${seriesOf(shown, (bucket) => (bucket.errorRate === null ? null : bucket.errorRate * 100), ' errors')}
        label=${`Share of failed requests of each ${noun} in percent, ${what}`} />
      <p class="muted">Each point is one bucket's own figure (the last one still filling); buckets without requests have none.</p>`}
  </div>`;
}
