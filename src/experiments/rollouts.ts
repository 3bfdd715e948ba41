/**
 * Guarded rollouts: a split's candidate variant moves through increasing
 * shares of traffic while it stays healthy and is pulled the moment it is
 * not. A step is a window of the route's statistics (every change of the
 * route starts a new one); each move is a live change of the route, persisted
 * like any other, so a restart resumes at the step reached.
 */
import type { RolloutSpec, RolloutStatus, RouteSpec, SplitSpec } from '../config/schema.ts';
import { RouteConflictError } from '../errors.ts';

/** The variants' weights in force: the configured ones, or those a rollout's step sets. */
export function effectiveWeights(split: SplitSpec): number[] {
  const configured = split.variants.map((variant) => variant.weight);
  const rollout = split.rollout;
  const status = rollout?.status;
  if (rollout === undefined || status === undefined) return configured;
  const share = status.state === 'rolled_back' ? 0 : status.weight / 100;
  const total = configured.reduce((sum, weight) => sum + weight, 0);
  const others = split.variants.reduce((sum, variant) => (variant.target === rollout.candidate ? sum : sum + variant.weight), 0);
  // others is 0 once a completed rollout has given the candidate everything (withStatus): they keep 0.
  return split.variants.map((variant) => (variant.target === rollout.candidate ? share * total : others === 0 ? 0 : ((1 - share) * total * variant.weight) / others));
}

/** Whether the rollout drives the weights now. */
export function isActive(route: RouteSpec | undefined): boolean {
  const state = route?.split?.rollout?.status?.state;
  return state === 'progressing' || state === 'paused';
}

/** A route as set by the configuration or a PUT: a rollout starts at its first step (a status sent along is ignored). */
export function startRollout(route: RouteSpec, now = new Date()): RouteSpec {
  const rollout = route.split?.rollout;
  if (rollout === undefined || route.split === undefined) return route;
  const status: RolloutStatus = { state: 'progressing', step: 0, weight: rollout.steps[0] as number, since: now.toISOString() };
  return { ...route, split: { ...route.split, rollout: { ...rollout, status } } };
}

/** At start-up: a rollout without a status (from the configuration file) starts; one with a status (from the state file) resumes. */
export function resumeRollout(route: RouteSpec): RouteSpec {
  return route.split?.rollout !== undefined && route.split.rollout.status === undefined ? startRollout(route) : route;
}

/**
 * Refuses (409) a PUT or PATCH that would change the weights while a rollout
 * drives them, unless it brings a rollout of its own.
 */
export function guardRollout(current: RouteSpec | undefined, next: RouteSpec): void {
  if (!isActive(current) || next.split?.rollout !== undefined) return;
  const before = JSON.stringify(current?.split?.variants);
  if (JSON.stringify(next.split?.variants) !== before || next.split === undefined) {
    const rollout = current?.split?.rollout as RolloutSpec;
    throw new RouteConflictError(`route '${next.key}' is rolling out '${rollout.candidate}' (${rollout.status?.state}): the rollout drives its weights; abort it, or PUT the route with a new rollout`);
  }
}

/**
 * The route with its rollout at `status`. A rollout that has ended (completed, rolled back)
 * leaves its weights in the variants, so the route an operator reads shows the weights in
 * force; they give the same traffic as before, as effectiveWeights reads them.
 */
export function withStatus(route: RouteSpec, status: RolloutStatus): RouteSpec {
  const split = route.split as SplitSpec;
  const moved: SplitSpec = { ...split, rollout: { ...(split.rollout as RolloutSpec), status } };
  if (status.state !== 'completed' && status.state !== 'rolled_back') return { ...route, split: moved };
  const weights = effectiveWeights(moved);
  return { ...route, split: { ...moved, variants: moved.variants.map((variant, index) => ({ ...variant, weight: weights[index] as number })) } };
}

/** What one step's window knows, from the route's statistics since its last change. */
export interface StepWindow {
  readonly candidate: { readonly requests: number; readonly errors: number; readonly p99: number | null };
  /** The other variants' p99 latency in the same window, if any answered. */
  readonly othersP99: number | null;
}

/**
 * The next status, or undefined to stay. Rolls back as soon as the candidate's
 * errors in the step exceed maxErrorRate × minRequests, or when a step that
 * has lasted stepMs with minRequests answers breaks the rule; else moves on.
 */
export function decide(rollout: RolloutSpec, window: StepWindow, now: Date): RolloutStatus | undefined {
  const status = rollout.status;
  if (status?.state !== 'progressing') return undefined;
  const at = now.toISOString();
  const { requests, errors, p99 } = window.candidate;
  const rate = requests === 0 ? 0 : errors / requests;
  const broken = (reason: string): RolloutStatus => ({ state: 'rolled_back', step: status.step, weight: 0, since: at, reason });
  if (errors > rollout.maxErrorRate * rollout.minRequests) return broken(`error rate ${round(rate)} > ${rollout.maxErrorRate} over ${requests} requests (${errors} errors, more than maxErrorRate × minRequests)`);
  if (now.getTime() - Date.parse(status.since) < rollout.stepMs || requests < rollout.minRequests) return undefined;
  if (rate > rollout.maxErrorRate) return broken(`error rate ${round(rate)} > ${rollout.maxErrorRate} over ${requests} requests`);
  if (rollout.maxLatencyRatio !== undefined && p99 !== null && window.othersP99 !== null && p99 > rollout.maxLatencyRatio * window.othersP99) {
    return broken(`p99 latency ${p99} ms > ${rollout.maxLatencyRatio} × the other variants' ${window.othersP99} ms over ${requests} requests`);
  }
  const next = status.step + 1;
  if (next >= rollout.steps.length) return { state: 'completed', step: status.step, weight: status.weight, since: at };
  return { state: 'progressing', step: next, weight: rollout.steps[next] as number, since: at };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The operator's commands on a rollout. */
export function command(route: RouteSpec, action: 'pause' | 'resume' | 'abort', now = new Date()): RolloutStatus {
  const rollout = route.split?.rollout;
  const status = rollout?.status;
  if (rollout === undefined || status === undefined) throw new RouteConflictError(`route '${route.key}' has no rollout`);
  const at = now.toISOString();
  if (action === 'pause' && status.state === 'progressing') return { ...status, state: 'paused', since: at };
  if (action === 'resume' && status.state === 'paused') return { ...status, state: 'progressing', since: at };
  if (action === 'abort' && (status.state === 'progressing' || status.state === 'paused')) return { state: 'rolled_back', step: status.step, weight: 0, since: at, reason: 'aborted' };
  throw new RouteConflictError(`route '${route.key}': cannot ${action} a rollout that is ${status.state}`);
}

/** What the driver needs of the router. */
export interface RolloutHost {
  list(): ReadonlyArray<{ readonly key: string; readonly route: RouteSpec }>;
  stats(key: string): { sinceChange: { variants?: ReadonlyArray<{ target: string; requests: number; errors: number; latencyMs: { p99: number | null } }> } };
  updateRollout(key: string, next: (route: RouteSpec) => RolloutStatus | undefined): Promise<RolloutStatus | undefined>;
}

/**
 * Drives every progressing rollout: looks at each one's step on a short
 * interval, and at once after any error of a rollout's candidate, so a broken
 * candidate costs a handful of failed requests, not a step's worth.
 */
export class RolloutDriver {
  readonly #host: RolloutHost;
  readonly #moved: (key: string, status: RolloutStatus) => void;
  readonly #intervalMs: number;
  readonly #busy = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param moved told of every move, for logs and metrics.
   * @param intervalMs how often steps are looked at, in ms. Default 100.
   */
  constructor(host: RolloutHost, moved: (key: string, status: RolloutStatus) => void, intervalMs = 100) {
    this.#host = host;
    this.#moved = moved;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      for (const { key, route } of this.#host.list()) {
        if (route.split?.rollout?.status?.state === 'progressing') void this.evaluate(key);
      }
    }, this.#intervalMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** A split's request finished: an error of a rollout's candidate is looked at at once. */
  observe(route: string, failed: boolean): void {
    if (failed) void this.evaluate(route);
  }

  /** Moves the route's rollout if its step says so; one evaluation per route at a time. */
  async evaluate(key: string): Promise<void> {
    if (this.#busy.has(key)) return;
    this.#busy.add(key);
    try {
      const status = await this.#host.updateRollout(key, (route) => {
        const rollout = route.split?.rollout as RolloutSpec;
        if (rollout.status?.state !== 'progressing') return undefined;
        return decide(rollout, this.#window(key, rollout.candidate), new Date());
      });
      if (status !== undefined) this.#moved(key, status);
    } catch {
      // A move that could not be saved is tried again on the next look.
    } finally {
      this.#busy.delete(key);
    }
  }

  #window(key: string, candidate: string): StepWindow {
    const variants = this.#host.stats(key).sinceChange.variants ?? [];
    const mine = variants.filter((variant) => variant.target === candidate);
    const others = variants.filter((variant) => variant.target !== candidate).map((variant) => variant.latencyMs.p99).filter((p99): p99 is number => p99 !== null);
    return {
      candidate: {
        requests: mine.reduce((sum, variant) => sum + variant.requests, 0),
        errors: mine.reduce((sum, variant) => sum + variant.errors, 0),
        p99: mine[0]?.latencyMs.p99 ?? null,
      },
      // The slowest other variant's p99: with one other variant, exactly theirs.
      othersP99: others.length === 0 ? null : Math.max(...others),
    };
  }
}
