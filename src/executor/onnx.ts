/**
 * Runs ONNX models in this process with onnxruntime-node. Note that
 * onnxruntime's `create` and `run` block the calling thread once they start.
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { fromOrtType, type Signature, type Tensor, type TensorData, type TensorMap, type TensorSpec, toOrtType } from '@modelgate/client/codec';
import type { ModelConfig, SessionOptions } from '../config/schema.ts';
import { resolveInRepository } from '../config/paths.ts';
import { InferenceFailedError, scrubPaths } from '../errors.ts';
import type { Executor, LoadedModel } from './types.ts';
import { warmUp, type Warmed } from './warmup.ts';

export class OnnxExecutor implements Executor {
  readonly #repository: string;

  /** @param repository real path of the model repository; every file read is checked against it again. */
  constructor(repository: string) {
    this.#repository = repository;
  }

  async load(model: ModelConfig): Promise<LoadedModel> {
    let bytes: Buffer;
    try {
      bytes = await readFile(resolveInRepository(this.#repository, model.path));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new Error(code === 'ENOENT' ? 'its file is not in the model repository' : code === undefined ? (error as Error).message : `its file cannot be read (${code})`);
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions(model.session));
    } catch (error) {
      throw new Error(scrubPaths((error as Error).message));
    }
    let loaded: OnnxModel;
    try {
      loaded = new OnnxModel(model.name, session, signatureOf(session));
    } catch (error) {
      await session.release();
      throw error;
    }
    loaded.warmup = await warmUp((inputs, outputs) => loaded.run(inputs, outputs), loaded.signature, model.warmup);
    return loaded;
  }

  async close(): Promise<void> {}
}

class OnnxModel implements LoadedModel {
  readonly signature: Signature;
  warmup: Warmed | undefined;
  readonly #name: string;
  readonly #session: ort.InferenceSession;

  /**
   * onnxruntime-common keeps the outputs to fetch as keys of a plain object and its backend
   * reads every output name off it: an output named like an Object member (toString) that is
   * not fetched reads as a value there and fails the run. Such models fetch every output.
   */
  readonly #fetchAll: boolean;

  constructor(name: string, session: ort.InferenceSession, signature: Signature) {
    this.#name = name;
    this.#session = session;
    this.signature = signature;
    this.#fetchAll = session.outputNames.some((output) => output in Object.prototype);
  }

  async run(inputs: TensorMap, outputs: readonly string[]): Promise<TensorMap> {
    // Own keys whatever the names (an assignment to feeds['__proto__'] would set the prototype).
    const feeds: Record<string, ort.Tensor> = Object.fromEntries(Array.from(inputs, ([name, tensor]) => [name, toOrtTensor(tensor)]));
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await this.#session.run(feeds, this.#fetchAll ? this.#session.outputNames : outputs as string[]);
    } catch (error) {
      throw new InferenceFailedError(this.#name, scrubPaths((error as Error).message));
    }
    const out: TensorMap = new Map();
    for (const name of outputs) {
      const tensor = Object.hasOwn(results, name) ? results[name] : undefined;
      if (tensor === undefined) throw new InferenceFailedError(this.#name, `it gave no output '${name}'`);
      out.set(name, fromOrtTensor(tensor as ort.Tensor));
    }
    return out;
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * onnxruntime-common 1.30 wraps FP16 data in a Float16Array where the runtime
 * has one (Node 24 does), and the native binding then rejects it ("not enough
 * space"): hand it the raw half-precision bits instead.
 */
function toOrtTensor(tensor: Tensor): ort.Tensor {
  const ortTensor = new ort.Tensor(toOrtType(tensor.datatype) as ort.Tensor.Type, tensor.data as ort.Tensor.DataType, tensor.shape);
  if (tensor.datatype === 'FP16') (ortTensor as unknown as { cpuData: TensorData }).cpuData = tensor.data;
  return ortTensor;
}

function fromOrtTensor(tensor: ort.Tensor): Tensor {
  const datatype = fromOrtType(tensor.type) ?? 'BYTES';
  const data = tensor.data as ArrayBufferView | string[];
  if (datatype === 'FP16' && !(data instanceof Uint16Array) && !Array.isArray(data)) {
    return { datatype, shape: tensor.dims, data: new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2) };
  }
  return { datatype, shape: tensor.dims, data: data as TensorData };
}

function sessionOptions(options: Readonly<SessionOptions>): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: options.intraOpThreads,
    interOpNumThreads: options.interOpThreads,
    graphOptimizationLevel: options.graphOptimizationLevel,
    executionMode: 'sequential',
  };
}

function signatureOf(session: ort.InferenceSession): Signature {
  const describe = (kind: string, metadata: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] => metadata.map((value) => {
    const datatype = value.isTensor ? fromOrtType(value.type) : undefined;
    if (!value.isTensor || datatype === undefined) {
      throw new Error(`${kind} '${value.name}' has a type the V2 protocol cannot carry`);
    }
    return { name: value.name, datatype, shape: value.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1)) };
  });
  return { inputs: describe('input', session.inputMetadata), outputs: describe('output', session.outputMetadata) };
}
