/**
 * Everything a client calls is a target behind a key: a model or a route of
 * any kind. All answer the same calls, so routes compose and the HTTP layer
 * has one code path for every key.
 */
import type { InferRequest, InferResult, Signature } from '@modelgate/client/codec';
import type { RouteKind } from '../config/schema.ts';
import { traced, type SpanAttributes, type Trace } from '../trace.ts';
import type { Flow } from '../waiting.ts';

/** Per-request state that travels through composed targets. */
export interface InferContext {
  /** Split decisions made so far, as `route=variant`, in order. */
  readonly decisions: string[];
  /** Switch decisions made so far: the index of the case that took the request, or `default`, in order. */
  readonly cases?: string[] | undefined;
  /** A request header by lower-case name (for sticky splits). */
  readonly header: (name: string) => string | undefined;
  /** performance.now() after which queued work for this request must not start (504). */
  readonly deadline?: number | undefined;
  /** Aborted when the client goes away: its queued work is dropped. */
  readonly signal?: AbortSignal | undefined;
  /** Where the models a request runs on add up what they spent on it, for the statistics extension. */
  readonly timing?: RunTiming | undefined;
  /** The tenant whose request it is (its name and share), for the models' fair queues; absent without tenants. */
  readonly flow?: Flow | undefined;
  /** A shadow copy: it may use only spare capacity (a resident model, or a free slot), never evict. */
  readonly shadow?: boolean | undefined;
  /** The span the work of this target goes under, when the request is traced. */
  readonly trace?: Trace | undefined;
}

/** Runs `work` in a span of its own under the request's (when traced), handing it the context with that span in it. */
export function inSpan<T>(context: InferContext, name: string, attributes: SpanAttributes, work: (context: InferContext) => Promise<T>): Promise<T> {
  return traced(context.trace, name, attributes, (trace) => work(trace === context.trace ? context : { ...context, trace }));
}

/** What a request's model runs cost, summed over every model it reached. */
export interface RunTiming {
  /** Milliseconds spent waiting for models: loads, slots under the caps. */
  queueMs: number;
  /** Milliseconds from reaching each model to its run starting: the wait for a lease, then for a place in a batch or run queue. */
  waitMs: number;
  /** Milliseconds in model runs, the wait to join a batch included. */
  inferMs: number;
  /** Model executions, each shared among the requests batched into it (1/requests each). */
  executions: number;
  /** Rows of the last execution it took part in (its batch size). */
  batchSize: number;
}

export interface Target {
  readonly key: string;
  readonly kind: 'model' | RouteKind;
  /** Inputs the target takes and outputs it gives; may load a model to learn them. */
  signature(): Promise<Signature>;
  /** The signature if it is known without loading anything (a model loaded before, a route verified). */
  knownSignature(): Signature | undefined;
  /**
   * Loads every model the target reaches, one at a time (a chain longer than the
   * resident cap still prepares), so a live change whose targets cannot load is refused.
   */
  prepare(): Promise<void>;
  infer(request: InferRequest, context: InferContext): Promise<InferResult>;
  /** Throws a 503 error saying why if a request now could not be served (a model backing off after a failed load). */
  assertReady(): void;
}

/** Targets by key: an immutable snapshot. */
export type TargetTable = ReadonlyMap<string, Target>;
