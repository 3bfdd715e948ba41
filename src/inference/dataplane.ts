/**
 * The V2 data plane: health, metadata and inference by key. It knows nothing
 * of HTTP; the REST layer adapts it (as KServe's dataplane.py is apart from
 * its endpoints).
 */
import { BinaryReader, decodeRawBody, encodeInferResponse, type InferPayload, type InferRequest, type InferResult, type ModelMetadata, type ModelStatistics, parseJsonExact, type ServerMetadata, type Signature, splitBody, type TensorMap, type TensorSpec } from '@modelgate/client/codec';
import { InvalidInputError, KeyNotFoundError, VersionNotFoundError } from '../errors.ts';
import type { InferContext, RunTiming, Target, TargetTable } from '../routing/target.ts';
import type { Trace } from '../trace.ts';
import { untilStopped, type Flow } from '../waiting.ts';
import { classify } from './classification.ts';
import { decodeInferRequest } from '../protocol/decode.ts';
import { InferenceStatistics } from './statistics.ts';

/** The one version every key serves, as Triton numbers them. */
export const VERSION = '1';

/** An encoded response, with what the HTTP layer reports beside it. */
export interface InferReply {
  /** The V2 JSON response text, or JSON header and binary tensors. */
  readonly body: string | Buffer;
  /** Set when the body is binary: the length of its JSON header. */
  readonly headerLength?: number;
  readonly context: InferContext;
}

/** What the routes decided for a request, as answer headers (REST) or metadata (gRPC): the splits' variants, the switches' cases. */
export function routeHeaders(context: InferContext): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  if (context.decisions.length > 0) headers.push(['x-modelgate-variant', context.decisions.join(',')]);
  if (context.cases !== undefined && context.cases.length > 0) headers.push(['x-modelgate-case', context.cases.join(',')]);
  return headers;
}

/** What a transport tells the data plane of a call besides its body. */
export interface Call {
  /** A request header (REST) or metadata entry (gRPC) by lower-case name. */
  readonly header: InferContext['header'];
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal | undefined;
  /** A version the path or message names. */
  readonly version?: string | undefined;
  /** The transport's own deadline (gRPC's), as performance.now() time. */
  readonly deadline?: number | undefined;
  /** The tenant whose call it is, for the models' fair queues. */
  readonly flow?: Flow | undefined;
  /** The call's span (the transport opened it), when tracing is on. */
  readonly trace?: Trace | undefined;
}

export class DataPlane {
  readonly #targets: () => TargetTable;
  readonly #metadata: ServerMetadata;
  #ready = false;
  readonly #readyListeners: Array<(ready: boolean) => void> = [];

  readonly #defaultTimeoutMicros: number | undefined;
  readonly #statistics = new InferenceStatistics();

  /**
   * @param targets returns the current target table; each call may see a newer snapshot.
   * @param defaultTimeoutMicros deadline of requests that set no `timeout` parameter.
   */
  constructor(targets: () => TargetTable, metadata: ServerMetadata, defaultTimeoutMicros?: number) {
    this.#targets = targets;
    this.#metadata = metadata;
    this.#defaultTimeoutMicros = defaultTimeoutMicros;
  }

  serverMetadata(): ServerMetadata {
    return this.#metadata;
  }

  /** Ready once start-up is done, until shutdown begins. */
  get ready(): boolean {
    return this.#ready;
  }

  set ready(value: boolean) {
    this.#ready = value;
    for (const listener of this.#readyListeners) listener(value);
  }

  /** Tells `listener` every change of readiness (the health thread and gRPC's health service answer from it). */
  onReadyChange(listener: (ready: boolean) => void): void {
    this.#readyListeners.push(listener);
  }

  /** The target behind `key`; with `version` (a `/versions/{v}/` path), that version must be one the key serves. */
  target(key: string, version?: string): Target {
    const target = this.#targets().get(key);
    if (target === undefined) throw new KeyNotFoundError(key);
    if (version !== undefined && version !== VERSION) throw new VersionNotFoundError(key, version);
    return target;
  }

  async modelMetadata(key: string, version?: string): Promise<ModelMetadata> {
    const signature = await this.target(key, version).signature();
    return { name: key, versions: [VERSION], platform: 'onnx_onnxv1', inputs: signature.inputs, outputs: signature.outputs };
  }

  /** Triton's statistics extension: every key served now (that `visible` lets the caller see), or one. */
  statistics(key?: string, version?: string, visible?: (key: string) => boolean): { model_stats: ModelStatistics[] } {
    if (key !== undefined) this.target(key, version);
    const keys = key === undefined ? [...this.#targets().keys()].filter((each) => visible === undefined || visible(each)) : [key];
    return { model_stats: this.#statistics.report(keys) };
  }

  /**
   * Validates `body` (parsed JSON) against the key's signature, runs it and
   * encodes the answer. The target table is read once: the whole request is
   * served by the snapshot it started with.
   */
  async infer(key: string, payload: InferPayload, call: Call): Promise<InferReply> {
    const version = call.version;
    return this.serve(key, payload, call, (result, request, context) => {
      const { json, blobs } = encodeInferResponse(result, request.id, request.binaryOutputs, version);
      return blobs.length === 0 ? { body: json, context } : binaryReply(json, blobs, context);
    });
  }

  /**
   * Decodes, runs and answers a request, the answer in whatever form `encode` gives it (the
   * REST body, a gRPC message); the statistics count the encoding as the answer's cost.
   * `deadline` (performance.now() time) bounds it beside the request's own `timeout`.
   */
  async serve<T>(key: string, payload: InferPayload, call: Call, encode: (result: InferResult, request: InferRequest, context: InferContext) => T): Promise<T> {
    const started = performance.now();
    const target = this.target(key, call.version);
    try {
      return await this.#serve(target, payload, call, started, encode);
    } catch (error) {
      this.#statistics.failed(key, performance.now() - started);
      throw error;
    }
  }

  async #serve<T>(target: Target, payload: InferPayload, call: Call, started: number, encode: (result: InferResult, request: InferRequest, context: InferContext) => T): Promise<T> {
    const { header, signal } = call;
    const key = target.key;
    const split = 'json' in payload ? undefined : 'tensors' in payload ? { header: payload.header, reader: new BinaryReader(payload.tensors) } : splitBody(payload.binary, payload.headerLength);
    const document = 'json' in payload ? payload.json : split?.header;
    // The deadline covers everything a request waits for, a first load to learn the signature included.
    const timeout = (document as { parameters?: { timeout?: unknown } } | undefined)?.parameters?.timeout ?? this.#defaultTimeoutMicros;
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isSafeInteger(timeout) || timeout <= 0)) {
      throw new InvalidInputError("request: 'timeout' must be a positive whole number of microseconds");
    }
    const timing: RunTiming = { queueMs: 0, waitMs: 0, inferMs: 0, executions: 0, batchSize: 1 };
    const ownDeadline = timeout === undefined ? undefined : started + timeout / 1000;
    const deadline = ownDeadline === undefined ? call.deadline : call.deadline === undefined ? ownDeadline : Math.min(ownDeadline, call.deadline);
    const context: InferContext = { decisions: [], cases: [], header, signal, deadline, timing, flow: call.flow, trace: call.trace };
    call.trace?.set({ 'modelgate.route.kind': target.kind });
    // Known already in the common case: no promise, no listener.
    const signature = target.knownSignature() ?? await untilStopped(target.signature(), context, key);
    const decoding = performance.now();
    const decode = (exact: boolean): InferRequest => {
      if ('json' in payload) return decodeInferRequest(exact && payload.exact !== undefined ? payload.exact() : payload.json, signature);
      if (split === undefined) return { inputs: decodeRawBody((payload as { binary: Buffer }).binary, signature) };
      const again = exact && 'binary' in payload ? splitBody(payload.binary, payload.headerLength, parseJsonExact) ?? split : split;
      return decodeInferRequest(again.header, signature, again.reader);
    };
    let request: InferRequest;
    try {
      request = decode(false);
    } catch (error) {
      // JSON.parse rounded a 64-bit integer beyond 2^53: read the text again, exactly. Rare, so the common case pays nothing.
      if ((error as { inexact?: boolean }).inexact !== true) throw error;
      request = decode(true);
    }
    const decoded = performance.now();
    const result = classified(await target.infer(request, context), request.classification);
    const encoding = performance.now();
    const reply = encode(result, request, context);
    const ended = performance.now();
    this.#statistics.succeeded(key, { totalMs: ended - started, inputMs: decoded - decoding, outputMs: ended - encoding, rows: rows(request.inputs, signature), timing });
    return reply;
  }
}

function binaryReply(json: string, blobs: Buffer[], context: InferContext): InferReply {
  const head = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([head, ...blobs]), headerLength: head.length, context };
}

function classified(result: InferResult, classification: ReadonlyMap<string, number> | undefined): InferResult {
  if (classification === undefined) return result;
  const outputs: TensorMap = new Map();
  for (const [name, tensor] of result.outputs) {
    const count = classification.get(name);
    outputs.set(name, count === undefined ? tensor : classify(tensor, count, name));
  }
  return { ...result, outputs };
}

/** Inferences a request carries, as Triton counts them: its batch dimension where the key batches along a dynamic first one. */
function rows(inputs: TensorMap, signature: Signature): number {
  const [spec] = signature.inputs;
  const first = spec === undefined ? undefined : inputs.get(spec.name);
  return spec?.shape[0] === -1 && first !== undefined ? first.shape[0] ?? 1 : 1;
}
