/**
 * The client's side of the codec: application tensors to V2 request bodies
 * (JSON or the binary extension) and V2 answers back to typed arrays. The
 * conversions are the codec's, which the server decodes and encodes with too,
 * so both sides agree on every datatype, exact 64-bit integers and BYTES framing.
 */
import { frameElements, fromBytes, toBytes } from './codec/binary.ts';
import { allocate, convertElement, isDatatype } from './codec/datatypes.ts';
import { encodeData } from './codec/encode.ts';
import { parseJson, parseJsonExact } from './codec/json.ts';
import type { Datatype, Tensor, TensorData } from './codec/types.ts';

export type { Datatype, TensorData };

/**
 * An input tensor. `data` is the datatype's typed array (`Float32Array` for
 * FP32, `BigInt64Array` for INT64, `BigUint64Array` for UINT64, `Uint8Array`
 * of 0/1 for BOOL, `Uint16Array` of IEEE half-precision bits for FP16), or
 * for BYTES `string[]` (sent as UTF-8) or `Uint8Array[]`; or a plain array of
 * numbers, bigints, booleans or strings, converted with the server's rules.
 */
export interface InputTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData | readonly Uint8Array[] | ReadonlyArray<number | bigint | boolean | string>;
}

/** An output tensor: `data` is the datatype's typed array (exact `BigInt64Array` for INT64), or `string[]` for BYTES (UTF-8 decoded). */
export interface OutputTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** A V2 inference answer. */
export interface InferResponse {
  /** The model that answered (`model_name`). */
  readonly modelName: string;
  readonly modelVersion?: string;
  /** The request's id, echoed. */
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly outputs: readonly OutputTensor[];
}

/** An output to ask for: its name, or its name with options. */
export type RequestedOutput = string | {
  readonly name: string;
  /** Answer this output in binary form. Default: the request's `binary`. */
  readonly binary?: boolean;
  /** Answer as the top this-many classes, "value:index" strings (Triton's classification extension). */
  readonly classification?: number;
};

export interface EncodeOptions {
  readonly binary: boolean;
  readonly outputs?: readonly RequestedOutput[] | undefined;
  readonly id?: string | undefined;
  readonly parameters?: Readonly<Record<string, unknown>> | undefined;
}

function elements(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/** The input as a protocol tensor: typed data checked against the shape, plain arrays converted. */
function toTensor(input: InputTensor): Tensor {
  const { name, datatype, shape } = input;
  if (!isDatatype(datatype)) throw new TypeError(`input '${name}': '${String(datatype)}' is not a V2 datatype`);
  const count = elements(shape);
  if (input.data.length !== count) throw new TypeError(`input '${name}': data has ${input.data.length} elements but shape [${shape.join(',')}] needs ${count}`);
  if (datatype === 'BYTES') {
    return { datatype, shape, data: Array.from(input.data as ArrayLike<unknown>, (item) => (item instanceof Uint8Array ? Buffer.from(item).toString('latin1') : String(item))) };
  }
  if (ArrayBuffer.isView(input.data) && input.data.constructor === allocate(datatype, 0).constructor) {
    return { datatype, shape, data: input.data as TensorData };
  }
  const data = allocate(datatype, count) as unknown as unknown[];
  Array.from(input.data as ArrayLike<unknown>).forEach((value, index) => {
    const converted = convertElement(datatype, typeof value === 'number' && datatype === 'BOOL' ? value !== 0 : value);
    if (typeof converted === 'object') throw new TypeError(`input '${name}': element ${index}: ${converted.error}`);
    data[index] = converted;
  });
  return { datatype, shape, data: data as unknown as TensorData };
}

/** BYTES given as Uint8Array travel as latin1 strings inside the client, so their bytes go out unchanged. */
function bytesOf(input: InputTensor, tensor: Tensor): Buffer {
  if (tensor.datatype !== 'BYTES' || !(input.data[0] instanceof Uint8Array)) return toBytes(tensor);
  return frameElements(input.data as readonly Uint8Array[]);
}

/** An input as a protocol tensor with its binary form (BYTES length-prefixed): what gRPC's raw_input_contents carry. */
export function inputTensor(input: InputTensor): { tensor: Tensor; bytes: Buffer } {
  const tensor = toTensor(input);
  return { tensor, bytes: bytesOf(input, tensor) };
}

/** A V2 request body: JSON text, or a JSON header and binary data with the header's length. */
export function encodeRequest(inputs: readonly InputTensor[], options: EncodeOptions): { body: Buffer; headerLength?: number } {
  const blobs: Buffer[] = [];
  const parts = inputs.map((input) => {
    const tensor = toTensor(input);
    const head = `{"name":${JSON.stringify(input.name)},"shape":[${input.shape.join(',')}],"datatype":"${input.datatype}"`;
    if (options.binary) {
      const bytes = bytesOf(input, tensor);
      blobs.push(bytes);
      return `${head},"parameters":{"binary_data_size":${bytes.length}}}`;
    }
    if (tensor.datatype === 'BYTES' && input.data[0] instanceof Uint8Array) {
      throw new TypeError(`input '${input.name}': BYTES given as Uint8Array need the binary form (binary: true)`);
    }
    return `${head},"data":${encodeData(tensor)}}`;
  });
  const document: string[] = [];
  if (options.id !== undefined) document.push(`"id":${JSON.stringify(options.id)}`);
  document.push(`"inputs":[${parts.join(',')}]`);
  if (options.outputs !== undefined) {
    document.push(`"outputs":${JSON.stringify(options.outputs.map((output) => {
      const { name, binary = options.binary, classification } = typeof output === 'string' ? { name: output } : output;
      return { name, parameters: { binary_data: binary, ...(classification === undefined ? {} : { classification }) } };
    }))}`);
  }
  const parameters = { ...options.parameters, ...(options.binary && options.outputs === undefined ? { binary_data_output: true } : {}) };
  if (Object.keys(parameters).length > 0) document.push(`"parameters":${JSON.stringify(parameters)}`);
  const json = Buffer.from(`{${document.join(',')}}`, 'utf8');
  return blobs.length === 0 ? { body: json } : { body: Buffer.concat([json, ...blobs]), headerLength: json.length };
}

interface WireOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown;
  parameters?: { binary_data_size?: number };
}

/** A V2 answer, JSON or binary, to typed tensors. Throws a TypeError if it is not one. */
export function decodeResponse(body: Buffer, headerLength: number | undefined): InferResponse {
  const jsonEnd = headerLength ?? body.length;
  if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.length) throw new TypeError(`Inference-Header-Content-Length ${headerLength} is beyond the body (${body.length} bytes)`);
  const text = body.subarray(0, jsonEnd).toString('utf8');
  try {
    return decodeDocument(parseJson(text), body, jsonEnd);
  } catch (error) {
    // JSON.parse rounded a 64-bit integer beyond 2^53: read the text again, exactly (rare, and slower).
    if ((error as { inexact?: boolean }).inexact !== true) throw error;
    return decodeDocument(parseJsonExact(text), body, jsonEnd);
  }
}

function decodeDocument(parsed: unknown, body: Buffer, jsonEnd: number): InferResponse {
  const document = parsed as {
    model_name?: unknown; model_version?: unknown; id?: unknown; parameters?: Record<string, unknown>; outputs?: WireOutput[];
  };
  if (typeof document !== 'object' || document === null || typeof document.model_name !== 'string' || !Array.isArray(document.outputs)) {
    throw new TypeError('the answer is not a V2 inference response');
  }
  let offset = jsonEnd;
  const outputs = document.outputs.map((output): OutputTensor => {
    const { name, datatype, shape } = output;
    if (!isDatatype(datatype) || !Array.isArray(shape)) throw new TypeError(`output '${name}': not a V2 tensor`);
    const count = elements(shape);
    const size = output.parameters?.binary_data_size;
    if (size !== undefined) {
      const bytes = body.subarray(offset, offset + size);
      offset += size;
      return { name, datatype, shape, data: fromBytes(bytes, datatype, count, `output '${name}'`, false) };
    }
    const flat = Array.isArray(output.data) ? output.data.flat(Infinity) : [output.data];
    if (flat.length !== count) throw new TypeError(`output '${name}': ${flat.length} elements for shape [${shape.join(',')}]`);
    const data = allocate(datatype, count) as unknown as unknown[];
    flat.forEach((value, index) => {
      const converted = convertElement(datatype, value);
      if (typeof converted === 'object') throw Object.assign(new TypeError(`output '${name}': element ${index}: ${converted.error}`), { inexact: converted.inexact });
      data[index] = converted;
    });
    return { name, datatype, shape, data: data as unknown as TensorData };
  });
  return {
    modelName: document.model_name,
    ...(typeof document.model_version === 'string' ? { modelVersion: document.model_version } : {}),
    ...(typeof document.id === 'string' ? { id: document.id } : {}),
    ...(document.parameters === undefined ? {} : { parameters: document.parameters }),
    outputs,
  };
}
