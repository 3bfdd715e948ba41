/**
 * Warm-up (Triton's model_warmup): a new session's first runs pay for onnxruntime's allocator
 * arenas and kernel choices, so the executor runs it on zeros before it takes requests, on the
 * thread that will run it. The inputs come from the signature: the first dimension, where it is
 * dynamic, is each warm-up batch size; any other dynamic dimension is 1.
 */
import { allocate, type Signature, type TensorMap } from '@modelgate/client/codec';
import type { WarmupOptions } from '../config/schema.ts';

/** What a load's warm-up did: runs made, their time, and why it stopped if a run failed. */
export interface Warmed {
  readonly runs: number;
  readonly milliseconds: number;
  readonly failure?: string;
}

/** Zeros (empty strings for BYTES) in the shape the signature gives, with `rows` in a dynamic first dimension. */
export function warmupInputs(signature: Signature, rows: number): TensorMap {
  const inputs: TensorMap = new Map();
  for (const spec of signature.inputs) {
    const shape = spec.shape.map((dim, axis) => (dim !== -1 ? dim : axis === 0 ? rows : 1));
    inputs.set(spec.name, { datatype: spec.datatype, shape, data: allocate(spec.datatype, shape.reduce((a, b) => a * b, 1)) });
  }
  return inputs;
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
  let runs = 0;
  try {
    for (const rows of sizes(signature, options)) {
      const inputs = warmupInputs(signature, rows);
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
