/**
 * Dynamic batching, as Triton does it: requests for the same model whose
 * inputs share a dynamic first dimension are concatenated along it, run
 * once, and the outputs split back, row for row, to each request.
 *
 * A batch forms from the requests waiting when it is flushed: at the end of
 * the current event-loop turn (maxQueueDelayMicros 0, the default: no added
 * latency), or after the delay (a precise timer, not Node's whole
 * milliseconds), or as soon as maxBatchSize rows wait. As many batches are in
 * flight as the model can use (its `concurrency`: one running and one queued
 * per instance, so an instance never idles while the next batch crosses to
 * it); requests that arrive meanwhile wait and go together in the next.
 */
import { allocate, type Signature, type Tensor, type TensorData, type TensorMap } from '@modelgate/client/codec';
import type { BatchingOptions, ModelConfig } from '../config/schema.ts';
import { DeadlineExceededError, RequestAbortedError } from '../errors.ts';
import { handedOver, type Executor, type LoadedModel } from './types.ts';
import type { Warmed } from './warmup.ts';
import { failureText, type Trace } from '../trace.ts';
import type { Waiting } from '../waiting.ts';
import { preciseTimers } from './timer.ts';
import { FairModel, FairQueue } from './fair-queue.ts';

/** Whether every input and output of the signature has a dynamic first dimension to batch along. */
export function canBatch(signature: Signature): boolean {
  return [...signature.inputs, ...signature.outputs].every((spec) => spec.shape.length >= 1 && spec.shape[0] === -1);
}

/** Wraps an executor so the models it loads batch as their configuration says. */
export class BatchingExecutor implements Executor {
  readonly #inner: Executor;
  readonly #observe: BatchObserver | undefined;
  readonly #fair: boolean;

  /**
   * @param observe told the rows and requests of every batch run.
   * @param fair whether requests carry tenants: models that do not batch then queue their runs fairly too.
   */
  constructor(inner: Executor, observe?: BatchObserver, fair = false) {
    this.#inner = inner;
    this.#observe = observe;
    this.#fair = fair;
  }

  async load(model: ModelConfig): Promise<LoadedModel> {
    const loaded = await this.#inner.load(model);
    const options = model.batching;
    if (options === false || options.maxBatchSize <= 1 || !canBatch(loaded.signature)) return this.#fair ? new FairModel(model.name, loaded) : loaded;
    const observe = this.#observe;
    return new BatchingModel(model.name, loaded, options, observe === undefined ? undefined : (rows, requests) => observe(model.name, rows, requests));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface Pending {
  readonly inputs: TensorMap;
  readonly outputs: readonly string[];
  readonly rows: number;
  readonly waiting: Waiting;
  resolve(outputs: TensorMap): void;
  reject(error: unknown): void;
}

/** Observed batches, for metrics and tests. */
export type BatchObserver = (model: string, rows: number, requests: number) => void;

class BatchingModel implements LoadedModel {
  readonly signature: Signature;
  readonly lost: Promise<void> | undefined;
  readonly warmup: Warmed | undefined;
  readonly #name: string;
  readonly #inner: LoadedModel;
  readonly #options: BatchingOptions;
  /** Waiting requests by compatibility key (the same trailing dimensions and outputs), in fair order over tenants; `rows` is their sum. */
  readonly #queues = new Map<string, { items: FairQueue<Pending>; rows: number }>();
  readonly #observe: ((rows: number, requests: number) => void) | undefined;
  #scheduled = false;
  #cancelTimer: (() => void) | undefined;
  /** Batches sent and not yet answered. */
  #inFlight = 0;

  constructor(name: string, inner: LoadedModel, options: BatchingOptions, observe?: (rows: number, requests: number) => void) {
    this.#name = name;
    this.#inner = inner;
    this.#options = options;
    this.#observe = observe;
    this.signature = inner.signature;
    this.lost = inner.lost;
    this.warmup = inner.warmup;
    if (options.maxQueueDelayMicros > 0) void preciseTimers.start();
  }

  run(inputs: TensorMap, outputs: readonly string[], waiting: Waiting = {}): Promise<TensorMap> {
    let rows = -1;
    let key = '';
    // One pass: the rows every input must share, and the compatibility key (names and trailing dimensions).
    for (const [name, tensor] of inputs) {
      const first = tensor.shape[0] as number;
      if (rows === -1) rows = first;
      else if (first !== rows) return this.#inner.run(inputs, outputs);
      key += `${name}\u0000`;
      for (let i = 1; i < tensor.shape.length; i++) key += `:${tensor.shape[i]}`;
      key += ';';
    }
    if (rows === -1 || rows >= this.#options.maxBatchSize) return this.#inner.run(inputs, outputs);
    key += outputs.join(',');
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(key);
      if (queue === undefined) {
        queue = { items: new FairQueue(), rows: 0 };
        this.#queues.set(key, queue);
      }
      // A client that goes away is dropped from the queue when its batch forms (no listener per request).
      // Fair in rows: a tenant's share of a contended model is a share of its batches' rows.
      queue.items.push({ inputs, outputs, rows, waiting, resolve, reject }, waiting.flow, rows);
      queue.rows += rows;
      if (queue.rows >= this.#options.maxBatchSize && this.#canSend()) this.#flush();
      else this.#schedule();
    });
  }

  release(): Promise<void> {
    return this.#inner.release();
  }

  #canSend(): boolean {
    return this.#inFlight < (this.#inner.concurrency ?? 1);
  }

  #schedule(): void {
    // When every slot is busy, the next batch goes out as soon as one frees, with whatever waits by then.
    if (this.#scheduled || !this.#canSend()) return;
    this.#scheduled = true;
    const delay = this.#options.maxQueueDelayMicros;
    if (delay === 0) setImmediate(() => this.#flush());
    else this.#cancelTimer = preciseTimers.after(delay, () => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const now = performance.now();
    for (const [key, queue] of this.#queues) {
      queue.items.remove((pending) => {
        const { deadline, signal } = pending.waiting;
        if (signal?.aborted === true) pending.reject(new RequestAbortedError(this.#name));
        else if (deadline !== undefined && now >= deadline) pending.reject(new DeadlineExceededError(this.#name));
        else return false;
        queue.rows -= pending.rows;
        return true;
      });
      while (queue.items.size > 0 && this.#canSend()) {
        const batch: Pending[] = [];
        let rows = 0;
        for (let next = queue.items.peek(); next !== undefined && rows + next.rows <= this.#options.maxBatchSize; next = queue.items.peek()) {
          batch.push(queue.items.shift() as Pending);
          rows += next.rows;
        }
        queue.rows -= rows;
        this.#inFlight += 1;
        void this.#runBatch(batch, rows).then(() => {
          this.#inFlight -= 1;
          if (this.#queues.size > 0) this.#flush();
        });
      }
      if (queue.items.size === 0) this.#queues.delete(key);
    }
  }

  async #runBatch(batch: Pending[], rows: number): Promise<void> {
    this.#observe?.(rows, batch.length);
    const span = batchSpan(this.#name, batch, rows);
    for (const pending of batch) {
      pending.waiting.started?.();
      pending.waiting.batched?.(rows, batch.length, span);
    }
    if (span === undefined) return this.#runRows(batch, rows);
    try {
      await this.#runRows(batch, rows, (error) => span.fail(failureText(error)));
    } finally {
      span.end();
    }
  }

  async #runRows(batch: Pending[], rows: number, failed?: (error: unknown) => void): Promise<void> {
    if (batch.length === 1) {
      const only = batch[0] as Pending;
      await this.#inner.run(only.inputs, only.outputs).then(only.resolve, (error: unknown) => {
        failed?.(error);
        only.reject(error);
      });
      return;
    }
    try {
      const inputs: TensorMap = new Map();
      for (const name of (batch[0] as Pending).inputs.keys()) {
        inputs.set(name, concat(batch.map((pending) => pending.inputs.get(name) as Tensor), rows));
      }
      const results = await this.#inner.run(inputs, (batch[0] as Pending).outputs);
      const parts = batch.map(() => new Map() as TensorMap);
      for (const [name, tensor] of results) {
        if (tensor.shape[0] !== rows) throw new Error(`output '${name}' has ${tensor.shape[0]} rows for a batch of ${rows}: set batching: false for this model`);
        split(tensor, batch.map((pending) => pending.rows)).forEach((part, index) => (parts[index] as TensorMap).set(name, part));
      }
      batch.forEach((pending, index) => pending.resolve(parts[index] as TensorMap));
    } catch (error) {
      failed?.(error);
      for (const pending of batch) pending.reject(error);
    }
  }
}

/**
 * A batch's span when some of its requests are traced: in the trace of the first of them,
 * linked to every traced request's span (the batch serves them all, and belongs to none).
 */
function batchSpan(model: string, batch: readonly Pending[], rows: number): Trace | undefined {
  const traced: Trace[] = [];
  for (const pending of batch) if (pending.waiting.trace?.recording === true) traced.push(pending.waiting.trace);
  const [first] = traced;
  if (first === undefined) return undefined;
  return first.child('modelgate.batch', { 'modelgate.model': model, 'modelgate.batch.rows': rows, 'modelgate.batch.requests': batch.length }, { links: traced });
}

/** The batch's input: one allocation, each request's rows copied in once; the run may take it over. */
function concat(tensors: readonly Tensor[], rows: number): Tensor {
  const first = tensors[0] as Tensor;
  const shape = [rows, ...first.shape.slice(1)];
  if (Array.isArray(first.data)) return { datatype: first.datatype, shape, data: tensors.flatMap((tensor) => tensor.data as string[]) };
  const data = allocate(first.datatype, tensors.reduce((sum, tensor) => sum + tensor.data.length, 0)) as Exclude<TensorData, string[]>;
  let offset = 0;
  for (const tensor of tensors) {
    (data as Uint8Array).set(tensor.data as Uint8Array, offset);
    offset += tensor.data.length;
  }
  handedOver.add(data);
  return { datatype: first.datatype, shape, data };
}

/**
 * Each request's rows of a batch output, as views of it, not copies: every run's outputs are
 * new buffers (onnxruntime copies them out, and a worker transfers them), so a view never
 * sees a later batch's data.
 */
function split(tensor: Tensor, rows: readonly number[]): Tensor[] {
  const total = rows.reduce((a, b) => a + b, 0);
  const width = total === 0 ? 0 : tensor.data.length / total;
  let offset = 0;
  return rows.map((count) => {
    const start = offset * width;
    offset += count;
    const data = Array.isArray(tensor.data) ? tensor.data.slice(start, start + count * width) : (tensor.data as Uint8Array).subarray(start, start + count * width);
    return { datatype: tensor.datatype, shape: [count, ...tensor.shape.slice(1)], data: data as TensorData };
  });
}
