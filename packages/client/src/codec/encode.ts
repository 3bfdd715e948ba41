/**
 * Writes V2 JSON inference responses. The JSON is built by hand: typed arrays
 * join far faster than a generic serializer walks them, and 64-bit integers
 * stay exact.
 */
import { toBytes } from './binary.ts';
import { halfToFloat } from './datatypes.ts';
import type { InferResult, Tensor } from './types.ts';

/**
 * A V2 response carrying `result`, echoing the request's `id`: the JSON text
 * and, for outputs asked for in binary form, their bytes to follow it in order.
 */
export function encodeInferResponse(result: InferResult, id: string | undefined, binary?: ReadonlySet<string> | 'all', version?: string): { json: string; blobs: Buffer[] } {
  const parts: string[] = [];
  const blobs: Buffer[] = [];
  for (const [name, tensor] of result.outputs) {
    const head = `{"name":${JSON.stringify(name)},"datatype":"${tensor.datatype}","shape":[${tensor.shape.join(',')}]`;
    if (binary === 'all' || binary?.has(name) === true) {
      const bytes = toBytes(tensor);
      blobs.push(bytes);
      parts.push(`${head},"parameters":{"binary_data_size":${bytes.length}}}`);
    } else {
      parts.push(`${head},"data":${encodeData(tensor)}}`);
    }
  }
  const idPart = id === undefined ? '' : `,"id":${JSON.stringify(id)}`;
  const versionPart = version === undefined ? '' : `,"model_version":${JSON.stringify(version)}`;
  const parametersPart = result.parameters === undefined ? '' : `,"parameters":${JSON.stringify(result.parameters)}`;
  return { json: `{"model_name":${JSON.stringify(result.modelName)}${versionPart}${idPart}${parametersPart},"outputs":[${parts.join(',')}]}`, blobs };
}

/** A tensor's elements as a flat JSON array, row-major, as V2 writes them. */
export function encodeData(tensor: Tensor): string {
  const { data, datatype } = tensor;
  if (Array.isArray(data)) return JSON.stringify(data);
  if (datatype === 'BOOL') return `[${Array.from(data as Uint8Array, (bit) => (bit ? 'true' : 'false')).join(',')}]`;
  if (datatype === 'FP16') return encodeFloats(Array.from(data as Uint16Array, halfToFloat));
  if (datatype === 'FP32' || datatype === 'FP64') return encodeFloats(data as Float32Array | Float64Array);
  return `[${data.join(',')}]`;
}

/** JSON has no NaN or Infinity: those are written as strings, which the decoder accepts back. */
function encodeFloats(values: ArrayLike<number> & { join(separator: string): string }): string {
  const joined = values.join(',');
  if (!/[NI]/.test(joined)) return `[${joined}]`;
  return `[${Array.from(values, (value) => (Number.isFinite(value) ? String(value) : `"${value}"`)).join(',')}]`;
}
