/**
 * Live route changes over the route table. A change is checked (the route graph, then the
 * signatures of everything that reaches it), its new targets loaded, the document persisted,
 * and only then the new table swapped in, so a change that cannot serve changes nothing.
 * Changes run one at a time; with a shared store each runs on the newest document, and the
 * documents other replicas write are applied whole (routes and models in one new table).
 */
import type { RouteStats as RouteStatsView } from '@modelgate/client/wire';
import { checkRoutes, routeKind } from '../config/route-graph.ts';
import type { RolloutStatus, RouteSpec, SplitSpec } from '../config/schema.ts';
import { ConcurrentChangeError, InvalidRouteError, RouteConflictError, RouteNotFoundError } from '../errors.ts';
import { guardRollout, resumeRollout, startRollout, withStatus } from '../experiments/rollouts.ts';
import { RouteStats } from '../experiments/stats.ts';
import type { Plugin } from '../ops/postprocess.ts';
import { commonSignature } from '../routing/signature.ts';
import type { RouteObserver } from '../routing/split.ts';
import { buildTable, reaches, usersOf, type RouteTable } from '../routing/table.ts';
import type { Target, TargetTable } from '../routing/target.ts';
import { applyState, documentOf, entryDigest, sameContent, type ModelStateEntry, type RouteState, type StateEntry, type TenantStateEntry } from '../store/document.ts';
import { DocumentKeeper, StaleDocumentError, type Log, type SharedState } from './keeper.ts';
import { checkIfMatch } from './precondition.ts';
import { readRouteBody, readRoutePatch } from './route-bodies.ts';
import { historyOf, snapshotOf, type RouteHistory } from './route-stats.ts';
import { HISTORY_WINDOWS, type HistoryWindow } from '../experiments/history.ts';
import type { AdoptedModels, RouterOptions, RouteView } from './types.ts';

export type { SharedState } from './keeper.ts';
export type { AdoptedModels, RouterOptions, RouteView } from './types.ts';

export class Router {
  #models: ReadonlyMap<string, Target>;
  #keptModels: ReadonlyMap<string, ModelStateEntry>;
  #modelVersions: ReadonlyMap<string, number>;
  readonly #modelDigests: ReadonlyMap<string, string>;
  readonly #configured: ReadonlyMap<string, RouteSpec>;
  readonly #stats = new Map<string, RouteStats>();
  readonly #keeper: DocumentKeeper;
  readonly #log: Log;
  readonly #plugins: ReadonlyMap<string, Plugin>;
  readonly #observer: RouteObserver | undefined;
  #current: RouteTable;
  #versions: ReadonlyMap<string, number>;
  #kept: ReadonlyMap<string, StateEntry>;
  #counter: number;
  /** Live changes run one at a time. */
  #lock: Promise<unknown> = Promise.resolve();
  #adoptModels: ((entries: Readonly<Record<string, ModelStateEntry>>) => Promise<AdoptedModels>) | undefined;
  #keptTenants: ReadonlyMap<string, TenantStateEntry>;
  #adoptTenants: ((entries: Readonly<Record<string, TenantStateEntry>>) => void) | undefined;

  constructor(models: ReadonlyMap<string, Target>, configured: readonly RouteSpec[], options: RouterOptions) {
    this.#models = models;
    this.#configured = new Map(configured.map((route) => [route.key, route]));
    this.#log = options.log ?? (() => undefined);
    this.#keeper = new DocumentKeeper(options.store, options.localCopy, options.state, this.#log);
    this.#plugins = options.plugins ?? new Map();
    this.#observer = options.observer;
    let applied = applyState(configured, options.state);
    for (const key of applied.dropped) this.#log('live change dropped: the configuration file changed this route since', { route: key });
    const issues = checkRoutes(applied.routes, new Set(models.keys()), new Set(this.#plugins.keys()));
    if (issues.length > 0) {
      this.#log('state file ignored: its routes no longer fit the configuration', { issues: issues.map((issue) => `${issue.key}: ${issue.message}`) });
      applied = applyState(configured, undefined);
    }
    this.#versions = applied.versions;
    this.#kept = applied.kept;
    this.#keptModels = options.models?.kept ?? new Map();
    this.#modelVersions = options.models?.versions ?? new Map();
    this.#modelDigests = options.models?.digests ?? new Map();
    this.#keptTenants = new Map(Object.entries(options.state?.tenants ?? {}));
    this.#counter = Math.max(applied.counter, ...this.#modelVersions.values());
    this.#current = this.#build(new Map(applied.routes.map((route) => [route.key, resumeRollout(route)])));
  }

  /**
   * Runs a live model change, one at a time with every other change. With a shared store, a
   * change that loses the race to another replica is refused (409), not replayed: it has
   * loaded files and models by then.
   */
  serialized<T>(work: () => Promise<T>): Promise<T> {
    return this.#writing(work, 0);
  }

  /** How to take on the models of a shared document written by another replica. */
  adoptModelsWith(adopt: (entries: Readonly<Record<string, ModelStateEntry>>) => Promise<AdoptedModels>): void {
    this.#adoptModels = adopt;
  }

  /**
   * How to take on the tenants of a document another replica wrote; `kept` are the live tenant
   * changes that still apply to the configuration (the others are not written again).
   */
  adoptTenantsWith(kept: ReadonlyMap<string, TenantStateEntry>, adopt: (entries: Readonly<Record<string, TenantStateEntry>>) => void): void {
    this.#keptTenants = kept;
    this.#adoptTenants = adopt;
  }

  /** Persists a live tenant change with the routes' and models'; returns its version. Run inside `serialized`. */
  async changeTenant(name: string, tenant: TenantStateEntry['tenant'], base: string | null): Promise<number> {
    const version = this.#counter + 1;
    const kept = new Map(this.#keptTenants);
    kept.set(name, { base, tenant, version });
    await this.#keeper.save(documentOf(this.#kept, this.#keptModels, version, undefined, kept));
    this.#counter = version;
    this.#keptTenants = kept;
    this.#log(tenant === null ? 'tenant deleted' : 'tenant changed', { tenant: name, version });
    return version;
  }

  /** The shared document as this replica has it; undefined without a shared store. */
  sharedState(): SharedState | undefined {
    return this.#keeper.state();
  }

  /**
   * Reads the shared document and applies it when it is newer than this replica's, or re-seeds
   * the store with this replica's. Never throws: a store that does not answer is tried again
   * on the next hint or poll.
   */
  sync(): Promise<void> {
    if (!this.#keeper.shared) return Promise.resolve();
    return this.#keeper.reported(this.#exclusive(() => this.#read()));
  }

  /** The routes that target any of `keys` directly. */
  usersOf(keys: readonly string[]): string[] {
    return usersOf(this.#current.routes, keys);
  }

  /** The model targets by key, as the current table has them. */
  models(): ReadonlyMap<string, Target> {
    return this.#models;
  }

  configuredModelDigest(name: string): string | null {
    return this.#modelDigests.get(name) ?? null;
  }

  hasRoute(key: string): boolean {
    return this.#current.routes.has(key);
  }

  /** A model's version, its ETag: moves with every live change of the model. */
  modelVersion(name: string): number | undefined {
    return this.#modelVersions.get(name);
  }

  /**
   * Swaps in new model targets (a model added, replaced or removed) with the
   * routes as they are: refused (409, nothing changed) if a route would lose a
   * target. The caller has checked the new version's signature against the
   * routes that use it. Persists the change with the routes', then swaps the
   * table at once. Run inside `serialized`.
   */
  async changeModels(models: ReadonlyMap<string, Target>, name: string, model: ModelStateEntry['model'], base: string | null): Promise<number> {
    const lost = checkRoutes([...this.#current.routes.values()], new Set(models.keys()), new Set(this.#plugins.keys()));
    if (lost.length > 0) throw new RouteConflictError(`model '${name}': route '${lost[0]?.key}' depends on it (${lost[0]?.message})`);
    const table = this.#build(this.#current.routes, models);
    const version = this.#counter + 1;
    const kept = new Map(this.#keptModels);
    kept.set(name, { base, model, version });
    await this.#keeper.save(documentOf(this.#kept, kept, version, undefined, this.#keptTenants));
    this.#counter = version;
    this.#keptModels = kept;
    this.#modelVersions = withVersion(this.#modelVersions, name, model === null ? undefined : version);
    this.#models = models;
    this.#current = table;
    this.#log(model === null ? 'model deleted' : 'model changed', { model: name, version });
    return version;
  }

  /** Reads the shared document; applies it when newer, re-seeds the store when it holds an older one or none. */
  #read(): Promise<void> {
    return this.#keeper.read((document) => this.#adopt(document), () => documentOf(this.#kept, this.#keptModels, this.#keeper.version, this.#keeper.savedAt, this.#keptTenants));
  }

  /**
   * Applies a complete document written by another replica: its models (files checked, new
   * versions loaded), then its routes, swapped in with one table. One that does not fit this
   * replica (a file it lacks, routes its models cannot serve) is not applied at all.
   */
  async #adopt(document: RouteState): Promise<void> {
    let adopted: AdoptedModels | undefined;
    if (!sameContent(document.models ?? {}, Object.fromEntries(this.#keptModels)) && this.#adoptModels !== undefined) {
      adopted = await this.#adoptModels(document.models ?? {});
    }
    const models = adopted?.targets ?? this.#models;
    const applied = applyState([...this.#configured.values()], document);
    const issues = checkRoutes(applied.routes, new Set(models.keys()), new Set(this.#plugins.keys()));
    if (issues.length > 0) {
      this.#log('shared configuration not applied: its routes do not fit this replica', { version: document.counter, issues: issues.map((issue) => `${issue.key}: ${issue.message}`) });
      return;
    }
    const routes = new Map(applied.routes.map((route) => [route.key, resumeRollout(route)]));
    const table = this.#build(routes, models);
    for (const [key, route] of routes) {
      if (!sameContent(this.#current.routes.get(key), route)) this.#statsFor(key).reset();
    }
    for (const key of this.#current.routes.keys()) if (!routes.has(key)) this.#stats.delete(key);
    this.#versions = applied.versions;
    this.#kept = applied.kept;
    if (adopted !== undefined) {
      this.#models = adopted.targets;
      this.#keptModels = adopted.kept;
      this.#modelVersions = adopted.versions;
    }
    if (!sameContent(document.tenants ?? {}, Object.fromEntries(this.#keptTenants))) {
      this.#keptTenants = new Map(Object.entries(document.tenants ?? {}));
      this.#adoptTenants?.(document.tenants ?? {});
    }
    this.#counter = Math.max(this.#counter, document.counter);
    this.#current = table;
    this.#log('shared configuration applied', { version: document.counter });
    // What the document dropped goes first, with the swap, then the local copy is written.
    await adopted?.retire();
    await this.#keeper.held(document);
  }

  /** The current snapshot. */
  table(): TargetTable {
    return this.#current.targets;
  }

  /**
   * Checks every route's targets agree; for start-up. A target that cannot say
   * (a remote server down) does not stop the start: requests will say why.
   */
  async verify(): Promise<void> {
    for (const key of this.#current.routes.keys()) {
      try {
        await this.#verify(this.#current, [key]);
      } catch (error) {
        if (!(error instanceof RouteConflictError)) throw error;
        this.#log('route not verified at start-up: a target is unavailable', { route: key, reason: error.message });
      }
    }
  }

  list(): RouteView[] {
    return [...this.#current.routes.keys()].map((key) => this.get(key));
  }

  get(key: string): RouteView {
    const route = this.#current.routes.get(key);
    if (route === undefined) throw new RouteNotFoundError(key);
    return { key, kind: routeKind(route), version: this.#versions.get(key) as number, route };
  }

  stats(key: string): RouteStatsView {
    const view = this.get(key);
    return { key, version: view.version, ...snapshotOf(view.route, this.#statsFor(key)) };
  }

  /** The route's history: its nodes' last `last` buckets of `window`. */
  history(key: string, window: HistoryWindow, last: number): { key: string; window: HistoryWindow; bucketSeconds: number } & RouteHistory {
    const view = this.get(key);
    return { key, window, bucketSeconds: HISTORY_WINDOWS[window].ms / 1000, ...historyOf(view.route, this.#statsFor(key), window, last) };
  }

  resetStats(key: string): void {
    this.get(key);
    this.#statsFor(key).reset();
  }

  /** Creates or replaces a route. */
  put(key: string, body: unknown, ifMatch: string | undefined): Promise<{ created: boolean; view: RouteView }> {
    return this.#writing(async () => {
      this.#checkPrecondition(key, ifMatch);
      const created = !this.#current.routes.has(key);
      const route = startRollout({ key, ...(readRouteBody(body)) });
      guardRollout(this.#current.routes.get(key), route);
      const view = await this.#change(key, route);
      return { created, view };
    });
  }

  /** Changes some fields of a route's definition (e.g. the split's variants and weights). */
  patch(key: string, body: unknown, ifMatch: string | undefined): Promise<RouteView> {
    return this.#writing(async () => {
      const current = this.get(key).route;
      this.#checkPrecondition(key, ifMatch);
      const changes = readRoutePatch(body);
      if (changes.split !== undefined && current.split === undefined) {
        throw new InvalidRouteError(`route '${key}' is a ${routeKind(current)}: a patch changes a split's fields only (PUT replaces any route)`);
      }
      const merged = current.split === undefined ? {} : { split: { ...current.split, ...changes.split } };
      let route: RouteSpec = { key, ...(readRouteBody(merged)) };
      // A patch that brings a rollout starts it; one that does not keeps the rollout as it stands.
      if (changes.split?.rollout !== undefined) route = startRollout(route);
      guardRollout(current, changes.split?.rollout === undefined ? { ...route, split: { ...(route.split as SplitSpec), rollout: undefined } } : route);
      return this.#change(key, route);
    });
  }

  remove(key: string, ifMatch: string | undefined): Promise<void> {
    return this.#writing(async () => {
      this.get(key);
      this.#checkPrecondition(key, ifMatch);
      const routes = new Map(this.#current.routes);
      routes.delete(key);
      const users = usersOf(routes, [key]);
      if (users.length > 0) throw new RouteConflictError(`route '${key}' is a target of ${users.map((user) => `'${user}'`).join(', ')}`);
      await this.#commit(key, routes, null);
    });
  }

  /**
   * Moves a route's rollout to the status `next` computes from the route as it
   * is now (undefined: stay). A move is a live change: persisted, and a new
   * statistics window, so each step is judged on its own requests.
   */
  updateRollout(key: string, next: (route: RouteSpec) => RolloutStatus | undefined): Promise<RolloutStatus | undefined> {
    // Looked at often (every 100 ms per progressing rollout): a look that moves nothing costs no store round trip.
    const now = this.#current.routes.get(key);
    if (now?.split?.rollout === undefined || next(now) === undefined) return Promise.resolve(undefined);
    return this.#writing(async () => {
      const route = this.#current.routes.get(key);
      if (route?.split?.rollout === undefined) return undefined;
      const status = next(route);
      if (status === undefined) return undefined;
      const routes = new Map(this.#current.routes);
      const changed = withStatus(route, status);
      routes.set(key, changed);
      await this.#commit(key, routes, changed);
      return status;
    });
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(work);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs a change: with a shared store, on the newest document (read first, so an If-Match
   * is checked against what every replica sees), and again on the newer one, up to `retries`
   * times, when another replica's write came between.
   */
  #writing<T>(work: () => Promise<T>, retries = 3): Promise<T> {
    return this.#exclusive(async () => {
      if (!this.#keeper.shared) return work();
      await this.#read();
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await work();
        } catch (error) {
          if (!(error instanceof StaleDocumentError)) throw error;
          if (attempt >= retries) throw new ConcurrentChangeError('another replica changed the configuration at the same moment; nothing changed here: try again');
          await this.#read();
        }
      }
    });
  }

  #checkPrecondition(key: string, ifMatch: string | undefined): void {
    checkIfMatch(`route '${key}'`, this.#versions.get(key), ifMatch);
  }

  async #change(key: string, route: RouteSpec): Promise<RouteView> {
    const routes = new Map(this.#current.routes);
    routes.set(key, route);
    const issues = checkRoutes([...routes.values()], new Set(this.#models.keys()), new Set(this.#plugins.keys()));
    if (issues.length > 0) {
      const message = issues.map((issue) => `${issue.key === key ? '' : `route '${issue.key}': `}${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`).join('; ');
      // A cycle conflicts with the routes there are; anything else is wrong in the body itself.
      throw issues.every((issue) => issue.cycle === true) ? new RouteConflictError(message) : new InvalidRouteError(message);
    }
    const table = this.#build(routes);
    // Everything that reaches the changed route may see a different signature.
    await this.#verify(table, [...routes.keys()].filter((other) => reaches(routes, other, key)), key);
    await this.#commit(key, routes, route, table);
    return this.get(key);
  }

  /** Persists, then swaps the new table in. */
  async #commit(key: string, routes: Map<string, RouteSpec>, route: RouteSpec | null, table = this.#build(routes)): Promise<void> {
    const version = this.#counter + 1;
    const entry: StateEntry = { base: entryDigest(this.#configured.get(key)), route, version };
    const kept = new Map(this.#kept);
    kept.set(key, entry);
    await this.#keeper.save(documentOf(kept, this.#keptModels, version, undefined, this.#keptTenants));
    this.#counter = version;
    this.#kept = kept;
    this.#versions = withVersion(this.#versions, key, route === null ? undefined : version);
    this.#current = table;
    if (route === null) this.#stats.delete(key);
    else this.#statsFor(key).reset();
    this.#log(route === null ? 'route deleted' : 'route changed', { route: key, version });
  }

  /**
   * Checks the signatures of `keys`' targets agree (from model files where they
   * can be read, without loads) and loads the targets of the `changed` route; a
   * failure changes nothing.
   */
  async #verify(table: RouteTable, keys: readonly string[], changed?: string): Promise<void> {
    for (const key of keys) {
      const target = table.targets.get(key) as Target;
      const spec = table.routes.get(key);
      try {
        if (key === changed) await target.prepare();
        const signature = await target.signature();
        const shadow = spec?.split?.shadow;
        if (shadow !== undefined) {
          commonSignature([signature, await (table.targets.get(shadow.target) as Target).signature()], [key, shadow.target]);
        }
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== undefined && status >= 500) {
          throw new RouteConflictError(`route '${key}' cannot serve: ${(error as Error).message}`);
        }
        throw new InvalidRouteError(`route '${key}': ${spec?.split === undefined ? '' : 'variants disagree: '}${(error as Error).message}`);
      }
    }
  }

  #build(routes: ReadonlyMap<string, RouteSpec>, models = this.#models): RouteTable {
    return buildTable(routes, models, { stats: (key) => this.#statsFor(key), plugins: this.#plugins, observer: this.#observer });
  }

  #statsFor(key: string): RouteStats {
    let stats = this.#stats.get(key);
    if (stats === undefined) {
      stats = new RouteStats();
      this.#stats.set(key, stats);
    }
    return stats;
  }
}

/** `versions` with `key` at `version`, or without it (undefined: deleted). */
function withVersion(versions: ReadonlyMap<string, number>, key: string, version: number | undefined): Map<string, number> {
  const next = new Map(versions);
  if (version === undefined) next.delete(key);
  else next.set(key, version);
  return next;
}
