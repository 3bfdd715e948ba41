/**
 * The V2 data plane: health, metadata and inference by key. It knows nothing
 * of HTTP; the REST layer adapts it (as KServe's dataplane.py is apart from
 * its endpoints).
 */
import { KeyNotFoundError } from '../errors.ts';
import type { InferContext, Target, TargetTable } from '../routing/target.ts';
import { decodeInferRequest } from './decode.ts';
import { encodeInferResponse } from './encode.ts';
import type { TensorSpec } from './types.ts';

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

/** An encoded response, with what the HTTP layer reports beside it. */
export interface InferReply {
  /** The V2 JSON response text. */
  readonly body: string;
  readonly context: InferContext;
}

export class DataPlane {
  readonly #targets: () => TargetTable;
  readonly #metadata: ServerMetadata;
  #ready = false;

  /** @param targets returns the current target table; each call may see a newer snapshot. */
  constructor(targets: () => TargetTable, metadata: ServerMetadata) {
    this.#targets = targets;
    this.#metadata = metadata;
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
  async infer(key: string, body: unknown, header: InferContext['header']): Promise<InferReply> {
    const target = this.target(key);
    const request = decodeInferRequest(body, await target.signature());
    const context: InferContext = { decisions: [], header };
    const result = await target.infer(request, context);
    return { body: encodeInferResponse(result, request.id), context };
  }
}
