/**
 * Latencies in buckets 2% wide, from 1 µs to about 20 minutes: percentiles within 2% in
 * constant memory, for the cumulative windows (a full histogram) and the history (sparse).
 */

const GROWTH = 1.02;
const BUCKETS = Math.ceil(Math.log(1.2e9) / Math.log(GROWTH)) + 1;
const LOG_GROWTH = Math.log(GROWTH);

/** The bucket, 2% wide, that a latency of `milliseconds` falls in (from 1 µs to about 20 minutes). */
export function latencyBin(milliseconds: number): number {
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(Math.max(1, milliseconds * 1000)) / LOG_GROWTH));
}

/** The upper bound of a latency bucket, in ms: what percentiles report (within 2% above the true value). */
export function binLatency(bin: number): number {
  return round(GROWTH ** bin / 1000);
}

/** Latency histogram with buckets 2% wide, from 1 µs to about 20 minutes: percentiles within 2%, in constant memory. */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #total = 0;

  record(milliseconds: number): void {
    const index = latencyBin(milliseconds);
    this.#counts[index] = (this.#counts[index] ?? 0) + 1;
    this.#total += 1;
  }

  get count(): number {
    return this.#total;
  }

  /** p50, p95 and p99 in ms. */
  summary(): { p50: number | null; p95: number | null; p99: number | null } {
    return { p50: this.percentile(0.5), p95: this.percentile(0.95), p99: this.percentile(0.99) };
  }

  /** The latency in ms below which `quantile` of the samples fall (the bucket's upper bound); null when empty. */
  percentile(quantile: number): number | null {
    if (this.#total === 0) return null;
    const rank = Math.max(1, Math.ceil(quantile * this.#total));
    let seen = 0;
    for (let index = 0; index < this.#counts.length; index++) {
      seen += this.#counts[index] ?? 0;
      if (seen >= rank) return binLatency(index);
    }
    return null;
  }
}

/** Rounded to the thousandth, as the statistics report ratios and milliseconds. */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
