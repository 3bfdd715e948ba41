/**
 * Test helpers: a model repository of generated ONNX files, a gateway built
 * on it and closed when the test ends, and an executor that counts what the
 * registry asks of onnxruntime.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Test } from 'tap';
import type { TensorMap } from '@modelgate/client/codec';
import { buildApp } from '../../src/app.ts';
import { validateConfig, validateModel } from '../../src/config/load.ts';
import type { ModelConfig } from '../../src/config/schema.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { affineModel, buildModel } from '../../src/onnx/builder.ts';
import type { Executor, LoadedModel } from '../../src/executor/types.ts';
import type { Teardown } from './programs.ts';

export { eventually } from './programs.ts';

export const TOKEN = 'test-admin-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export interface TestContext extends Teardown {
  testdir(fixture?: Record<string, string>): string;
}

/** Writes files (path inside `directory` -> content), creating folders as needed. */
export function writeFiles(directory: string, files: Record<string, Uint8Array | string>): void {
  for (const [file, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(directory, file)), { recursive: true });
    writeFileSync(path.join(directory, file), bytes);
  }
}

/** Writes model files (path inside the repository -> bytes) into a fresh directory. */
export function makeRepository(t: TestContext, files: Record<string, Uint8Array | string>): string {
  const repository = t.testdir();
  writeFiles(repository, files);
  return repository;
}

export interface Gateway<E extends Executor = CountingExecutor> {
  app: FastifyInstance;
  repository: string;
  executor: E;
}

/**
 * Builds a gateway over `files` with the given raw configuration (modelRepository
 * and admin token filled in), ready, and closed at the end of the test. Its models run on
 * `runner` (default: in process, counted).
 */
export async function buildGateway<E extends Executor = CountingExecutor>(t: TestContext, files: Record<string, Uint8Array | string>, config: Record<string, unknown>, runner?: (repository: string) => E): Promise<Gateway<E>> {
  const repository = makeRepository(t, files);
  const validated = validateConfig({ admin: { token: TOKEN }, ...config, modelRepository: repository }, repository, {});
  const executor = runner?.(validated.modelRepository) ?? new CountingExecutor(new OnnxExecutor(validated.modelRepository)) as unknown as E;
  const app = await buildApp(validated, { executor });
  t.teardown(() => app.close());
  await app.ready();
  return { app, repository, executor };
}

/** A local model's configuration from its entry, defaults filled in as the gateway fills them (for tests that load models on an executor directly). */
export function modelConfig(repository: string, entry: Record<string, unknown>): ModelConfig {
  const { model, issues } = validateModel(entry, repository);
  if (model === undefined) throw new Error(`modelConfig: ${issues?.join('; ') ?? 'not a local model'}`);
  return model;
}

/** An admin API request for `inject`, with the token (and any other headers). */
export function adminRequest(method: 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'POST', url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return { method, url, headers: { ...AUTH, ...headers }, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) };
}

/** The admin token with a JSON body. */
export const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

/** Asserts `actual` has `expected`'s length and each value within `tolerance` of it. */
export function closeTo(t: Pick<Test, 'equal' | 'ok'>, actual: ArrayLike<unknown>, expected: readonly number[], what: string, tolerance = 1e-6): void {
  t.equal(actual.length, expected.length, `${what}: length`);
  expected.forEach((value, i) => t.ok(Math.abs((actual[i] as number) - value) < tolerance, `${what}[${i}]: ${String(actual[i])} vs ${value}`));
}

/**
 * Builds and readies a gateway from a raw configuration whose files already
 * exist (for restarts over the same repository and state file); the caller closes it.
 */
export async function startGateway(document: Record<string, unknown>, repository: string): Promise<FastifyInstance> {
  const config = validateConfig(document, repository, {});
  const app = await buildApp(config, { executor: new OnnxExecutor(config.modelRepository) });
  await app.ready();
  return app;
}

/** POSTs a V2 inference request. */
export function infer(app: FastifyInstance, key: string, body: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: `/v2/models/${key}/infer`, payload: body as Record<string, unknown>, headers });
}

/** A float32 model computing y = k x on [batch, 1]: its answer says which model ran. */
export function scaleModel(k: number): Uint8Array {
  return affineModel({ inFeatures: 1, outFeatures: 1, weights: [k], bias: [0] });
}

/** y = x W W ... W (30 times) on [batch, 512], W averaging: a few hundred ms for 64 rows, and y = x. Keeps a request in flight. */
export function slowModel(): Uint8Array {
  const layers = 30;
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 512] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 512] }],
    initializers: [{ name: 'W', type: 'float32', dims: [512, 512], values: new Array(512 * 512).fill(1 / 512) }],
    nodes: Array.from({ length: layers }, (_, i) => ({ op: 'MatMul', inputs: [i === 0 ? 'x' : `h${i}`, 'W'], outputs: [i === layers - 1 ? 'y' : `h${i + 1}`] })),
  });
}

/** A request for slowModel: `rows` rows of ones. */
export function slowRequest(rows = 64) {
  return { inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 512], data: new Array(rows * 512).fill(1) }] };
}

/** A request for scaleModel. */
export function scaleRequest(x: number) {
  return { inputs: [{ name: 'x', shape: [1, 1], datatype: 'FP32', data: [x] }] };
}

/**
 * Wraps a real executor, counting loads, runs and releases per model, and
 * optionally holding runs at a gate so a test can act while they are in flight.
 */
export class CountingExecutor implements Executor {
  /** Load attempts, failed ones included. */
  readonly attempts = new Map<string, number>();
  readonly loads = new Map<string, number>();
  readonly releases = new Map<string, number>();
  readonly runsStarted = new Map<string, number>();
  /** Sessions open now, and the most ever open at once. */
  open = 0;
  maxOpen = 0;
  #gate: Promise<void> | undefined;
  #gated: string | undefined;
  #openGate: (() => void) | undefined;
  readonly #inner: Executor;

  constructor(inner: Executor) {
    this.#inner = inner;
  }

  /** Makes runs (of `model` only, if named) wait until the returned function is called. */
  hold(model?: string): () => void {
    this.#gated = model;
    this.#gate = new Promise((resolve) => { this.#openGate = resolve; });
    return () => {
      this.#openGate?.();
      this.#gate = undefined;
    };
  }

  async load(model: ModelConfig): Promise<LoadedModel> {
    bump(this.attempts, model.name);
    const loaded = await this.#inner.load(model);
    bump(this.loads, model.name);
    this.open += 1;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    return {
      signature: loaded.signature,
      ...(loaded.lost === undefined ? {} : { lost: loaded.lost }),
      run: async (inputs: TensorMap, outputs: readonly string[]) => {
        bump(this.runsStarted, model.name);
        if (this.#gate !== undefined && (this.#gated === undefined || this.#gated === model.name)) await this.#gate;
        return loaded.run(inputs, outputs);
      },
      release: async () => {
        bump(this.releases, model.name);
        this.open -= 1;
        await loaded.release();
      },
    };
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

function bump(counts: Map<string, number>, name: string): void {
  counts.set(name, (counts.get(name) ?? 0) + 1);
}

/** y = x + n on [batch, 1], as n chained Add nodes: a small file whose session takes long to create (about half a second for 6000). */
export function slowLoadingModel(n: number): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 1] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
    initializers: [{ name: 'one', type: 'float32', dims: [1], values: [1] }],
    nodes: Array.from({ length: n }, (_, i) => ({ op: 'Add', inputs: [i === 0 ? 'x' : `h${i}`, 'one'], outputs: [i === n - 1 ? 'y' : `h${i + 1}`] })),
  });
}

/**
 * The gateway's /metrics text with the `replica` label every series carries taken out, so
 * tests can name series by their own labels (tests of the label itself read it raw).
 */
export async function metricsOf(app: FastifyInstance): Promise<string> {
  const text = (await app.inject({ url: '/metrics' })).body;
  return text.replace(/\{replica="[^"]*"\}/g, '').replace(/,replica="[^"]*"/g, '').replace(/\{replica="[^"]*",/g, '{');
}
