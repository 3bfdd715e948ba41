/**
 * Models for the inference-graph tests, with weights known here so every
 * expected answer is computed in plain JavaScript, apart from the gateway.
 */
import { buildModel } from '../../src/onnx/builder.ts';

/** y = x W + b on x [batch, 2] -> y [batch, 3], and label = argmax(y) (INT64 [batch]). */
export interface Linear {
  readonly weights: readonly number[];
  readonly bias: readonly number[];
}

export function scoresOf(model: Linear, x: readonly number[]): number[] {
  const rows = x.length / 2;
  const out: number[] = [];
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < 3; column++) {
      out.push(Math.fround((x[row * 2] as number) * (model.weights[column] as number) + (x[row * 2 + 1] as number) * (model.weights[3 + column] as number) + (model.bias[column] as number)));
    }
  }
  return out;
}

export function labelsOf(model: Linear, x: readonly number[]): number[] {
  const scores = scoresOf(model, x);
  return Array.from({ length: scores.length / 3 }, (_, row) => {
    const three = scores.slice(row * 3, row * 3 + 3);
    return three.indexOf(Math.max(...three));
  });
}

/** The model of `model`: outputs y (FP32 [batch, 3]) and label (INT64 [batch]). */
export function linearModel(model: Linear): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }, { name: 'label', type: 'int64', shape: ['batch'] }],
    initializers: [
      { name: 'W', type: 'float32', dims: [2, 3], values: model.weights },
      { name: 'B', type: 'float32', dims: [3], values: model.bias },
    ],
    nodes: [
      { op: 'Gemm', inputs: ['x', 'W', 'B'], outputs: ['y'] },
      { op: 'ArgMax', inputs: ['y'], outputs: ['label'], attributes: { axis: 1, keepdims: 0 } },
    ],
  });
}

/** Three linear models that disagree: A favours class 0 for x0 > x1, B class 1, C class 2 when x1 is large. */
export const A: Linear = { weights: [1, 0, 0, 0, 1, 0], bias: [0, 0, 0] };
export const B: Linear = { weights: [0, 1, 0, 1, 0, 0], bias: [0, 0, 0.5] };
export const C: Linear = { weights: [0.5, 0, 0, 0, 0, 1], bias: [0, 0.25, 0] };

/**
 * Takes x [batch, 2] like the linear models and gives y of any shape, but its run fails unless
 * the batch has 5 rows (it reshapes x to [5, 2]): a member that is known and fails at run time.
 */
export function failingModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['n', 'm'] }],
    initializers: [{ name: 'shape', type: 'int64', dims: [2], values: [5n, 2n] }],
    nodes: [{ op: 'Reshape', inputs: ['x', 'shape'], outputs: ['y'] }],
  });
}
