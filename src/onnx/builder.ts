/**
 * Builds ONNX models from code, for the demo and the tests: models with known
 * weights, so expected outputs can be computed independently of the gateway.
 * Uses onnx-proto (a dev dependency); the server itself never imports this.
 */
import onnxProto from 'onnx-proto';
import { floatToHalf } from '@modelgate/client/codec';

const { onnx } = onnxProto;

export type ElemType = 'float16' | 'float32' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool' | 'string';

/** A graph input or output: a dimension is a fixed size (number) or a symbolic, dynamic one (string). */
export interface ValueSpec { name: string; type: ElemType; shape: ReadonlyArray<number | string> }

/** A constant tensor; values row-major. */
export interface InitializerSpec { name: string; type: ElemType; dims: readonly number[]; values: ReadonlyArray<number | bigint | boolean | string> }

/** Numbers that are integers become INT attributes; wrap in `{ float }` to force FLOAT. */
export type AttributeValue = number | { float: number } | string | readonly number[] | { floats: readonly number[] } | readonly string[] | { tensor: InitializerSpec };

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Record<string, AttributeValue>;
  domain?: string;
  name?: string;
}

export interface ModelSpec {
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  nodes: readonly NodeSpec[];
  initializers?: readonly InitializerSpec[];
  /** Default opset 17. */
  opset?: number;
  /** Default IR version 8. */
  irVersion?: number;
  producer?: string;
}

/** ONNX TensorProto.DataType codes. */
const TYPE_CODES: Record<ElemType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8,
  bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13,
};

export function buildModel(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: spec.irVersion ?? 8,
    producerName: spec.producer ?? 'modelgate',
    opsetImport: [{ domain: '', version: spec.opset ?? 17 }],
    graph: {
      name: 'graph',
      node: spec.nodes.map((node, index) => ({
        opType: node.op,
        input: [...node.inputs],
        output: [...node.outputs],
        name: node.name ?? `${node.op}_${index}`,
        domain: node.domain ?? '',
        attribute: Object.entries(node.attributes ?? {}).map(([name, value]) => attribute(name, value)),
      })),
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
      initializer: (spec.initializers ?? []).map(tensor),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

function valueInfo(value: ValueSpec) {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: TYPE_CODES[value.type],
        shape: { dim: value.shape.map((dim) => (typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim })) },
      },
    },
  };
}

function tensor(spec: InitializerSpec) {
  const base = { name: spec.name, dims: [...spec.dims], dataType: TYPE_CODES[spec.type] };
  if (spec.type === 'string') return { ...base, stringData: spec.values.map((value) => new TextEncoder().encode(String(value))) };
  return { ...base, rawData: rawBytes(spec.type, spec.values) };
}

/** Little-endian element bytes, as ONNX raw_data stores them. */
function rawBytes(type: ElemType, values: ReadonlyArray<number | bigint | boolean | string>): Uint8Array {
  const n = values.length;
  const numbers = () => values.map((value) => Number(value));
  switch (type) {
    case 'float32': return bytes(new Float32Array(numbers()));
    case 'float64': return bytes(new Float64Array(numbers()));
    case 'float16': return bytes(new Uint16Array(numbers().map(floatToHalf)));
    case 'int8': return bytes(new Int8Array(numbers()));
    case 'uint8': case 'bool': return bytes(new Uint8Array(numbers()));
    case 'int16': return bytes(new Int16Array(numbers()));
    case 'uint16': return bytes(new Uint16Array(numbers()));
    case 'int32': return bytes(new Int32Array(numbers()));
    case 'uint32': return bytes(new Uint32Array(numbers()));
    case 'int64': return bytes(BigInt64Array.from(values, (value) => BigInt(value as number | bigint)));
    case 'uint64': return bytes(BigUint64Array.from(values, (value) => BigInt(value as number | bigint)));
    default: throw new Error(`no raw encoding for ${type} (${n} values)`);
  }
}

function bytes(array: ArrayBufferView): Uint8Array {
  // Typed arrays are in platform byte order; ONNX wants little-endian, which every supported platform is.
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function attribute(name: string, value: AttributeValue) {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) {
    if (value.every((item) => typeof item === 'string')) {
      return { name, type: AttributeType.STRINGS, strings: (value as string[]).map((item) => new TextEncoder().encode(item)) };
    }
    return { name, type: AttributeType.INTS, ints: [...(value as number[])] };
  }
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.TENSOR, t: tensor((value as { tensor: InitializerSpec }).tensor) };
}

/** `y = Identity(x)`. */
export function identityModel(type: ElemType, shape: ReadonlyArray<number | string>, names = { input: 'x', output: 'y' }): Uint8Array {
  return buildModel({
    inputs: [{ name: names.input, type, shape }],
    outputs: [{ name: names.output, type, shape }],
    nodes: [{ op: 'Identity', inputs: [names.input], outputs: [names.output] }],
  });
}

export interface AffineOptions {
  inFeatures: number;
  outFeatures: number;
  /** Row-major [inFeatures][outFeatures]. */
  weights: readonly number[];
  bias: readonly number[];
  /** First dimension of x and y; default the dynamic 'batch'. */
  batch?: number | string;
}

/** float32 `y = x W + b`: input 'x' [batch, in], output 'y' [batch, out]. */
export function affineModel(options: AffineOptions): Uint8Array {
  const { inFeatures, outFeatures, weights, bias } = options;
  const batch = options.batch ?? 'batch';
  if (weights.length !== inFeatures * outFeatures || bias.length !== outFeatures) throw new Error('affineModel: weights or bias of the wrong size');
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: [batch, inFeatures] }],
    outputs: [{ name: 'y', type: 'float32', shape: [batch, outFeatures] }],
    initializers: [
      { name: 'W', type: 'float32', dims: [inFeatures, outFeatures], values: weights },
      { name: 'B', type: 'float32', dims: [outFeatures], values: bias },
    ],
    nodes: [{ op: 'Gemm', inputs: ['x', 'W', 'B'], outputs: ['y'] }],
  });
}

/** Two inputs 'a', 'b'; two outputs 'sum' (a + b) and 'product' (a * b). */
export function addMulModel(type: ElemType = 'float32', shape: ReadonlyArray<number | string> = ['n']): Uint8Array {
  return buildModel({
    inputs: [{ name: 'a', type, shape }, { name: 'b', type, shape }],
    outputs: [{ name: 'sum', type, shape }, { name: 'product', type, shape }],
    nodes: [
      { op: 'Add', inputs: ['a', 'b'], outputs: ['sum'] },
      { op: 'Mul', inputs: ['a', 'b'], outputs: ['product'] },
    ],
  });
}

/** Parses, but fails at session creation: onnxruntime has no 'NoSuchOperator'. */
export function unsupportedOpModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 1] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
    nodes: [{ op: 'NoSuchOperator', inputs: ['x'], outputs: ['y'] }],
  });
}
