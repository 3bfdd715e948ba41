import type { RouteStats as RouteStatsView, StatsWindow } from '@modelgate/client/wire';
import { History, type HistoryBucket, type HistoryWindow } from './history.ts';
import { difference, wilson } from './intervals.ts';
import { LatencyHistogram, round } from './latency.ts';

export { LatencyHistogram } from './latency.ts';

/**
 * Per-variant statistics of a split route: counts and latency percentiles,
 * for a window since the route last changed (or was reset) and since start.
 */

/** What one window knows of one variant (a split's, or a graph's member, case or step). */
class VariantWindow {
  requests = 0;
  errors = 0;
  /** A cascade step's rows: every row it ran on, and those it answered. */
  rows = 0;
  accepted = 0;
  readonly latency = new LatencyHistogram();
  /** With tenants: each tenant's part of the requests and errors. */
  readonly tenants = new Map<string, { requests: number; errors: number }>();

  record(milliseconds: number, failed: boolean, tenant: string | undefined): void {
    this.requests += 1;
    if (failed) this.errors += 1;
    else this.latency.record(milliseconds);
    if (tenant === undefined) return;
    let counts = this.tenants.get(tenant);
    if (counts === undefined) {
      counts = { requests: 0, errors: 0 };
      this.tenants.set(tenant, counts);
    }
    counts.requests += 1;
    if (failed) counts.errors += 1;
  }

  snapshot() {
    return {
      requests: this.requests,
      errors: this.errors,
      latencyMs: this.latency.summary(),
      ...(this.tenants.size === 0 ? {} : { tenants: Object.fromEntries([...this.tenants].map(([name, counts]) => [name, { ...counts }])) }),
    };
  }
}

class ShadowWindow {
  sent = 0;
  dropped = 0;
  errors = 0;
  compared = 0;
  agreed = 0;
  readonly latency = new LatencyHistogram();

  snapshot() {
    return {
      sent: this.sent,
      dropped: this.dropped,
      errors: this.errors,
      compared: this.compared,
      agreement: this.compared === 0 ? null : round(this.agreed / this.compared),
      agreementInterval: wilson(this.agreed, this.compared),
      latencyMs: this.latency.summary(),
    };
  }
}

interface Windows<T> { current: T; total: T }

/**
 * Statistics of one route, kept across live changes of the route; `reset` starts a new current
 * window (the history goes on: it is what happened, whatever the windows say).
 */
export class RouteStats {
  /** Each node's requests, errors and latency over time. */
  readonly history: History;
  readonly #variants = new Map<string, Windows<VariantWindow>>();
  readonly #shadow = new Map<string, Windows<ShadowWindow>>();
  #since = new Date();
  readonly #started = new Date();

  /** Starts a new window (on every change of the route, and on request). */
  reset(): void {
    for (const windows of this.#variants.values()) windows.current = new VariantWindow();
    for (const windows of this.#shadow.values()) windows.current = new ShadowWindow();
    this.#since = new Date();
  }

  /** @param clock the history's wall clock (tests pass their own). */
  constructor(clock?: () => number) {
    this.history = new History(clock);
  }

  recordVariant(variant: string, milliseconds: number, failed: boolean, tenant?: string): void {
    for (const window of this.#windows(this.#variants, variant, () => new VariantWindow())) window.record(milliseconds, failed, tenant);
    this.history.record(variant, milliseconds, failed);
  }

  /** A sequence's step: its history only (a sequence has no windows to compare). */
  recordStep(step: string, milliseconds: number, failed: boolean): void {
    this.history.record(step, milliseconds, failed);
  }

  /** The history of `nodes` (by the names they were recorded under), as `GET /admin/routes/{key}/stats/history` answers it. */
  historyOf(nodes: readonly string[], window: HistoryWindow, last: number): Array<{ target: string; buckets: HistoryBucket[] }> {
    return nodes.map((node) => ({ target: node, buckets: this.history.buckets(node, window, last) }));
  }

  /** A cascade step ran on `rows` rows and answered `accepted` of them. */
  recordRows(step: string, rows: number, accepted: number): void {
    for (const window of this.#windows(this.#variants, step, () => new VariantWindow())) {
      window.rows += rows;
      window.accepted += accepted;
    }
  }

  recordShadow(target: string, outcome: { dropped: true } | { dropped: false; milliseconds: number; failed: boolean; agreed?: boolean }): void {
    for (const window of this.#windows(this.#shadow, target, () => new ShadowWindow())) {
      if (outcome.dropped) {
        window.dropped += 1;
        continue;
      }
      window.sent += 1;
      if (outcome.failed) window.errors += 1;
      else window.latency.record(outcome.milliseconds);
      if (outcome.agreed !== undefined) {
        window.compared += 1;
        if (outcome.agreed) window.agreed += 1;
      }
    }
  }

  /**
   * The windows as `GET /admin/routes/{key}/stats` answers them (the client package's shape):
   * a split's `variants`, an ensemble's `members`, a switch's `cases` or a cascade's `steps`
   * (with their rows), by the names they were recorded under.
   */
  snapshot(variants: readonly string[], shadow: string | undefined, field: 'variants' | 'members' | 'cases' | 'steps' = 'variants'): Pick<RouteStatsView, 'sinceChange' | 'sinceStart'> {
    const view = (which: 'current' | 'total'): Omit<StatsWindow, 'since'> => {
      const windows = variants.map((variant) => this.#variants.get(variant)?.[which] ?? new VariantWindow());
      const first = windows[0] as VariantWindow;
      return {
        [field]: variants.map((variant, index) => {
          const window = windows[index] as VariantWindow;
          return {
            target: variant,
            ...window.snapshot(),
            errorRate: wilson(window.errors, window.requests),
            ...(index === 0 || field !== 'variants' ? {} : { errorRateDifference: difference({ events: window.errors, trials: window.requests }, { events: first.errors, trials: first.requests }) }),
            ...(field === 'steps' ? { rows: window.rows, accepted: window.accepted, acceptedShare: window.rows === 0 ? null : round(window.accepted / window.rows) } : {}),
          };
        }),
        ...(shadow === undefined ? {} : { shadow: { target: shadow, ...(this.#shadow.get(shadow)?.[which] ?? new ShadowWindow()).snapshot() } }),
      };
    };
    return {
      sinceChange: { since: this.#since.toISOString(), ...view('current') },
      sinceStart: { since: this.#started.toISOString(), ...view('total') },
    };
  }

  #windows<T>(map: Map<string, Windows<T>>, key: string, make: () => T): T[] {
    let windows = map.get(key);
    if (windows === undefined) {
      windows = { current: make(), total: make() };
      map.set(key, windows);
    }
    return [windows.current, windows.total];
  }
}
