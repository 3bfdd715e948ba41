/**
 * The operator console: keys, models and experiments, from the admin API and the V2
 * endpoints of the gateway that serves it. Routes: /console (every key) and
 * /console/keys/{key} (one key); both show the sign-in first and come back to themselves.
 */
import { html, render } from 'htm/preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import {
  admin, ApiError, learnRole, may, READ_ONLY, signIn, signOut, token, rememberApiKey, v2, type Role,
  type Capacity, type ModelList, type ModelMetadata, type ModelStatus, type RouteView,
} from './api.ts';
import { currentKey, keyHref, Link, messageOf, Problem, REFRESH_MS, usePolling } from './common.ts';
import { GraphPage, routeSummary } from './graphs.ts';
import { SequencePage, SplitPage } from './routes.ts';

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
          <td>${row.model !== undefined ? row.model.name : row.route === undefined ? '' : routeSummary(row.route)}</td>
          <td>${row.model === undefined ? '' : html`<span class=${`state state-${row.model.state}`}>${stateText(row.model)}</span>`}</td>
          <td>${row.model?.inFlight ?? ''}</td>
          <td>${row.model === undefined || row.model.state === 'remote' || row.key !== row.model.keys[0] ? '' : html`
            <button type="button" disabled=${busy !== undefined || row.model.state === 'resident' || !may('operate')} title=${may('operate') ? undefined : READ_ONLY} aria-label=${`Load ${row.model.name}`} onClick=${() => act((row.model as ModelStatus).name, 'load')}>Load</button>
            <button type="button" disabled=${busy !== undefined || row.model.state !== 'resident' || !may('operate')} title=${may('operate') ? undefined : READ_ONLY} aria-label=${`Unload ${row.model.name}`} onClick=${() => act((row.model as ModelStatus).name, 'unload')}>Unload</button>`}</td>
        </tr>`)}
      </tbody>
    </table>
  </main>`;
}

// ---- a model ---------------------------------------------------------------------------

const exampleShape = (shape: readonly number[]) => shape.map((dimension) => (dimension < 0 ? 1 : dimension));

function ModelPage({ modelKey }: { modelKey: string }) {
  const [metadata, setMetadata] = useState<ModelMetadata | undefined>(undefined);
  const [inputs, setInputs] = useState<Record<string, { shape: string; data: string }>>({});
  const [answer, setAnswer] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  // With tenants, the data plane wants an API key (401), or another one (403): asked for, then tried again.
  const [needsKey, setNeedsKey] = useState(false);
  const [keyAttempt, setKeyAttempt] = useState(0);
  const [typedKey, setTypedKey] = useState('');
  const refused = (failure: unknown) => {
    setNeedsKey(failure instanceof ApiError && (failure.status === 401 || failure.status === 403));
    setError(messageOf(failure));
  };
  useEffect(() => {
    v2<ModelMetadata>('GET', `/v2/models/${encodeURIComponent(modelKey)}`).then((response) => {
      setNeedsKey(false);
      setError(undefined);
      setMetadata(response.body);
      setInputs(Object.fromEntries(response.body.inputs.map((input) => {
        const shape = exampleShape(input.shape);
        const count = shape.reduce((a, b) => a * b, 1);
        const zero = input.datatype === 'BYTES' ? '""' : input.datatype === 'BOOL' ? 'false' : '0';
        return [input.name, { shape: JSON.stringify(shape), data: `[${new Array(Math.min(count, 64)).fill(zero).join(', ')}]` }];
      })));
    }, refused);
  }, [modelKey, keyAttempt]);
  const giveKey = (event: Event) => {
    event.preventDefault();
    rememberApiKey(typedKey);
    setTypedKey('');
    setKeyAttempt(keyAttempt + 1);
  };
  const keyForm = html`<form class="api-key" onSubmit=${giveKey}>
    <p>This gateway has tenants: its data plane answers a tenant's API key.</p>
    <label for="api-key">API key</label>
    <input id="api-key" type="password" autocomplete="off" value=${typedKey} onInput=${(event: Event) => setTypedKey((event.target as HTMLInputElement).value)} />
    <button type="submit">Use this key</button>
  </form>`;
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
      refused(failure);
    }
  };
  if (metadata === undefined) return html`<section><${Problem} error=${error} />${needsKey ? keyForm : null}</section>`;
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
    ${needsKey ? keyForm : null}
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
    ${route?.kind === 'ensemble' || route?.kind === 'switch' || route?.kind === 'cascade' ? html`<${GraphPage} view=${route} />` : null}
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
    setRole(undefined);
  };
  // The token's role decides which controls work; nothing renders until it is known.
  const [role, setRole] = useState<Role | undefined>(undefined);
  useEffect(() => {
    if (!signedIn) return;
    learnRole().then(setRole, (failure: unknown) => {
      if (failure instanceof ApiError && failure.status === 401) unauthorized();
      else setRole('read');
    });
  }, [signedIn]);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  if (role === undefined) return html`<main><p class="muted">Signing in…</p></main>`;
  return html`<div>
    <header>
      <${Link} href="/console"><span class="brand">modelgate</span></${Link}>
      ${role === 'read' ? html`<span class="badge" title=${READ_ONLY}>read-only</span>` : null}
      <button type="button" class="link" onClick=${unauthorized}>Sign out</button>
    </header>
    ${key === undefined ? html`<${Keys} onUnauthorized=${unauthorized} />` : html`<${KeyPage} key=${key} keyName=${key} onUnauthorized=${unauthorized} />`}
  </div>`;
}

render(html`<${App} />`, document.getElementById('app') as HTMLElement);
