/**
 * Triton's statistics extension, per key: what requests through each key
 * cost, in Triton's shape, so its clients' get_inference_statistics() and
 * dashboards built for it read the gateway unchanged.
 */
import type { Duration, ModelStatistics } from '@modelgate/client/codec';
import type { RunTiming } from '../routing/target.ts';

/** What one successful request cost, in milliseconds. */
export interface RequestCost {
  readonly totalMs: number;
  /** Decoding the request into tensors. */
  readonly inputMs: number;
  /** Encoding the answer. */
  readonly outputMs: number;
  /** Rows it carried: its first dimension where the key takes a dynamic one, else 1. */
  readonly rows: number;
  readonly timing: RunTiming;
}

interface BatchCounters { executions: number; input: number; infer: number; output: number }

class KeyCounters {
  lastInference = 0;
  inferences = 0;
  executions = 0;
  readonly success = zero();
  readonly fail = zero();
  readonly queue = zero();
  readonly input = zero();
  readonly infer = zero();
  readonly output = zero();
  readonly batches = new Map<number, BatchCounters>();
}

function zero(): Duration {
  return { count: 0, ns: 0 };
}

function add(duration: Duration, ms: number, count = 1): void {
  duration.count += count;
  duration.ns += ms * 1e6;
}

function report(duration: Duration): Duration {
  return { count: Math.round(duration.count), ns: Math.round(duration.ns) };
}

export class InferenceStatistics {
  readonly #keys = new Map<string, KeyCounters>();

  #counters(key: string): KeyCounters {
    let counters = this.#keys.get(key);
    if (counters === undefined) {
      counters = new KeyCounters();
      this.#keys.set(key, counters);
    }
    counters.lastInference = Date.now();
    return counters;
  }

  succeeded(key: string, cost: RequestCost): void {
    const counters = this.#counters(key);
    counters.inferences += cost.rows;
    counters.executions += cost.timing.executions;
    add(counters.success, cost.totalMs);
    add(counters.queue, cost.timing.queueMs);
    add(counters.input, cost.inputMs);
    add(counters.infer, cost.timing.inferMs);
    add(counters.output, cost.outputMs);
    // An execution's costs are shared among the requests batched into it, as its count is.
    const share = cost.timing.executions;
    if (share === 0) return;
    const batch = counters.batches.get(cost.timing.batchSize) ?? { executions: 0, input: 0, infer: 0, output: 0 };
    batch.executions += share;
    batch.input += cost.inputMs * share;
    batch.infer += cost.timing.inferMs * share;
    batch.output += cost.outputMs * share;
    counters.batches.set(cost.timing.batchSize, batch);
  }

  failed(key: string, totalMs: number): void {
    add(this.#counters(key).fail, totalMs);
  }

  /** Statistics of the given keys, in order; a key no request reached has zeros. */
  report(keys: Iterable<string>): ModelStatistics[] {
    return [...keys].map((name) => {
      const counters = this.#keys.get(name) ?? new KeyCounters();
      return {
        name,
        version: '1',
        last_inference: counters.lastInference,
        inference_count: counters.inferences,
        execution_count: Math.round(counters.executions),
        inference_stats: {
          success: report(counters.success), fail: report(counters.fail), queue: report(counters.queue),
          compute_input: report(counters.input), compute_infer: report(counters.infer), compute_output: report(counters.output),
          cache_hit: zero(), cache_miss: zero(),
        },
        batch_stats: [...counters.batches].sort(([a], [b]) => a - b).map(([size, batch]) => {
          const count = Math.round(batch.executions);
          return {
            batch_size: size,
            compute_input: { count, ns: Math.round(batch.input * 1e6) },
            compute_infer: { count, ns: Math.round(batch.infer * 1e6) },
            compute_output: { count, ns: Math.round(batch.output * 1e6) },
          };
        }),
      };
    });
  }
}
