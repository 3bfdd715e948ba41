/**
 * The V2 data plane: health, metadata and inference by key. It knows nothing
 * of HTTP; the REST layer adapts it (as KServe's dataplane.py is apart from
 * its endpoints).
 */
import { InvalidInputError, KeyNotFoundError } from '../errors.ts';
import type { InferContext, Target, TargetTable } from '../routing/target.ts';
import { untilStopped } from '../executor/waiting.ts';
import { decodeRawBody, splitBody } from './binary.ts';
import { decodeInferRequest } from './decode.ts';
import { encodeInferResponse } from './encode.ts';
import type { InferRequest, TensorSpec } from './types.ts';

/** V2 model metadata. */
export interface ModelMetadata {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export interface ServerMetadata {
  readonly name: string;
  readonly version: string;
  readonly extensions: readonly string[];
}

/** A request body as it arrived: parsed JSON, or the bytes of a binary-extension request. */
export type InferPayload =
  | { readonly json: unknown }
  | { readonly binary: Buffer; readonly headerLength: string | undefined };

/** An encoded response, with what the HTTP layer reports beside it. */
export interface InferReply {
  /** The V2 JSON response text, or JSON header and binary tensors. */
  readonly body: string | Buffer;
  /** Set when the body is binary: the length of its JSON header. */
  readonly headerLength?: number;
  readonly context: InferContext;
}

export class DataPlane {
  readonly #targets: () => TargetTable;
  readonly #metadata: ServerMetadata;
  #ready = false;

  readonly #defaultTimeoutMicros: number | undefined;

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
  }

  target(key: string): Target {
    const target = this.#targets().get(key);
    if (target === undefined) throw new KeyNotFoundError(key);
    return target;
  }

  async modelMetadata(key: string): Promise<ModelMetadata> {
    const signature = await this.target(key).signature();
    return { name: key, versions: [], platform: 'onnx_onnxv1', inputs: signature.inputs, outputs: signature.outputs };
  }

  /**
   * Validates `body` (parsed JSON) against the key's signature, runs it and
   * encodes the answer. The target table is read once: the whole request is
   * served by the snapshot it started with.
   */
  async infer(key: string, payload: InferPayload, header: InferContext['header'], signal?: AbortSignal): Promise<InferReply> {
    const started = performance.now();
    const target = this.target(key);
    const split = 'json' in payload ? undefined : splitBody(payload.binary, payload.headerLength);
    const document = 'json' in payload ? payload.json : split?.header;
    // The deadline covers everything a request waits for, a first load to learn the signature included.
    const timeout = (document as { parameters?: { timeout?: unknown } } | undefined)?.parameters?.timeout ?? this.#defaultTimeoutMicros;
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isSafeInteger(timeout) || timeout <= 0)) {
      throw new InvalidInputError("request: 'timeout' must be a positive whole number of microseconds");
    }
    const context: InferContext = { decisions: [], header, signal, deadline: timeout === undefined ? undefined : started + timeout / 1000 };
    const signature = await untilStopped(target.signature(), context, key);
    let request: InferRequest;
    if ('json' in payload) request = decodeInferRequest(payload.json, signature);
    else if (split === undefined) request = { inputs: decodeRawBody(payload.binary, signature) };
    else request = decodeInferRequest(split.header, signature, split.reader);
    const result = await target.infer(request, context);
    const { json, blobs } = encodeInferResponse(result, request.id, request.binaryOutputs);
    if (blobs.length === 0) return { body: json, context };
    const head = Buffer.from(json, 'utf8');
    return { body: Buffer.concat([head, ...blobs]), headerLength: head.length, context };
  }
}
