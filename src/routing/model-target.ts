import type { InferRequest, InferResult, Signature } from '@modelgate/client/codec';
import type { ModelRegistry } from '../registry/registry.ts';
import type { InferContext, Target } from './target.ts';

/** Seconds a request waited for its model (a load, a slot) and then spent in its run (batch wait included). */
export type RunObserver = (model: string, queuedSeconds: number, runSeconds: number) => void;

/** A key served by one model of the registry. */
export class ModelTarget implements Target {
  readonly kind = 'model';
  readonly key: string;
  readonly model: string;
  readonly #registry: ModelRegistry;
  readonly #observe: RunObserver | undefined;

  /** @param observe told how long each request waited for the model and how long its run took, for metrics. */
  constructor(key: string, model: string, registry: ModelRegistry, observe?: RunObserver) {
    this.key = key;
    this.model = model;
    this.#registry = registry;
    this.#observe = observe;
  }

  signature(): Promise<Signature> {
    return this.#registry.signature(this.model);
  }

  knownSignature(): Signature | undefined {
    return this.#registry.knownSignature(this.model);
  }

  async prepare(): Promise<void> {
    (await this.#registry.acquire(this.model)).release();
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    const arrived = performance.now();
    const lease = await this.#registry.acquire(this.model, context, context.shadow === true);
    try {
      const outputs = request.outputs ?? lease.model.signature.outputs.map((spec) => spec.name);
      const started = performance.now();
      const timing = context.timing;
      let share = 1;
      let batchSize = 1;
      let ran = started;
      const waiting = timing === undefined ? context : {
        deadline: context.deadline, signal: context.signal, flow: context.flow,
        started: () => { ran = performance.now(); },
        batched: (rows: number, requests: number) => { share = 1 / requests; batchSize = rows; },
      };
      const result = await lease.model.run(request.inputs, outputs, waiting);
      const ended = performance.now();
      this.#observe?.(this.model, (started - arrived) / 1000, (ended - started) / 1000);
      if (timing !== undefined) {
        timing.queueMs += started - arrived;
        timing.waitMs += ran - arrived;
        timing.inferMs += ended - started;
        timing.executions += share;
        timing.batchSize = batchSize;
      }
      return { modelName: this.model, outputs: result };
    } finally {
      lease.release();
    }
  }

  assertReady(): void {
    this.#registry.assertServable(this.model);
  }
}
