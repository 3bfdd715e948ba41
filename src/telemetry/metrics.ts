/**
 * Prometheus metrics, one registry per gateway. Labels are bounded: keys,
 * models, routes and variants come from the configuration, never from
 * request data (an unknown key counts as key="").
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ModelStatus, RegistryEvents } from '../registry/registry.ts';
import type { RouteObserver } from '../routing/split.ts';
import type { SharedState } from '../live/router.ts';

/** Seconds: from 100 µs (a tiny model in process) to 10 s. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics implements RouteObserver {
  readonly registry = new Registry();
  readonly #requests: Counter;
  readonly #requestDuration: Histogram;
  readonly #inference = new Histogram({ name: 'modelgate_inference_duration_seconds', help: 'Time from handing a request to its model to its outputs (a wait to join a batch included), by model.', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly #queue = new Histogram({ name: 'modelgate_queue_duration_seconds', help: 'Time a request waited for its model to be resident (a load, a slot under the caps), by model.', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly #loads = new Counter({ name: 'modelgate_model_loads_total', help: 'Successful model loads.', labelNames: ['model'], registers: [this.registry] });
  readonly #loadFailures = new Counter({ name: 'modelgate_model_load_failures_total', help: 'Failed model loads.', labelNames: ['model'], registers: [this.registry] });
  readonly #evictions = new Counter({ name: 'modelgate_model_evictions_total', help: 'Models taken out of the resident set, by reason.', labelNames: ['model', 'reason'], registers: [this.registry] });
  readonly #loadDuration = new Histogram({ name: 'modelgate_model_load_duration_seconds', help: 'Time to open a model session, its warm-up included.', labelNames: ['model'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30], registers: [this.registry] });
  readonly #variantRequests: Counter;
  readonly #variantErrors: Counter;
  readonly #refusals = new Counter({ name: 'modelgate_tenant_refusals_total', help: 'Data-plane calls refused at the edge, by tenant ("" when none was identified) and reason: unauthorized (401), forbidden (403), rate_limited or over_in_flight (429).', labelNames: ['tenant', 'reason'], registers: [this.registry] });
  readonly #variantLatency = new Histogram({ name: 'modelgate_route_latency_seconds', help: 'Latency of each split variant.', labelNames: ['route', 'variant'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly #nodeRequests: Counter;
  readonly #nodeErrors: Counter;
  readonly #nodeLatency = new Histogram({ name: 'modelgate_graph_node_latency_seconds', help: 'Latency of each graph node.', labelNames: ['route', 'node'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly #cascadeRows = new Counter({ name: 'modelgate_cascade_rows_total', help: 'Rows each cascade step ran on, by outcome: accepted (answered there) or passed (sent on to the next step).', labelNames: ['route', 'node', 'outcome'], registers: [this.registry] });
  readonly #shadows = new Counter({ name: 'modelgate_shadow_requests_total', help: 'Shadow copies by outcome: agreed, disagreed, answered (nothing to compare), error, dropped.', labelNames: ['route', 'variant', 'outcome'], registers: [this.registry] });
  readonly #rollouts = new Counter({ name: 'modelgate_rollout_transitions_total', help: 'Moves of guarded rollouts, by route and the state moved to (progressing for a step up).', labelNames: ['route', 'to'], registers: [this.registry] });
  readonly #batches = new Histogram({ name: 'modelgate_batch_size', help: 'Rows in each batch a model ran (dynamic batching).', labelNames: ['model'], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [this.registry] });
  readonly #batchRequests = new Histogram({ name: 'modelgate_batch_requests', help: 'Requests merged into each batch a model ran.', labelNames: ['model'], buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [this.registry] });
  readonly #spansDropped = new Counter({ name: 'modelgate_trace_spans_dropped_total', help: 'Spans that never reached the trace collector: its export failed or timed out, or the export queue was full.', registers: [this.registry] });
  readonly #isKey: (key: string) => boolean;
  /** With tenants, the request and variant series carry the label `tenant`; without, they are as they were. */
  readonly #tenantLabel: readonly string[];

  /**
   * @param status the models' state now, read at each scrape.
   * @param isKey whether a key is served now, to keep the `key` label bounded.
   * @param replica this replica's name, a label of every series.
   * @param tenants whether tenants are on: request and split series then carry the tenant.
   */
  constructor(status: () => readonly ModelStatus[], isKey: (key: string) => boolean, replica?: string, tenants = false) {
    this.#isKey = isKey;
    this.#tenantLabel = tenants ? ['tenant'] : [];
    const registers = [this.registry];
    this.#requests = new Counter({ name: 'modelgate_requests_total', help: `Inference requests by key, HTTP status code (for gRPC, the status its error carries; 200 for OK), protocol (http, grpc)${tenants ? ' and tenant ("" before one is known)' : ''}.`, labelNames: ['key', 'code', 'protocol', ...this.#tenantLabel], registers });
    this.#requestDuration = new Histogram({ name: 'modelgate_request_duration_seconds', help: `Inference request latency by key${tenants ? ', protocol and tenant' : ' and protocol'}, from the request arriving to the response sent.`, labelNames: ['key', 'protocol', ...this.#tenantLabel], buckets: LATENCY_BUCKETS, registers });
    this.#variantRequests = new Counter({ name: 'modelgate_route_requests_total', help: `Requests a split sent to each variant${tenants ? ', by tenant' : ''}.`, labelNames: ['route', 'variant', ...this.#tenantLabel], registers });
    this.#variantErrors = new Counter({ name: 'modelgate_route_errors_total', help: `Failed requests of each split variant${tenants ? ', by tenant' : ''}.`, labelNames: ['route', 'variant', ...this.#tenantLabel], registers });
    this.#nodeRequests = new Counter({ name: 'modelgate_graph_node_requests_total', help: `Requests each node of an ensemble, switch or cascade ran (a member, a case by index or default, a step by index)${tenants ? ', by tenant' : ''}.`, labelNames: ['route', 'node', ...this.#tenantLabel], registers });
    this.#nodeErrors = new Counter({ name: 'modelgate_graph_node_errors_total', help: `Failed requests of each graph node${tenants ? ', by tenant' : ''}.`, labelNames: ['route', 'node', ...this.#tenantLabel], registers });
    // Every series says which replica it comes from: Prometheus sums a fleet by this label.
    if (replica !== undefined) this.registry.setDefaultLabels({ replica });
    collectDefaultMetrics({ register: this.registry, prefix: 'modelgate_' });
    new Gauge({
      name: 'modelgate_model_resident', help: '1 while the model holds a session in the resident set.', labelNames: ['model'], registers: [this.registry],
      collect() { for (const model of status()) this.set({ model: model.name }, model.state === 'resident' ? 1 : 0); },
    });
    new Gauge({
      name: 'modelgate_model_in_flight', help: 'Requests using the model now.', labelNames: ['model'], registers: [this.registry],
      collect() { for (const model of status()) this.set({ model: model.name }, model.inFlight); },
    });
  }

  /** Renames this replica in every series (the default name learns its port once listening). */
  nameReplica(replica: string): void {
    this.registry.setDefaultLabels({ replica });
  }

  /** Shows the shared store's state and the version of the document applied, read at each scrape. */
  watchShared(state: () => SharedState | undefined): void {
    const gauge = (name: string, help: string, value: (now: SharedState) => number | undefined) => new Gauge({
      name, help, registers: [this.registry],
      collect() {
        const now = state();
        const measured = now === undefined ? undefined : value(now);
        if (measured !== undefined) this.set(measured);
      },
    });
    gauge('modelgate_store_up', '1 while the shared configuration store (Redis) answers; absent without one.', (now) => (now.up ? 1 : 0));
    gauge('modelgate_store_document_version', 'Version of the shared configuration document this replica serves (0: none yet).', (now) => now.version);
    gauge('modelgate_store_document_age_seconds', 'Seconds since the document this replica serves was written: compare across replicas to see one that lags.',
      (now) => (now.savedAt === undefined ? undefined : (Date.now() - now.savedAt) / 1000));
  }

  /** Registry events, for the model registry to report to. */
  get registryEvents(): Required<RegistryEvents> {
    return {
      loaded: (model, milliseconds) => {
        this.#loads.inc({ model });
        this.#loadDuration.observe({ model }, milliseconds / 1000);
      },
      loadFailed: (model) => this.#loadFailures.inc({ model }),
      evicted: (model, reason) => this.#evictions.inc({ model, reason }),
    };
  }

  request(key: string, code: number, seconds: number, protocol: 'http' | 'grpc' = 'http', tenant = ''): void {
    const children = this.#perKey(this.#isKey(key) ? key : '', protocol, tenant);
    let counter = children.codes.get(code);
    if (counter === undefined) {
      counter = this.#tenantLabel.length === 0 ? this.#requests.labels(children.key, String(code), protocol) : this.#requests.labels(children.key, String(code), protocol, tenant);
      children.codes.set(code, counter);
    }
    counter.inc();
    children.duration.observe(seconds);
  }

  refused(tenant: string, reason: string): void {
    this.#refusals.inc({ tenant, reason });
  }

  spansDropped(count: number): void {
    this.#spansDropped.inc(count);
  }

  batch(model: string, rows: number, requests: number): void {
    const children = this.#perModel(model);
    children.batchRows.observe(rows);
    children.batchRequests.observe(requests);
  }

  inference(model: string, queuedSeconds: number, runSeconds: number): void {
    const children = this.#perModel(model);
    children.queue.observe(queuedSeconds);
    children.inference.observe(runSeconds);
  }

  // Label children are looked up once per key (protocol and tenant) and model, not on every
  // request: prom-client hashes the label set on each call otherwise. Both maps are bounded by
  // the configuration (keys, tenants).
  readonly #keys = new Map<string, { key: string; duration: Histogram.Internal<string>; codes: Map<number, Counter.Internal> }>();
  readonly #models = new Map<string, { queue: Histogram.Internal<string>; inference: Histogram.Internal<string>; batchRows: Histogram.Internal<string>; batchRequests: Histogram.Internal<string> }>();

  #perKey(key: string, protocol: 'http' | 'grpc', tenant: string) {
    const id = tenant === '' ? `${protocol}:${key}` : `${protocol}:${key}\u0000${tenant}`;
    let children = this.#keys.get(id);
    if (children === undefined) {
      children = { key, duration: this.#tenantLabel.length === 0 ? this.#requestDuration.labels(key, protocol) : this.#requestDuration.labels(key, protocol, tenant), codes: new Map() };
      this.#keys.set(id, children);
    }
    return children;
  }

  #perModel(model: string) {
    let children = this.#models.get(model);
    if (children === undefined) {
      children = { queue: this.#queue.labels(model), inference: this.#inference.labels(model), batchRows: this.#batches.labels(model), batchRequests: this.#batchRequests.labels(model) };
      this.#models.set(model, children);
    }
    return children;
  }

  variant(route: string, variant: string, seconds: number, failed: boolean, tenant = ''): void {
    const labels = this.#tenantLabel.length === 0 ? { route, variant } : { route, variant, tenant };
    this.#variantRequests.inc(labels);
    if (failed) this.#variantErrors.inc(labels);
    else this.#variantLatency.observe({ route, variant }, seconds);
  }

  node(route: string, node: string, seconds: number, failed: boolean, tenant = ''): void {
    const labels = this.#tenantLabel.length === 0 ? { route, node } : { route, node, tenant };
    this.#nodeRequests.inc(labels);
    if (failed) this.#nodeErrors.inc(labels);
    else this.#nodeLatency.observe({ route, node }, seconds);
  }

  rows(route: string, node: string, rows: number, accepted: number): void {
    this.#cascadeRows.inc({ route, node, outcome: 'accepted' }, accepted);
    this.#cascadeRows.inc({ route, node, outcome: 'passed' }, rows - accepted);
  }

  shadow(route: string, variant: string, outcome: 'dropped' | 'error' | 'agreed' | 'disagreed' | 'answered'): void {
    this.#shadows.inc({ route, variant, outcome });
  }

  /** Reports, when scraped, whether each remote model's breaker is open (1) or closed (0). */
  watchRemotes(read: () => ReadonlyArray<{ name: string; open: boolean }>): void {
    new Gauge({
      name: 'modelgate_remote_breaker_open', help: 'Whether calls to a remote model fail fast now (1) because its server stopped answering.', labelNames: ['model'], registers: [this.registry],
      collect() { for (const remote of read()) this.set({ model: remote.name }, remote.open ? 1 : 0); },
    });
  }

  rollout(route: string, to: string): void {
    this.#rollouts.inc({ route, to });
  }
}
