/**
 * Softmax regression by full-batch gradient descent: no randomness at all
 * (zero start, fixed rate and epochs), so every run writes the same weights.
 */
import { FEATURES, LABELS } from './iris-data.ts';

export interface Classifier {
  /** Per-feature mean and (population) standard deviation used to standardise inputs. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** Row-major [features][classes]. */
  readonly weights: readonly number[];
  readonly bias: readonly number[];
  /** Share of the data set it classifies correctly. */
  readonly accuracy: number;
}

const CLASSES = 3;

export function standardisation(rows: readonly (readonly number[])[] = FEATURES): { mean: number[]; std: number[] } {
  const width = rows[0]?.length ?? 0;
  const mean = Array.from({ length: width }, (_, j) => rows.reduce((sum, row) => sum + (row[j] as number), 0) / rows.length);
  const std = mean.map((m, j) => Math.sqrt(rows.reduce((sum, row) => sum + ((row[j] as number) - m) ** 2, 0) / rows.length));
  return { mean, std };
}

/** Class probabilities of one standardised row. */
export function predict(z: readonly number[], weights: readonly number[], bias: readonly number[]): number[] {
  const logits = bias.map((b, k) => z.reduce((sum, v, j) => sum + v * (weights[j * CLASSES + k] as number), b));
  const max = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** Trains on the whole data set for `epochs` steps of size `rate`. */
export function train(epochs: number, rate: number): Classifier {
  const { mean, std } = standardisation();
  const z = FEATURES.map((row) => row.map((v, j) => (v - (mean[j] as number)) / (std[j] as number)));
  const width = mean.length;
  const weights = new Array<number>(width * CLASSES).fill(0);
  const bias = new Array<number>(CLASSES).fill(0);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const gradW = new Array<number>(weights.length).fill(0);
    const gradB = new Array<number>(CLASSES).fill(0);
    z.forEach((row, i) => {
      const p = predict(row, weights, bias);
      for (let k = 0; k < CLASSES; k++) {
        const error = (p[k] as number) - (LABELS[i] === k ? 1 : 0);
        gradB[k] = (gradB[k] as number) + error;
        row.forEach((v, j) => { gradW[j * CLASSES + k] = (gradW[j * CLASSES + k] as number) + error * v; });
      }
    });
    weights.forEach((_, index) => { weights[index] = (weights[index] as number) - (rate * (gradW[index] as number)) / z.length; });
    bias.forEach((_, k) => { bias[k] = (bias[k] as number) - (rate * (gradB[k] as number)) / z.length; });
  }
  const correct = z.filter((row, i) => {
    const p = predict(row, weights, bias);
    return p.indexOf(Math.max(...p)) === LABELS[i];
  }).length;
  return { mean, std, weights, bias, accuracy: correct / z.length };
}
