/**
 * Writes the demo's models into a model repository: Iris classifiers in two
 * versions, and the pieces of a chain (standardiser, classifier head, class
 * names). `npm start` runs it before serving config/gateway.yaml.
 *
 *   node dist/demo/build-models.js [outDir]   (default: models)
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildModel, type NodeSpec } from '../onnx/builder.ts';
import { SPECIES } from './iris-data.ts';
import { train, type Classifier } from './train.ts';

/** v1 barely trains (a weak model), v2 trains to convergence, so the two answer differently. */
export const V1 = { epochs: 3, rate: 0.1 };
export const V2 = { epochs: 2000, rate: 0.5 };

const input = { name: 'input', type: 'float32' as const, shape: ['batch', 4] };

function standardise(classifier: Classifier, output: string): { nodes: NodeSpec[]; initializers: Parameters<typeof buildModel>[0]['initializers'] } {
  return {
    nodes: [
      { op: 'Sub', inputs: ['input', 'mean'], outputs: ['centred'] },
      { op: 'Div', inputs: ['centred', 'std'], outputs: [output] },
    ],
    initializers: [
      { name: 'mean', type: 'float32', dims: [4], values: classifier.mean },
      { name: 'std', type: 'float32', dims: [4], values: classifier.std },
    ],
  };
}

function gemm(classifier: Classifier, from: string, to: string) {
  return {
    node: { op: 'Gemm', inputs: [from, 'W', 'B'], outputs: [to] },
    initializers: [
      { name: 'W', type: 'float32' as const, dims: [4, 3], values: classifier.weights },
      { name: 'B', type: 'float32' as const, dims: [3], values: classifier.bias },
    ],
  };
}

/** input [batch, 4] in cm -> probabilities [batch, 3], label [batch] (INT64). */
export function classifierModel(classifier: Classifier): Uint8Array {
  const scale = standardise(classifier, 'z');
  const head = gemm(classifier, 'z', 'logits');
  return buildModel({
    inputs: [input],
    outputs: [{ name: 'probabilities', type: 'float32', shape: ['batch', 3] }, { name: 'label', type: 'int64', shape: ['batch'] }],
    initializers: [...(scale.initializers ?? []), ...head.initializers],
    nodes: [
      ...scale.nodes, head.node,
      { op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: 1 } },
      { op: 'ArgMax', inputs: ['logits'], outputs: ['label'], attributes: { axis: 1, keepdims: 0 } },
    ],
  });
}

/** The demo models by file name inside the repository. */
export function demoModels(): Map<string, Uint8Array> {
  const v1 = train(V1.epochs, V1.rate);
  const v2 = train(V2.epochs, V2.rate);
  const scale = standardise(v2, 'output');
  const head = gemm(v2, 'input', 'logits');
  return new Map([
    ['iris/v1.onnx', classifierModel(v1)],
    ['iris/v2.onnx', classifierModel(v2)],
    ['iris/scaler.onnx', buildModel({ inputs: [input], outputs: [{ name: 'output', type: 'float32', shape: ['batch', 4] }], ...scale })],
    ['iris/head.onnx', buildModel({ inputs: [input], outputs: [{ name: 'logits', type: 'float32', shape: ['batch', 3] }], initializers: head.initializers, nodes: [head.node] })],
    ['iris/species.onnx', buildModel({
      inputs: [{ name: 'label', type: 'int64', shape: ['batch'] }],
      outputs: [{ name: 'species', type: 'string', shape: ['batch'] }],
      initializers: [{ name: 'names', type: 'string', dims: [3], values: [...SPECIES] }],
      nodes: [{ op: 'Gather', inputs: ['names', 'label'], outputs: ['species'], attributes: { axis: 0 } }],
    })],
  ]);
}

/** Writes the models that differ from what `outDir` holds; returns the files written. */
export async function buildDemoModels(outDir: string): Promise<string[]> {
  const written: string[] = [];
  for (const [file, bytes] of demoModels()) {
    const target = path.join(outDir, file);
    const current = await readFile(target).catch(() => undefined);
    if (current !== undefined && Buffer.compare(current, bytes) === 0) continue;
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, bytes);
    written.push(file);
  }
  return written;
}

if (import.meta.main) {
  const outDir = path.resolve(process.argv[2] ?? 'models');
  const written = await buildDemoModels(outDir);
  process.stdout.write(`demo models in ${outDir}: ${written.length === 0 ? 'up to date' : `wrote ${written.join(', ')}`}\n`);
}
