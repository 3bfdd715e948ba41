/**
 * Runs models on a pool of worker threads: the HTTP event loop only parses,
 * routes and answers. Each loaded model lives in one worker (the one with the
 * fewest models when it loaded); inputs are copied into it by structured
 * clone, outputs come back as transferred buffers. A worker that dies is
 * replaced: the requests it held fail with 503 and its models are reported
 * lost, so the registry loads them again elsewhere; nothing else is touched.
 */
import { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../config/schema.ts';
import { WorkerLostError, withRetryAfter } from '../errors.ts';
import type { Signature, Tensor, TensorMap } from '../protocol/types.ts';
import type { Executor, LoadedModel } from './types.ts';
import type { WorkerAnswer, WorkerRequest } from './worker.ts';

const SCRIPT = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

type Call = WorkerRequest extends infer R ? R extends { id: number } ? Omit<R, 'id'> : never : never;

/** What pending calls of a worker that stopped are rejected with. */
class WorkerDied extends Error {}

class PoolWorker {
  readonly thread: Worker;
  readonly models = new Map<number, WorkerModel>();
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #nextId = 0;
  dead = false;

  constructor(onDeath: (worker: PoolWorker) => void) {
    this.thread = new Worker(SCRIPT);
    this.thread.on('message', (answer: WorkerAnswer) => {
      const pending = this.#pending.get(answer.id);
      this.#pending.delete(answer.id);
      if (answer.ok) pending?.resolve(answer.value);
      else pending?.reject(Object.assign(new Error(answer.message), { statusCode: answer.statusCode, code: answer.code }));
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

  call(call: Call, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.dead) return Promise.reject(new WorkerDied('worker thread stopped'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...call, id }, transfer);
    });
  }
}

class WorkerModel implements LoadedModel {
  readonly signature: Signature;
  readonly lost: Promise<void>;
  readonly #worker: PoolWorker;
  readonly #handle: number;
  readonly #name: string;
  #markLost: () => void = () => undefined;

  constructor(worker: PoolWorker, handle: number, name: string, signature: Signature) {
    this.#worker = worker;
    this.#handle = handle;
    this.#name = name;
    this.signature = signature;
    this.lost = new Promise((resolve) => { this.#markLost = resolve; });
  }

  markLost(): void {
    this.#markLost();
  }

  async run(inputs: TensorMap, outputs: readonly string[]): Promise<TensorMap> {
    try {
      const answer = await this.#worker.call({ kind: 'run', handle: this.#handle, inputs: [...inputs], outputs: [...outputs] }) as Array<[string, Tensor]>;
      return new Map(answer);
    } catch (error) {
      if (error instanceof WorkerDied) throw withRetryAfter(new WorkerLostError(this.#name), 1);
      const failure = error as Error & { statusCode?: number; code?: string };
      throw Object.assign(new Error(failure.message), { statusCode: failure.statusCode ?? 500, code: failure.code ?? 'MG_INFERENCE_FAILED' });
    }
  }

  async release(): Promise<void> {
    this.#worker.models.delete(this.#handle);
    if (!this.#worker.dead) await this.#worker.call({ kind: 'release', handle: this.#handle });
  }
}

export class WorkerExecutor implements Executor {
  readonly #repository: string;
  readonly #workers: PoolWorker[] = [];
  #nextHandle = 0;
  #closed = false;

  /**
   * @param repository real path of the model repository.
   * @param size worker threads in the pool.
   */
  constructor(repository: string, size: number) {
    this.#repository = repository;
    for (let i = 0; i < size; i++) this.#workers.push(this.#spawn());
  }

  /** The threads, for tests and diagnostics. */
  get threads(): readonly Worker[] {
    return this.#workers.map((worker) => worker.thread);
  }

  /**
   * Makes worker `index` exit as a crashed one would, after what it is doing
   * now and before anything sent later: for tests. (Terminating a thread
   * while onnxruntime runs native code in it aborts the whole process, so
   * that is never done: close() runs only after the registry has drained.)
   */
  crash(index: number): void {
    void this.#workers[index]?.call({ kind: 'exit' }).catch(() => undefined);
  }

  async load(model: ModelConfig): Promise<LoadedModel> {
    const worker = this.#workers.reduce((best, next) => (next.models.size < best.models.size ? next : best));
    const handle = this.#nextHandle++;
    const signature = await worker.call({ kind: 'load', handle, model, repository: this.#repository }) as Signature;
    const loaded = new WorkerModel(worker, handle, model.name, signature);
    worker.models.set(handle, loaded);
    return loaded;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.map((worker) => worker.thread.terminate()));
  }

  #spawn(): PoolWorker {
    return new PoolWorker((dead) => {
      for (const model of dead.models.values()) model.markLost();
      dead.models.clear();
      const index = this.#workers.indexOf(dead);
      if (!this.#closed && index !== -1) this.#workers[index] = this.#spawn();
    });
  }
}
