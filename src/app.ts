/**
 * Builds the gateway from a validated configuration. It never listens: the
 * CLI does that, and tests use `inject` or listen on port 0 themselves.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { resolveInRepository } from './config/paths.ts';
import type { GatewayConfig, ModelConfig, RemoteModelConfig } from './config/schema.ts';
import { BatchingExecutor } from './executor/batching.ts';
import { OnnxExecutor } from './executor/onnx.ts';
import { WorkerExecutor } from './executor/workers.ts';
import type { Executor } from './executor/types.ts';
import { adminRoutes } from './http/admin.ts';
import { AdminCredentials, AuditLog } from './http/admin-auth.ts';
import { httpsOptions, installCors, readTlsFiles } from './http/edge.ts';
import { LiveTenants } from './tenants/live.ts';
import { Tenants } from './tenants/tenants.ts';
import { consoleRoutes } from './http/console.ts';
import { clientErrorHandler, frameworkErrors, installErrorHandling } from './http/error-handler.ts';
import { registerDocs } from './http/docs.ts';
import { HealthThread } from './http/health-thread.ts';
import { installObservability, OneLinePerRequest, requestId, sameLogger, type Drain } from './http/observability.ts';
import { ErrorBody, InferRequestBody } from './http/schemas.ts';
import { Metrics } from './telemetry/metrics.ts';
import { Tracing } from './telemetry/tracing.ts';
import { v2Routes } from './http/v2.ts';
import { GrpcGateway } from './grpc/server.ts';
import { DataPlane } from './inference/dataplane.ts';
import { ModelRegistry } from './registry/registry.ts';
import { ModelTarget } from './routing/model-target.ts';
import { loadPlugins } from './ops/plugins.ts';
import { readSignature } from './onnx/signature.ts';
import { LiveModels } from './live/live-models.ts';
import { applyModelState } from './live/model-state.ts';
import { RemoteModel, RemoteTarget } from './remote/remote-target.ts';
import { RolloutDriver } from './experiments/rollouts.ts';
import { History } from './experiments/history.ts';
import { Router } from './live/router.ts';
import type { RouteState } from './store/document.ts';
import { RedisStore } from './store/redis-store.ts';
import { StateFileStore } from './store/store.ts';
import type { Target } from './routing/target.ts';

export interface BuildOptions {
  /** fastify's logger option. Default: off. */
  logger?: FastifyServerOptions['logger'];
  /** Runs the models. Default: onnxruntime in this process. */
  executor?: Executor;
}

declare module 'fastify' {
  interface FastifyInstance {
    readonly registry: ModelRegistry;
    readonly dataPlane: DataPlane;
    readonly router: Router;
    /** admin.token in force (generated when the configuration has neither it nor admin.tokens; '' when only admin.tokens are). */
    readonly adminToken: string;
    /** Re-reads server.tls's files (SIGHUP): new connections, HTTPS and gRPC, use them; open ones keep theirs. Throws, changing nothing, when they cannot be read. */
    reloadTls(): void;
    /** Shutdown: after `begin`, new requests get 503 while in-flight ones finish. */
    readonly drain: Drain;
    /** The health port's thread, with `server.healthPort`. */
    readonly health: HealthThread | undefined;
    /** The gRPC face of the data plane; it listens when the CLI (or a test) says where. */
    readonly grpc: GrpcGateway;
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function buildApp(config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  // What can fail comes first, before worker threads exist that would then need closing.
  const file = config.stateFile === undefined ? undefined : new StateFileStore(config.stateFile);
  const local = await file?.read();
  // With a shared store, the newest of its document and this replica's last copy: a replica
  // restarted while Redis is down serves what it last knew.
  const shared = config.store.redis === undefined ? undefined : new RedisStore(config.store.redis);
  const stored = await readShared(shared);
  const state = stored !== undefined && stored.counter > (local?.counter ?? 0) ? stored : local;
  const plugins = await loadPlugins(config.plugins);
  const tls = config.tls;
  const app = Fastify({
    ...(tls === undefined ? {} : { https: httpsOptions(tls) }),
    logger: options.logger ?? false,
    logController: new OneLinePerRequest(config.server.accessLog),
    childLoggerFactory: sameLogger,
    genReqId: requestId,
    bodyLimit: config.server.bodyLimitBytes,
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    // The drain answers new requests itself, with a V2 error body.
    return503OnClosing: false,
    clientErrorHandler,
    frameworkErrors,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  installErrorHandling(app);
  // JSON, or bytes for the binary tensor extension: anything else is 415, not parsed as text.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.addSchema(ErrorBody);
  app.addSchema(InferRequestBody);

  // The registry and the router are created below; metrics read them only when scraped.
  const replica = { name: config.server.replica ?? `${hostname()}:${config.server.port}` };
  const metrics: Metrics = new Metrics(() => registry.status(), (key) => router.table().has(key), replica.name, config.tenants !== undefined);
  const tracing = config.tracing === undefined ? undefined : new Tracing(config.tracing, {
    dropped: (count) => metrics.spansDropped(count),
    outage: (reason) => app.log.warn({ collector: config.tracing?.url, reason }, 'trace export failing: spans are dropped until the collector answers'),
    recovered: (dropped) => app.log.info({ collector: config.tracing?.url, dropped }, 'trace export recovered'),
  });
  if (config.tracing !== undefined) app.log.info({ collector: config.tracing.url, protocol: config.tracing.protocol, sampleRatio: config.tracing.sampleRatio }, 'tracing on');
  const workers = config.executor.workers ?? Math.max(1, availableParallelism() - 1);
  const runner = options.executor ?? (workers === 0 ? new OnnxExecutor(config.modelRepository) : new WorkerExecutor(config.modelRepository, workers));
  const tenants = config.tenants === undefined ? undefined : new Tenants([], (tenant, reason) => metrics.refused(tenant, reason));
  const executor = new BatchingExecutor(runner, (model, rows, requests) => metrics.batch(model, rows, requests), tenants !== undefined);
  const counted = metrics.registryEvents;
  const readModelSignature = (model: ModelConfig) => readSignature(resolveInRepository(config.modelRepository, model.path));
  const models = applyModelState(config.models, config.remotes, state?.models, config.modelRepository, (message, details) => app.log.info(details, message));
  const registry: ModelRegistry = new ModelRegistry(models.models, config.registry, executor, {
    loaded: (model, milliseconds, warmup) => {
      counted.loaded(model, milliseconds);
      const tenths = (value: number) => Math.round(value * 10) / 10;
      const warmed = warmup === undefined ? {} : { warmup: { runs: warmup.runs, milliseconds: tenths(warmup.milliseconds) } };
      app.log.info({ model, milliseconds: tenths(milliseconds), ...warmed }, 'model loaded');
      if (warmup?.failure !== undefined) app.log.warn({ model, reason: warmup.failure }, 'model warm-up failed: it serves, cold');
    },
    loadFailed: (model, reason) => {
      counted.loadFailed(model, reason);
      app.log.warn({ model, reason }, 'model failed to load');
    },
    evicted: (model, reason) => {
      counted.evicted(model, reason);
      app.log.info({ model, reason }, 'model evicted');
    },
  }, readModelSignature);
  const modelTargets = new Map<string, Target>();
  const modelHistory = new History();
  const observeRun = (model: string, queued: number, run: number, failed: boolean) => {
    if (!failed) metrics.inference(model, queued, run);
    modelHistory.record(model, (queued + run) * 1000, failed);
  };
  const modelTarget = (key: string, model: string) => new ModelTarget(key, model, registry, observeRun);
  for (const model of models.models) {
    for (const key of model.keys) modelTargets.set(key, modelTarget(key, model.name));
  }
  const remoteModel = (remote: RemoteModelConfig) => new RemoteModel(remote, observeRun);
  const remotes = new Map(models.remotes.map((remote) => [remote.name, remoteModel(remote)]));
  metrics.watchRemotes(() => [...remotes.values()]);
  for (const remote of remotes.values()) {
    for (const key of remote.config.keys) modelTargets.set(key, new RemoteTarget(key, remote));
  }
  const router = new Router(modelTargets, config.routes, {
    store: shared ?? file,
    localCopy: shared === undefined ? undefined : file,
    state,
    log: (message, details) => app.log.info(details, message),
    plugins,
    // Every split result reaches the metrics, and the rollout driver (an error of a candidate is looked at at once).
    observer: {
      variant: (route, variant, seconds, failed, tenant) => {
        metrics.variant(route, variant, seconds, failed, tenant);
        rollouts.observe(route, failed);
      },
      shadow: (route, target, outcome) => metrics.shadow(route, target, outcome),
      node: (route, node, seconds, failed, tenant) => metrics.node(route, node, seconds, failed, tenant),
      rows: (route, node, rows, accepted) => metrics.rows(route, node, rows, accepted),
    },
    models: { kept: models.kept, versions: models.versions, digests: models.digests },
  });
  const rollouts: RolloutDriver = new RolloutDriver(router, (route, status) => {
    metrics.rollout(route, status.state);
    app.log.info({ route, to: status.state, step: status.step, weight: status.weight, ...(status.reason === undefined ? {} : { reason: status.reason }) }, 'rollout moved');
  });
  const live = new LiveModels({
    registry, router, repository: config.modelRepository, target: modelTarget, readSignature: readModelSignature,
    remotes, remote: remoteModel, remoteTarget: (key, remote) => new RemoteTarget(key, remote),
    configured: { models: config.models, remotes: config.remotes }, log: (message, details) => app.log.info(details, message),
  });
  router.adoptModelsWith((entries) => live.adopt(entries));
  if (shared !== undefined) metrics.watchShared(() => router.sharedState());
  const dataPlane = new DataPlane(() => router.table(), { name: 'modelgate', version: VERSION, extensions: ['binary_tensor_data', 'classification', 'model_repository', 'statistics'] }, config.server.defaultTimeoutMicros);

  const liveTenants = tenants === undefined ? undefined : new LiveTenants(tenants, config.tenants ?? [], router, state, (message, details) => app.log.info(details, message));
  if (tenants === undefined) app.log.warn('no tenants section: the data plane is open to anyone who can reach it (no API keys, no rate limits)');
  else app.log.info({ tenants: tenants.names().length }, 'tenants on: data-plane calls need an API key');

  let adminToken = config.admin.token;
  if (adminToken === undefined && config.admin.tokens.length === 0) {
    adminToken = randomBytes(24).toString('base64url');
    app.log.warn(`admin.token is not configured; the admin API token for this run is ${adminToken}`);
  }
  const credentials = new AdminCredentials(adminToken ?? '', config.admin.tokens);
  const audit = new AuditLog((entry) => app.log.info({ audit: entry }, 'admin change'));
  app.decorate('registry', registry);
  app.decorate('dataPlane', dataPlane);
  app.decorate('router', router);
  app.decorate('adminToken', adminToken ?? '');
  const grpc = new GrpcGateway({
    dataPlane, registry, credentials, audit, tenants, tls, messageLimitBytes: config.server.bodyLimitBytes, log: app.log, accessLog: config.server.accessLog,
    observe: (key, status, seconds, tenant) => metrics.request(key, status, seconds, 'grpc', tenant),
    replica: () => replica.name,
    tracing,
  });
  app.decorate('grpc', grpc);
  app.decorate('reloadTls', () => {
    if (tls === undefined) return;
    // Both read before either changes: a half-written renewal leaves both on the old certificate.
    const files = readTlsFiles(tls);
    grpc.reloadTls();
    (app.server as unknown as { setSecureContext(options: object): void }).setSecureContext(files);
  });

  await registerDocs(app, { version: VERSION }, () => router.table());
  const drain = installObservability(app, metrics, replica);
  if (config.server.replica === undefined) {
    // Port 0 picks a free port when listening: the default name takes the real one.
    app.addHook('onListen', async () => {
      const address = app.server.address();
      if (address === null || typeof address === 'string') return;
      replica.name = `${hostname()}:${address.port}`;
      metrics.nameReplica(replica.name);
    });
  }
  app.decorate('drain', drain);
  if (config.server.cors !== undefined) await installCors(app, config.server.cors);
  await app.register(v2Routes, { dataPlane, bodyLimit: config.server.bodyLimitBytes, tenants, tracing, observe: (key, status, seconds, tenant) => metrics.request(key, status, seconds, 'http', tenant) });
  await app.register(adminRoutes, {
    credentials, audit, tenants: tenants === undefined ? undefined : { live: liveTenants as LiveTenants, directory: tenants },
    registry, router, live, maxModelBytes: config.admin.maxModelBytes, modelHistory,
  });
  await app.register(consoleRoutes);

  const health = config.server.healthPort === undefined ? undefined : new HealthThread();
  if (health !== undefined) dataPlane.onReadyChange((ready) => { health.ready = ready; });
  app.decorate('health', health);
  app.addHook('onReady', async () => {
    // First, so probes of the health port see the start-up: live, not yet ready.
    if (health !== undefined) {
      const port = await health.start({ host: config.server.host, port: config.server.healthPort as number, stallMs: config.server.livenessStallMs });
      app.log.info({ host: config.server.host, port }, 'health port listening');
    }
    // Remote metadata is fetched now or on first use; a remote that is down does not hold the start.
    for (const remote of remotes.values()) void remote.signature().catch(() => undefined);
    await registry.readSignatures();
    await registry.loadPinned();
    await router.verify();
    dataPlane.ready = true;
    rollouts.start();
    // Hints (a change published, a reconnection, the poll) make the router read the shared document.
    shared?.watch(() => void router.sync());
    await router.sync();
  });
  app.addHook('preClose', async () => {
    rollouts.close();
    drain.begin();
    dataPlane.ready = false;
    // No new calls; calls and streams in progress have the grace period, as HTTP requests do.
    await grpc.close(config.server.shutdownGraceMs);
  });
  app.addHook('onClose', async () => {
    await health?.close();
    await shared?.close();
    await Promise.all([...remotes.values()].map((remote) => remote.close()));
    await registry.close();
    // Last: the spans of everything above are in its queue by now.
    await tracing?.close();
  });
  return app;
}

/** The shared store's document at start-up; undefined when there is none or the store does not answer in time. */
async function readShared(store: RedisStore | undefined): Promise<RouteState | undefined> {
  if (store === undefined) return undefined;
  await store.connect();
  return store.read().catch(() => undefined);
}
