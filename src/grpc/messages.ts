/**
 * ModelInferRequest to the data plane and back. A gRPC request becomes the
 * binary extension's shape, already apart (a JSON-like header and every input's
 * bytes in order), so it is validated and decoded by the very code REST requests
 * are: `raw_input_contents` pass as they are (BYTES elements 4-byte length
 * prefixed, as Triton sends them), typed `contents` are written into the same
 * little-endian form first. Answers go out in `raw_output_contents`, as Triton
 * answers by default.
 */
import { frameElements, fromInferParameter, toBytes, toInferParameter, type InferParameter, type InferPayload, type InferResult, type Tensor } from '@modelgate/client/codec';
import { InvalidInputError } from '../errors.ts';

export interface ProtoContents {
  readonly bool_contents?: readonly boolean[];
  readonly int_contents?: readonly number[];
  readonly int64_contents?: readonly string[];
  readonly uint_contents?: readonly number[];
  readonly uint64_contents?: readonly string[];
  readonly fp32_contents?: readonly number[];
  readonly fp64_contents?: readonly number[];
  readonly bytes_contents?: readonly Buffer[];
}

export interface ProtoInferRequest {
  readonly model_name: string;
  readonly model_version: string;
  readonly id: string;
  readonly parameters: Readonly<Record<string, InferParameter>>;
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly datatype: string; readonly shape: readonly string[]; readonly parameters: Readonly<Record<string, InferParameter>>; readonly contents: ProtoContents | null }>;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly parameters: Readonly<Record<string, InferParameter>> }>;
  readonly raw_input_contents: readonly Buffer[];
}

function parameters(map: Readonly<Record<string, InferParameter>>): Record<string, unknown> | undefined {
  const entries = Object.entries(map).map(([name, parameter]) => [name, fromInferParameter(parameter)] as const).filter(([, value]) => value !== undefined);
  return entries.length === 0 ? undefined : Object.fromEntries(entries);
}

/** `{ parameters }` when the map holds any, else nothing: the header carries no empty parameters. */
function parametersField(map: Readonly<Record<string, InferParameter>>): { parameters?: Record<string, unknown> } {
  const converted = parameters(map);
  return converted === undefined ? {} : { parameters: converted };
}

const INTEGER_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647],
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295],
};

function ranged(values: readonly number[], datatype: string, where: string): readonly number[] {
  const [low, high] = INTEGER_RANGES[datatype] as readonly [number, number];
  values.forEach((value, index) => {
    if (value < low || value > high) throw new InvalidInputError(`${where}: element ${index} (${value}) is out of range for ${datatype}`);
  });
  return values;
}

/** 64-bit contents as proto-loader gives them: decimal text, always an integer. */
function bigints(values: readonly string[]): bigint[] {
  return values.map((value) => BigInt(value));
}

const bytesOf = (array: ArrayBufferView): Buffer => Buffer.from(array.buffer, array.byteOffset, array.byteLength);

/** An input's typed `contents` in the binary extension's little-endian form. */
function contentsBytes(datatype: string, contents: ProtoContents, where: string): Buffer {
  switch (datatype) {
    case 'BOOL': return Buffer.from(Uint8Array.from(contents.bool_contents ?? [], (value) => (value ? 1 : 0)));
    case 'INT8': return bytesOf(Int8Array.from(ranged(contents.int_contents ?? [], datatype, where)));
    case 'INT16': return bytesOf(Int16Array.from(ranged(contents.int_contents ?? [], datatype, where)));
    case 'INT32': return bytesOf(Int32Array.from(contents.int_contents ?? []));
    case 'INT64': return bytesOf(BigInt64Array.from(bigints(contents.int64_contents ?? [])));
    case 'UINT8': return bytesOf(Uint8Array.from(ranged(contents.uint_contents ?? [], datatype, where)));
    case 'UINT16': return bytesOf(Uint16Array.from(ranged(contents.uint_contents ?? [], datatype, where)));
    case 'UINT32': return bytesOf(Uint32Array.from(contents.uint_contents ?? []));
    case 'UINT64': return bytesOf(BigUint64Array.from(bigints(contents.uint64_contents ?? [])));
    case 'FP32': return bytesOf(Float32Array.from(contents.fp32_contents ?? []));
    case 'FP64': return bytesOf(Float64Array.from(contents.fp64_contents ?? []));
    case 'BYTES': return frameElements(contents.bytes_contents ?? []);
    case 'FP16': case 'BF16':
      throw new InvalidInputError(`${where}: ${datatype} has no typed contents field: send it in raw_input_contents`);
    default:
      // An unknown datatype: the decoder names it.
      return Buffer.alloc(0);
  }
}

function hasContents(contents: ProtoContents | null): boolean {
  return contents !== null && Object.values(contents).some((values) => Array.isArray(values) && values.length > 0);
}

/** The request as the data plane reads it: the binary extension's header and tensor bytes. */
export function payloadOf(request: ProtoInferRequest): InferPayload {
  const raw = request.raw_input_contents;
  if (raw.length > 0 && raw.length !== request.inputs.length) {
    throw new InvalidInputError(`raw_input_contents holds ${raw.length} tensors but inputs names ${request.inputs.length}: one each, in the same order`);
  }
  const bytes = request.inputs.map((input, index) => {
    const where = `input '${input.name}'`;
    if (raw.length > 0) {
      if (hasContents(input.contents)) throw new InvalidInputError(`${where}: contents and raw_input_contents are both set: use one`);
      return raw[index] as Buffer;
    }
    return contentsBytes(input.datatype, input.contents ?? {}, where);
  });
  const header = {
    ...(request.id === '' ? {} : { id: request.id }),
    ...parametersField(request.parameters),
    inputs: request.inputs.map((input, index) => ({
      name: input.name,
      datatype: input.datatype,
      shape: input.shape.map((dimension) => {
        const number = Number(dimension);
        if (!Number.isSafeInteger(number)) throw new InvalidInputError(`input '${input.name}': shape dimension ${dimension} is too large`);
        return number;
      }),
      parameters: { ...parameters(input.parameters), binary_data_size: (bytes[index] as Buffer).length },
    })),
    ...(request.outputs.length === 0 ? {} : { outputs: request.outputs.map((output) => ({ name: output.name, ...parametersField(output.parameters) })) }),
  };
  return { header, tensors: bytes.length === 1 ? bytes[0] as Buffer : Buffer.concat(bytes) };
}

/** The ModelInferResponse of a result: tensors in raw_output_contents, in output order. */
export function responseOf(key: string, id: string | undefined, result: InferResult): Record<string, unknown> {
  const outputs: Array<Record<string, unknown>> = [];
  const raw: Buffer[] = [];
  for (const [name, tensor] of result.outputs) {
    outputs.push({ name, datatype: tensor.datatype, shape: tensor.shape as number[] });
    raw.push(toBytes(tensor as Tensor));
  }
  return {
    model_name: key,
    model_version: '1',
    id: id ?? '',
    // Lists (an ensemble's missing members) as comma-separated text: InferParameter holds no lists.
    ...(result.parameters === undefined ? {} : { parameters: Object.fromEntries(Object.entries(result.parameters).map(([name, value]) => [name, toInferParameter(Array.isArray(value) ? value.join(',') : value)])) }),
    outputs,
    raw_output_contents: raw,
  };
}
