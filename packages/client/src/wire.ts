/**
 * The shapes of what the server answers, as types: the V2 metadata and
 * statistics, and modelgate's admin API. The server's views are typed with
 * them, the client returns them and the console reads them, so none declares
 * them again. Types only, with nothing of Node's in them: a browser bundle
 * imports this file (`@modelgate/client/wire`) without the client's transport.
 */

/** V2 tensor datatypes. */
export type Datatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64'
  | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

/** A tensor as a model declares it: `-1` marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/** `GET /v2/models/{key}`: a model's (or any key's) metadata. */
export interface ModelMetadata {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** `GET /v2`: the server's name, version and protocol extensions. */
export interface ServerMetadata {
  readonly name: string;
  readonly version: string;
  readonly extensions: readonly string[];
}

/** How many times something happened and the nanoseconds it took in all. */
export interface Duration {
  count: number;
  ns: number;
}

/** One entry of `model_stats` (the statistics extension), as Triton writes it. */
export interface ModelStatistics {
  readonly name: string;
  readonly version: string;
  /** Milliseconds since the epoch of the last request, 0 for none. */
  readonly last_inference: number;
  /** Successful inferences, each row of a batched request counted. */
  readonly inference_count: number;
  /** Model executions: requests batched together share one. */
  readonly execution_count: number;
  readonly inference_stats: {
    readonly success: Duration; readonly fail: Duration; readonly queue: Duration;
    readonly compute_input: Duration; readonly compute_infer: Duration; readonly compute_output: Duration;
    readonly cache_hit: Duration; readonly cache_miss: Duration;
  };
  readonly batch_stats: ReadonlyArray<{ readonly batch_size: number; readonly compute_input: Duration; readonly compute_infer: Duration; readonly compute_output: Duration }>;
}

// ---- the admin API ----

/** A model of the gateway's registry, as the admin API shows it. */
export interface ModelStatus {
  readonly name: string;
  readonly keys: readonly string[];
  /** remote: served by another V2 server (no session here); failed: its last load failed, or a remote's breaker is open. */
  readonly state: 'unloaded' | 'loading' | 'resident' | 'failed' | 'remote';
  readonly inFlight: number;
  readonly loads: number;
  readonly evictions: number;
  /** ISO time of the last lease, or null if never used. */
  readonly lastUsedAt: string | null;
  /** Why the last load failed, for a failed model. */
  readonly reason?: string;
}

/** The registry's caps and what holds them now (`GET /admin/models`). */
export interface Capacity {
  readonly maxResidentModels: number | null;
  readonly residentModels: number;
  readonly maxResidentBytes: number | null;
  readonly residentBytes: number;
}

export interface ModelList {
  readonly models: readonly ModelStatus[];
  readonly capacity: Capacity;
}

export interface Variant {
  readonly target: string;
  readonly weight: number;
}

/** Where a guarded rollout stands, as the gateway writes it. */
export interface RolloutStatus {
  readonly state: 'progressing' | 'paused' | 'completed' | 'rolled_back';
  /** The index in `steps`. */
  readonly step: number;
  /** The candidate's share of the traffic now, in percent. */
  readonly weight: number;
  readonly since?: string;
  /** What broke, after a rollback. */
  readonly reason?: string;
}

export interface Rollout {
  readonly candidate: string;
  readonly steps: readonly number[];
  readonly stepMs?: number;
  readonly minRequests?: number;
  readonly maxErrorRate?: number;
  readonly maxLatencyRatio?: number;
  readonly status?: RolloutStatus;
}

export interface Split {
  readonly variants: readonly Variant[];
  readonly stickyHeader?: string;
  readonly shadow?: { readonly target: string; readonly percent?: number; readonly maxInFlight?: number };
  readonly rollout?: Rollout;
}

/** One post-processing op: `op` names it, the other fields are its options. */
export interface PostprocessOp {
  readonly op: string;
  readonly [option: string]: unknown;
}

export interface Step {
  readonly name?: string;
  readonly target: string;
  /** The step's input name -> `request.<input>` or `<step>.<output>`. */
  readonly inputs?: Readonly<Record<string, string>>;
  readonly outputs?: Readonly<Record<string, string>>;
  readonly postprocess?: readonly PostprocessOp[];
}

export interface Sequence {
  readonly steps: readonly Step[];
}

export interface EnsembleMember {
  readonly target: string;
  /** Its outputs are named `<name>.<output>`; default the target key. */
  readonly name?: string;
  /** Its weight in `weighted_mean`; default 1. */
  readonly weight?: number;
  /** Default true: its failure fails the request; false: it is left out, listed in `ensemble_missing`. */
  readonly required?: boolean;
}

/** Every member gets the request at once; the answer renames their outputs, or reduces one across them. */
export interface Ensemble {
  readonly members: readonly EnsembleMember[];
  readonly combine?: { readonly op: 'mean' | 'weighted_mean' | 'max' | 'min' | 'vote'; readonly output: string; readonly as?: string };
}

/** One of `header` or `parameter`, and one of `equals`, `in` or `matches` (compared as text). */
export interface Condition {
  readonly header?: string;
  readonly parameter?: string;
  readonly equals?: string | number | boolean;
  readonly in?: ReadonlyArray<string | number | boolean>;
  readonly matches?: string;
}

/** The first case whose condition holds takes the request; none: `default`. */
export interface Switch {
  readonly cases: ReadonlyArray<{ readonly when: Condition; readonly target: string }>;
  readonly default?: string;
}

/** Row by row: each step answers the rows it accepts, the rest go on; the last step takes every row left. */
export interface Cascade {
  readonly steps: ReadonlyArray<{ readonly target: string; readonly accept?: { readonly output: string; readonly min?: number; readonly max?: number } }>;
}

export type RouteKind = 'split' | 'sequence' | 'ensemble' | 'switch' | 'cascade';

/** A route as `PUT /admin/routes/{key}` takes it: one kind. */
export type RouteSpec =
  | { readonly split: Split } | { readonly sequence: Sequence } | { readonly ensemble: Ensemble }
  | { readonly switch: Switch } | { readonly cascade: Cascade };

/** A route; `version` is its ETag, for `ifMatch`; the field named by `kind` holds it. */
export interface RouteView {
  readonly key: string;
  readonly kind: RouteKind;
  readonly version: number;
  readonly split?: Split;
  readonly sequence?: Sequence;
  readonly ensemble?: Ensemble;
  readonly switch?: Switch;
  readonly cascade?: Cascade;
}

/** A proportion with its 95% interval. */
export interface Interval {
  readonly value: number;
  readonly low95: number;
  readonly high95: number;
}

export interface LatencySummary {
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

export interface VariantStats {
  readonly target: string;
  readonly requests: number;
  readonly errors: number;
  readonly latencyMs: LatencySummary;
  readonly errorRate: Interval | null;
  /** This variant's error rate minus the first variant's, for every variant but the first. */
  readonly errorRateDifference?: Interval | null;
  /** With tenants: the requests and errors of each tenant that called. */
  readonly tenants?: Readonly<Record<string, { readonly requests: number; readonly errors: number }>>;
}

export interface ShadowStats {
  readonly target: string;
  readonly sent: number;
  readonly dropped: number;
  readonly errors: number;
  readonly compared: number;
  readonly agreement: number | null;
  readonly agreementInterval: Interval | null;
  readonly latencyMs: LatencySummary;
}

/** A cascade step's figures: the rows it ran on, those it answered, and their share. */
export interface CascadeStepStats extends VariantStats {
  readonly rows: number;
  readonly accepted: number;
  readonly acceptedShare: number | null;
}

/** One window of a route's statistics: the entries of its kind (`target` names a member or case by its name). */
export interface StatsWindow {
  /** ISO time the window began. */
  readonly since: string;
  /** A split's variants. */
  readonly variants?: readonly VariantStats[];
  readonly shadow?: ShadowStats;
  /** An ensemble's members, by member name. */
  readonly members?: readonly VariantStats[];
  /** A switch's cases, by index (and `default`): the requests each took. */
  readonly cases?: readonly VariantStats[];
  /** A cascade's steps, by index. */
  readonly steps?: readonly CascadeStepStats[];
}

/** `GET /admin/routes/{key}/stats`: since the route's last change, and since the gateway started. */
export interface RouteStats {
  readonly key: string;
  readonly version: number;
  readonly sinceChange: StatsWindow;
  readonly sinceStart: StatsWindow;
}

/** The widths of the statistics history's buckets. */
export type HistoryWindow = '10s' | '1m' | '1h';

/** One bucket of a statistics history. */
export interface HistoryBucket {
  /** ISO time the bucket starts (whole 10 s, minutes or hours). */
  readonly start: string;
  readonly requests: number;
  readonly errors: number;
  readonly errorRate: number | null;
  /** Of the bucket's successful requests, within 2%; null without any. */
  readonly latencyMs: { readonly p50: number | null; readonly p95: number | null; readonly p99: number | null };
  /** The bucket in progress. */
  readonly partial?: true;
}

/** A node's buckets, oldest first. */
export interface NodeHistory {
  readonly target: string;
  readonly buckets: readonly HistoryBucket[];
}

/** `GET /admin/routes/{key}/stats/history`: the route's nodes, under its kind's field. */
export interface RouteHistory {
  readonly key: string;
  readonly window: HistoryWindow;
  readonly bucketSeconds: number;
  readonly variants?: readonly NodeHistory[];
  readonly members?: readonly NodeHistory[];
  readonly cases?: readonly NodeHistory[];
  readonly steps?: readonly NodeHistory[];
}

/** `GET /admin/models/{name}/stats/history`. */
export interface ModelHistory {
  readonly name: string;
  readonly window: HistoryWindow;
  readonly bucketSeconds: number;
  readonly buckets: readonly HistoryBucket[];
}
