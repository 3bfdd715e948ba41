/**
 * Runs models on worker threads, so the HTTP event loop only parses, routes
 * and answers. Every model instance gets a thread of its own: a cold model's
 * session is created on its own thread and never blocks a resident model's
 * runs, and N instances run N batches at once. Idle threads are kept ready
 * so a load does not wait for a thread to start. A batch's inputs and every
 * output cross as transferred buffers; a request's own inputs (which other
 * targets may still read) are copied by structured clone.
 *
 * A model whose runs take microseconds costs more in the thread hop than in
 * onnxruntime: with `runIn: auto` it moves into the event loop's thread once
 * its measured median run is short enough (see ADAPTIVE below).
 *
 * A worker that dies fails the requests it held with 503 and reports its
 * model lost, so the registry loads it again; nothing else is touched.
 */
import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { Signature, Tensor, TensorMap } from '@modelgate/client/codec';
import { RUN_IN_AUTO, type ModelConfig } from '../config/schema.ts';
import { resolveInRepository } from '../config/paths.ts';
import { InferenceFailedError, errorFromWorker, WorkerLostError, withRetryAfter } from '../errors.ts';
import { OnnxExecutor } from './onnx.ts';
import { handedOver, type Executor, type LoadedModel } from './types.ts';
import type { Opened, WorkerAnswer, WorkerRequest } from './worker.ts';
import type { Warmed } from './warmup.ts';

const SCRIPT = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

/** How long a thread beyond the spares stays idle before it is stopped. */
const IDLE_THREAD_MS = 60_000;

/** runIn auto's rule, as the schema documents it (config/schema.ts, RUN_IN_AUTO). */
export const ADAPTIVE = RUN_IN_AUTO;

type Call = WorkerRequest extends infer R ? R extends { id: number } ? Omit<R, 'id'> : never : never;

/** What pending calls of a worker that stopped are rejected with. */
class WorkerDied extends Error {}

class PoolWorker {
  readonly thread: Worker;
  /** The model instance this thread runs, if any. */
  model: WorkerModel | undefined;
  /** When it last became idle (performance.now()). */
  idleSince = performance.now();
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 0;
  dead = false;

  constructor(onDeath: (worker: PoolWorker) => void) {
    this.thread = new Worker(SCRIPT);
    this.thread.on('message', (answer: WorkerAnswer) => {
      const pending = this.#pending.get(answer.id);
      this.#pending.delete(answer.id);
      if (answer.ok) pending?.resolve(answer.value);
      else pending?.reject(errorFromWorker(answer));
    });
    const die = () => {
      if (this.dead) return;
      this.dead = true;
      for (const pending of this.#pending.values()) pending.reject(new WorkerDied('worker thread stopped'));
      this.#pending.clear();
      onDeath(this);
    };
    this.thread.on('error', die);
    this.thread.on('exit', die);
  }

  /** Calls sent and not answered yet. */
  get busy(): number {
    return this.#pending.size;
  }

  /**
   * Ends the thread once it has done what it was sent. Never `terminate()` first: stopping a
   * thread while onnxruntime's native code runs or initialises in it aborts the whole process
   * (seen at shutdown when a spare thread was still starting). Terminated only if it hangs.
   */
  async stop(): Promise<void> {
    if (this.dead) return;
    const exited = new Promise((resolve) => this.thread.once('exit', resolve));
    void this.call({ kind: 'stop' }).catch(() => undefined);
    const timer = setTimeout(() => void this.thread.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
  }

  call(call: Call, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.dead) return Promise.reject(new WorkerDied('worker thread stopped'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...call, id }, transfer);
    });
  }
}

interface Instance { readonly worker: PoolWorker; readonly handle: number }

class WorkerModel implements LoadedModel {
  readonly signature: Signature;
  readonly warmup: Warmed | undefined;
  readonly lost: Promise<void>;
  readonly #config: ModelConfig;
  readonly #instances: Instance[];
  readonly #executor: WorkerExecutor;
  #markLost: () => void = () => undefined;
  /** Runs timed in the worker and the hops around them, µs, while deciding whether to move into the event loop. */
  #samples: Array<[run: number, hop: number]> | undefined;
  #inline: LoadedModel | undefined;
  #released = false;

  constructor(executor: WorkerExecutor, config: ModelConfig, instances: Instance[], opened: readonly Opened[], adaptive: boolean) {
    this.#executor = executor;
    this.#config = config;
    this.#instances = instances;
    this.signature = (opened[0] as Opened).signature;
    this.warmup = combined(opened.map((each) => each.warmup));
    this.#samples = adaptive ? [] : undefined;
    this.lost = new Promise((resolve) => { this.#markLost = resolve; });
    for (const { worker } of instances) worker.model = this;
  }

  /** Batches worth having in flight: one running and one queued behind it on each instance, so a worker never waits for the next. */
  get concurrency(): number {
    return this.#inline === undefined ? this.#instances.length * 2 : 1;
  }

  get name(): string {
    return this.#config.name;
  }

  /** One of its threads died: the model is reported lost as a whole. */
  markLost(): void {
    this.#markLost();
    // The registry drops a lost model without releasing it: the instances still alive are freed
    // here, after the runs already sent to them.
    void Promise.all(this.#instances.splice(0).map((instance) => this.#executor.free(instance)));
  }

  run(inputs: TensorMap, outputs: readonly string[]): Promise<TensorMap> {
    if (this.#inline !== undefined) return this.#inline.run(inputs, outputs);
    let instance = this.#instances[0];
    if (instance === undefined) return Promise.reject(withRetryAfter(new WorkerLostError(this.#config.name), 1));
    for (const other of this.#instances) if (other.worker.busy < instance.worker.busy) instance = other;
    return this.#runOn(instance, inputs, outputs);
  }

  async release(): Promise<void> {
    this.#released = true;
    await Promise.all([this.#inline?.release(), ...this.#instances.map((instance) => this.#executor.free(instance))]);
  }

  async #runOn(instance: Instance, inputs: TensorMap, outputs: readonly string[]): Promise<TensorMap> {
    try {
      // Only a run sent to an idle thread times the hop: one queued behind another batch would
      // count that batch's run as hop, and move a compute-bound model into the event loop.
      const alone = instance.worker.busy === 0;
      const sent = performance.now();
      const answer = await instance.worker.call({ kind: 'run', handle: instance.handle, inputs: [...inputs], outputs: [...outputs] }, transferable(inputs)) as { outputs: Array<[string, Tensor]>; micros: number };
      if (alone) this.#sample(answer.micros, (performance.now() - sent) * 1000);
      return new Map(answer.outputs);
    } catch (error) {
      if (error instanceof WorkerDied) throw withRetryAfter(new WorkerLostError(this.#config.name), 1);
      throw error instanceof InferenceFailedError ? error : new InferenceFailedError(this.#config.name, (error as Error).message);
    }
  }

  #sample(run: number, roundTrip: number): void {
    const samples = this.#samples;
    if (samples === undefined) return;
    samples.push([run, roundTrip - run]);
    if (samples.length < ADAPTIVE.WARMUP + ADAPTIVE.SAMPLES) return;
    this.#samples = undefined;
    const timed = samples.slice(ADAPTIVE.WARMUP);
    const runs = median(timed.map(([micros]) => micros));
    const hops = median(timed.map(([, micros]) => micros));
    if (runs < hops && runs < ADAPTIVE.MAX_RUN_MICROS) void this.#moveToEventLoop();
  }

  async #moveToEventLoop(): Promise<void> {
    const inline = await this.#executor.loadInline(this.#config).catch(() => undefined);
    if (inline === undefined) return;
    if (this.#released) {
      await inline.release();
      return;
    }
    this.#inline = inline;
    // Runs already sent finish on the worker; the instance is freed after them.
    await Promise.all(this.#instances.splice(0).map((instance) => this.#executor.free(instance)));
  }
}

export class WorkerExecutor implements Executor {
  readonly #repository: string;
  readonly #spares: number;
  readonly #idle: PoolWorker[] = [];
  readonly #all = new Set<PoolWorker>();
  readonly #inline: OnnxExecutor;
  #nextHandle = 0;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;

  /**
   * @param repository real path of the model repository.
   * @param spares idle threads kept ready for loads.
   */
  constructor(repository: string, spares: number) {
    this.#repository = repository;
    this.#spares = Math.max(1, spares);
    this.#inline = new OnnxExecutor(repository);
    for (let i = 0; i < this.#spares; i++) this.#idle.push(this.#spawn());
  }

  /** Every thread, oldest first, for tests and diagnostics. */
  get threads(): readonly Worker[] {
    return [...this.#all].map((worker) => worker.thread);
  }

  /** The threads running the named model's instances, for tests and diagnostics. */
  threadsOf(model: string): readonly Worker[] {
    return [...this.#all].filter((worker) => worker.model?.name === model).map((worker) => worker.thread);
  }

  /**
   * Makes a thread exit as a crashed one would, after what it is doing now
   * and before anything sent later: for tests. (Terminating a thread while
   * onnxruntime runs native code in it aborts the whole process, so that is
   * never done to a busy thread.)
   */
  crash(thread: Worker): void {
    const worker = [...this.#all].find((candidate) => candidate.thread === thread);
    void worker?.call({ kind: 'exit' }).catch(() => undefined);
  }

  async load(model: ModelConfig): Promise<LoadedModel> {
    if (model.runIn === 'eventLoop') return this.#inline.load(model);
    const workers = Array.from({ length: model.instances }, () => this.#take());
    const handles = workers.map(() => this.#nextHandle++);
    const loads = await Promise.allSettled(workers.map((worker, index) => worker.call({ kind: 'load', handle: handles[index] as number, model, repository: this.#repository }) as Promise<Opened>));
    const instances = workers.map((worker, index) => ({ worker, handle: handles[index] as number }));
    const failed = loads.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(instances.map((instance, index) => (loads[index]?.status === 'fulfilled' ? this.free(instance) : this.#giveBack(instance.worker))));
      throw failed.reason;
    }
    const adaptive = model.runIn === 'auto' && model.instances === 1 && await smallFile(resolveInRepository(this.#repository, model.path));
    return new WorkerModel(this, model, instances, loads.map((outcome) => (outcome as PromiseFulfilledResult<Opened>).value), adaptive);
  }

  /** Opens a session in this thread (runIn auto, once a model proves tiny). */
  loadInline(model: ModelConfig): Promise<LoadedModel> {
    return this.#inline.load(model);
  }

  /** Releases an instance's session once its runs are done and gives its thread back. */
  async free(instance: Instance): Promise<void> {
    if (!instance.worker.dead) await instance.worker.call({ kind: 'release', handle: instance.handle }).catch(() => undefined);
    instance.worker.model = undefined;
    this.#giveBack(instance.worker);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    await Promise.all([...this.#all].map((worker) => worker.stop()));
  }

  /** An idle thread for a load (the most recently idle); a new one is started to stay ready. */
  #take(): PoolWorker {
    const worker = this.#idle.pop() ?? this.#spawn();
    if (this.#idle.length < this.#spares && !this.#closed) this.#idle.push(this.#spawn());
    return worker;
  }

  #giveBack(worker: PoolWorker): void {
    if (worker.dead || this.#closed) return;
    // Kept for the next load: starting a thread (an isolate, then onnxruntime) costs tens of ms
    // of CPU, which under a cap smaller than the working set would come with every load.
    worker.idleSince = performance.now();
    this.#idle.push(worker);
    this.#sweeper ??= setInterval(() => this.#sweep(), IDLE_THREAD_MS / 4).unref();
  }

  /** Stops threads idle for IDLE_THREAD_MS beyond the spares: the memory onnxruntime keeps per thread goes with them. */
  #sweep(): void {
    const now = performance.now();
    while (this.#idle.length > this.#spares && now - (this.#idle[0] as PoolWorker).idleSince > IDLE_THREAD_MS) {
      const worker = this.#idle.shift() as PoolWorker;
      this.#all.delete(worker);
      void worker.stop();
    }
  }

  #spawn(): PoolWorker {
    const worker = new PoolWorker((dead) => {
      this.#all.delete(dead);
      dead.model?.markLost();
      const index = this.#idle.indexOf(dead);
      if (index !== -1) this.#idle.splice(index, 1);
      if (!this.#closed && this.#idle.length < this.#spares) this.#idle.push(this.#spawn());
    });
    this.#all.add(worker);
    return worker;
  }
}

/** The inputs' buffers the thread may take over rather than copy: the batcher's own, whole. */
function transferable(inputs: TensorMap): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const { data } of inputs.values()) {
    if (Array.isArray(data) || !handedOver.has(data)) continue;
    const { buffer } = data;
    if (buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength) buffers.push(buffer);
  }
  return buffers;
}

/** The instances' warm-ups as one: they ran at once, each on its own thread. */
function combined(warmups: ReadonlyArray<Warmed | undefined>): Warmed | undefined {
  const [first] = warmups;
  if (first === undefined) return undefined;
  const failure = warmups.find((warmup) => warmup?.failure !== undefined)?.failure;
  return {
    runs: warmups.reduce((sum, warmup) => sum + (warmup?.runs ?? 0), 0),
    milliseconds: Math.max(...warmups.map((warmup) => warmup?.milliseconds ?? 0)),
    ...(failure === undefined ? {} : { failure }),
  };
}

function median(values: number[]): number {
  return values.sort((a, b) => a - b)[values.length >> 1] as number;
}

async function smallFile(file: string): Promise<boolean> {
  return stat(file).then((info) => info.size < ADAPTIVE.MAX_FILE_BYTES, () => false);
}

