/**
 * The pages of a route: a split (weights, rollout, per-variant statistics with their
 * intervals, the shadow's agreement) and a sequence (its steps).
 */
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { admin, ApiError, may, READ_ONLY, type RouteStats, type RouteView, type Split, type Step } from './api.ts';
import { IntervalBar, percent } from './charts.ts';
import { HistoryCharts } from './history.ts';
import { keyHref, Link, messageOf, Problem, REFRESH_MS, usePolling } from './common.ts';

// ---- a split -------------------------------------------------------------------------

function describeDifference(first: string, target: string, difference: { value: number; low95: number; high95: number }): string {
  const span = `${percent(difference.value)} (95% interval ${percent(difference.low95)} to ${percent(difference.high95)})`;
  if (difference.low95 > 0) return `${span}: higher than ${first}; the interval excludes zero.`;
  if (difference.high95 < 0) return `${span}: lower than ${first}; the interval excludes zero.`;
  return `${span}: not yet distinguishable from ${first}; the interval includes zero.`;
}

export function SplitPage({ view, onChanged }: { view: RouteView; onChanged: (view: RouteView) => void }) {
  const split = view.split as Split;
  const [weights, setWeights] = useState<number[]>(split.variants.map((variant) => variant.weight));
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [stats, setStats] = useState<RouteStats | undefined>(undefined);
  const shown = useRef(view.version);
  // A change made elsewhere (seen on refresh) updates the inputs only while the operator has not edited them.
  useEffect(() => {
    if (shown.current !== view.version) {
      shown.current = view.version;
      setWeights(split.variants.map((variant) => variant.weight));
    }
  }, [view.version]);
  usePolling(async () => {
    const answer = await admin<RouteStats>('GET', `/admin/routes/${encodeURIComponent(view.key)}/stats`);
    setStats(answer.body);
  }, REFRESH_MS, [view.key]);

  const save = async (event: Event) => {
    event.preventDefault();
    setMessage(undefined);
    setError(undefined);
    try {
      const answer = await admin<RouteView>('PATCH', `/admin/routes/${encodeURIComponent(view.key)}`,
        { split: { variants: split.variants.map((variant, index) => ({ target: variant.target, weight: weights[index] ?? 0 })) } },
        { 'if-match': `"${view.version}"` });
      shown.current = answer.body.version;
      onChanged(answer.body);
      setMessage(`Saved: version ${answer.body.version}.`);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 412) {
        const current = await admin<RouteView>('GET', `/admin/routes/${encodeURIComponent(view.key)}`);
        shown.current = current.body.version;
        setWeights((current.body.split as Split).variants.map((variant) => variant.weight));
        onChanged(current.body);
        setError(`This route was changed elsewhere since this page loaded it, so nothing was saved. The current weights (version ${current.body.version}) are shown now: edit them and save again.`);
      } else setError(messageOf(failure));
    }
  };
  const rollout = async (action: 'pause' | 'resume' | 'abort') => {
    try {
      onChanged((await admin<RouteView>('POST', `/admin/routes/${encodeURIComponent(view.key)}/rollout/${action}`)).body);
    } catch (failure) {
      setError(messageOf(failure));
    }
  };
  const current = stats?.sinceChange;
  const first = split.variants[0]?.target ?? '';
  const maxRate = Math.max(0.01, ...(current?.variants ?? []).map((variant) => variant.errorRate?.high95 ?? 0));
  const status = split.rollout?.status;
  return html`<section>
    <h2>Weights</h2>
    <form class="weights" onSubmit=${save}>
      ${split.variants.map((variant, index) => html`<div class="field">
        <label for=${`weight-${index}`}>${variant.target}</label>
        <input id=${`weight-${index}`} type="number" min="0" step="any" required value=${weights[index]} readOnly=${!may('operate')}
          onInput=${(event: Event) => setWeights(weights.map((weight, at) => (at === index ? Number((event.target as HTMLInputElement).value) : weight)))} />
      </div>`)}
      <button type="submit" disabled=${!may('operate')} title=${may('operate') ? undefined : READ_ONLY}>Save</button>
    </form>
    <p class="muted">Version ${view.version}${split.stickyHeader === undefined ? '' : ` · sticky by ${split.stickyHeader}`}${split.shadow === undefined ? '' : ` · shadow to ${split.shadow.target}`}</p>
    ${message === undefined ? null : html`<p class="ok" role="status">${message}</p>`}
    <${Problem} error=${error} />
    ${split.rollout === undefined ? null : html`<h2>Rollout</h2>
      <p>Candidate <strong>${split.rollout.candidate}</strong>: ${status?.state.replace('_', ' ') ?? 'starting'}${status === undefined ? '' : `, step ${status.step + 1} of ${split.rollout.steps.length} (${status.weight}% of traffic)`}${status?.reason === undefined ? '' : `: ${status.reason}`}</p>
      <p class="muted">Steps: ${split.rollout.steps.map((step) => `${step}%`).join(' → ')}</p>
      <div class="buttons">
        <button type="button" disabled=${status?.state !== 'progressing' || !may('operate')} onClick=${() => rollout('pause')}>Pause</button>
        <button type="button" disabled=${status?.state !== 'paused' || !may('operate')} onClick=${() => rollout('resume')}>Resume</button>
        <button type="button" disabled=${(status?.state !== 'progressing' && status?.state !== 'paused') || !may('operate')} onClick=${() => rollout('abort')}>Abort</button>
      </div>`}
    <h2>Since the last change</h2>
    ${current === undefined ? html`<p class="muted">Loading statistics…</p>` : html`
      <p class="muted">Since ${new Date(current.since).toLocaleString()}, refreshed every ${REFRESH_MS / 1000} s.</p>
      <table class="stats">
        <thead><tr><th scope="col">Variant</th><th scope="col">Requests</th><th scope="col">Errors</th><th scope="col">Error rate (95% interval)</th><th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">p99 ms</th></tr></thead>
        <tbody>${(current.variants ?? []).map((variant) => html`<tr>
          <th scope="row">${variant.target}</th>
          <td>${variant.requests}</td>
          <td>${variant.errors}</td>
          <td>${variant.errorRate === null ? 'no requests' : html`<${IntervalBar} interval=${variant.errorRate} max=${maxRate}
              label=${`${variant.target} error rate ${percent(variant.errorRate.value)}, 95% interval ${percent(variant.errorRate.low95)} to ${percent(variant.errorRate.high95)}`} />
            <span>${percent(variant.errorRate.value)} (${percent(variant.errorRate.low95)} to ${percent(variant.errorRate.high95)})</span>
            ${variant.errorRateDifference === undefined || variant.errorRateDifference === null ? null : html`<div class="difference">Against ${first}: ${describeDifference(first, variant.target, variant.errorRateDifference)}</div>`}`}</td>
          <td>${variant.latencyMs.p50?.toFixed(2) ?? '–'}</td>
          <td>${variant.latencyMs.p95?.toFixed(2) ?? '–'}</td>
          <td>${variant.latencyMs.p99?.toFixed(2) ?? '–'}</td>
        </tr>`)}</tbody>
      </table>
      ${current.shadow === undefined ? null : html`<p>Shadow ${current.shadow.target}: ${current.shadow.sent} sent, ${current.shadow.dropped} dropped, ${current.shadow.errors} errors; agreement ${current.shadow.agreement === null ? 'not measured yet' : `${percent(current.shadow.agreement, 1)}${current.shadow.agreementInterval === null ? '' : ` (95% interval ${percent(current.shadow.agreementInterval.low95, 1)} to ${percent(current.shadow.agreementInterval.high95, 1)})`} of ${current.shadow.compared} compared`}.</p>`}`}
    <${HistoryCharts} routeKey=${view.key} noun="variant" />
  </section>`;
}

// ---- a sequence ------------------------------------------------------------------------

export function SequencePage({ view }: { view: RouteView }) {
  const steps = view.sequence?.steps ?? [];
  return html`<section>
    <h2>Steps</h2>
    <ol class="sequence" aria-label="Steps in order">
      <li class="step request"><strong>request</strong></li>
      ${steps.map((step: Step, index) => html`<li class="step">
        <span class="arrow" aria-hidden="true">→</span>
        <div class="box">
          <strong>${step.name ?? step.target}</strong>
          <div>target <${Link} href=${keyHref(step.target)}>${step.target}</${Link}></div>
          ${step.inputs === undefined ? html`<div class="muted">inputs: ${index === 0 ? 'the request' : 'the previous step\'s outputs'}</div>`
            : html`<ul class="mapping">${Object.entries(step.inputs).map(([input, from]) => html`<li>${input} ← ${from}</li>`)}</ul>`}
          ${step.postprocess === undefined ? null : html`<div class="muted">then ${step.postprocess.map((op) => String(op.op)).join(', ')}</div>`}
        </div>
      </li>`)}
    </ol>
    <${HistoryCharts} routeKey=${view.key} noun="step" />
  </section>`;
}
