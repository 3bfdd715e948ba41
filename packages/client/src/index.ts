/**
 * `@modelgate/client`: a typed client for the Open Inference Protocol (KServe
 * V2) over undici, for modelgate and any other V2 server (Triton, KServe).
 * It installs and loads nothing of the server's (no onnxruntime, no fastify):
 * undici, and the protocol codec (./codec) the server imports from here.
 *
 * ```ts
 * import { ModelgateClient } from '@modelgate/client';
 * const client = new ModelgateClient({ url: 'http://127.0.0.1:8080' });
 * const { outputs } = await client.infer('iris', [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Float32Array([5.1, 3.5, 1.4, 0.2]) }]);
 * await client.close();
 * ```
 */
import { constants } from 'node:buffer';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { compress as compressBody, decompress, type Encoding } from './codec/compression.ts';
import { parseJson } from './codec/json.ts';
import type { ModelMetadata, ModelStatistics, ServerMetadata } from './codec/types.ts';
import type { HistoryWindow, ModelHistory, ModelList, ModelStatus, RouteHistory, RouteSpec, RouteStats, RouteView, Split } from './wire.ts';
import { ModelgateError } from './error.ts';
import { GrpcChannel } from './grpc.ts';

export { ModelgateError } from './error.ts';
import { decodeResponse, encodeRequest, type InferResponse, type InputTensor, type RequestedOutput } from './tensors.ts';

export type { Datatype, InferResponse, InputTensor, OutputTensor, RequestedOutput, TensorData } from './tensors.ts';
export type { Duration, ModelMetadata, ModelStatistics, ServerMetadata, TensorSpec as TensorMetadata } from './codec/types.ts';
export type * from './wire.ts';

export interface ClientOptions {
  /** The server's base URL, `http://` or `https://`, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Bearer token for the admin API (`admin.token` of the gateway). Sent on admin calls only. */
  readonly token?: string;
  /** A tenant's API key, for a gateway with tenants: sent as `authorization: Bearer <key>` on data-plane calls (REST and gRPC), never on admin calls. */
  readonly apiKey?: string;
  /** For https:// and grpcs://: the authorities to trust (PEM) instead of the system's, and a client certificate with its key for a gateway that asks for one. */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
  /** Most connections kept to the server; they are reused (keep-alive). Default 16. */
  readonly connections?: number;
  /** Headers sent with every request (e.g. a proxy's authorization). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Milliseconds one attempt may take, from sending to the last byte of the answer. Default 60 000. */
  readonly timeoutMs?: number;
  /** Retries of a 503 that carries Retry-After (the server is loading, busy or draining). Default 2; 0 turns retries off. */
  readonly maxRetries?: number;
  /** Most milliseconds spent waiting between retries of one call, all waits together. Default 10 000. */
  readonly maxRetryWaitMs?: number;
}

export interface InferOptions {
  /** Send inputs and ask for outputs in Triton's binary tensor extension. Default true. */
  readonly binary?: boolean;
  /** Outputs to return; all when absent. */
  readonly outputs?: readonly RequestedOutput[];
  /** Echoed in the answer. */
  readonly id?: string;
  /** Request parameters, as the server understands them. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** The request's deadline on the server, in microseconds (the V2 `timeout` parameter): past it, it answers 504 and never runs it. */
  readonly timeoutMicros?: number;
  /** Aborts the call. */
  readonly signal?: AbortSignal;
  /** Compress the request body (gzip when true) and ask for a compressed answer. Default false. */
  readonly compress?: boolean | Encoding;
  /** Headers (gRPC: metadata) of this call only, beside the client's own: a W3C `traceparent`, for one. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface HistoryOptions extends CallOptions {
  /** Bucket width; default 1m. */
  readonly window?: HistoryWindow;
  /** Buckets up to the one in progress; default 60. */
  readonly last?: number;
}

function historyQuery(options: HistoryOptions): string {
  const query = new URLSearchParams();
  if (options.window !== undefined) query.set('window', options.window);
  if (options.last !== undefined) query.set('last', String(options.last));
  const text = query.toString();
  return text === '' ? '' : `?${text}`;
}

export interface ConditionalOptions extends CallOptions {
  /** Change only if the route is still at this version (else the server answers 412). */
  readonly ifMatch?: number | string;
}

interface Call {
  readonly method: Dispatcher.HttpMethod;
  readonly path: string;
  readonly body?: Buffer | string;
  readonly headers?: Record<string, string>;
  readonly admin?: boolean;
  readonly signal?: AbortSignal | undefined;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

const HEADER_LENGTH = 'inference-header-content-length';

function header(headers: Answer['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Seconds from a Retry-After header: delta-seconds or an HTTP date. */
function retryAfterSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < (allowZero ? 0 : 1) || !Number.isInteger(value)) {
    throw new TypeError(`ModelgateClient: '${name}' must be a whole number${allowZero ? '' : ' above 0'}, got ${String(value)}`);
  }
  return value;
}

const segment = encodeURIComponent;

export class ModelgateClient {
  /** REST's connection pool; undefined for a grpc:// URL. */
  readonly #pool: Pool | undefined;
  /** The gRPC transport, for grpc:// and grpcs:// URLs. */
  readonly #grpc: GrpcChannel | undefined;
  readonly #base: string;
  readonly #token: string | undefined;
  readonly #apiKey: string | undefined;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #maxRetryWaitMs: number;

  constructor(options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new TypeError(`ModelgateClient: 'url' must be an absolute http://, https://, grpc:// or grpcs:// URL, got '${options.url}'`);
    }
    if (!['http:', 'https:', 'grpc:', 'grpcs:'].includes(url.protocol)) throw new TypeError(`ModelgateClient: 'url' must be http://, https://, grpc:// or grpcs://, got '${url.protocol}'`);
    this.#base = url.pathname.replace(/\/+$/, '');
    this.#token = options.token;
    this.#headers = { ...options.headers };
    this.#apiKey = options.apiKey;
    this.#timeoutMs = positive('timeoutMs', options.timeoutMs, 60_000);
    this.#maxRetries = positive('maxRetries', options.maxRetries, 2, true);
    this.#maxRetryWaitMs = positive('maxRetryWaitMs', options.maxRetryWaitMs, 10_000, true);
    const grpc = url.protocol === 'grpc:' || url.protocol === 'grpcs:';
    this.#grpc = grpc ? new GrpcChannel(url, this.#timeoutMs, options.apiKey === undefined ? this.#headers : { ...this.#headers, authorization: `Bearer ${options.apiKey}` }, options.tls) : undefined;
    const tls = options.tls;
    this.#pool = grpc ? undefined : new Pool(url.origin, {
      ...(tls === undefined ? {} : { connect: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }) } }),
      connections: positive('connections', options.connections, 16),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
  }

  /** Runs inference on a model (or any key of a gateway). */
  async infer(model: string, inputs: readonly InputTensor[], options: InferOptions = {}): Promise<InferResponse> {
    const binary = options.binary ?? true;
    const parameters = options.timeoutMicros === undefined ? options.parameters : { ...options.parameters, timeout: options.timeoutMicros };
    const grpc = this.#grpc;
    if (grpc !== undefined) return this.#retried(options.signal, () => grpc.infer(model, inputs, { outputs: options.outputs, id: options.id, parameters, signal: options.signal, ...(options.headers === undefined ? {} : { headers: options.headers }) }));
    const { body, headerLength } = encodeRequest(inputs, { binary, outputs: options.outputs, id: options.id, parameters });
    const headers: Record<string, string> = { ...options.headers, 'content-type': headerLength === undefined ? 'application/json' : 'application/octet-stream' };
    if (headerLength !== undefined) headers[HEADER_LENGTH] = String(headerLength);
    const encoding = options.compress === true ? 'gzip' : options.compress === false ? undefined : options.compress;
    let payload: Buffer = body;
    if (encoding !== undefined) {
      payload = await compressBody(body, encoding);
      headers['content-encoding'] = encoding;
      headers['accept-encoding'] = encoding;
    }
    const answer = await this.#call({ method: 'POST', path: `/v2/models/${segment(model)}/infer`, body: payload, headers, signal: options.signal });
    const length = header(answer.headers, HEADER_LENGTH);
    try {
      return decodeResponse(answer.body, length === undefined ? undefined : Number(length));
    } catch (error) {
      throw new ModelgateError(`the server's answer could not be read: ${(error as Error).message}`, answer.status, undefined, answer.headers, { cause: error });
    }
  }

  /** A model's (or key's) inputs and outputs. */
  metadata(model: string, options: CallOptions = {}): Promise<ModelMetadata> {
    if (this.#grpc !== undefined) return this.#grpc.metadata(model, options);
    return this.#json('GET', `/v2/models/${segment(model)}`, options);
  }

  /** Whether the model can serve now; false for a 503 or 404 answer. */
  async ready(model: string, options: CallOptions = {}): Promise<boolean> {
    if (this.#grpc !== undefined) return this.#grpc.ready(model, options).catch(notReady);
    return this.#probe(`/v2/models/${segment(model)}/ready`, options);
  }

  /** Whether the server is live. */
  live(options: CallOptions = {}): Promise<boolean> {
    if (this.#grpc !== undefined) return this.#grpc.live(options);
    return this.#probe('/v2/health/live', options);
  }

  /** Whether the server is ready to serve. */
  serverReady(options: CallOptions = {}): Promise<boolean> {
    if (this.#grpc !== undefined) return this.#grpc.serverReady(options);
    return this.#probe('/v2/health/ready', options);
  }

  serverMetadata(options: CallOptions = {}): Promise<ServerMetadata> {
    if (this.#grpc !== undefined) return this.#grpc.serverMetadata(options);
    return this.#json('GET', '/v2', options);
  }

  /** Triton's statistics extension: every model, or one. */
  async stats(model?: string, options: CallOptions = {}): Promise<ModelStatistics[]> {
    if (this.#grpc !== undefined) return this.#grpc.stats(model, options);
    const path = model === undefined ? '/v2/models/stats' : `/v2/models/${segment(model)}/stats`;
    return (await this.#json<{ model_stats: ModelStatistics[] }>('GET', path, options)).model_stats;
  }

  /** The gateway's admin API; calls carry the token given as `token`. */
  readonly admin = {
    models: {
      list: async (options: CallOptions = {}): Promise<ModelStatus[]> => (await this.#json<ModelList>('GET', '/admin/models', options, true)).models as ModelStatus[],
      load: (name: string, options: CallOptions = {}): Promise<ModelStatus> => this.#json('POST', `/admin/models/${segment(name)}/load`, options, true),
      unload: (name: string, options: CallOptions = {}): Promise<ModelStatus> => this.#json('POST', `/admin/models/${segment(name)}/unload`, options, true),
      /** The model's requests, errors and latency (its queue and run) in the last `last` buckets of `window`. */
      history: (name: string, options: HistoryOptions = {}): Promise<ModelHistory> => this.#json('GET', `/admin/models/${segment(name)}/stats/history${historyQuery(options)}`, options, true),
    },
    routes: {
      list: async (options: CallOptions = {}): Promise<RouteView[]> => (await this.#json<{ routes: RouteView[] }>('GET', '/admin/routes', options, true)).routes,
      get: (key: string, options: CallOptions = {}): Promise<RouteView> => this.#json('GET', `/admin/routes/${segment(key)}`, options, true),
      /** Creates or replaces a route: `{ split: ... }` or `{ sequence: ... }`. */
      put: (key: string, route: RouteSpec, options: ConditionalOptions = {}): Promise<RouteView> =>
        this.#json('PUT', `/admin/routes/${segment(key)}`, options, true, route),
      /** Changes some fields of a split, e.g. `{ split: { variants: [...] } }`. */
      patch: (key: string, change: { readonly split: Partial<Split> }, options: ConditionalOptions = {}): Promise<RouteView> =>
        this.#json('PATCH', `/admin/routes/${segment(key)}`, options, true, change),
      delete: async (key: string, options: ConditionalOptions = {}): Promise<void> => {
        await this.#call({ method: 'DELETE', path: `/admin/routes/${segment(key)}`, admin: true, signal: options.signal, headers: conditional(options) });
      },
      /** Per-variant requests, errors and latency, and the shadow's agreement: since the route's last change, and since the start. */
      stats: (key: string, options: CallOptions = {}): Promise<RouteStats> => this.#json('GET', `/admin/routes/${segment(key)}/stats`, options, true),
      /** Per-variant (per-node, per-step) requests, errors and latency in the last `last` buckets of `window` (default 60 of 1m). */
      history: (key: string, options: HistoryOptions = {}): Promise<RouteHistory> => this.#json('GET', `/admin/routes/${segment(key)}/stats/history${historyQuery(options)}`, options, true),
    },
  };

  /** Closes the connections; calls in flight finish first. */
  close(): Promise<void> {
    return this.#pool?.close() ?? this.#grpc?.close() ?? Promise.resolve();
  }

  /** Closes the connections at once; calls in flight fail. */
  destroy(): Promise<void> {
    return this.#pool?.destroy() ?? this.#grpc?.close() ?? Promise.resolve();
  }

  /** A call, retried while it fails with 503 and a retry delay (REST's Retry-After, gRPC's retry-after trailer), within the limits. */
  async #retried<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        const failure = error as ModelgateError;
        const wait = failure.retryAfter === undefined ? undefined : retryWait(failure.retryAfter, attempt);
        if (failure.status !== 503 || wait === undefined || attempt >= this.#maxRetries || waited + wait > this.#maxRetryWaitMs) throw error;
        waited += wait;
        await this.#pause(wait, signal);
      }
    }
  }

  async #pause(wait: number, signal: AbortSignal | undefined): Promise<void> {
    await sleep(wait, undefined, { signal }).catch((abort: unknown) => {
      throw new ModelgateError('the call was aborted', 0, undefined, {}, { cause: abort });
    });
  }

  #probe(path: string, options: CallOptions): Promise<boolean> {
    return this.#call({ method: 'GET', path, signal: options.signal }).then(() => true, notReady);
  }

  async #json<T>(method: Dispatcher.HttpMethod, path: string, options: ConditionalOptions, admin = false, body?: unknown): Promise<T> {
    const headers = { ...conditional(options), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const answer = await this.#call({ method, path, admin, signal: options.signal, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return parseJson(answer.body.toString('utf8')) as T;
  }

  /** Sends a call, retrying a 503 with Retry-After within the limits; throws ModelgateError for any other failure. */
  #call(call: Call): Promise<Answer> {
    return this.#retried(call.signal, async () => {
      const answer = await this.#send(call);
      if (answer.status < 400) return answer;
      throw toError(answer);
    });
  }

  async #send(call: Call): Promise<Answer> {
    if (this.#pool === undefined) throw new ModelgateError(`${call.method} ${call.path} is REST only: the admin API needs an http:// or https:// URL`, 0);
    const headers: Record<string, string> = { ...this.#headers, ...call.headers };
    // The API key goes to the data plane only, the admin token to the admin API only.
    if (call.admin === true && this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    else if (call.admin !== true && this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    try {
      const response = await this.#pool.request({
        method: call.method,
        path: `${this.#base}${call.path}`,
        headers,
        ...(call.body === undefined ? {} : { body: call.body }),
        ...(call.signal === undefined ? {} : { signal: call.signal }),
      });
      const raw = Buffer.from(await response.body.arrayBuffer());
      const body = await decompress(raw, header(response.headers, 'content-encoding'), constants.MAX_LENGTH);
      return { status: response.statusCode, headers: response.headers, body };
    } catch (error) {
      if (error instanceof ModelgateError) throw error;
      const aborted = call.signal?.aborted === true;
      throw new ModelgateError(aborted ? 'the call was aborted' : `no answer from the server: ${(error as Error).message}`, 0, undefined, {}, { cause: error });
    }
  }
}

/** A probe's failure: a 503 or 404 (over gRPC, UNAVAILABLE or NOT_FOUND) is an answer, not ready; anything else is thrown. */
function notReady(error: unknown): boolean {
  if (error instanceof ModelgateError && (error.status === 404 || error.status === 503)) return false;
  throw error;
}

function conditional(options: ConditionalOptions): Record<string, string> {
  if (options.ifMatch === undefined) return {};
  const tag = String(options.ifMatch);
  return { 'if-match': tag.startsWith('"') ? tag : `"${tag}"` };
}

/** Backoff before retry `attempt`: what Retry-After asked for, plus up to a quarter more at random, so clients do not return in step. */
function retryWait(seconds: number, attempt: number): number {
  const base = Math.max(seconds * 1000, 50 * 2 ** attempt);
  return Math.round(base * (1 + Math.random() / 4));
}

function toError(answer: Answer): ModelgateError {
  let message = `HTTP ${answer.status}`;
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as { error?: unknown };
    if (typeof parsed.error === 'string') message = parsed.error;
  } catch {
    const text = answer.body.toString('utf8').trim();
    if (text.length > 0) message = text.slice(0, 500);
  }
  return new ModelgateError(message, answer.status, retryAfterSeconds(header(answer.headers, 'retry-after')), answer.headers);
}

