/**
 * A worker thread that runs onnxruntime sessions for the WorkerExecutor, so
 * `create` and `run`, which block the thread they run on, never block the
 * HTTP event loop. Messages: load, run, release; answers carry the call id.
 * The executor gives each model instance a thread of its own.
 */
import { parentPort } from 'node:worker_threads';
import type { Signature, Tensor } from '@modelgate/client/codec';
import { OnnxExecutor } from './onnx.ts';
import type { LoadedModel } from './types.ts';
import type { Warmed } from './warmup.ts';
import type { ModelConfig } from '../config/schema.ts';

export type WorkerRequest =
  | { id: number; kind: 'load'; handle: number; model: ModelConfig; repository: string }
  | { id: number; kind: 'run'; handle: number; inputs: Array<[string, Tensor]>; outputs: string[] }
  | { id: number; kind: 'release'; handle: number }
  /** Fault injection for tests: the thread exits as a crashed one would, between runs. */
  | { id: number; kind: 'exit' }
  /** The thread ends itself once what it was sent before is done (never while native code runs or loads). */
  | { id: number; kind: 'stop' };

/** What a load answers. */
export interface Opened { readonly signature: Signature; readonly warmup: Warmed | undefined }

export type WorkerAnswer =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; message: string; statusCode?: number; code?: string };

const port = parentPort;
if (port === null) throw new Error('worker.ts runs as a worker thread');

const models = new Map<number, LoadedModel>();
/** Runs in progress by model handle. */
const running = new Map<number, Set<Promise<unknown>>>();
let executor: OnnxExecutor | undefined;

/** Transfers output buffers back instead of copying them. */
function transferables(tensors: Array<[string, Tensor]>): ArrayBuffer[] {
  return tensors.flatMap(([, tensor]) => (Array.isArray(tensor.data) ? [] : [tensor.data.buffer as ArrayBuffer]));
}

port.on('message', (message: WorkerRequest) => {
  void handle(message).then(
    ({ value, transfer }) => port.postMessage({ id: message.id, ok: true, value } satisfies WorkerAnswer, transfer),
    (error: Error & { statusCode?: number; code?: string }) => port.postMessage({ id: message.id, ok: false, message: error.message, statusCode: error.statusCode, code: error.code } satisfies WorkerAnswer),
  );
});

async function handle(message: WorkerRequest): Promise<{ value?: unknown; transfer: ArrayBuffer[] }> {
  switch (message.kind) {
    case 'load': {
      executor ??= new OnnxExecutor(message.repository);
      const model = await executor.load(message.model);
      models.set(message.handle, model);
      return { value: { signature: model.signature, warmup: model.warmup } satisfies Opened, transfer: [] };
    }
    case 'run': {
      const model = models.get(message.handle);
      if (model === undefined) throw new Error('the model is not loaded in this worker');
      const run = runOn(model, message);
      const runs = running.get(message.handle) ?? new Set();
      running.set(message.handle, runs.add(run));
      return run.finally(() => runs.delete(run));
    }
    case 'release': {
      // Messages are handled as they come, and a run awaits onnxruntime: the runs sent before
      // the release finish first.
      await Promise.allSettled(running.get(message.handle) ?? []);
      running.delete(message.handle);
      await models.get(message.handle)?.release();
      models.delete(message.handle);
      return { transfer: [] };
    }
    case 'exit':
      process.exit(1);
    case 'stop':
      process.exit(0);
  }
}

async function runOn(model: LoadedModel, message: Extract<WorkerRequest, { kind: 'run' }>): Promise<{ value?: unknown; transfer: ArrayBuffer[] }> {
  // The run's own time, for runIn auto: what moving it into the event loop would cost there.
  // onnxruntime runs in the setImmediate after this one, so timing from here leaves out other
  // messages handled while the run waited for its turn.
  let begin = 0;
  setImmediate(() => { begin = performance.now(); });
  const outputs = [...(await model.run(new Map(message.inputs), message.outputs))];
  const micros = (performance.now() - begin) * 1000;
  return { value: { outputs, micros }, transfer: transferables(outputs) };
}
