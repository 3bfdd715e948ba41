/**
 * Warm-up (Triton's model_warmup): a new session's first runs pay for onnxruntime's allocator
 * arenas and kernel choices, so the executor runs it on zeros before it takes requests, on the
 * thread that will run it. The inputs come from the signature: the first dimension, where it is
 * dynamic, is each warm-up batch size; any other dynamic dimension is 1, unless `warmup.inputs`
 * gives the input's shape (a model whose kernels need more than 1×1, say).
 */
import { allocate, type Signature, type TensorMap } from '@modelgate/client/codec';
import type { WarmupOptions } from '../config/schema.ts';

/** What a load's warm-up did: runs made, their time, and why it stopped if a run failed. */
export interface Warmed {
  readonly runs: number;
  readonly milliseconds: number;
  readonly failure?: string;
}

/** Most elements of one warm-up input (64 MiB of FP32): a batch size times a large shape is refused, not allocated. */
export const MAX_WARMUP_ELEMENTS = 16_777_216;

type GivenShapes = WarmupOptions['inputs'];

/**
 * Zeros (empty strings for BYTES) in the shape the signature gives, with `rows` in a dynamic first
 * dimension, or in the shape `given` names for the input. Throws, naming the field, for a given
 * shape that does not fit the signature.
 */
export function warmupInputs(signature: Signature, rows: number, given: GivenShapes = {}): TensorMap {
  const inputs: TensorMap = new Map();
  for (const spec of signature.inputs) {
    const field = `warmup.inputs.${spec.name}.shape`;
    const wanted = given[spec.name]?.shape;
    if (wanted !== undefined && wanted.length !== spec.shape.length) {
      throw new Error(`${field}: ${wanted.length} dimensions, but the model's input '${spec.name}' has ${spec.shape.length} ([${spec.shape.join(', ')}])`);
    }
    const shape = spec.shape.map((dim, axis) => {
      const asked = wanted?.[axis];
      if (asked === -1 && !(axis === 0 && dim === -1)) throw new Error(`${field}: -1 (the batch size) only in a dynamic first dimension, not at ${axis}`);
      if (asked !== undefined && asked !== -1 && dim !== -1 && asked !== dim) throw new Error(`${field}: dimension ${axis} is ${dim} in the model, not ${asked}`);
      if (dim !== -1) return dim;
      return asked === undefined || asked === -1 ? (axis === 0 ? rows : 1) : asked;
    });
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements > MAX_WARMUP_ELEMENTS) throw new Error(`warm-up input '${spec.name}' of shape [${shape.join(', ')}] has more than ${MAX_WARMUP_ELEMENTS} elements`);
    inputs.set(spec.name, { datatype: spec.datatype, shape, data: allocate(spec.datatype, elements) });
  }
  return inputs;
}

/** A given shape for a name the model has no input of is a mistake worth saying, not a silent no-op. */
function unknownInputs(signature: Signature, given: GivenShapes = {}): string | undefined {
  const names = new Set(signature.inputs.map((spec) => spec.name));
  const unknown = Object.keys(given).filter((name) => !names.has(name));
  if (unknown.length === 0) return undefined;
  return `warmup.inputs: ${unknown.map((name) => `'${name}'`).join(', ')} ${unknown.length === 1 ? 'is not an input' : 'are not inputs'} of the model (its inputs: ${[...names].join(', ')})`;
}

/** The batch sizes worth running: one when no input's first dimension is dynamic. */
function sizes(signature: Signature, options: Readonly<WarmupOptions>): readonly number[] {
  const batches = signature.inputs.some((spec) => spec.shape[0] === -1);
  return batches ? [...new Set(options.batchSizes)] : [1];
}

/**
 * Runs the warm-up; a failed run ends it and is reported, never thrown: a model that cannot run
 * on zeros (a dynamic image size of 1×1 too small for its kernels, say) still serves, cold.
 */
export async function warmUp(run: (inputs: TensorMap, outputs: readonly string[]) => Promise<unknown>, signature: Signature, options: false | Readonly<WarmupOptions>): Promise<Warmed | undefined> {
  if (options === false) return undefined;
  const outputs = signature.outputs.map((spec) => spec.name);
  const began = performance.now();
  const unknown = unknownInputs(signature, options.inputs);
  if (unknown !== undefined) return { runs: 0, milliseconds: 0, failure: unknown };
  let runs = 0;
  try {
    for (const rows of sizes(signature, options)) {
      const inputs = warmupInputs(signature, rows, options.inputs);
      for (let i = 0; i < options.runs; i++) {
        await run(inputs, outputs);
        runs += 1;
      }
    }
  } catch (error) {
    return { runs, milliseconds: performance.now() - began, failure: (error as Error).message };
  }
  return { runs, milliseconds: performance.now() - began };
}
