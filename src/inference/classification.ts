/**
 * Triton's classification extension: an output asked for with
 * `parameters.classification: k` comes back as the k largest entries along
 * its last axis, each a BYTES element "value:index", largest first.
 */
import { halfToFloat, type Tensor } from '@modelgate/client/codec';
import { InvalidInputError } from '../errors.ts';
import { topk } from '../ops/postprocess.ts';

export function classify(tensor: Tensor, count: number, name: string): Tensor {
  const axis = tensor.shape.length - 1;
  const classes = tensor.shape[axis];
  if (classes === undefined) throw new InvalidInputError(`requested output '${name}': classification needs an output with at least one dimension`);
  const numeric: Tensor = tensor.datatype === 'FP16' ? { datatype: 'FP32', shape: tensor.shape, data: Float32Array.from(tensor.data as Uint16Array, halfToFloat) } : tensor;
  const k = Math.min(count, classes);
  const [values, indices] = topk(numeric, k, axis);
  const data = Array.from(indices.data as BigInt64Array, (index, i) => `${String((values.data as ArrayLike<unknown>)[i])}:${index}`);
  return { datatype: 'BYTES', shape: values.shape, data };
}
