/**
 * The Open Inference Protocol (KServe V2) as the data plane sees it: tensors
 * with typed storage, independent of HTTP and of onnxruntime.
 */

/** V2 tensor datatypes. */
export type Datatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64'
  | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

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

/** A tensor as a model declares it: `-1` marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

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
}

/**
 * A request body as it arrived: parsed JSON (with `exact`, which reads its
 * text again with 64-bit integers exact, if it came as text), or the bytes of
 * a binary-extension request.
 */
export type InferPayload =
  | { readonly json: unknown; readonly exact?: () => unknown }
  | { readonly binary: Buffer; readonly headerLength: string | undefined };

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
