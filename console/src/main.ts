/**
 * The operator console: keys, models and experiments, from the admin API and the V2
 * endpoints of the gateway that serves it. Routes: /console (every key) and
 * /console/keys/{key} (one key); both show the sign-in first and come back to themselves.
 */
import { html, render } from 'htm/preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import {
  admin, ApiError, signIn, signOut, token, v2,
  type Capacity, type ModelList, type ModelMetadata, type ModelStatus, type RouteStats, type RouteView, type Split, type Step,
} from './api.ts';
import { IntervalBar, LineChart, percent, type Series } from './charts.ts';

const REFRESH_MS = 3000;

// ---- navigation -------------------------------------------------------------

function currentKey(): string | undefined {
  const match = /^\/console\/keys\/([^/]+)\/?$/.exec(location.pathname);
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1]);
}

function go(path: string): void {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}

function Link({ href, children }: { href: string; children: unknown }) {
  return html`<a href=${href} onClick=${(event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    go(href);
  }}>${children}</a>`;
}

const keyHref = (key: string) => `/console/keys/${encodeURIComponent(key)}`;

/** Calls `work` now and every `ms` while mounted; `deps` restart it. */
function usePolling(work: () => Promise<void>, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const tick = async () => {
      await work().catch(() => undefined);
      if (!stopped) timer = window.setTimeout(tick, ms);
    };
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, deps);
}

function Problem({ error }: { error: string | undefined }) {
  return error === undefined ? null : html`<p class="problem" role="alert">${error}</p>`;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

// ---- sign-in ------------------------------------------------------------------

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const field = (event.target as HTMLFormElement).elements.namedItem('token') as HTMLInputElement;
    setBusy(true);
    signIn(field.value);
    try {
      await admin('GET', '/admin/models');
      onSignedIn();
    } catch (failure) {
      signOut();
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>modelgate console</h1>
    <form onSubmit=${submit}>
      <label for="token">Admin token</label>
      <input id="token" name="token" type="password" autocomplete="off" required autofocus />
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <${Problem} error=${error} />
    <p class="muted">The token is kept in this tab only (sessionStorage) and sent only as the Authorization header of admin API calls.</p>
  </main>`;
}

// ---- every key ------------------------------------------------------------------

interface Overview { models: readonly ModelStatus[]; capacity: Capacity; routes: readonly RouteView[] }

const stateText = (model: ModelStatus) => (model.state === 'unloaded' ? 'not loaded' : model.state === 'failed' ? `failed: ${model.reason ?? 'unknown reason'}` : model.state);

function Keys({ onUnauthorized }: { onUnauthorized: () => void }) {
  const [overview, setOverview] = useState<Overview | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  // What a button did wrong stays until the next action; a refresh does not clear it.
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const refresh = useCallback(async () => {
    try {
      const [models, routes] = await Promise.all([
        admin<ModelList>('GET', '/admin/models'),
        admin<{ routes: RouteView[] }>('GET', '/admin/routes'),
      ]);
      setOverview({ models: models.body.models, capacity: models.body.capacity, routes: routes.body.routes });
      setError(undefined);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) onUnauthorized();
      else setError(messageOf(failure));
    }
  }, []);
  usePolling(refresh, REFRESH_MS, []);
  const act = async (model: string, action: 'load' | 'unload') => {
    setBusy(`${action} ${model}`);
    setActionError(undefined);
    try {
      await admin('POST', `/admin/models/${encodeURIComponent(model)}/${action}`);
    } catch (failure) {
      setActionError(`${action === 'load' ? 'Load' : 'Unload'} ${model}: ${messageOf(failure)}`);
    } finally {
      setBusy(undefined);
      await refresh();
    }
  };
  if (overview === undefined) return html`<main><h1>Keys</h1><${Problem} error=${error} /><p class="muted">Loading…</p></main>`;
  const { capacity } = overview;
  const rows: Array<{ key: string; kind: string; model?: ModelStatus; route?: RouteView }> = [
    ...overview.models.flatMap((model) => model.keys.map((key) => ({ key, kind: model.state === 'remote' ? 'remote model' : 'model', model }))),
    ...overview.routes.map((route) => ({ key: route.key, kind: route.kind, route })),
  ].sort((a, b) => a.key.localeCompare(b.key));
  return html`<main>
    <h1>Keys</h1>
    <p class="capacity">Resident models: <strong>${capacity.residentModels}</strong>${capacity.maxResidentModels === null ? ' (no cap)' : html` of <strong>${capacity.maxResidentModels}</strong>`}
      ${capacity.maxResidentBytes === null ? '' : ` · ${(capacity.residentBytes / 1048576).toFixed(1)} of ${(capacity.maxResidentBytes / 1048576).toFixed(1)} MiB`}
      ${capacity.maxResidentModels === null ? '' : html` <meter min="0" max=${capacity.maxResidentModels} value=${capacity.residentModels} aria-label="Resident models of the cap"></meter>`}</p>
    <${Problem} error=${error} />
    <${Problem} error=${actionError} />
    <table>
      <thead><tr><th scope="col">Key</th><th scope="col">Kind</th><th scope="col">Model or targets</th><th scope="col">State</th><th scope="col">In flight</th><th scope="col">Actions</th></tr></thead>
      <tbody>
        ${rows.map((row) => html`<tr>
          <th scope="row"><${Link} href=${keyHref(row.key)}>${row.key}</${Link}></th>
          <td>${row.kind}</td>
          <td>${row.model !== undefined ? row.model.name : row.route?.split !== undefined ? row.route.split.variants.map((variant) => `${variant.target} ${variant.weight}`).join(' · ') : row.route?.sequence?.steps.map((step) => step.target).join(' → ')}</td>
          <td>${row.model === undefined ? '' : html`<span class=${`state state-${row.model.state}`}>${stateText(row.model)}</span>`}</td>
          <td>${row.model?.inFlight ?? ''}</td>
          <td>${row.model === undefined || row.model.state === 'remote' || row.key !== row.model.keys[0] ? '' : html`
            <button type="button" disabled=${busy !== undefined || row.model.state === 'resident'} aria-label=${`Load ${row.model.name}`} onClick=${() => act((row.model as ModelStatus).name, 'load')}>Load</button>
            <button type="button" disabled=${busy !== undefined || row.model.state !== 'resident'} aria-label=${`Unload ${row.model.name}`} onClick=${() => act((row.model as ModelStatus).name, 'unload')}>Unload</button>`}</td>
        </tr>`)}
      </tbody>
    </table>
  </main>`;
}

// ---- a split -------------------------------------------------------------------------

function describeDifference(first: string, target: string, difference: { value: number; low95: number; high95: number }): string {
  const span = `${percent(difference.value)} (95% interval ${percent(difference.low95)} to ${percent(difference.high95)})`;
  if (difference.low95 > 0) return `${span}: higher than ${first}; the interval excludes zero.`;
  if (difference.high95 < 0) return `${span}: lower than ${first}; the interval excludes zero.`;
  return `${span}: not yet distinguishable from ${first}; the interval includes zero.`;
}

function SplitPage({ view, onChanged }: { view: RouteView; onChanged: (view: RouteView) => void }) {
  const split = view.split as Split;
  const [weights, setWeights] = useState<number[]>(split.variants.map((variant) => variant.weight));
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [stats, setStats] = useState<RouteStats | undefined>(undefined);
  const latency = useRef<Map<string, Array<[number, number]>>>(new Map());
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
    const now = Date.now();
    for (const variant of answer.body.sinceChange.variants) {
      if (variant.latencyMs.p95 === null) continue;
      const points = latency.current.get(variant.target) ?? [];
      points.push([now, variant.latencyMs.p95]);
      latency.current.set(variant.target, points.slice(-120));
    }
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
  const maxRate = Math.max(0.01, ...(current?.variants.map((variant) => variant.errorRate?.high95 ?? 0) ?? []));
  const series: Series[] = [...latency.current].map(([name, points]) => ({ name: `${name} p95`, points }));
  const status = split.rollout?.status;
  return html`<section>
    <h2>Weights</h2>
    <form class="weights" onSubmit=${save}>
      ${split.variants.map((variant, index) => html`<div class="field">
        <label for=${`weight-${index}`}>${variant.target}</label>
        <input id=${`weight-${index}`} type="number" min="0" step="any" required value=${weights[index]}
          onInput=${(event: Event) => setWeights(weights.map((weight, at) => (at === index ? Number((event.target as HTMLInputElement).value) : weight)))} />
      </div>`)}
      <button type="submit">Save</button>
    </form>
    <p class="muted">Version ${view.version}${split.stickyHeader === undefined ? '' : ` · sticky by ${split.stickyHeader}`}${split.shadow === undefined ? '' : ` · shadow to ${split.shadow.target}`}</p>
    ${message === undefined ? null : html`<p class="ok" role="status">${message}</p>`}
    <${Problem} error=${error} />
    ${split.rollout === undefined ? null : html`<h2>Rollout</h2>
      <p>Candidate <strong>${split.rollout.candidate}</strong>: ${status?.state.replace('_', ' ') ?? 'starting'}${status === undefined ? '' : `, step ${status.step + 1} of ${split.rollout.steps.length} (${status.weight}% of traffic)`}${status?.reason === undefined ? '' : `: ${status.reason}`}</p>
      <p class="muted">Steps: ${split.rollout.steps.map((step) => `${step}%`).join(' → ')}</p>
      <div class="buttons">
        <button type="button" disabled=${status?.state !== 'progressing'} onClick=${() => rollout('pause')}>Pause</button>
        <button type="button" disabled=${status?.state !== 'paused'} onClick=${() => rollout('resume')}>Resume</button>
        <button type="button" disabled=${status?.state !== 'progressing' && status?.state !== 'paused'} onClick=${() => rollout('abort')}>Abort</button>
      </div>`}
    <h2>Since the last change</h2>
    ${current === undefined ? html`<p class="muted">Loading statistics…</p>` : html`
      <p class="muted">Since ${new Date(current.since).toLocaleString()}, refreshed every ${REFRESH_MS / 1000} s.</p>
      <table class="stats">
        <thead><tr><th scope="col">Variant</th><th scope="col">Requests</th><th scope="col">Errors</th><th scope="col">Error rate (95% interval)</th><th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">p99 ms</th></tr></thead>
        <tbody>${current.variants.map((variant) => html`<tr>
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
      ${current.shadow === undefined ? null : html`<p>Shadow ${current.shadow.target}: ${current.shadow.sent} sent, ${current.shadow.dropped} dropped, ${current.shadow.errors} errors; agreement ${current.shadow.agreement === null ? 'not measured yet' : `${percent(current.shadow.agreement, 1)}${current.shadow.agreementInterval === null ? '' : ` (95% interval ${percent(current.shadow.agreementInterval.low95, 1)} to ${percent(current.shadow.agreementInterval.high95, 1)})`} of ${current.shadow.compared} compared`}.</p>`}
      <h2>Latency over time</h2>
      <${LineChart} series=${series} label=${`p95 latency in ms of each variant since the last change, sampled every ${REFRESH_MS / 1000} s`} />`}
  </section>`;
}

// ---- a sequence ------------------------------------------------------------------------

function SequencePage({ view }: { view: RouteView }) {
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
  </section>`;
}

// ---- a model ---------------------------------------------------------------------------

const exampleShape = (shape: readonly number[]) => shape.map((dimension) => (dimension < 0 ? 1 : dimension));

function ModelPage({ modelKey }: { modelKey: string }) {
  const [metadata, setMetadata] = useState<ModelMetadata | undefined>(undefined);
  const [inputs, setInputs] = useState<Record<string, { shape: string; data: string }>>({});
  const [answer, setAnswer] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    v2<ModelMetadata>('GET', `/v2/models/${encodeURIComponent(modelKey)}`).then((response) => {
      setMetadata(response.body);
      setInputs(Object.fromEntries(response.body.inputs.map((input) => {
        const shape = exampleShape(input.shape);
        const count = shape.reduce((a, b) => a * b, 1);
        const zero = input.datatype === 'BYTES' ? '""' : input.datatype === 'BOOL' ? 'false' : '0';
        return [input.name, { shape: JSON.stringify(shape), data: `[${new Array(Math.min(count, 64)).fill(zero).join(', ')}]` }];
      })));
    }, (failure: unknown) => setError(messageOf(failure)));
  }, [modelKey]);
  const send = async (event: Event) => {
    event.preventDefault();
    setError(undefined);
    setAnswer(undefined);
    try {
      const body = {
        inputs: (metadata?.inputs ?? []).map((input) => {
          const given = inputs[input.name] ?? { shape: '[]', data: '[]' };
          let shape: unknown;
          let data: unknown;
          try {
            shape = JSON.parse(given.shape);
            data = JSON.parse(given.data);
          } catch {
            throw new Error(`${input.name}: shape and data must be JSON arrays`);
          }
          return { name: input.name, datatype: input.datatype, shape, data };
        }),
      };
      const response = await v2<unknown>('POST', `/v2/models/${encodeURIComponent(modelKey)}/infer`, body);
      setAnswer(JSON.stringify(response.body, null, 2));
    } catch (failure) {
      setError(messageOf(failure));
    }
  };
  if (metadata === undefined) return html`<section><${Problem} error=${error} /></section>`;
  const tensorRows = (tensors: ModelMetadata['inputs']) => tensors.map((tensor) => html`<tr><th scope="row">${tensor.name}</th><td>${tensor.datatype}</td><td>[${tensor.shape.join(', ')}]</td></tr>`);
  return html`<section>
    <h2>Inputs</h2>
    <table><thead><tr><th scope="col">Name</th><th scope="col">Datatype</th><th scope="col">Shape</th></tr></thead><tbody>${tensorRows(metadata.inputs)}</tbody></table>
    <h2>Outputs</h2>
    <table><thead><tr><th scope="col">Name</th><th scope="col">Datatype</th><th scope="col">Shape</th></tr></thead><tbody>${tensorRows(metadata.outputs)}</tbody></table>
    <h2>Try a request</h2>
    <form class="try" onSubmit=${send}>
      ${metadata.inputs.map((input) => html`<fieldset>
        <legend>${input.name} (${input.datatype})</legend>
        <label for=${`shape-${input.name}`}>Shape of ${input.name}</label>
        <input id=${`shape-${input.name}`} value=${inputs[input.name]?.shape ?? ''} onInput=${(event: Event) => setInputs({ ...inputs, [input.name]: { ...(inputs[input.name] ?? { data: '[]' }), shape: (event.target as HTMLInputElement).value } })} />
        <label for=${`data-${input.name}`}>Data of ${input.name}</label>
        <textarea id=${`data-${input.name}`} rows="3" value=${inputs[input.name]?.data ?? ''} onInput=${(event: Event) => setInputs({ ...inputs, [input.name]: { ...(inputs[input.name] ?? { shape: '[]' }), data: (event.target as HTMLTextAreaElement).value } })}></textarea>
      </fieldset>`)}
      <button type="submit">Send request</button>
    </form>
    <${Problem} error=${error} />
    ${answer === undefined ? null : html`<h3>Answer</h3><pre class="answer" aria-label="Answer">${answer}</pre>`}
  </section>`;
}

// ---- one key --------------------------------------------------------------------------

function KeyPage({ keyName, onUnauthorized }: { keyName: string; onUnauthorized: () => void }) {
  const [route, setRoute] = useState<RouteView | null | undefined>(undefined);
  const [model, setModel] = useState<ModelStatus | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  usePolling(async () => {
    try {
      const answer = await admin<RouteView>('GET', `/admin/routes/${encodeURIComponent(keyName)}`);
      setRoute(answer.body);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) return onUnauthorized();
      if (!(failure instanceof ApiError && failure.status === 404)) return setError(messageOf(failure));
      setRoute(null);
      const models = await admin<{ models: ModelStatus[] }>('GET', '/admin/models');
      const found = models.body.models.find((candidate) => candidate.keys.includes(keyName));
      setModel(found);
      if (found === undefined) setError(`No model, split or sequence is served under the key '${keyName}'.`);
    }
  }, REFRESH_MS, [keyName]);
  const kind = route?.kind ?? (model === undefined ? undefined : model.state === 'remote' ? 'remote model' : 'model');
  return html`<main>
    <p><${Link} href="/console">← Every key</${Link}></p>
    <h1>${keyName}${kind === undefined ? '' : html` <small class="kind">${kind}</small>`}</h1>
    ${model === undefined ? null : html`<p>Model <strong>${model.name}</strong>: <span class=${`state state-${model.state}`}>${stateText(model)}</span>, ${model.inFlight} in flight, ${model.loads} loads, ${model.evictions} evictions.</p>`}
    <${Problem} error=${error} />
    ${route?.kind === 'split' ? html`<${SplitPage} view=${route} onChanged=${setRoute} />` : null}
    ${route?.kind === 'sequence' ? html`<${SequencePage} view=${route} />` : null}
    ${route === null && model !== undefined ? html`<${ModelPage} modelKey=${keyName} />` : null}
  </main>`;
}

// ---- the shell -------------------------------------------------------------------------

function App() {
  const [signedIn, setSignedIn] = useState(token() !== null);
  const [key, setKey] = useState(currentKey());
  useEffect(() => {
    const moved = () => setKey(currentKey());
    addEventListener('popstate', moved);
    return () => removeEventListener('popstate', moved);
  }, []);
  useEffect(() => {
    document.title = key === undefined ? 'Keys · modelgate' : `${key} · modelgate`;
  }, [key]);
  const unauthorized = () => {
    signOut();
    setSignedIn(false);
  };
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<div>
    <header>
      <${Link} href="/console"><span class="brand">modelgate</span></${Link}>
      <button type="button" class="link" onClick=${unauthorized}>Sign out</button>
    </header>
    ${key === undefined ? html`<${Keys} onUnauthorized=${unauthorized} />` : html`<${KeyPage} key=${key} keyName=${key} onUnauthorized=${unauthorized} />`}
  </div>`;
}

render(html`<${App} />`, document.getElementById('app') as HTMLElement);
