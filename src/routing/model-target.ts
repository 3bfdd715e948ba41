import type { InferRequest, InferResult, Signature } from '@modelgate/client/codec';
import { DeadlineExceededError, RequestAbortedError } from '../errors.ts';
import type { Lease, ModelRegistry } from '../registry/registry.ts';
import { failureText, type Trace } from '../trace.ts';
import type { Waiting } from '../waiting.ts';
import type { InferContext, Target } from './target.ts';

/** Seconds a request waited for its model (a load, a slot) and then spent in its run (batch wait included), and whether it failed there. */
export type RunObserver = (model: string, queuedSeconds: number, runSeconds: number, failed: boolean) => void;

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
    const trace = context.trace?.recording === true ? context.trace : undefined;
    const visit = trace === undefined ? undefined : new Visit(this.model, trace, arrived);
    let lease: Lease;
    try {
      lease = await this.#registry.acquire(this.model, visit === undefined ? context : visit.waiting(context), context.shadow === true);
    } catch (error) {
      this.#observe?.(this.model, (performance.now() - arrived) / 1000, 0, true);
      visit?.failed(error, undefined);
      throw error;
    }
    const started = performance.now();
    const timing = context.timing;
    let share = 1;
    let batchSize = 1;
    let ran = started;
    let batch: Trace | undefined;
    try {
      const outputs = request.outputs ?? lease.model.signature.outputs.map((spec) => spec.name);
      const waiting: Waiting = timing === undefined && trace === undefined ? context : {
        deadline: context.deadline, signal: context.signal, flow: context.flow, trace,
        started: () => { ran = performance.now(); },
        batched: (rows: number, requests: number, span: Trace | undefined) => { share = 1 / requests; batchSize = rows; batch = span; },
      };
      const result = await lease.model.run(request.inputs, outputs, waiting);
      const ended = performance.now();
      this.#observe?.(this.model, (started - arrived) / 1000, (ended - started) / 1000, false);
      visit?.ran(ran, ended, batchSize, share, batch);
      if (timing !== undefined) {
        timing.queueMs += started - arrived;
        timing.waitMs += ran - arrived;
        timing.inferMs += ended - started;
        timing.executions += share;
        timing.batchSize = batchSize;
      }
      return { modelName: this.model, outputs: result };
    } catch (error) {
      this.#observe?.(this.model, (started - arrived) / 1000, (performance.now() - started) / 1000, true);
      // A deadline or a client gone while queued: the run never began.
      visit?.failed(error, error instanceof DeadlineExceededError || error instanceof RequestAbortedError ? undefined : ran);
      throw error;
    } finally {
      lease.release();
    }
  }

  assertReady(): void {
    this.#registry.assertServable(this.model);
  }
}

/**
 * A traced request's visit to one model, reported after the fact from what the registry and
 * the model said happened: `modelgate.queue` (the wait for a lease and for a place in a batch
 * or run queue), `modelgate.load` inside it when the lease waited for a load, `modelgate.run`.
 */
class Visit {
  readonly #model: string;
  readonly #trace: Trace;
  readonly #arrived: number;
  #load: { since: number; until: number; evicted: readonly string[]; joined: boolean; warmupRuns: number | undefined } | undefined;

  constructor(model: string, trace: Trace, arrived: number) {
    this.#model = model;
    this.#trace = trace;
    this.#arrived = arrived;
  }

  /** The request's waiting, telling this visit of a load it waited for. */
  waiting(context: InferContext): Waiting {
    return {
      deadline: context.deadline, signal: context.signal, flow: context.flow,
      loaded: (since, evicted, joined, warmupRuns) => { this.#load = { since, until: performance.now(), evicted: [...evicted], joined, warmupRuns }; },
    };
  }

  ran(ran: number, ended: number, rows: number, share: number, batch: Trace | undefined): void {
    this.#queue(ran).end(ran);
    const run = this.#trace.child('modelgate.run', {
      'modelgate.model': this.#model,
      ...(batch === undefined ? {} : { 'modelgate.batch.rows': rows, 'modelgate.batch.requests': Math.round(1 / share) }),
    }, { startTime: ran, links: batch === undefined ? undefined : [batch] });
    run.end(ended);
  }

  /** The visit failed waiting (`ran` undefined) or in its run. */
  failed(error: unknown, ran: number | undefined): void {
    const now = performance.now();
    const queue = this.#queue(ran ?? now);
    if (ran === undefined) queue.fail(failureText(error));
    queue.end(ran ?? now);
    if (ran === undefined) return;
    const run = this.#trace.child('modelgate.run', { 'modelgate.model': this.#model }, { startTime: ran });
    run.fail(failureText(error));
    run.end(now);
  }

  #queue(until: number): Trace {
    const queue = this.#trace.child('modelgate.queue', { 'modelgate.model': this.#model }, { startTime: this.#arrived });
    const load = this.#load;
    if (load !== undefined) {
      queue.child('modelgate.load', {
        'modelgate.model': this.#model,
        'modelgate.load.evicted': load.evicted.length > 0,
        ...(load.evicted.length === 0 ? {} : { 'modelgate.load.evicted_models': [...load.evicted] }),
        'modelgate.load.joined': load.joined,
        ...(load.warmupRuns === undefined ? {} : { 'modelgate.load.warmup_runs': load.warmupRuns }),
      }, { startTime: load.since }).end(Math.min(load.until, until));
    }
    return queue;
  }
}
