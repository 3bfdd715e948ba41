/**
 * Tensor work the graph routes do: an ensemble's element-wise reductions
 * across members, and a cascade's rows taken out of a batch and put back in
 * request order. Row-major data throughout: a row is the elements under one
 * index of the first dimension.
 */
import { allocate, halfToFloat, floatToHalf, type Datatype, type Tensor, type TensorData, type TensorMap } from '@modelgate/client/codec';
import type { CombineSpec } from '../config/graph-schema.ts';

const FLOATS: ReadonlySet<Datatype> = new Set(['FP16', 'FP32', 'FP64']);
const INTEGERS: ReadonlySet<Datatype> = new Set(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64']);

/** The datatypes each combine op reduces. */
export function combinable(op: CombineSpec['op'], datatype: Datatype): boolean {
  if (op === 'mean' || op === 'weighted_mean') return FLOATS.has(datatype);
  if (op === 'vote') return INTEGERS.has(datatype) || datatype === 'BYTES';
  return datatype !== 'BYTES' && datatype !== 'BOOL';
}

type Element = number | bigint | string;

/** Element i as a number to compare or average: FP16's bits read as the half they are. */
function numeric(tensor: Tensor, index: number): number | bigint {
  const value = (tensor.data as ArrayLike<number | bigint>)[index] as number | bigint;
  return tensor.datatype === 'FP16' ? halfToFloat(value as number) : value;
}

/**
 * Reduces `tensors` (one per member, in member order, all of one datatype and shape)
 * element-wise with `op`; `weights[i]` weighs `tensors[i]` in weighted_mean.
 */
export function combineTensors(op: CombineSpec['op'], tensors: readonly Tensor[], weights: readonly number[]): Tensor {
  const first = tensors[0] as Tensor;
  const length = first.data.length;
  const data = allocate(first.datatype, length);
  const out = data as unknown as { [index: number]: Element };
  const half = first.datatype === 'FP16';
  if (op === 'mean' || op === 'weighted_mean') {
    const used = op === 'mean' ? tensors.map(() => 1) : weights;
    const total = used.reduce((sum, weight) => sum + weight, 0);
    for (let index = 0; index < length; index++) {
      let sum = 0;
      tensors.forEach((tensor, member) => { sum += (used[member] as number) * (numeric(tensor, index) as number); });
      out[index] = half ? floatToHalf(sum / total) : sum / total;
    }
  } else if (op === 'max' || op === 'min') {
    const better = op === 'max' ? (a: number | bigint, b: number | bigint) => a > b : (a: number | bigint, b: number | bigint) => a < b;
    for (let index = 0; index < length; index++) {
      let best = 0;
      for (let member = 1; member < tensors.length; member++) {
        if (better(numeric(tensors[member] as Tensor, index), numeric(tensors[best] as Tensor, index))) best = member;
      }
      out[index] = ((tensors[best] as Tensor).data as ArrayLike<Element>)[index] as Element;
    }
  } else {
    for (let index = 0; index < length; index++) {
      // The most frequent value; among equally frequent ones, the earliest member's.
      const values = tensors.map((tensor) => (tensor.data as ArrayLike<Element>)[index] as Element);
      const counts = new Map<Element, number>();
      for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
      const most = Math.max(...counts.values());
      out[index] = values.find((value) => counts.get(value) === most) as Element;
    }
  }
  return { datatype: first.datatype, shape: first.shape, data };
}

/** Elements in one row of a tensor of this shape. */
export function rowSize(shape: readonly number[]): number {
  return shape.slice(1).reduce((product, dim) => product * dim, 1);
}

/** The largest element of each row, as a number (FP16 read as halves, 64-bit integers rounded); -Infinity for an empty row. */
export function rowMaxima(tensor: Tensor): Float64Array {
  const rows = tensor.shape[0] ?? 1;
  const size = rowSize(tensor.shape);
  const maxima = new Float64Array(rows).fill(-Infinity);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < size; column++) {
      // A NaN makes the row's maximum NaN, which no accept rule holds for.
      maxima[row] = Math.max(maxima[row] as number, Number(numeric(tensor, row * size + column)));
    }
  }
  return maxima;
}

/** The rows of `tensor` at `rows` (indices of its first dimension), in that order. */
export function takeRows(tensor: Tensor, rows: readonly number[]): Tensor {
  const size = rowSize(tensor.shape);
  const data = allocate(tensor.datatype, rows.length * size);
  rows.forEach((row, at) => copyRow(tensor.data, row * size, data, at * size, size));
  return { datatype: tensor.datatype, shape: [rows.length, ...tensor.shape.slice(1)], data };
}

/** Every tensor of `tensors` at the same rows. */
export function takeAllRows(tensors: TensorMap, rows: readonly number[]): TensorMap {
  const taken: TensorMap = new Map();
  for (const [name, tensor] of tensors) taken.set(name, takeRows(tensor, rows));
  return taken;
}

/**
 * One tensor of `total` rows from parts that each answered some rows: part i's row j is
 * row `parts[i].rows[j]` of the whole. Every part has the same datatype and row shape.
 */
export function mergeRows(parts: ReadonlyArray<{ readonly tensor: Tensor; readonly rows: readonly number[] }>, total: number): Tensor {
  const first = (parts[0] as { tensor: Tensor }).tensor;
  const size = rowSize(first.shape);
  const data = allocate(first.datatype, total * size);
  for (const { tensor, rows } of parts) rows.forEach((row, at) => copyRow(tensor.data, at * size, data, row * size, size));
  return { datatype: first.datatype, shape: [total, ...first.shape.slice(1)], data };
}

function copyRow(from: TensorData, start: number, to: TensorData, at: number, size: number): void {
  if (Array.isArray(from)) {
    for (let offset = 0; offset < size; offset++) (to as string[])[at + offset] = from[start + offset] as string;
    return;
  }
  (to as Exclude<TensorData, string[]>).set((from as Exclude<TensorData, string[]>).subarray(start, start + size) as never, at);
}
