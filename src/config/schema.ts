/**
 * The configuration file's schema: the single source for validation at
 * start-up, for the types the rest of the gateway uses, and for the README's
 * configuration reference. Unknown fields are errors everywhere.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CascadeSchema, EnsembleSchema, SwitchSchema } from './graph-schema.ts';

/** Model names and keys: safe in URLs, log lines and metric labels, never a path. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

const Name = Type.String({ pattern: NAME_PATTERN, description: 'Letters, digits, _ . - (1 to 64, starting with a letter or digit).' });

export const ServerSchema = Type.Object({
  host: Type.String({ default: '127.0.0.1', minLength: 1, description: 'Address to listen on.' }),
  port: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free one.' }),
  bodyLimitBytes: Type.Integer({ default: 64 * 1024 * 1024, minimum: 1024, description: 'Largest request body accepted, in bytes (413 beyond).' }),
  requestTimeoutMs: Type.Integer({ default: 120_000, minimum: 0, description: 'Most time to receive a whole request (ms); 0: none. Guards against slow clients.' }),
  keepAliveTimeoutMs: Type.Integer({ default: 72_000, minimum: 1, description: 'Idle keep-alive connections close after this (ms); longer than the 60 s idle timeout of common load balancers.' }),
  defaultTimeoutMicros: Type.Optional(Type.Integer({ minimum: 1, description: 'Deadline of a request that sets no timeout parameter, in µs (as Triton\'s timeout): one still waiting for its model then gets 504 and never runs. Absent: no deadline.' })),
  shutdownGraceMs: Type.Integer({ default: 30_000, minimum: 0, description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish (ms) before the process exits.' }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)), { default: 'info', description: 'Log level; the MODELGATE_LOG_LEVEL environment variable overrides it.' }),
  replica: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'This replica\'s name: every response carries it as x-modelgate-replica, and every metric as the label replica. ${VAR} allowed (e.g. ${HOSTNAME}). Default: <hostname>:<port>.' })),
  healthPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'A second port, on server.host, that answers only GET /v2/health/live and /v2/health/ready, from a thread of its own: probes are answered at once however busy the event loop is, instead of waiting behind the requests it is serving. 0 picks a free one. Absent: none (the main port answers both in any case).' })),
  livenessStallMs: Type.Integer({ default: 10_000, minimum: 200, description: 'On server.healthPort: an event loop that has not turned for this long (ms) is answered not live (503), and not ready.' }),
  accessLog: Type.Boolean({ default: true, description: 'One info line per request (method, url, key, status, ms, requestId, tenant), buffered and written in batches. false: only requests answered with a 5xx are logged.' }),
  tls: Type.Optional(Type.Object({
    cert: Type.String({ minLength: 1, description: 'PEM certificate chain file, relative to the config file; re-read on SIGHUP.' }),
    key: Type.String({ minLength: 1, description: 'PEM private key file, relative to the config file; re-read on SIGHUP.' }),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the certificate authorities that sign client certificates (for clientCerts).' })),
    clientCerts: Type.Optional(Type.Union([Type.Literal('request'), Type.Literal('require')], { description: 'request: a client may present a certificate signed by ca (a tenant can be bound to its subject); require: a client without one is refused at the handshake. Absent: none asked for.' })),
  }, { additionalProperties: false, description: 'Serve HTTPS (and gRPC over TLS) with this certificate. New connections use new files after SIGHUP; open ones keep theirs. Absent: plain HTTP.' })),
  cors: Type.Optional(Type.Object({
    origins: Type.Array(Type.String({ pattern: '^https?://[^/\\s]+$', description: 'An origin: scheme, host and port, no path.' }), { minItems: 1, maxItems: 256, description: 'Origins whose browser applications may call the data plane (/v2). Others get no CORS headers.' }),
    credentials: Type.Boolean({ default: false, description: 'Access-Control-Allow-Credentials: let the browser send cookies or TLS client certificates.' }),
    maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description: 'How long a browser may cache a preflight answer.' })),
  }, { additionalProperties: false, description: 'Cross-origin calls to the data plane (never /admin or /console), preflight answered.' })),
}, { additionalProperties: false, default: {} });

/** An API key or admin token as the configuration holds it: its SHA-256 digest, or `${VAR}` naming the secret itself. */
export const SECRET_DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';

export const ROLES = ['read', 'operate', 'admin'] as const;
export type Role = typeof ROLES[number];

export const AdminSchema = Type.Object({
  token: Type.Optional(Type.String({
    description: 'Bearer token for /admin, with the admin role. Empty or absent (and no tokens): a random one is generated at start-up and logged once.',
  })),
  tokens: Type.Optional(Type.Array(Type.Object({
    token: Type.String({ minLength: 1, description: 'sha256:<hex> of the token, or ${VAR} holding the token itself (hashed at load).' }),
    role: Type.Union(ROLES.map((role) => Type.Literal(role)), { description: 'read: every GET of /admin (the console read-only); operate: also split weights, rollout pause/resume/abort, model load/unload, statistics reset; admin: everything.' }),
  }, { additionalProperties: false }), { maxItems: 256, description: 'Admin tokens with roles, beside admin.token.' })),
  maxModelBytes: Type.Integer({ default: 512 * 1024 * 1024, minimum: 1024, description: 'Largest model file accepted by PUT /admin/models/{name}/file, in bytes (413 beyond).' }),
}, { additionalProperties: false, default: {} });

export const RegistrySchema = Type.Object({
  maxResidentModels: Type.Optional(Type.Integer({ minimum: 1, description: 'Most models resident at once (like Beam\'s max_models_per_worker_hint). Absent: no cap.' })),
  maxResidentBytes: Type.Optional(Type.Integer({ minimum: 1, description: 'Most bytes of model files resident at once. Absent: no cap.' })),
  scheduling: Type.Union([Type.Literal('grouped'), Type.Literal('fifo')], { default: 'grouped', description: 'grouped: when more models are wanted than fit, the next to load is the one most requests wait for (none waiting longer than about a second behind others), a model with requests waiting is not evicted, nor one in more than twice the demand of the load while another slot is coming free, so one load serves many requests and hot models keep their slots. fifo: leases are granted in arrival order, loading and evicting as requests come (Beam without GroupByKey), for strict ordering or comparison.' }),
  loadFailureBackoffMs: Type.Integer({ default: 30_000, minimum: 0, description: 'After a failed load, requests get 503 with Retry-After for this long before the next attempt (ms). An admin load retries at once.' }),
}, { additionalProperties: false, default: {} });

export const SessionOptionsSchema = Type.Object({
  intraOpThreads: Type.Integer({ default: 1, minimum: 0, maximum: 256, description: 'onnxruntime intra-op threads per model (0: onnxruntime decides). 1 suits small models on a small machine.' }),
  interOpThreads: Type.Integer({ default: 1, minimum: 0, maximum: 256, description: 'onnxruntime inter-op threads per model (0: onnxruntime decides).' }),
  graphOptimizationLevel: Type.Union([
    Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'), Type.Literal('all'),
  ], { default: 'all', description: 'onnxruntime graph optimisation level.' }),
}, { additionalProperties: false, default: {} });

export const BatchingSchema = Type.Object({
  maxBatchSize: Type.Integer({ default: 32, minimum: 1, maximum: 65536, description: 'Most rows (first-dimension entries) in one batch; 1 turns batching off.' }),
  maxQueueDelayMicros: Type.Integer({ default: 0, minimum: 0, maximum: 1_000_000, description: 'How long a request may wait for others to join its batch, in µs. 0: batch what is waiting at the end of the event-loop turn (no added latency).' }),
}, { additionalProperties: false, default: {} });

/**
 * A copy of `document` with the schema's defaults filled in. TypeBox's Value.Default throws
 * (RangeError: Invalid array length) when an array field that has a default is given an object
 * with a `length` key; the copy is then left without defaults, and validation names the field.
 */
export function withDefaults(schema: TSchema, document: unknown): unknown {
  try {
    return Value.Default(schema, structuredClone(document));
  } catch {
    return structuredClone(document);
  }
}

/** Warm-up when a model is configured without a word on it: one run at batch 1. */
export const DEFAULT_WARMUP = { batchSizes: [1], runs: 1 } as const;

export const WarmupSchema = Type.Object({
  batchSizes: Type.Array(Type.Integer({ minimum: 1, maximum: 65536 }), { minItems: 1, maxItems: 16, default: [...DEFAULT_WARMUP.batchSizes], description: 'Rows of the warm-up inputs, one set of runs per size (used where the first dimension is dynamic; a fixed one keeps its size).' }),
  runs: Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_WARMUP.runs, description: 'Runs at each batch size.' }),
  inputs: Type.Optional(Type.Record(Type.String(), Type.Object({
    shape: Type.Array(Type.Integer({ minimum: -1, maximum: 16_777_216 }), { maxItems: 16, description: "The input's whole shape for the warm-up: -1 first takes each batch size; the other sizes stand for the signature's dynamic dimensions (its fixed ones must be given as they are)." }),
  }, { additionalProperties: false }), { description: "Shapes for inputs whose dynamic dimensions cannot be 1 (an image model's height and width, say): { \"image\": { \"shape\": [-1, 3, 224, 224] } }. Inputs not named keep the default shape." })),
}, { additionalProperties: false, default: {} });

export const RemoteSchema = Type.Object({
  url: Type.String({ minLength: 1, description: 'Base URL of the V2 server (Triton, KServe, another modelgate): http:// or https:// (REST), grpc:// or grpcs:// (its gRPC service, e.g. grpc://triton:8001).' }),
  model: Type.String({ minLength: 1, maxLength: 256, description: 'The model\'s name on the remote server.' }),
  timeoutMs: Type.Integer({ default: 30_000, minimum: 1, description: 'Longest a call to the remote may take, connection included, in ms (504 past it; a request\'s own deadline may be shorter).' }),
  connections: Type.Integer({ default: 16, minimum: 1, maximum: 1024, description: 'Most keep-alive connections to the remote.' }),
  headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Headers sent with every call, e.g. a token (${VAR} allowed); never logged or shown.' })),
}, { additionalProperties: false });

/**
 * runIn auto's rule (the executor applies it, the schema documents it): after WARMUP runs,
 * SAMPLES runs are timed; a model moves into the event loop's thread when its median run is
 * shorter than the median thread hop and under MAX_RUN_MICROS (the longest the loop may be
 * held per batch), and its file is under MAX_FILE_BYTES (creating the session there blocks
 * the loop about 1 to 2.5 ms per MB, once).
 */
export const RUN_IN_AUTO = { WARMUP: 16, SAMPLES: 64, MAX_RUN_MICROS: 1000, MAX_FILE_BYTES: 1 << 20 } as const;

export const ModelSchema = Type.Object({
  name: Name,
  path: Type.Optional(Type.String({ minLength: 1, description: 'ONNX file, relative to modelRepository; it must stay inside it. Exactly one of path and remote.' })),
  remote: Type.Optional(RemoteSchema),
  keys: Type.Optional(Type.Array(Name, { minItems: 1, description: 'Keys served by this model. Default: [name].' })),
  pinned: Type.Boolean({ default: false, description: 'Loaded at start-up and never evicted.' }),
  session: SessionOptionsSchema,
  maxQueueSize: Type.Integer({ default: 1024, minimum: 1, description: 'Most requests waiting for or using this model at once; beyond it, 503 with Retry-After at once.' }),
  batching: Type.Union([Type.Literal(false), BatchingSchema], { default: {}, description: 'Dynamic batching along a dynamic first dimension (on by default for models whose inputs and outputs all have one); false turns it off.' }),
  instances: Type.Integer({ default: 1, minimum: 1, maximum: 16, description: "Sessions of the model, each on a worker thread of its own, so this many batches run at once (Triton's instance_group count). The resident cap counts the model once; maxResidentBytes counts every instance." }),
  runIn: Type.Union([Type.Literal('auto'), Type.Literal('worker'), Type.Literal('eventLoop')], { default: 'auto', description: `Where the model's sessions run. worker: on worker threads of their own, so neither runs nor loads ever block the HTTP event loop or other models. eventLoop: in the HTTP thread, for models that run in microseconds (a thread hop costs more than the run). auto: worker, moved to the event loop once the model's measured median run is shorter than the thread hop it would save and under ${RUN_IN_AUTO.MAX_RUN_MICROS} µs, and its file is under ${RUN_IN_AUTO.MAX_FILE_BYTES / (1 << 20)} MiB (one instance only).` }),
  warmup: Type.Union([Type.Literal(false), WarmupSchema], { default: {}, description: "Runs on zeros built from the model's signature (dynamic dimensions past the first are 1, unless warmup.inputs gives a shape) after every load of each session and before it takes requests, so the first request does not pay onnxruntime's first-run cost (Triton's model_warmup). Counted in the load time. A warm-up that fails is logged and the model serves cold. false: none. Ignored for remote models." }),
}, { additionalProperties: false });

export const VariantSchema = Type.Object({
  target: Type.String({ pattern: NAME_PATTERN, description: 'A key: a model or any route.' }),
  weight: Type.Number({ minimum: 0, description: 'Share of traffic, proportional to the sum of weights.' }),
}, { additionalProperties: false });

export const RolloutStatusSchema = Type.Object({
  state: Type.Union([Type.Literal('progressing'), Type.Literal('paused'), Type.Literal('completed'), Type.Literal('rolled_back')]),
  step: Type.Integer({ minimum: 0, description: 'Index in steps of the step in force.' }),
  weight: Type.Number({ minimum: 0, maximum: 100, description: "The candidate's share of the split's traffic now, in percent." }),
  since: Type.String({ description: 'When the step (or state) began, ISO 8601.' }),
  reason: Type.Optional(Type.String({ description: 'What broke, for a rollback.' })),
}, { additionalProperties: false, description: 'Written by the gateway as the rollout moves; ignored in a PUT (a new rollout starts at its first step).' });

export const RolloutSchema = Type.Object({
  candidate: Type.String({ pattern: NAME_PATTERN, description: 'The variant target being rolled out.' }),
  steps: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100 }), { minItems: 1, maxItems: 100, description: "Increasing candidate shares in percent of the split's traffic, e.g. [5, 25, 50, 100]; the other variants share the rest in their configured proportions." }),
  stepMs: Type.Integer({ minimum: 1, description: 'Least time a step lasts before the next, in ms.' }),
  minRequests: Type.Integer({ minimum: 1, description: 'Least requests the candidate answers in a step before the next.' }),
  maxErrorRate: Type.Number({ minimum: 0, maximum: 1, description: "Most errors per request the candidate may have in a step; more than maxErrorRate × minRequests errors roll back at once." }),
  maxLatencyRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "Optional: the candidate's p99 latency in a step may be at most this times the other variants' p99 in the same step." })),
  status: Type.Optional(RolloutStatusSchema),
}, { additionalProperties: false, description: 'A guarded rollout: the gateway moves the candidate through the steps while it stays healthy and rolls it back when it does not.' });

export const SplitSchema = Type.Object({
  variants: Type.Array(VariantSchema, { minItems: 1, maxItems: 64 }),
  stickyHeader: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$', description: 'Request header whose value keeps a user on one variant while weights are unchanged.' })),
  shadow: Type.Optional(Type.Object({
    target: Type.String({ pattern: NAME_PATTERN, description: 'A key receiving mirrored copies; its answers are discarded.' }),
    percent: Type.Number({ minimum: 0, maximum: 100, description: 'Share of requests mirrored.' }),
    maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Most shadow copies of this route running at once; beyond it copies are dropped (and counted). Default 8.' })),
  }, { additionalProperties: false })),
  rollout: Type.Optional(RolloutSchema),
}, { additionalProperties: false });

const TensorName = Type.String({ minLength: 1, maxLength: 128, description: 'A tensor name of the step.' });
const As = Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Name of the result; default: replace the tensor.' }));
const Axis = Type.Optional(Type.Integer({ description: 'Axis; negative counts from the end. Default -1.' }));
const op = <N extends string, T extends Record<string, TSchema>>(name: N, fields: T, description: string) =>
  Type.Object({ op: Type.Literal(name), ...fields }, { additionalProperties: false, description });

/** Each post-processing op's own schema, checked one by one so errors name the op's fields. */
export const POSTPROCESS_OPS = [
  op('softmax', { output: TensorName, axis: Axis, as: As }, 'Softmax along an axis (FP32/FP64).'),
  op('argmax', { output: TensorName, axis: Axis, keepdims: Type.Optional(Type.Boolean({ description: 'Default false.' })), as: As }, 'Index of the largest element along an axis, as INT64.'),
  op('topk', { output: TensorName, k: Type.Integer({ minimum: 1 }), axis: Axis, as: As }, 'The k largest along an axis: <as>_values and <as>_indices (INT64).'),
  op('cast', { output: TensorName, to: Type.Union(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64'].map((name) => Type.Literal(name))), as: As }, 'Converts to another datatype (truncating toward zero for integers).'),
  op('reshape', { output: TensorName, shape: Type.Array(Type.Integer({ minimum: -1 }), { maxItems: 16 }), as: As }, 'New shape; 0 keeps the dimension, one -1 is inferred.'),
  op('slice', { output: TensorName, starts: Type.Array(Type.Integer()), ends: Type.Array(Type.Integer()), axes: Type.Optional(Type.Array(Type.Integer())), as: As }, 'Slices along axes (ONNX Slice semantics, step 1).'),
  op('scale', { output: TensorName, multiply: Type.Optional(Type.Number({ description: 'Default 1.' })), add: Type.Optional(Type.Number({ description: 'Default 0.' })), as: As }, 'x * multiply + add (FP32/FP64).'),
  op('threshold', { output: TensorName, value: Type.Number(), as: As }, 'x > value, as BOOL.'),
  op('plugin', { name: Type.String({ pattern: NAME_PATTERN, description: 'A module of the plugins directory, by file name without extension.' }) }, 'A JavaScript function from named tensors to named tensors.'),
];

/** For the documentation: any one of the ops. */
export const PostprocessSchema = Type.Union(POSTPROCESS_OPS);

/** What the route schema checks of an op: its name; the op's own schema checks the rest. */
const PostprocessEntry = Type.Object({
  op: Type.Union(POSTPROCESS_OPS.map((schema) => schema.properties.op)),
}, { additionalProperties: true });

export const StepSchema = Type.Object({
  name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$', description: 'Names this step\'s outputs for later steps; default the target key (no dots).' })),
  target: Type.String({ pattern: NAME_PATTERN, description: 'A key: a model or any route.' }),
  inputs: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String({ pattern: '^[^.]+\\..+$' }), { description: 'This step\'s input name -> "<step>.<output>" or "request.<input>". Default: the previous step\'s outputs by matching name, or its single output into the single input.' })),
  postprocess: Type.Optional(Type.Array(PostprocessEntry, { maxItems: 32, description: "Applied in order to this step's outputs." })),
}, { additionalProperties: false });

export const SequenceSchema = Type.Object({
  steps: Type.Array(StepSchema, { minItems: 1, maxItems: 16 }),
}, { additionalProperties: false });

/** The route kinds, each a field of a route: exactly one is set. */
export const ROUTE_KINDS = ['split', 'sequence', 'ensemble', 'switch', 'cascade'] as const;
export type RouteKind = typeof ROUTE_KINDS[number];

const kinds = {
  split: Type.Optional(SplitSchema),
  sequence: Type.Optional(SequenceSchema),
  ensemble: Type.Optional(EnsembleSchema),
  switch: Type.Optional(SwitchSchema),
  cascade: Type.Optional(CascadeSchema),
};

export const RouteSchema = Type.Object({
  key: Name,
  ...kinds,
}, { additionalProperties: false, description: 'Exactly one of split, sequence, ensemble, switch or cascade.' });

/** The body of `PUT /admin/routes/{key}`: a route without its key. */
export const RouteBodySchema = Type.Object(kinds, { additionalProperties: false, description: 'Exactly one of split, sequence, ensemble, switch or cascade.' });

/** The body of `PATCH /admin/routes/{key}`: some fields of a split. */
export const RoutePatchSchema = Type.Object({
  split: Type.Optional(Type.Partial(SplitSchema)),
}, { additionalProperties: false, description: "Fields of the split to change (e.g. its variants' weights); the others stay." });

export const GrpcSchema = Type.Object({
  host: Type.Optional(Type.String({ minLength: 1, description: 'Address the gRPC server listens on; default server.host.' })),
  port: Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port of the gRPC server (8001, as Triton); 0 picks a free one.' }),
}, { additionalProperties: false, description: 'The Open Inference Protocol over gRPC (inference.GRPCInferenceService, proto/grpc_service.proto), beside REST. Absent: no gRPC server.' });

export const ExecutorSchema = Type.Object({
  workers: Type.Optional(Type.Integer({ minimum: 0, maximum: 64, description: 'Idle worker threads kept ready for model loads (every model instance runs on a thread of its own, started when it loads; a thread freed by an unload is kept while fewer than this many are idle). 0: no worker threads, every model runs in the event loop\'s thread. Default: one less than the cores, at least 1.' })),
}, { additionalProperties: false, default: {} });

export const StoreSchema = Type.Object({
  redis: Type.Optional(Type.Object({
    url: Type.String({ minLength: 1, description: 'redis:// or rediss:// URL of the Redis every replica shares (${VAR} allowed, e.g. ${REDIS_URL}).' }),
    key: Type.String({ default: 'modelgate', minLength: 1, maxLength: 200, description: 'The Redis key of the shared document (a hash); its change hints are published on <key>:changes. One key per fleet.' }),
    pollMs: Type.Integer({ default: 2000, minimum: 100, maximum: 600_000, description: 'How often each replica reads the document\'s version whatever the hints say (ms): the most a change takes to arrive when a hint is lost.' }),
  }, { additionalProperties: false })),
}, { additionalProperties: false, default: {}, description: 'Where live changes (routes and models) are shared. Absent: the state file only, this process alone. With redis: every replica applies the same versioned document; the state file keeps this replica\'s last applied copy.' });

export const TenantSchema = Type.Object({
  name: Name,
  apiKeys: Type.Array(Type.String({ minLength: 1 }), { default: [], maxItems: 64, description: 'sha256:<hex> digests of the keys (or ${VAR} holding a key, hashed at load), sent as authorization: Bearer <key>. The key itself is never logged, stored or shown.' }),
  certSubject: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "A TLS client certificate's subject (as Node prints it, e.g. CN=team-a,O=Example) that identifies this tenant instead of an API key (server.tls.clientCerts)." })),
  allow: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.*-]{1,64}$' }), { minItems: 1, maxItems: 256, description: 'Keys this tenant may call: names, or globs where * matches any run of characters.' }),
  rateLimit: Type.Optional(Type.Object({
    requestsPerSecond: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: 'Requests per second on average (the bucket refills at this rate).' }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'Most requests at once after a quiet spell (the bucket size). Default: requestsPerSecond, at least 1.' })),
  }, { additionalProperties: false, description: 'A token bucket on this replica: past it, 429 with Retry-After.' })),
  maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most of its requests in progress at once on this replica; past it, 429.' })),
  share: Type.Number({ default: 1, exclusiveMinimum: 0, maximum: 1000, description: "Its weight when a model's queue holds requests of several tenants (weighted fair queuing), and when cold models wait for a slot." }),
}, { additionalProperties: false });

/** The body of `PUT /admin/tenants/{name}`: a tenant without its name, keys as digests only. */
export const TenantBodySchema = Type.Object({
  ...TenantSchema.properties,
  name: Type.Optional(Name),
  apiKeys: Type.Array(Type.String({ pattern: SECRET_DIGEST_PATTERN }), { default: [], maxItems: 64, description: 'sha256:<hex> digests of the keys: a plain key is refused.' }),
}, { additionalProperties: false });

export const TRACING_PROTOCOLS = ['http/protobuf', 'http/json'] as const;

export const TracingSchema = Type.Object({
  otlpEndpoint: Type.Optional(Type.String({ minLength: 1, description: 'The OTLP/HTTP collector: its base URL (http://collector:4318, to which /v1/traces is added) or a URL ending in /v1/traces. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT.' })),
  protocol: Type.Optional(Type.Union(TRACING_PROTOCOLS.map((name) => Type.Literal(name)), { description: 'OTLP encoding. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.' })),
  sampleRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Share of requests without a sampled parent that are traced. A request whose traceparent says sampled is always traced (parent-based sampling). Default: OTEL_TRACES_SAMPLER_ARG, else 0.01.' })),
  serviceName: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'service.name of the spans. Default: OTEL_SERVICE_NAME, else modelgate.' })),
  headers: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,256}$' }), Type.String({ maxLength: 8192 }), { description: 'Headers sent with every export (a collector\'s API key: ${VAR} allowed). Default: OTEL_EXPORTER_OTLP_HEADERS (name=value,name=value).' })),
}, { additionalProperties: false, description: 'OpenTelemetry traces of inference requests, exported over OTLP/HTTP. Absent (and no OTEL_EXPORTER_OTLP_ENDPOINT): no tracing, and nothing on the request path looks at it.' });

export const GatewayConfigSchema = Type.Object({
  server: ServerSchema,
  grpc: Type.Optional(GrpcSchema),
  executor: ExecutorSchema,
  admin: AdminSchema,
  modelRepository: Type.String({ default: 'models', minLength: 1, description: 'Directory of model files, relative to the config file (or absolute).' }),
  registry: RegistrySchema,
  models: Type.Array(ModelSchema, { default: [] }),
  routes: Type.Array(RouteSchema, { default: [], description: 'Routes (splits, sequences, ensembles, switches and cascades), each behind its own key.' }),
  store: StoreSchema,
  tracing: Type.Optional(TracingSchema),
  tenants: Type.Optional(Type.Array(TenantSchema, { maxItems: 10_000, description: 'Who may call the data plane. Present (even empty): every call of /v2 but health and server metadata needs a tenant\'s API key, and the limits apply. Absent: the data plane is open.' })),
  stateFile: Type.Optional(Type.String({ minLength: 1, description: 'Where live route changes are kept, relative to the config file. Default: <config name>.state.json beside it.' })),
  plugins: Type.Optional(Type.String({ minLength: 1, description: 'Directory of post-processing plugins (.js/.mjs modules), relative to the config file; loaded at start-up.' })),
}, { additionalProperties: false });

export type ServerConfig = Static<typeof ServerSchema>;
export type StoreConfig = Static<typeof StoreSchema>;
export type RegistryConfig = Static<typeof RegistrySchema>;
export type SessionOptions = Static<typeof SessionOptionsSchema>;
export type BatchingOptions = Static<typeof BatchingSchema>;
export type WarmupOptions = Static<typeof WarmupSchema>;
export type SplitSpec = Static<typeof SplitSchema>;
export type RolloutSpec = Static<typeof RolloutSchema>;
export type RolloutStatus = Static<typeof RolloutStatusSchema>;
export type SequenceSpec = Static<typeof SequenceSchema>;
export type StepSpec = Static<typeof StepSchema>;
export type PostprocessSpec = Static<typeof PostprocessSchema>;
/** A route as configured or set through the admin API: exactly one of its kinds. */
export type RouteSpec = Static<typeof RouteSchema>;

/** A model as the gateway uses it: keys defaulted, path resolved inside the repository. */
export interface ModelConfig {
  readonly name: string;
  /** Path as written in the config, relative to the repository; safe to show. */
  readonly path: string;
  /** Absolute path of the file; never shown to clients. */
  readonly file: string;
  readonly keys: readonly string[];
  readonly pinned: boolean;
  readonly session: Readonly<SessionOptions>;
  readonly batching: false | Readonly<BatchingOptions>;
  readonly maxQueueSize: number;
  readonly instances: number;
  readonly runIn: 'auto' | 'worker' | 'eventLoop';
  readonly warmup: false | Readonly<WarmupOptions>;
}

export type RemoteOptions = Static<typeof RemoteSchema>;
export type TenantSpec = Static<typeof TenantSchema>;
export type TlsConfig = NonNullable<ServerConfig['tls']>;
export type CorsConfig = NonNullable<ServerConfig['cors']>;

/** An admin token: its digest (sha256:<hex>) and role. */
export interface AdminToken {
  readonly digest: string;
  readonly role: Role;
}

/** A model served by another V2 server: it holds no slot under the resident caps. */
export interface RemoteModelConfig {
  readonly name: string;
  readonly keys: readonly string[];
  readonly remote: Readonly<RemoteOptions>;
}

/** Tracing as configured, the environment filling what the file leaves out. */
export interface TracingConfig {
  /** The collector's traces URL (…/v1/traces). */
  readonly url: string;
  readonly protocol: typeof TRACING_PROTOCOLS[number];
  readonly sampleRatio: number;
  readonly serviceName: string;
  readonly headers: Readonly<Record<string, string>>;
  /** How long spans wait to be sent in a batch (OTEL_BSP_SCHEDULE_DELAY, default 5000 ms). */
  readonly exportDelayMs: number;
  /** How long one export may take, retries included, before its spans are dropped (OTEL_EXPORTER_OTLP_TIMEOUT, default 10000 ms). */
  readonly exportTimeoutMs: number;
}

/** The validated, frozen configuration. */
export interface GatewayConfig {
  readonly server: Readonly<ServerConfig>;
  /** The gRPC server's address; undefined: none. */
  readonly grpc: { readonly host?: string | undefined; readonly port: number } | undefined;
  readonly executor: { readonly workers?: number | undefined };
  readonly admin: { readonly token: string | undefined; readonly tokens: readonly AdminToken[]; readonly maxModelBytes: number };
  /** The tenants, keys as digests; undefined: no tenants section, the data plane is open. */
  readonly tenants: readonly TenantSpec[] | undefined;
  /** The TLS files resolved against the config file's directory. */
  readonly tls: Readonly<TlsConfig> | undefined;
  /** Absolute, real path of the model repository. */
  readonly modelRepository: string;
  readonly registry: Readonly<RegistryConfig>;
  /** Models this process loads from the repository. */
  readonly models: readonly ModelConfig[];
  /** Models other V2 servers serve. */
  readonly remotes: readonly RemoteModelConfig[];
  readonly routes: readonly RouteSpec[];
  /** Where live changes are shared between replicas (none: the state file alone). */
  readonly store: Readonly<StoreConfig>;
  /** Where spans go; undefined: no tracing. */
  readonly tracing: TracingConfig | undefined;
  /** Absolute path of the live-change state file, or undefined to keep live changes in memory only. */
  readonly stateFile: string | undefined;
  /** Absolute, real path of the plugins directory, if any. */
  readonly plugins: string | undefined;
}
