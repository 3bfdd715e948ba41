/**
 * The route table and its live changes. A table is an immutable snapshot of
 * targets by key; a change builds a new one, loads its new targets, persists
 * it, then swaps it in at once. A request keeps the snapshot it started with.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Type } from '@sinclair/typebox';
import { displayPath } from '../config/pointer.ts';
import { SequenceSchema, SplitSchema, type RolloutStatus, type RouteSpec, type SequenceSpec, type SplitSpec } from '../config/schema.ts';
import { ConcurrentChangeError, InvalidRouteError, PreconditionFailedError, RouteConflictError, RouteNotFoundError } from '../errors.ts';
import type { ConfigStore } from '../store/store.ts';
import { checkRoutes, routeTargets } from '../config/route-graph.ts';
import { commonSignature } from '../routing/signature.ts';
import type { RouteObserver } from '../routing/split.ts';
import type { Plugin } from '../ops/postprocess.ts';
import { SequenceTarget } from '../routing/sequence.ts';
import { SplitTarget } from '../routing/split.ts';
import { applyState, ifMatchHolds, routeDigest, type ModelStateEntry, type RouteState, type StateEntry } from '../store/state-file.ts';
import { guardRollout, resumeRollout, startRollout, withStatus } from '../experiments/rollouts.ts';
import { RouteStats } from '../experiments/stats.ts';
import type { Target, TargetTable } from '../routing/target.ts';

/** A route as the admin API shows it. */
export interface RouteView {
  readonly key: string;
  readonly kind: 'split' | 'sequence';
  readonly version: number;
  readonly route: RouteSpec;
}

const routeBody = TypeCompiler.Compile(Type.Object({
  split: Type.Optional(SplitSchema),
  sequence: Type.Optional(SequenceSchema),
}, { additionalProperties: false }));
const patchBody = TypeCompiler.Compile(Type.Object({
  split: Type.Optional(Type.Partial(SplitSchema)),
}, { additionalProperties: false }));

export interface RouterOptions {
  /**
   * Where live changes are kept: the state file, or Redis shared with other replicas (every
   * write a compare-and-swap of the whole document there). Undefined: in memory only.
   */
  readonly store: ConfigStore | undefined;
  /** With a shared store, where this replica keeps its last applied document, for a restart while the store is down. */
  readonly localCopy?: ConfigStore | undefined;
  readonly state?: RouteState | undefined;
  /** Called for live-change events worth a log line. */
  readonly log?: (message: string, details: Record<string, unknown>) => void;
  /** Post-processing plugins, loaded at start-up. */
  readonly plugins?: ReadonlyMap<string, Plugin>;
  /** Told of every split decision and shadow copy, for metrics. */
  readonly observer?: RouteObserver;
  /** Live model changes kept in the state file, and every model's version (its ETag). */
  readonly models?: {
    readonly kept: ReadonlyMap<string, ModelStateEntry>;
    readonly versions: ReadonlyMap<string, number>;
    /** Digests of the models as the configuration file has them, the base of live changes. */
    readonly digests: ReadonlyMap<string, string>;
  };
}

/** Models as a shared document has them, ready to swap in with its routes. */
export interface AdoptedModels {
  readonly targets: ReadonlyMap<string, Target>;
  readonly kept: ReadonlyMap<string, ModelStateEntry>;
  readonly versions: ReadonlyMap<string, number>;
  /** Frees what the document dropped; called once the new table is in. */
  readonly retire: () => Promise<void>;
}

/** The shared document moved on since this replica last read it: the write did not happen. */
class StaleDocumentError extends Error {}

/** What metrics show of the shared document. */
export interface SharedState {
  readonly up: boolean;
  /** Version of the document this replica serves (0: none yet). */
  readonly version: number;
  /** When that version was written, ms since the epoch (undefined: not known). */
  readonly savedAt: number | undefined;
}

export class Router {
  #models: ReadonlyMap<string, Target>;
  #keptModels: ReadonlyMap<string, ModelStateEntry>;
  #modelVersions: ReadonlyMap<string, number>;
  readonly #modelDigests: ReadonlyMap<string, string>;
  readonly #configured: ReadonlyMap<string, RouteSpec>;
  readonly #stats = new Map<string, RouteStats>();
  readonly #store: ConfigStore | undefined;
  readonly #localCopy: ConfigStore | undefined;
  readonly #log: NonNullable<RouterOptions['log']>;
  readonly #plugins: ReadonlyMap<string, Plugin>;
  readonly #observer: RouteObserver | undefined;
  #routes: ReadonlyMap<string, RouteSpec>;
  #versions: ReadonlyMap<string, number>;
  #kept: ReadonlyMap<string, StateEntry>;
  #counter: number;
  #table: TargetTable;
  /** Live changes run one at a time. */
  #lock: Promise<unknown> = Promise.resolve();
  /** Version of the document this replica holds: the last it applied or wrote. */
  #documentVersion: number;
  #savedAt: number | undefined;
  /** The version the shared store held when last read or written: what a write expects to replace (every write reads it first). */
  #storedVersion = 0;
  /** Since when the shared store has not answered a read (undefined: it answers). */
  #unreadSince: number | undefined;
  #adoptModels: ((entries: Readonly<Record<string, ModelStateEntry>>) => Promise<AdoptedModels>) | undefined;

  constructor(models: ReadonlyMap<string, Target>, configured: readonly RouteSpec[], options: RouterOptions) {
    this.#models = models;
    this.#configured = new Map(configured.map((route) => [route.key, route]));
    this.#store = options.store;
    this.#localCopy = options.localCopy;
    this.#documentVersion = options.state?.counter ?? 0;
    this.#savedAt = savedAtOf(options.state);
    this.#log = options.log ?? (() => undefined);
    this.#plugins = options.plugins ?? new Map();
    this.#observer = options.observer;
    let applied = applyState(configured, options.state);
    for (const key of applied.dropped) this.#log('live change dropped: the configuration file changed this route since', { route: key });
    const issues = checkRoutes(applied.routes, new Set(models.keys()), new Set(this.#plugins.keys()));
    if (issues.length > 0) {
      this.#log('state file ignored: its routes no longer fit the configuration', { issues: issues.map((issue) => `${issue.key}: ${issue.message}`) });
      applied = applyState(configured, undefined);
    }
    this.#routes = new Map(applied.routes.map((route) => [route.key, resumeRollout(route)]));
    this.#versions = applied.versions;
    this.#kept = applied.kept;
    this.#keptModels = options.models?.kept ?? new Map();
    this.#modelVersions = options.models?.versions ?? new Map();
    this.#modelDigests = options.models?.digests ?? new Map();
    this.#counter = Math.max(applied.counter, ...this.#modelVersions.values());
    this.#table = this.#build(this.#routes);
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

  /** The shared document as this replica has it; undefined without a shared store. */
  sharedState(): SharedState | undefined {
    if (this.#store?.shared !== true) return undefined;
    return { up: this.#store.up, version: this.#documentVersion, savedAt: this.#savedAt };
  }

  /**
   * Reads the shared document and applies it when it is newer than this replica's; stores this
   * replica's when the store holds an older one or none (Redis restarted empty): the fleet
   * re-seeds it from the newest document a replica holds. Never throws: a store that does not
   * answer is tried again on the next hint or poll.
   */
  sync(): Promise<void> {
    if (this.#store?.shared !== true) return Promise.resolve();
    return this.#exclusive(() => this.#sync()).then(() => {
      if (this.#unreadSince === undefined) return;
      this.#log('shared configuration read again', { afterMs: Date.now() - this.#unreadSince });
      this.#unreadSince = undefined;
    }, (error: unknown) => {
      // Once per outage: the poll tries again every few seconds.
      if (this.#unreadSince !== undefined) return;
      this.#unreadSince = Date.now();
      this.#log('shared configuration not read: serving the last applied document', { reason: (error as Error).message });
    });
  }

  /** The routes that target any of `keys` directly. */
  usersOf(keys: readonly string[]): string[] {
    return [...this.#routes.values()].filter((route) => routeTargets(route).some(({ target }) => keys.includes(target))).map((route) => route.key);
  }

  /** The model targets by key, as the current table has them. */
  models(): ReadonlyMap<string, Target> {
    return this.#models;
  }

  configuredModelDigest(name: string): string | null {
    return this.#modelDigests.get(name) ?? null;
  }

  hasRoute(key: string): boolean {
    return this.#routes.has(key);
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
    const lost = checkRoutes([...this.#routes.values()], new Set(models.keys()), new Set(this.#plugins.keys()));
    if (lost.length > 0) throw new RouteConflictError(`model '${name}': route '${lost[0]?.key}' depends on it (${lost[0]?.message})`);
    const table = this.#build(this.#routes, models);
    const version = this.#counter + 1;
    const kept = new Map(this.#keptModels);
    kept.set(name, { base, model, version });
    await this.#save(this.#kept, kept, version);
    this.#counter = version;
    this.#keptModels = kept;
    this.#modelVersions = withVersion(this.#modelVersions, name, model === null ? undefined : version);
    this.#models = models;
    this.#table = table;
    this.#log(model === null ? 'model deleted' : 'model changed', { model: name, version });
    return version;
  }

  async #save(routes: ReadonlyMap<string, StateEntry>, models: ReadonlyMap<string, ModelStateEntry>, counter: number): Promise<void> {
    const document = documentOf(routes, models, counter);
    if (this.#store !== undefined) {
      if (!(await this.#store.write(document, this.#storedVersion))) throw new StaleDocumentError();
      this.#storedVersion = counter;
    }
    await this.#held(document);
  }

  /** Records `document` as the one this replica holds, and keeps a copy beside the configuration for a restart while the shared store is down. */
  async #held(document: RouteState): Promise<void> {
    this.#documentVersion = document.counter;
    this.#savedAt = savedAtOf(document);
    // Awaited, under the change lock: copies written one at a time (they share a temporary file
    // name), in version order, and done before a shutdown can close the process under them.
    await this.#localCopy?.write(document, 0).catch((error: unknown) => {
      this.#log('local copy of the shared configuration not written', { reason: (error as Error).message });
    });
  }

  /** Reads the shared document; applies it when newer, re-seeds the store when it holds an older one or none. */
  async #sync(): Promise<void> {
    const store = this.#store as ConfigStore;
    const stored = await store.read();
    this.#storedVersion = stored?.counter ?? 0;
    if (stored !== undefined && stored.counter > this.#documentVersion) {
      await this.#adopt(stored);
      return;
    }
    if (this.#storedVersion < this.#documentVersion) {
      const mine = documentOf(this.#kept, this.#keptModels, this.#documentVersion, this.#savedAt);
      if (await store.write(mine, this.#storedVersion)) {
        this.#log('shared configuration re-seeded from this replica', { version: mine.counter, found: this.#storedVersion });
        this.#storedVersion = mine.counter;
      }
    }
  }

  /**
   * Applies a complete document written by another replica: its models (files checked, new
   * versions loaded), then its routes, swapped in with one table. One that does not fit this
   * replica (a file it lacks, routes its models cannot serve) is not applied at all.
   */
  async #adopt(document: RouteState): Promise<void> {
    let adopted: AdoptedModels | undefined;
    if (JSON.stringify(document.models ?? {}) !== JSON.stringify(Object.fromEntries(this.#keptModels)) && this.#adoptModels !== undefined) {
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
      if (JSON.stringify(this.#routes.get(key)) !== JSON.stringify(route)) this.#statsFor(key).reset();
    }
    for (const key of this.#routes.keys()) if (!routes.has(key)) this.#stats.delete(key);
    this.#routes = routes;
    this.#versions = applied.versions;
    this.#kept = applied.kept;
    if (adopted !== undefined) {
      this.#models = adopted.targets;
      this.#keptModels = adopted.kept;
      this.#modelVersions = adopted.versions;
    }
    this.#counter = Math.max(this.#counter, document.counter);
    this.#table = table;
    this.#log('shared configuration applied', { version: document.counter });
    // What the document dropped goes first, with the swap, then the local copy is written.
    await adopted?.retire();
    await this.#held(document);
  }

  /** The current snapshot. */
  table(): TargetTable {
    return this.#table;
  }

  /**
   * Checks every route's targets agree; for start-up. A target that cannot say
   * (a remote server down) does not stop the start: requests will say why.
   */
  async verify(): Promise<void> {
    for (const key of this.#routes.keys()) {
      try {
        await this.#verify(this.#table, [key]);
      } catch (error) {
        if (!(error instanceof RouteConflictError)) throw error;
        this.#log('route not verified at start-up: a target is unavailable', { route: key, reason: error.message });
      }
    }
  }

  list(): RouteView[] {
    return [...this.#routes.keys()].map((key) => this.get(key));
  }

  get(key: string): RouteView {
    const route = this.#routes.get(key);
    if (route === undefined) throw new RouteNotFoundError(key);
    return { key, kind: route.split !== undefined ? 'split' : 'sequence', version: this.#versions.get(key) as number, route };
  }

  stats(key: string) {
    const view = this.get(key);
    const split = view.route.split;
    const stats = this.#statsFor(key);
    return { key, version: view.version, ...stats.snapshot(split?.variants.map((variant) => variant.target) ?? [], split?.shadow?.target) };
  }

  resetStats(key: string): void {
    this.get(key);
    this.#statsFor(key).reset();
  }

  /** Creates or replaces a route. */
  put(key: string, body: unknown, ifMatch: string | undefined): Promise<{ created: boolean; view: RouteView }> {
    return this.#writing(async () => {
      this.#checkPrecondition(key, ifMatch);
      const created = !this.#routes.has(key);
      const route = startRollout({ key, ...(checkBody(routeBody, body) as Omit<RouteSpec, 'key'>) });
      guardRollout(this.#routes.get(key), route);
      const view = await this.#change(key, route);
      return { created, view };
    });
  }

  /** Changes some fields of a route's definition (e.g. the split's variants and weights). */
  patch(key: string, body: unknown, ifMatch: string | undefined): Promise<RouteView> {
    return this.#writing(async () => {
      const current = this.get(key).route;
      this.#checkPrecondition(key, ifMatch);
      const changes = checkBody(patchBody, body) as { split?: Partial<SplitSpec> };
      if (changes.split !== undefined && current.split === undefined) {
        throw new InvalidRouteError(`route '${key}' is a sequence: a patch cannot make it a split`);
      }
      const merged = current.split === undefined ? {} : { split: { ...current.split, ...changes.split } };
      let route: RouteSpec = { key, ...(checkBody(routeBody, merged) as Omit<RouteSpec, 'key'>) };
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
      const routes = new Map(this.#routes);
      routes.delete(key);
      const users = [...routes.values()].filter((route) => routeTargets(route).some(({ target }) => target === key));
      if (users.length > 0) throw new RouteConflictError(`route '${key}' is a target of ${users.map((route) => `'${route.key}'`).join(', ')}`);
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
    const now = this.#routes.get(key);
    if (now?.split?.rollout === undefined || next(now) === undefined) return Promise.resolve(undefined);
    return this.#writing(async () => {
      const route = this.#routes.get(key);
      if (route?.split?.rollout === undefined) return undefined;
      const status = next(route);
      if (status === undefined) return undefined;
      const routes = new Map(this.#routes);
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
      if (this.#store?.shared !== true) return work();
      await this.#sync();
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await work();
        } catch (error) {
          if (!(error instanceof StaleDocumentError)) throw error;
          if (attempt >= retries) throw new ConcurrentChangeError('another replica changed the configuration at the same moment; nothing changed here: try again');
          await this.#sync();
        }
      }
    });
  }

  #checkPrecondition(key: string, ifMatch: string | undefined): void {
    if (ifMatch === undefined) return;
    const version = this.#versions.get(key);
    if (!ifMatchHolds(ifMatch, version)) {
      throw new PreconditionFailedError(version === undefined
        ? `route '${key}' does not exist, so If-Match ${ifMatch} cannot match`
        : `route '${key}' is at version "${version}", not ${ifMatch}`);
    }
  }

  async #change(key: string, route: RouteSpec): Promise<RouteView> {
    const routes = new Map(this.#routes);
    routes.set(key, route);
    const issues = checkRoutes([...routes.values()], new Set(this.#models.keys()), new Set(this.#plugins.keys()));
    if (issues.length > 0) {
      throw new InvalidRouteError(issues.map((issue) => `${issue.key === key ? '' : `route '${issue.key}': `}${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`).join('; '));
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
    const entry: StateEntry = { base: routeDigest(this.#configured.get(key)), route, version };
    const kept = new Map(this.#kept);
    kept.set(key, entry);
    await this.#save(kept, this.#keptModels, version);
    this.#counter = version;
    this.#kept = kept;
    this.#routes = routes;
    this.#versions = withVersion(this.#versions, key, route === null ? undefined : version);
    this.#table = table;
    if (route === null) this.#stats.delete(key);
    else this.#statsFor(key).reset();
    this.#log(route === null ? 'route deleted' : 'route changed', { route: key, version });
  }

  /**
   * Checks the signatures of `keys`' targets agree (from model files where they
   * can be read, without loads) and loads the targets of the `changed` route; a
   * failure changes nothing.
   */
  async #verify(table: TargetTable, keys: readonly string[], changed?: string): Promise<void> {
    for (const key of keys) {
      const target = table.get(key) as Target;
      const spec = this.#routesIn(table).get(key);
      try {
        if (key === changed) await target.prepare();
        const signature = await target.signature();
        const shadow = spec?.split?.shadow;
        if (shadow !== undefined) {
          commonSignature([signature, await (table.get(shadow.target) as Target).signature()], [key, shadow.target]);
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

  #routesIn(table: TargetTable): ReadonlyMap<string, RouteSpec> {
    return (table as BuiltTable).routes;
  }

  #build(routes: ReadonlyMap<string, RouteSpec>, models = this.#models): TargetTable {
    const table = new Map<string, Target>(models) as BuiltTable;
    const build = (key: string): Target => {
      const existing = table.get(key);
      if (existing !== undefined) return existing;
      const { split, sequence } = routes.get(key) as RouteSpec;
      const target = split !== undefined
        ? new SplitTarget(key, split, split.variants.map((variant) => build(variant.target)),
          split.shadow === undefined ? undefined : build(split.shadow.target), this.#statsFor(key), this.#observer)
        : new SequenceTarget(key, sequence as SequenceSpec, (sequence as SequenceSpec).steps.map((step) => build(step.target)), this.#plugins);
      table.set(key, target);
      return target;
    };
    for (const key of routes.keys()) build(key);
    table.routes = routes;
    return table;
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

type BuiltTable = Map<string, Target> & { routes: ReadonlyMap<string, RouteSpec> };

function documentOf(routes: ReadonlyMap<string, StateEntry>, models: ReadonlyMap<string, ModelStateEntry>, counter: number, savedAt?: number): RouteState {
  return {
    format: 1, counter, savedAt: new Date(savedAt ?? Date.now()).toISOString(),
    routes: Object.fromEntries(routes), ...(models.size === 0 ? {} : { models: Object.fromEntries(models) }),
  };
}

function savedAtOf(document: RouteState | undefined): number | undefined {
  const time = document?.savedAt === undefined ? Number.NaN : Date.parse(document.savedAt);
  return Number.isNaN(time) ? undefined : time;
}

/** Whether route `from` calls `to`, directly or through other routes. */
/** `versions` with `key` at `version`, or without it (undefined: deleted). */
function withVersion(versions: ReadonlyMap<string, number>, key: string, version: number | undefined): Map<string, number> {
  const next = new Map(versions);
  if (version === undefined) next.delete(key);
  else next.set(key, version);
  return next;
}

function reaches(routes: ReadonlyMap<string, RouteSpec>, from: string, to: string): boolean {
  if (from === to) return true;
  const route = routes.get(from);
  return route !== undefined && routeTargets(route).some(({ target }) => reaches(routes, target, to));
}

function checkBody(checker: { Errors(value: unknown): Iterable<{ path: string; message: string }> }, body: unknown): unknown {
  const problems = [...checker.Errors(body)];
  if (problems.length > 0) {
    throw new InvalidRouteError(problems.map((problem) => `${problem.path === '' ? 'body' : displayPath(problem.path)}: ${problem.message}`).join('; '));
  }
  return body;
}
