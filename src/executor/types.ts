/**
 * The seam between the registry and whatever runs models: in process today,
 * on worker threads or remote backends later. The registry decides what is
 * resident; an executor only loads, runs and releases.
 */
import type { Signature, TensorMap } from '@modelgate/client/codec';
import type { ModelConfig } from '../config/schema.ts';
import type { Waiting } from '../waiting.ts';
import type { Warmed } from './warmup.ts';

/** A model whose session is open. */
export interface LoadedModel {
  readonly signature: Signature;
  /** Runs the model; resolves with the named outputs, in the order asked for. A run still queued when `waiting` says stop is rejected. */
  run(inputs: TensorMap, outputs: readonly string[], waiting?: Waiting): Promise<TensorMap>;
  /** Frees the session. Called exactly once, after the last run has finished. */
  release(): Promise<void>;
  /** Settles if the session is lost without a release (its worker thread stopped). */
  readonly lost?: Promise<void>;
  /** What warming the session up did at load (none: not warmed, as configured or for a remote). */
  readonly warmup?: Warmed | undefined;
  /** How many batches are worth sending before the first answers (default 1). */
  readonly concurrency?: number;
}

/**
 * Input buffers nobody reads once their run has them: the batcher's concatenations, which it
 * made for that run alone. An executor may hand them to another thread without a copy (a
 * transfer detaches them here). A request's own inputs are never in it: a shadow, an ensemble's
 * other members or a cascade's next step may still read them.
 */
export const handedOver = new WeakSet<ArrayBufferView>();

export interface Executor {
  /**
   * Opens a session for the model. Rejects with an Error whose message is safe
   * to show to clients (no file system paths).
   */
  load(model: ModelConfig): Promise<LoadedModel>;
  /** Frees everything the executor holds; loaded models must have been released. */
  close(): Promise<void>;
}
