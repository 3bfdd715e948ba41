/**
 * Post-processing between the steps of a sequence: built-in ops on named
 * tensors, and plugins. Each op also describes its result statically, so a
 * sequence's signature (and its checks) are known before a request runs.
 */
import { allocate, type Datatype, type Tensor, type TensorData, type TensorMap, type TensorSpec } from '@modelgate/client/codec';
import type { PostprocessSpec } from '../config/schema.ts';
import { InvalidInputError, PluginFailedError } from '../errors.ts';

/** A plugin: named tensors in, named tensors out (a Map or a plain object). */
export type PluginFunction = (tensors: TensorMap) => TensorMap | Record<string, Tensor> | Promise<TensorMap | Record<string, Tensor>>;

/** A loaded plugin module: `transform` is required; `describe` lets the gateway know its outputs ahead of time. */
export interface Plugin {
  readonly transform: PluginFunction;
  readonly describe?: (inputs: readonly TensorSpec[]) => TensorSpec[];
}

const FLOATS = new Set<Datatype>(['FP32', 'FP64']);
const NUMERIC = new Set<Datatype>(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64']);

function fail(message: string): never {
  throw new InvalidInputError(message);
}

function normaliseAxis(axis: number | undefined, rank: number, where: string): number {
  const resolved = (axis ?? -1) < 0 ? rank + (axis ?? -1) : (axis as number);
  if (resolved < 0 || resolved >= rank) fail(`${where}: axis ${axis ?? -1} is out of range for rank ${rank}`);
  return resolved;
}

function needType(spec: { datatype: Datatype }, allowed: ReadonlySet<Datatype>, where: string): void {
  if (!allowed.has(spec.datatype)) fail(`${where}: does not apply to ${spec.datatype}`);
}

/**
 * The tensor specs after `ops`, from the specs before; throws an
 * InvalidInputError naming the op on a mismatch. Undefined when a plugin
 * without `describe` makes the result unknown until it runs.
 */
export function describeOps(specs: readonly TensorSpec[], ops: readonly PostprocessSpec[], plugins: ReadonlyMap<string, Plugin>, where: string): TensorSpec[] | undefined {
  let current = [...specs];
  for (const [index, op] of ops.entries()) {
    const at = `${where}: postprocess[${index}] (${op.op})`;
    if (op.op === 'plugin') {
      const plugin = plugins.get(op.name) ?? fail(`${at}: no plugin '${op.name}' in the plugins directory`);
      if (plugin.describe === undefined) return undefined;
      current = plugin.describe(current);
      continue;
    }
    const input = current.find((spec) => spec.name === op.output) ?? fail(`${at}: no tensor '${op.output}' (tensors: ${current.map((spec) => spec.name).join(', ') || 'none known'})`);
    const rename = (spec: Omit<TensorSpec, 'name'>, suffix = ''): TensorSpec => ({ ...spec, name: `${op.as ?? op.output}${suffix}` });
    let results: TensorSpec[];
    switch (op.op) {
      case 'softmax': case 'scale':
        needType(input, FLOATS, at);
        if (op.op === 'softmax') normaliseAxis(op.axis, input.shape.length, at);
        results = [rename(input)];
        break;
      case 'argmax': {
        needType(input, NUMERIC, at);
        const axis = normaliseAxis(op.axis, input.shape.length, at);
        const shape = op.keepdims === true ? input.shape.map((dim, i) => (i === axis ? 1 : dim)) : input.shape.filter((_, i) => i !== axis);
        results = [rename({ datatype: 'INT64', shape })];
        break;
      }
      case 'topk': {
        needType(input, NUMERIC, at);
        const axis = normaliseAxis(op.axis, input.shape.length, at);
        const dim = input.shape[axis] as number;
        if (dim >= 0 && op.k > dim) fail(`${at}: k ${op.k} is larger than dimension ${dim} of '${op.output}'`);
        const shape = input.shape.map((d, i) => (i === axis ? op.k : d));
        results = [rename({ datatype: input.datatype, shape }, '_values'), rename({ datatype: 'INT64', shape }, '_indices')];
        break;
      }
      case 'cast':
        needType(input, NUMERIC, at);
        results = [rename({ datatype: op.to as Datatype, shape: input.shape })];
        break;
      case 'reshape':
        results = [rename({ datatype: input.datatype, shape: reshapeDims(input.shape, op.shape, at, true) })];
        break;
      case 'slice':
        results = [rename({ datatype: input.datatype, shape: sliceRanges(input.shape, op, at).map((range) => range.length) })];
        break;
      case 'threshold':
        needType(input, NUMERIC, at);
        results = [rename({ datatype: 'BOOL', shape: input.shape })];
        break;
    }
    current = [...current.filter((spec) => !results.some((result) => result.name === spec.name) && (op.as !== undefined || spec.name !== op.output)), ...results];
  }
  return current;
}

/** Applies `ops` to a step's outputs. */
export async function applyOps(tensors: TensorMap, ops: readonly PostprocessSpec[], plugins: ReadonlyMap<string, Plugin>, where: string): Promise<TensorMap> {
  let current: TensorMap = new Map(tensors);
  for (const [index, op] of ops.entries()) {
    const at = `${where}: postprocess[${index}] (${op.op})`;
    if (op.op === 'plugin') {
      current = await runPlugin(plugins.get(op.name) ?? fail(`${at}: no plugin '${op.name}'`), current, at);
      continue;
    }
    const input = current.get(op.output) ?? fail(`${at}: no tensor '${op.output}'`);
    const name = op.as ?? op.output;
    // Checks types and axes against the actual shape, as describeOps did against the declared one.
    describeOps([{ ...input, name: op.output }], [op], plugins, where);
    // Results go last, in place of the input unless `as` keeps it: the order describeOps gives.
    if (op.as === undefined) current.delete(op.output);
    current.delete(name);
    switch (op.op) {
      case 'softmax': current.set(name, softmax(input, normaliseAxis(op.axis, input.shape.length, at))); break;
      case 'argmax': current.set(name, argmax(input, normaliseAxis(op.axis, input.shape.length, at), op.keepdims === true)); break;
      case 'topk': {
        const [values, indices] = topk(input, op.k, normaliseAxis(op.axis, input.shape.length, at));
        current.set(`${name}_values`, values);
        current.set(`${name}_indices`, indices);
        break;
      }
      case 'cast': current.set(name, cast(input, op.to as Datatype, at)); break;
      case 'reshape': current.set(name, { ...input, shape: reshapeDims(input.shape, op.shape, at, false) }); break;
      case 'slice': current.set(name, slice(input, sliceRanges(input.shape, op, at))); break;
      case 'scale': current.set(name, map(input, input.datatype, (x) => x * (op.multiply ?? 1) + (op.add ?? 0))); break;
      case 'threshold': current.set(name, map(input, 'BOOL', (x) => (x > op.value ? 1 : 0))); break;
    }
  }
  return current;
}

async function runPlugin(plugin: Plugin, tensors: TensorMap, at: string): Promise<TensorMap> {
  let result: Awaited<ReturnType<PluginFunction>>;
  try {
    result = await plugin.transform(tensors);
  } catch (error) {
    throw new PluginFailedError(`${at}: the plugin failed: ${(error as Error).message}`);
  }
  const entries = result instanceof Map ? [...result] : Object.entries(result ?? {});
  for (const [name, tensor] of entries) {
    const count = (tensor?.shape ?? []).reduce((product: number, dim: number) => product * dim, 1);
    if (tensor === undefined || !Array.isArray(tensor.shape) || tensor.data?.length !== count) {
      throw new PluginFailedError(`${at}: the plugin returned '${name}', which is not a tensor whose data fits its shape`);
    }
  }
  return new Map(entries);
}

/** Strides of `shape` split at `axis`: outer blocks, the axis length, inner run. */
function split(shape: readonly number[], axis: number): [number, number, number] {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  return [outer, shape[axis] as number, inner];
}

function numbers(tensor: Tensor): ArrayLike<number> {
  const data = tensor.data;
  return data instanceof BigInt64Array || data instanceof BigUint64Array ? Array.from(data, Number) : (data as ArrayLike<number>);
}

function softmax(tensor: Tensor, axis: number): Tensor {
  const [outer, n, inner] = split(tensor.shape, axis);
  const x = tensor.data as Float32Array | Float64Array;
  const out = allocate(tensor.datatype, x.length) as Float32Array | Float64Array;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const at = (i: number) => (o * n + i) * inner + j;
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, x[at(i)] as number);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp((x[at(i)] as number) - max);
      for (let i = 0; i < n; i++) out[at(i)] = Math.exp((x[at(i)] as number) - max) / sum;
    }
  }
  return { datatype: tensor.datatype, shape: tensor.shape, data: out };
}

/** Indices along `axis` ordered by value, largest first (ties: lower index first), for each position. */
function ranked(tensor: Tensor, axis: number, k: number): { order: number[][]; outer: number; inner: number } {
  const [outer, n, inner] = split(tensor.shape, axis);
  const x = numbers(tensor);
  const order: number[][] = [];
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const indices = Array.from({ length: n }, (_, i) => i);
      indices.sort((a, b) => (x[(o * n + b) * inner + j] as number) - (x[(o * n + a) * inner + j] as number) || a - b);
      order.push(indices.slice(0, k));
    }
  }
  return { order, outer, inner };
}

function argmax(tensor: Tensor, axis: number, keepdims: boolean): Tensor {
  const { order } = ranked(tensor, axis, 1);
  const shape = keepdims ? tensor.shape.map((dim, i) => (i === axis ? 1 : dim)) : tensor.shape.filter((_, i) => i !== axis);
  return { datatype: 'INT64', shape, data: BigInt64Array.from(order, (best) => BigInt(best[0] ?? 0)) };
}

/** The k largest values along `axis` (largest first, ties by lower index) and their INT64 indices. */
export function topk(tensor: Tensor, k: number, axis: number): [Tensor, Tensor] {
  const dim = tensor.shape[axis] as number;
  if (k > dim) fail(`topk: k ${k} is larger than dimension ${dim}`);
  const { order, inner } = ranked(tensor, axis, k);
  const [outer, n] = split(tensor.shape, axis);
  const shape = tensor.shape.map((d, i) => (i === axis ? k : d));
  const values = allocate(tensor.datatype, outer * k * inner) as unknown as unknown[];
  const indices = new BigInt64Array(outer * k * inner);
  const source = tensor.data as unknown as unknown[];
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const top = order[o * inner + j] as number[];
      top.forEach((i, rank) => {
        values[(o * k + rank) * inner + j] = source[(o * n + i) * inner + j];
        indices[(o * k + rank) * inner + j] = BigInt(i);
      });
    }
  }
  return [{ datatype: tensor.datatype, shape, data: values as unknown as TensorData }, { datatype: 'INT64', shape, data: indices }];
}

function cast(tensor: Tensor, to: Datatype, at: string): Tensor {
  const x = numbers(tensor);
  if (to === 'INT64') {
    return { datatype: to, shape: tensor.shape, data: BigInt64Array.from(x, (v) => (Number.isFinite(v) ? BigInt(Math.trunc(v)) : fail(`${at}: ${v} has no INT64 value`))) };
  }
  return map(tensor, to, (v) => (to === 'BOOL' ? (v !== 0 ? 1 : 0) : FLOATS.has(to) ? v : Math.trunc(v)));
}

function map(tensor: Tensor, to: Datatype, fn: (x: number) => number): Tensor {
  const x = numbers(tensor);
  const out = allocate(to, x.length) as Exclude<TensorData, string[] | BigInt64Array | BigUint64Array>;
  for (let i = 0; i < x.length; i++) out[i] = fn(x[i] as number);
  return { datatype: to, shape: tensor.shape, data: out };
}

function reshapeDims(from: readonly number[], to: readonly number[], at: string, declared: boolean): number[] {
  const dims = to.map((dim, i) => (dim === 0 ? (from[i] ?? fail(`${at}: 0 at axis ${i}, beyond the input's rank`)) : dim));
  if (dims.filter((dim) => dim === -1).length > 1) fail(`${at}: at most one -1 in shape ${JSON.stringify(to)}`);
  if (declared && from.some((dim) => dim < 0)) return dims;
  const total = from.reduce((a, b) => a * b, 1);
  const known = dims.filter((dim) => dim !== -1).reduce((a, b) => a * b, 1);
  const inferred = dims.map((dim) => (dim === -1 ? total / known : dim));
  if (inferred.reduce((a, b) => a * b, 1) !== total || inferred.some((dim) => !Number.isInteger(dim))) {
    fail(`${at}: cannot reshape ${JSON.stringify(from)} into ${JSON.stringify(to)}`);
  }
  return inferred;
}

interface Range { start: number; length: number }

function sliceRanges(shape: readonly number[], op: { starts: number[]; ends: number[]; axes?: number[] | undefined }, at: string): Range[] {
  const axes = op.axes ?? op.starts.map((_, i) => i);
  if (op.starts.length !== op.ends.length || axes.length !== op.starts.length) fail(`${at}: starts, ends and axes must have the same length`);
  const ranges = shape.map((dim) => ({ start: 0, length: dim }));
  axes.forEach((axisSpec, i) => {
    const axis = normaliseAxis(axisSpec, shape.length, at);
    const dim = shape[axis] as number;
    if (dim < 0) {
      ranges[axis] = { start: 0, length: -1 };
      return;
    }
    const clamp = (value: number) => Math.min(Math.max(value < 0 ? value + dim : value, 0), dim);
    const start = clamp(op.starts[i] as number);
    ranges[axis] = { start, length: Math.max(0, clamp(op.ends[i] as number) - start) };
  });
  return ranges;
}

function slice(tensor: Tensor, ranges: readonly Range[]): Tensor {
  const shape = ranges.map((range) => range.length);
  const count = shape.reduce((a, b) => a * b, 1);
  const out = allocate(tensor.datatype, count) as unknown as unknown[];
  const source = tensor.data as unknown as unknown[];
  const strides = tensor.shape.map((_, i) => tensor.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  for (let flat = 0; flat < count; flat++) {
    let rest = flat;
    let offset = 0;
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      const length = shape[axis] as number;
      offset += ((rest % length) + (ranges[axis] as Range).start) * (strides[axis] as number);
      rest = Math.floor(rest / length);
    }
    out[flat] = source[offset];
  }
  return { datatype: tensor.datatype, shape, data: out as unknown as TensorData };
}
