/**
 * Work that waits (for a model's load, a slot, a batch) stops waiting when the
 * request's deadline passes or its client goes away: it then never runs.
 */
import { DeadlineExceededError, RequestAbortedError } from './errors.ts';
import type { Trace } from './trace.ts';

/** Whose work it is, for fair queuing: a tenant's name and its weight. */
export interface Flow {
  readonly name: string;
  readonly share: number;
}

/** When queued work stops being wanted. */
export interface Waiting {
  /** The tenant whose request it is; absent without tenants (one flow). */
  readonly flow?: Flow | undefined;
  /** performance.now() after which the work must not start. */
  readonly deadline?: number | undefined;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal | undefined;
  /** Told when the work leaves a queue in front of the model (a batch's, a fair queue's) to run. */
  readonly started?: (() => void) | undefined;
  /** Told, when the work runs in a dynamic batch, the batch's rows and requests (for statistics), and its span when the request is traced. */
  readonly batched?: ((rows: number, requests: number, batch: Trace | undefined) => void) | undefined;
  /** Told, when the lease had to wait for the model to load: when the wait began, the models the load evicted, whether it joined a load already under way, and the warm-up runs the load made (undefined: none). */
  readonly loaded?: ((since: number, evicted: readonly string[], joined: boolean, warmupRuns: number | undefined) => void) | undefined;
  /** The span the work goes under, when the request is traced: shared work (a batch) links to it. */
  readonly trace?: Trace | undefined;
}

/** Settles with `work`, unless the deadline passes (504) or the signal aborts (dropped) first. */
export function untilStopped<T>(work: Promise<T>, waiting: Waiting, model: string): Promise<T> {
  const { deadline, signal } = waiting;
  if (deadline === undefined && signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const stop = (error: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(error);
    };
    const onAbort = () => stop(new RequestAbortedError(model));
    const timer = deadline === undefined ? undefined : setTimeout(() => stop(new DeadlineExceededError(model)), Math.max(0, deadline - performance.now()));
    if (signal?.aborted === true) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    work.then((value) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    }, stop);
  });
}
