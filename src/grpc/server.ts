/**
 * The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` of
 * packages/client/proto/grpc_service.proto on @grpc/grpc-js, beside REST over the same data
 * plane (one decoder, one set of targets, the same statistics), with
 * `grpc.health.v1.Health` for Kubernetes probes and server reflection for
 * grpcurl. The app builds it; the CLI (or a test) makes it listen.
 */
import { loadPackageDefinition, Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { GRPC_LOADER_OPTIONS, GRPC_PROTO } from '@modelgate/client/codec';
import { ReflectionService } from '@grpc/reflection';
import type { FastifyBaseLogger } from 'fastify';
import { HealthImplementation } from 'grpc-health-check';
import type { TlsConfig } from '../config/schema.ts';
import { InvalidInputError } from '../errors.ts';
import { AdminCredentials, type AuditLog } from '../http/admin-auth.ts';
import { readTlsFiles } from '../http/edge.ts';
import { subjectOf, type Admission, type Tenants } from '../tenants/tenants.ts';
import { indexEntry } from '../http/repository.ts';
import { routeHeaders, type DataPlane } from '../inference/dataplane.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { InferContext } from '../routing/target.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import { failureText } from '../trace.ts';
import { payloadOf, responseOf, type ProtoInferRequest } from './messages.ts';
import { grpcError } from './status.ts';

// One definition for the server and the client: the client package's, read the same way.
const definition = loadSync(GRPC_PROTO, GRPC_LOADER_OPTIONS);
const SERVICE = 'inference.GRPCInferenceService';
const service = (loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: { service: ServiceDefinition } } }).inference.GRPCInferenceService.service;

/** How long a closing server waits, once its calls are done, for clients to go before it cuts the connections. */
const LAST_WORDS_MS = 250;

const UNSUPPORTED: Readonly<Record<string, string>> = {
  SystemSharedMemoryStatus: 'shared memory', SystemSharedMemoryRegister: 'shared memory', SystemSharedMemoryUnregister: 'shared memory',
  CudaSharedMemoryStatus: 'CUDA shared memory', CudaSharedMemoryRegister: 'CUDA shared memory', CudaSharedMemoryUnregister: 'CUDA shared memory',
  Trace: 'trace settings', LogSettings: 'log settings',
};

export interface GrpcParts {
  readonly dataPlane: DataPlane;
  readonly registry: ModelRegistry;
  /** Who may call the repository RPCs (the index with read, load and unload with admin, as REST's repository extension). */
  readonly credentials: AdminCredentials;
  /** Where the repository RPCs' changes are recorded, as the admin API's. */
  readonly audit?: AuditLog | undefined;
  /** With tenants: who may call the data-plane RPCs, as REST's. */
  readonly tenants?: Tenants | undefined;
  /** Serve over TLS with these files (re-read by reloadTls); undefined: plain. */
  readonly tls?: Readonly<TlsConfig> | undefined;
  /** Largest message either way (server.bodyLimitBytes): RESOURCE_EXHAUSTED beyond. */
  readonly messageLimitBytes: number;
  readonly log: FastifyBaseLogger;
  /** One line per call, as the REST access log (server.accessLog). */
  readonly accessLog: boolean;
  /** Told of every inference call (key, the HTTP status its outcome carries, seconds, tenant or ''), for metrics. */
  readonly observe?: (key: string, status: number, seconds: number, tenant: string) => void;
  /** This replica's name, sent as x-modelgate-replica metadata on every answer, as REST's header. */
  readonly replica?: () => string;
  /** With tracing: each inference call gets a span, continuing the caller's traceparent metadata. */
  readonly tracing?: Tracing | undefined;
}

/** What a call's log line adds once the call has run: its trace, when it was traced. */
interface Noted { traceId?: string }

type Call = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/**
 * TLS credentials whose certificate can be replaced while serving: grpc-js hands new context
 * options to its HTTP/2 server (setSecureContext), so new connections use them and open ones
 * keep theirs.
 */
class ReloadableCredentials extends ServerCredentials {
  constructor(tls: Readonly<TlsConfig>) {
    super({ requestCert: tls.clientCerts !== undefined, rejectUnauthorized: tls.clientCerts === 'require' }, readTlsFiles(tls));
  }

  reload(tls: Readonly<TlsConfig>): void {
    this.updateSecureContextOptions(readTlsFiles(tls));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** What every data-plane RPC checks with tenants: which key it calls ('' for every key's statistics). */
type Guard<Q> = (request: Q) => string;

/** A metadata entry by name, as the data plane reads headers (the first value, as text). */
function headerOf(metadata: Metadata): InferContext['header'] {
  return (name) => {
    const value = metadata.get(name.toLowerCase())[0];
    return value === undefined ? undefined : typeof value === 'string' ? value : value.toString('utf8');
  };
}

/** The call's gRPC deadline as performance.now() time; undefined without one. */
function deadlineOf(call: Call): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? performance.now() + (at - Date.now()) : undefined;
}

/**
 * A call's abort signal: aborted when the client cancels, so its queued work never runs.
 * `release` once the call is answered: grpc-js reports a finished call's stream closing as
 * 'cancelled' too, and an abort then (a DOMException each) would be work for nothing.
 */
function signalOf(call: Call): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const cancel = () => controller.abort();
  call.once('cancelled', cancel);
  return { signal: controller.signal, release: () => call.removeListener('cancelled', cancel) };
}

export class GrpcGateway {
  readonly #parts: GrpcParts;
  readonly #health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE]: 'NOT_SERVING' });
  #server: Server | undefined;
  #credentials: ReloadableCredentials | undefined;
  /** Inference calls and streams in progress: shutdown waits for them, not for health watchers. */
  #active = 0;
  #quiet: (() => void) | undefined;

  constructor(parts: GrpcParts) {
    this.#parts = parts;
    const serving = (ready: boolean) => {
      for (const name of ['', SERVICE]) this.#health.setStatus(name, ready ? 'SERVING' : 'NOT_SERVING');
    };
    serving(parts.dataPlane.ready);
    parts.dataPlane.onReadyChange(serving);
  }

  /** Listens; resolves with the port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    const limit = this.#parts.messageLimitBytes;
    const server = new Server({ 'grpc.max_receive_message_length': limit, 'grpc.max_send_message_length': limit });
    server.addService(service, this.#handlers());
    this.#health.addToServer(server);
    new ReflectionService(definition).addToServer(server);
    this.#server = server;
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      const tls = this.#parts.tls;
      this.#credentials = tls === undefined ? undefined : new ReloadableCredentials(tls);
      server.bindAsync(address, this.#credentials ?? ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error)));
    });
  }

  /** Re-reads the TLS files: new connections use them. Throws (the old ones stay) when they cannot be read. */
  reloadTls(): void {
    const tls = this.#parts.tls;
    if (tls !== undefined) this.#credentials?.reload(tls);
  }

  /**
   * Takes no new calls; inference calls and streams in progress have `graceMs` to finish, then
   * whatever is left (a stream still open, health watchers, which never end by themselves) is cut.
   */
  async close(graceMs: number): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      timer.unref();
      this.#quiet = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.#active === 0) this.#quiet();
    });
    // The last answers' trailers on their way; then what never ends by itself (a health watcher) is cut.
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, LAST_WORDS_MS).unref())]);
    server.forceShutdown();
  }

  /** Counts an inference call or stream in progress until `done` is called. */
  #begin(): () => void {
    this.#active += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#active -= 1;
      if (this.#active === 0) this.#quiet?.();
    };
  }

  #handlers(): UntypedServiceImplementation {
    const { dataPlane, registry } = this.#parts;
    const byName: Guard<{ name: string }> = (request) => request.name;
    const handlers: UntypedServiceImplementation = {
      ServerLive: this.#unary('ServerLive', undefined, async () => ({ live: true })),
      ServerReady: this.#unary('ServerReady', undefined, async () => ({ ready: dataPlane.ready })),
      ModelReady: this.#unary('ModelReady', byName, async (request: { name: string; version: string }) => {
        const target = dataPlane.target(request.name, request.version || undefined);
        try {
          target.assertReady();
          return { ready: true };
        } catch {
          return { ready: false };
        }
      }),
      ServerMetadata: this.#unary('ServerMetadata', undefined, async () => dataPlane.serverMetadata()),
      ModelMetadata: this.#unary('ModelMetadata', byName, async (request: { name: string; version: string }) => dataPlane.modelMetadata(request.name, request.version || undefined)),
      ModelInfer: this.#unary('ModelInfer', (request: ProtoInferRequest) => request.model_name, async (request: ProtoInferRequest, call, metadata, admission, noted) => {
        const done = this.#begin();
        const { signal, release } = signalOf(call);
        const { response, context } = await this.#infer('ModelInfer', request, call, signal, admission, noted).finally(() => {
          release();
          done();
        });
        for (const [name, value] of routeHeaders(context)) metadata.set(name, value);
        return response;
      }),
      ModelStreamInfer: (call: ServerDuplexStream<ProtoInferRequest, unknown>) => this.#stream(call),
      ModelConfig: this.#unary('ModelConfig', byName, async (request: { name: string; version: string }) => ({ config: await this.#config(request.name, request.version || undefined) })),
      ModelStatistics: this.#unary('ModelStatistics', byName, async (request: { name: string; version: string }, _call, _metadata, admission) => {
        const tenants = this.#parts.tenants;
        const visible = tenants === undefined || admission === undefined ? undefined : (key: string) => tenants.allows(admission.tenant, key);
        return dataPlane.statistics(request.name || undefined, request.version || undefined, visible);
      }),
      RepositoryIndex: this.#unary('RepositoryIndex', undefined, async (request: { ready: boolean }, call) => {
        this.#authorize(call, 'read', 'RepositoryIndex');
        const entries = registry.status().map((model) => indexEntry(model, registry.failureReason(model.name)));
        return { models: request.ready ? entries.filter((entry) => entry.state === 'READY') : entries };
      }),
      RepositoryModelLoad: this.#unary('RepositoryModelLoad', undefined, async (request: { model_name: string; parameters: Record<string, unknown> }, call) => {
        const audited = this.#authorize(call, 'admin', 'RepositoryModelLoad');
        if (Object.keys(request.parameters).length > 0) throw new InvalidInputError(`load '${request.model_name}': load parameters (a config or files) are not supported: models come from the model repository`);
        await audited(() => registry.load(request.model_name), request.model_name);
        return {};
      }),
      RepositoryModelUnload: this.#unary('RepositoryModelUnload', undefined, async (request: { model_name: string; parameters: Record<string, unknown> }, call) => {
        const audited = this.#authorize(call, 'admin', 'RepositoryModelUnload');
        if (Object.keys(request.parameters).some((name) => name !== 'unload_dependents')) throw new InvalidInputError(`unload '${request.model_name}': the only parameter is 'unload_dependents'`);
        await audited(() => registry.unload(request.model_name), request.model_name);
        return {};
      }),
    };
    for (const [method, what] of Object.entries(UNSUPPORTED)) {
      handlers[method] = (_call: unknown, callback: sendUnaryData<unknown>) => callback({ code: status.UNIMPLEMENTED, details: `${method}: modelgate does not implement ${what}` });
    }
    return handlers;
  }

  /**
   * A unary handler: `work` may add to the answer's metadata (which carries the replica's name,
   * as errors' trailers do). With `guard` and tenants, the call is a data-plane call: its tenant
   * is identified and admitted first, as REST's are.
   */
  #unary<Q>(method: string, guard: Guard<Q> | undefined, work: (request: Q, call: ServerUnaryCall<Q, unknown>, metadata: Metadata, admission: Admission | undefined, noted: Noted) => Promise<unknown>) {
    return (call: ServerUnaryCall<Q, unknown>, callback: sendUnaryData<unknown>) => {
      const started = performance.now();
      const metadata = new Metadata();
      const noted: Noted = {};
      const replica = this.#parts.replica?.();
      if (replica !== undefined) metadata.set('x-modelgate-replica', replica);
      let admission: Admission | undefined;
      let answer: Promise<unknown>;
      try {
        admission = guard === undefined ? undefined : this.#admit(call, guard(call.request) || undefined);
        if (admission !== undefined) metadata.set('x-modelgate-tenant', admission.tenant);
        answer = work(call.request, call, metadata, admission, noted);
      } catch (error) {
        answer = Promise.reject(error);
      }
      answer.then((response) => {
        admission?.done();
        this.#logCall(method, call.request, status.OK, started, admission?.tenant, noted);
        call.sendMetadata(metadata);
        callback(null, response);
      }, (error: unknown) => {
        admission?.done();
        const failure = grpcError(error, (cause) => this.#parts.log.error({ err: cause, method }, 'unexpected error'));
        if (replica !== undefined) failure.metadata?.set('x-modelgate-replica', replica);
        const tenant = admission?.tenant ?? (error as { tenant?: string }).tenant;
        if (tenant !== undefined) failure.metadata?.set('x-modelgate-tenant', tenant);
        this.#logCall(method, call.request, failure.code as status, started, tenant, noted);
        callback(failure);
      });
    };
  }

  /** With tenants, the caller's admission for `key` (undefined: a call of every key); without, undefined. */
  #admit(call: Call, key: string | undefined): Admission | undefined {
    const tenants = this.#parts.tenants;
    if (tenants === undefined) return undefined;
    const authorization = headerOf(call.metadata)('authorization');
    const subject = authorization === undefined ? subjectOf(call.getAuthContext()?.sslPeerCertificate) : undefined;
    return tenants.call(authorization, subject, key);
  }

  #logCall(method: string, request: unknown, code: status, started: number, tenant?: string, noted?: Noted): void {
    if (!this.#parts.accessLog && code === status.OK) return;
    const key = (request as { model_name?: string; name?: string } | undefined)?.model_name ?? (request as { name?: string } | undefined)?.name;
    this.#parts.log.info({ protocol: 'grpc', method, key: key === '' ? undefined : key, ...(tenant === undefined ? {} : { tenant }), ...(noted?.traceId === undefined ? {} : { traceId: noted.traceId }), code: status[code], ms: Math.round((performance.now() - started) * 1000) / 1000 }, 'call');
  }

  async #infer(method: string, request: ProtoInferRequest, call: Call, signal: AbortSignal, admission: Admission | undefined, noted: Noted): Promise<{ response: Record<string, unknown>; context: InferContext }> {
    const started = performance.now();
    const key = request.model_name;
    const tenant = admission?.tenant ?? '';
    const header = headerOf(call.metadata);
    const trace = this.#parts.tracing?.request(header, () => ({
      'modelgate.key': key,
      'rpc.system': 'grpc',
      'rpc.service': SERVICE,
      'rpc.method': method,
      ...(admission === undefined ? {} : { 'modelgate.tenant': admission.tenant }),
    }), started);
    if (trace?.recording === true) noted.traceId = trace.traceId;
    try {
      const answer = await this.#parts.dataPlane.serve(key, payloadOf(request), { header, signal, version: request.model_version || undefined, deadline: deadlineOf(call), flow: admission?.flow, trace },
        (result, decoded, context) => ({ response: responseOf(key, decoded.id, result), context }));
      admission?.waited(answer.context.timing?.waitMs ?? 0);
      this.#parts.observe?.(key, 200, (performance.now() - started) / 1000, tenant);
      trace?.set({ 'rpc.grpc.status_code': status.OK });
      return answer;
    } catch (error) {
      const code = (error as { statusCode?: number }).statusCode;
      this.#parts.observe?.(key, code !== undefined && code >= 400 && code < 600 ? code : 500, (performance.now() - started) / 1000, tenant);
      if (trace?.recording === true) {
        const failure = grpcError(error, () => undefined);
        trace.set({ 'rpc.grpc.status_code': failure.code as number });
        trace.fail(failure.details ?? failureText(error));
      }
      throw error;
    } finally {
      trace?.end();
    }
  }

  /** Answers as they complete, each with its request's id; a bad request gets an error_message and the stream goes on. */
  #stream(call: ServerDuplexStream<ProtoInferRequest, unknown>): void {
    const { signal, release } = signalOf(call);
    const done = this.#begin();
    call.once('cancelled', done);
    let pending = 0;
    let ended = false;
    const finish = () => {
      if (!ended || pending > 0) return;
      release();
      call.once('finish', done);
      call.end();
    };
    call.on('data', (request: ProtoInferRequest) => {
      pending += 1;
      const started = performance.now();
      // Each request of a stream is a call of its own for the tenant's allow list and limits.
      let admission: Admission | undefined;
      let answer: Promise<{ response: Record<string, unknown> }>;
      const noted: Noted = {};
      try {
        admission = this.#admit(call, request.model_name);
        answer = this.#infer('ModelStreamInfer', request, call, signal, admission, noted);
      } catch (error) {
        answer = Promise.reject(error);
      }
      answer.then(({ response }) => {
        this.#logCall('ModelStreamInfer', request, status.OK, started, admission?.tenant, noted);
        call.write({ error_message: '', infer_response: response });
      }, (error: unknown) => {
        const failure = grpcError(error, (cause) => this.#parts.log.error({ err: cause, method: 'ModelStreamInfer' }, 'unexpected error'));
        this.#logCall('ModelStreamInfer', request, failure.code as status, started, admission?.tenant ?? (error as { tenant?: string }).tenant, noted);
        call.write({ error_message: failure.details, infer_response: { model_name: request.model_name, model_version: request.model_version, id: request.id } });
      }).finally(() => {
        admission?.done();
        pending -= 1;
        finish();
      });
    });
    call.on('end', () => {
      ended = true;
      finish();
    });
  }

  /** Checks the caller's admin token has `role`; returns how to run its change so the audit trail records it. */
  #authorize(call: Call, role: 'read' | 'admin', method: string): (change: () => Promise<unknown>, model: string) => Promise<void> {
    const identity = this.#parts.credentials.identify(headerOf(call.metadata)('authorization'), 'The repository RPCs need the admin token as authorization metadata (Bearer <token>)');
    AdminCredentials.require(identity, role, method);
    return async (change, model) => {
      let code = 200;
      try {
        await change();
      } catch (error) {
        code = (error as { statusCode?: number }).statusCode ?? 500;
        throw error;
      } finally {
        this.#parts.audit?.record({
          at: new Date().toISOString(), method: `gRPC ${method}`, path: model, status: code,
          role: identity.role, fingerprint: identity.fingerprint, etagBefore: null, etagAfter: null,
        });
      }
    };
  }

  /** What a client needs to build requests, in Triton's ModelConfig: max_batch_size, dims without the batch dimension when it batches. */
  async #config(key: string, version: string | undefined) {
    const target = this.#parts.dataPlane.target(key, version);
    const signature = await target.signature();
    const model = target.kind === 'model' ? (target as unknown as { model: string }).model : undefined;
    const local = model !== undefined && this.#parts.registry.has(model) ? this.#parts.registry.config(model) : undefined;
    const batching = local?.batching;
    const batched = batching !== undefined && batching !== false && signature.inputs.every((input) => input.shape[0] === -1) && signature.outputs.every((output) => output.shape[0] === -1);
    const dims = (shape: readonly number[]) => (batched ? shape.slice(1) : [...shape]);
    const dataType = (datatype: string) => `TYPE_${datatype === 'BYTES' ? 'STRING' : datatype}`;
    return {
      name: key,
      platform: local !== undefined ? 'onnxruntime_onnx' : target.kind === 'model' ? 'remote' : 'ensemble',
      backend: local !== undefined ? 'onnxruntime' : '',
      max_batch_size: batched ? batching.maxBatchSize : 0,
      input: signature.inputs.map((input) => ({ name: input.name, data_type: dataType(input.datatype), dims: dims(input.shape) })),
      output: signature.outputs.map((output) => ({ name: output.name, data_type: dataType(output.datatype), dims: dims(output.shape) })),
      instance_group: local === undefined ? [] : [{ name: key, count: local.instances, kind: 'KIND_CPU' }],
      ...(batched ? { dynamic_batching: { preferred_batch_size: [], max_queue_delay_microseconds: batching.maxQueueDelayMicros } } : {}),
    };
  }
}
