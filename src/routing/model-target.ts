import type { InferRequest, InferResult, Signature } from '../protocol/types.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { InferContext, Target } from './target.ts';

/** A key served by one model of the registry. */
export class ModelTarget implements Target {
  readonly kind = 'model';
  readonly key: string;
  readonly model: string;
  readonly #registry: ModelRegistry;

  constructor(key: string, model: string, registry: ModelRegistry) {
    this.key = key;
    this.model = model;
    this.#registry = registry;
  }

  signature(): Promise<Signature> {
    return this.#registry.signature(this.model);
  }

  async infer(request: InferRequest, _context: InferContext): Promise<InferResult> {
    const lease = await this.#registry.acquire(this.model);
    try {
      const outputs = request.outputs ?? lease.model.signature.outputs.map((spec) => spec.name);
      return { modelName: this.model, outputs: await lease.model.run(request.inputs, outputs) };
    } finally {
      lease.release();
    }
  }

  assertReady(): void {
    this.#registry.assertServable(this.model);
  }
}
