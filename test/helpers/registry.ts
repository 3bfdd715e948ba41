/**
 * Registries and route tables without HTTP, for the unit tests of the registry, the router
 * and the targets: real in-process onnxruntime sessions over generated models.
 */
import type { TensorMap } from '@modelgate/client/codec';
import { validateConfig } from '../../src/config/load.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { ModelRegistry } from '../../src/registry/registry.ts';
import { ModelTarget } from '../../src/routing/model-target.ts';
import type { InferContext, Target } from '../../src/routing/target.ts';
import { CountingExecutor, makeRepository, scaleModel, type TestContext } from './gateway.ts';

/**
 * A registry over models m1..m<count> (m<k> multiplies its input x by k, into y) and `broken`
 * (a file that is no model), with the registry and per-model options given.
 */
export function registryOf(t: TestContext, count: number, registry: Record<string, unknown> = {}, model: (name: string) => Record<string, unknown> = () => ({})) {
  const files: Record<string, Uint8Array | string> = { 'broken.onnx': 'not an onnx model' };
  for (let k = 1; k <= count; k++) files[`m${k}.onnx`] = scaleModel(k);
  const repository = makeRepository(t, files);
  const names = Array.from({ length: count }, (_, index) => `m${index + 1}`);
  const config = validateConfig({
    modelRepository: repository,
    registry,
    // One run per request, so tests can count runs; batching has its own tests.
    models: [...names.map((name) => ({ name, path: `${name}.onnx`, batching: false, ...model(name) })), { name: 'broken', path: 'broken.onnx', batching: false }],
  }, repository);
  const executor = new CountingExecutor(new OnnxExecutor(repository));
  const models = new ModelRegistry(config.models, config.registry, executor);
  t.teardown(() => executor.close());
  return { models, executor, repository };
}

/** One model target per model of the registry, under the model's name. */
export function modelTargets(models: ModelRegistry): Map<string, Target> {
  return new Map(models.status().map((model) => [model.name, new ModelTarget(model.name, model.name, models)]));
}

/** A [1, 1] FP32 tensor x. */
export function scalarInput(x: number, name = 'x'): TensorMap {
  return new Map([[name, { datatype: 'FP32', shape: [1, 1], data: new Float32Array([x]) }]]);
}

/** A request's context, with its headers. */
export function contextOf(headers: Record<string, string> = {}): InferContext {
  return { decisions: [], header: (name) => headers[name] };
}

/** The one element of a [1, 1] FP32 output. */
export function scalarOf(outputs: TensorMap, name = 'y'): number {
  return (outputs.get(name)?.data as Float32Array)[0] as number;
}
