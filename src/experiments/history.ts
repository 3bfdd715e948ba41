/**
 * Statistics over time: for each name (a variant, a graph node, a step, a model) requests,
 * errors and latency percentiles per bucket of 10 s, 1 min and 1 h, aligned to the wall clock.
 * The open bucket of each width keeps a sparse 2%-wide latency histogram; a bucket that closes
 * keeps six numbers. Buckets without requests are not kept, and each width keeps at most its
 * `keep` buckets: a name costs at most HISTORY_BYTES_PER_NAME, however long it serves.
 */
import type { HistoryBucket, HistoryWindow } from '@modelgate/client/wire';
import { binLatency, latencyBin } from './latency.ts';

// The shapes the admin API answers are the client package's, so the two cannot drift.
export type { HistoryBucket, HistoryWindow } from '@modelgate/client/wire';

/** The bucket widths, and how many closed buckets of each are kept (15 minutes, 3 hours, 3 days). */
export const HISTORY_WINDOWS: Readonly<Record<HistoryWindow, { readonly ms: number; readonly keep: number }>> = {
  '10s': { ms: 10_000, keep: 90 },
  '1m': { ms: 60_000, keep: 180 },
  '1h': { ms: 3_600_000, keep: 72 },
};

export function isHistoryWindow(value: string): value is HistoryWindow {
  return Object.hasOwn(HISTORY_WINDOWS, value);
}

/** Numbers a closed bucket keeps: its start, requests, errors, p50, p95, p99. */
const FIELDS = 6;

/** The most a name's closed buckets take, every width full (the open buckets' histograms come on top, a few KB while traffic is varied). */
export const HISTORY_BYTES_PER_NAME = Object.values(HISTORY_WINDOWS).reduce((sum, { keep }) => sum + keep * FIELDS * 8, 0);

/** One bucket width of one name: the open bucket, and a ring of the closed ones that had requests. */
class Ring {
  readonly #width: number;
  readonly #keep: number;
  #openStart = -1;
  #requests = 0;
  #errors = 0;
  /** Latency bin -> successful requests in it, of the open bucket. */
  readonly #bins = new Map<number, number>();
  /** Closed buckets, oldest first from #head, FIELDS numbers each; grown by doubling up to keep. */
  #closed = new Float64Array(0);
  #head = 0;
  #count = 0;

  constructor(width: number, keep: number) {
    this.#width = width;
    this.#keep = keep;
  }

  /** A request at `now` (ms since the epoch); `bin` is its latency bin, or -1 for a failure. */
  record(now: number, bin: number): void {
    const start = now - (now % this.#width);
    // A clock stepping back: the sample goes in the open bucket rather than rewrite a closed one.
    if (start > this.#openStart) {
      this.#close();
      this.#openStart = start;
    }
    this.#add(bin);
  }

  #add(bin: number): void {
    this.#requests += 1;
    if (bin < 0) this.#errors += 1;
    else this.#bins.set(bin, (this.#bins.get(bin) ?? 0) + 1);
  }

  /** The `last` buckets up to the one `now` is in, oldest first, empty ones included. */
  buckets(now: number, last: number): HistoryBucket[] {
    const current = now - (now % this.#width);
    const closed = new Map<number, number>();
    const capacity = this.#closed.length / FIELDS;
    for (let i = 0; i < this.#count; i++) {
      const at = ((this.#head + i) % capacity) * FIELDS;
      closed.set(this.#closed[at] as number, at);
    }
    const buckets: HistoryBucket[] = [];
    for (let i = last - 1; i >= 0; i--) {
      const start = current - i * this.#width;
      if (start === this.#openStart) {
        buckets.push({ ...bucket(start, this.#requests, this.#errors, percentiles(this.#bins)), ...(start === current ? { partial: true as const } : {}) });
        continue;
      }
      const at = closed.get(start);
      const c = this.#closed;
      if (at === undefined) buckets.push({ ...bucket(start, 0, 0, [Number.NaN, Number.NaN, Number.NaN]), ...(start === current ? { partial: true as const } : {}) });
      else buckets.push(bucket(start, c[at + 1] as number, c[at + 2] as number, [c[at + 3] as number, c[at + 4] as number, c[at + 5] as number]));
    }
    return buckets;
  }

  #close(): void {
    if (this.#requests === 0) return;
    const [p50, p95, p99] = percentiles(this.#bins);
    if (this.#count === this.#closed.length / FIELDS && this.#count < this.#keep) {
      const grown = new Float64Array(Math.min(this.#keep, Math.max(4, this.#count * 2)) * FIELDS);
      // Unrolled into order: the ring only wraps once it is at its full size.
      grown.set(this.#closed);
      this.#closed = grown;
    }
    const capacity = this.#closed.length / FIELDS;
    const slot = this.#count < capacity ? (this.#head + this.#count) % capacity : this.#head;
    if (this.#count < capacity) this.#count += 1;
    else this.#head = (this.#head + 1) % capacity;
    this.#closed.set([this.#openStart, this.#requests, this.#errors, p50, p95, p99], slot * FIELDS);
    this.#requests = 0;
    this.#errors = 0;
    this.#bins.clear();
  }
}

function bucket(start: number, requests: number, errors: number, [p50, p95, p99]: readonly number[]): HistoryBucket {
  const value = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? null : ms);
  return {
    start: new Date(start).toISOString(),
    requests,
    errors,
    errorRate: requests === 0 ? null : Math.round((errors / requests) * 10_000) / 10_000,
    latencyMs: { p50: value(p50), p95: value(p95), p99: value(p99) },
  };
}

/** p50, p95, p99 of a sparse histogram (NaN when empty), as the cumulative windows compute them. */
function percentiles(bins: ReadonlyMap<number, number>): [number, number, number] {
  let total = 0;
  for (const count of bins.values()) total += count;
  if (total === 0) return [Number.NaN, Number.NaN, Number.NaN];
  const sorted = [...bins.keys()].sort((a, b) => a - b);
  const at = (quantile: number): number => {
    const rank = Math.max(1, Math.ceil(quantile * total));
    let seen = 0;
    for (const bin of sorted) {
      seen += bins.get(bin) as number;
      if (seen >= rank) return binLatency(bin);
    }
    return binLatency(sorted.at(-1) as number);
  };
  return [at(0.5), at(0.95), at(0.99)];
}

/** Every width's ring of one name. */
class Series {
  readonly #rings = new Map<HistoryWindow, Ring>(
    Object.entries(HISTORY_WINDOWS).map(([window, { ms, keep }]) => [window as HistoryWindow, new Ring(ms, keep)]),
  );

  record(now: number, bin: number): void {
    for (const ring of this.#rings.values()) ring.record(now, bin);
  }

  buckets(window: HistoryWindow, now: number, last: number): HistoryBucket[] {
    return (this.#rings.get(window) as Ring).buckets(now, last);
  }
}

/** The history of a set of names (a route's nodes, or the models). */
export class History {
  readonly #series = new Map<string, Series>();
  readonly #clock: () => number;

  /** @param clock wall-clock milliseconds (Date.now; tests pass their own). */
  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /** A request of `name` that took `milliseconds` (its latency counts only if it succeeded). */
  record(name: string, milliseconds: number, failed: boolean): void {
    let series = this.#series.get(name);
    if (series === undefined) {
      series = new Series();
      this.#series.set(name, series);
    }
    series.record(this.#clock(), failed ? -1 : latencyBin(milliseconds));
  }

  /** The `last` buckets of `window` of `name`, oldest first; a name never recorded has empty ones. */
  buckets(name: string, window: HistoryWindow, last: number): HistoryBucket[] {
    const now = this.#clock();
    return (this.#series.get(name) ?? EMPTY).buckets(window, now, Math.min(last, HISTORY_WINDOWS[window].keep + 1));
  }

  /** Forgets a name (a model removed). */
  delete(name: string): void {
    this.#series.delete(name);
  }
}

const EMPTY = new Series();
