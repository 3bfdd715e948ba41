/** The shapes the router and the live models share with the admin API. */
import type { RouteKind, RouteSpec } from '../config/schema.ts';
import type { Plugin } from '../ops/postprocess.ts';
import type { RouteObserver } from '../routing/split.ts';
import type { Target } from '../routing/target.ts';
import type { ModelStateEntry, RouteState } from '../store/document.ts';
import type { ConfigStore } from '../store/store.ts';
import type { Log } from './keeper.ts';

/** A route as the admin API shows it. */
export interface RouteView {
  readonly key: string;
  readonly kind: RouteKind;
  readonly version: number;
  readonly route: RouteSpec;
}

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
  readonly log?: Log;
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
