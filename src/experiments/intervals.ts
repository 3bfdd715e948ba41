/**
 * 95% intervals for proportions, so an error rate or an agreement is read
 * with its uncertainty: Wilson's score interval for one proportion, and
 * Newcombe's hybrid score interval (his method 10) for the difference of two.
 * Both stay inside [0, 1] (or [-1, 1]) and behave with few samples and with
 * rates near 0 or 1, where the textbook normal interval does not.
 */

/** The standard normal quantile for a two-sided 95% interval. */
const Z = 1.959963984540054;

export interface Interval {
  readonly value: number;
  readonly low95: number;
  readonly high95: number;
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

function score(events: number, trials: number): { p: number; low: number; high: number } {
  const p = events / trials;
  const z2 = Z * Z;
  const denominator = 1 + z2 / trials;
  const center = (p + z2 / (2 * trials)) / denominator;
  const half = (Z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
  return { p, low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

/** The proportion `events / trials` with its 95% Wilson score interval; null with no trials. */
export function wilson(events: number, trials: number): Interval | null {
  if (trials === 0) return null;
  const { p, low, high } = score(events, trials);
  return { value: round(p), low95: round(low), high95: round(high) };
}

/** `a - b` of two independent proportions with its 95% Newcombe (hybrid Wilson score) interval; null if either has no trials. */
export function difference(a: { events: number; trials: number }, b: { events: number; trials: number }): Interval | null {
  if (a.trials === 0 || b.trials === 0) return null;
  const x = score(a.events, a.trials);
  const y = score(b.events, b.trials);
  const d = x.p - y.p;
  return {
    value: round(d),
    low95: round(d - Math.sqrt((x.p - x.low) ** 2 + (y.high - y.p) ** 2)),
    high95: round(d + Math.sqrt((x.high - x.p) ** 2 + (y.p - y.low) ** 2)),
  };
}
