/**
 * The Open Inference Protocol (KServe V2) as the data plane sees it: tensors
 * with typed storage, independent of HTTP and of onnxruntime.
 */
import type { Datatype, TensorSpec } from '../wire.ts';

export type { Datatype, Duration, ModelMetadata, ModelStatistics, ServerMetadata, TensorSpec } from '../wire.ts';

/**
 * A tensor's elements, row-major. BOOL is stored as 0/1 bytes, FP16 as raw
 * half-precision bits, BYTES as strings (onnxruntime's string tensors).
 */
export type TensorData =
  | Uint8Array | Uint16Array | Uint32Array | BigUint64Array
  | Int8Array | Int16Array | Int32Array | BigInt64Array
  | Float32Array | Float64Array | string[];

/** A decoded tensor. `shape` dimensions are non-negative integers. */
export interface Tensor {
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** Named tensors, in order. Maps, because names come from clients. */
export type TensorMap = Map<string, Tensor>;

/** A model's (or any target's) inputs and outputs, in declaration order. */
export interface Signature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** A validated inference request. */
export interface InferRequest {
  readonly id?: string;
  readonly inputs: TensorMap;
  /** Output names the client asked for; undefined means all of them. */
  readonly outputs?: readonly string[];
  readonly parameters?: Readonly<Record<string, unknown>>;
  /** Outputs to answer in binary form (Triton's binary extension): some, or all. */
  readonly binaryOutputs?: ReadonlySet<string> | 'all';
  /** Outputs to answer as their top classes (Triton's classification extension): name -> class count. */
  readonly classification?: ReadonlyMap<string, number>;
}

/** The result of an inference, before encoding. */
export interface InferResult {
  /** The model that produced the outputs. */
  readonly modelName: string;
  readonly outputs: TensorMap;
  /** Response-level parameters (e.g. an ensemble's `ensemble_missing`). */
  readonly parameters?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * A request body as it arrived: parsed JSON (with `exact`, which reads its
 * text again with 64-bit integers exact, if it came as text), the bytes of
 * a binary-extension request, or one already apart (gRPC's): the JSON header
 * as an object, every input's `binary_data_size` bytes in `tensors`.
 */
export type InferPayload =
  | { readonly json: unknown; readonly exact?: () => unknown }
  | { readonly binary: Buffer; readonly headerLength: string | undefined }
  | { readonly header: unknown; readonly tensors: Buffer };
