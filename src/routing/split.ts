/**
 * A split route: each request goes to one variant, by weight, sticky per user
 * when a header names one; a share is mirrored to a shadow target whose
 * answers are compared and discarded.
 */
import type { InferRequest, InferResult, Signature, TensorMap } from '@modelgate/client/codec';
import { causedBy, NoSpareCapacityError } from '../errors.ts';
import { createHash } from 'node:crypto';
import type { SplitSpec } from '../config/schema.ts';
import { effectiveWeights } from '../experiments/rollouts.ts';
import { commonSignature, SignatureOnce } from './signature.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { failureText } from '../trace.ts';
import type { InferContext, Target } from './target.ts';

/** Sticky users hash into this many buckets, laid out over the variants in order. */
export const BUCKETS = 10_000;

/** Mirrored requests running at once per split; beyond it, shadow work is dropped rather than queued. */
/** Shadow copies running at once per route, unless its `shadow.maxInFlight` says otherwise. */
export const MAX_SHADOWS_IN_FLIGHT = 8;

/**
 * Upper bucket bound of each variant: variant i owns [bounds[i-1], bounds[i]).
 * Laid out in variant order, so moving weight from one variant to the next
 * moves only the users at the border.
 */
export function bucketBounds(weights: readonly number[]): number[] {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  let cumulative = 0;
  return weights.map((weight) => {
    cumulative += weight;
    return Math.round((cumulative / total) * BUCKETS);
  });
}

/** The bucket of a user on a route: stable across restarts and weight changes. */
export function stickyBucket(route: string, user: string): number {
  return createHash('sha256').update(route).update('\0').update(user).digest().readUInt32BE(0) % BUCKETS;
}

/** What routes report: a split per request and per shadow copy; a graph per node (member, case or step) and a cascade's rows. */
export interface RouteObserver {
  variant(route: string, variant: string, seconds: number, failed: boolean, tenant?: string): void;
  shadow(route: string, target: string, outcome: 'dropped' | 'error' | 'agreed' | 'disagreed' | 'answered'): void;
  node?(route: string, node: string, seconds: number, failed: boolean, tenant?: string): void;
  rows?(route: string, step: string, rows: number, accepted: number): void;
}

export class SplitTarget implements Target {
  readonly kind = 'split';
  readonly key: string;
  readonly #spec: SplitSpec;
  readonly #variants: readonly Target[];
  readonly #shadow: Target | undefined;
  readonly #bounds: readonly number[];
  readonly #weights: readonly number[];
  readonly #stats: RouteStats;
  readonly #observer: RouteObserver | undefined;
  readonly #signature = new SignatureOnce(async () => {
    const signatures = await Promise.all(this.#variants.map((variant) => variant.signature()));
    return commonSignature(signatures, this.#variants.map((variant) => variant.key));
  });
  #shadowsInFlight = 0;

  constructor(key: string, spec: SplitSpec, variants: readonly Target[], shadow: Target | undefined, stats: RouteStats, observer?: RouteObserver) {
    this.key = key;
    this.#observer = observer;
    this.#spec = spec;
    this.#variants = variants;
    this.#shadow = shadow;
    this.#stats = stats;
    this.#weights = effectiveWeights(spec);
    this.#bounds = bucketBounds(this.#weights);
  }

  /** Loads the variants; not the shadow, which may use only spare capacity (its signature is still checked). */
  async prepare(): Promise<void> {
    for (const target of this.#variants) await target.prepare();
  }

  /** What every variant accepts; rejects, naming the variant, if they disagree. */
  signature(): Promise<Signature> {
    return this.#signature.get();
  }

  knownSignature(): Signature | undefined {
    return this.#signature.known;
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    const variant = this.#variants[this.#choose(context)] as Target;
    context.decisions.push(`${this.key}=${variant.key}`);
    context.trace?.set({ 'modelgate.split': this.key, 'modelgate.variant': variant.key });
    const started = performance.now();
    let result: InferResult;
    try {
      result = await variant.infer(request, context);
    } catch (error) {
      this.#record(variant.key, performance.now() - started, true, context);
      throw error;
    }
    this.#record(variant.key, performance.now() - started, false, context);
    const shadow = this.#spec.shadow;
    if (this.#shadow !== undefined && shadow !== undefined && Math.random() * 100 < shadow.percent) {
      // After the primary's answer is on its way; nothing here can touch it.
      setImmediate(() => void this.#mirror(this.#shadow as Target, request, context, result.outputs));
    }
    return result;
  }

  assertReady(): void {
    this.#variants.forEach((variant, index) => {
      if ((this.#weights[index] as number) > 0) variant.assertReady();
    });
  }

  #record(variant: string, milliseconds: number, failed: boolean, context: InferContext): void {
    this.#stats.recordVariant(variant, milliseconds, failed, context.flow?.name);
    this.#observer?.variant(this.key, variant, milliseconds / 1000, failed, context.flow?.name);
  }

  #choose(context: InferContext): number {
    const user = this.#spec.stickyHeader === undefined ? undefined : context.header(this.#spec.stickyHeader);
    const point = user === undefined || user === '' ? Math.random() * BUCKETS : stickyBucket(this.key, user);
    const index = this.#bounds.findIndex((bound) => point < bound);
    return index === -1 ? this.#bounds.length - 1 : index;
  }

  async #mirror(shadow: Target, request: InferRequest, context: InferContext, primary: TensorMap): Promise<void> {
    if (this.#shadowsInFlight >= (this.#spec.shadow?.maxInFlight ?? MAX_SHADOWS_IN_FLIGHT)) {
      this.#stats.recordShadow(shadow.key, { dropped: true });
      this.#observer?.shadow(this.key, shadow.key, 'dropped');
      return;
    }
    this.#shadowsInFlight += 1;
    const started = performance.now();
    // A trace of its own, linked to the primary's: the copy is no part of the answer.
    const trace = context.trace?.recording === true ? context.trace.detached('modelgate.shadow', { 'modelgate.route': this.key, 'modelgate.target': shadow.key }) : undefined;
    try {
      const result = await shadow.infer(request, { decisions: [], header: context.header, shadow: true, trace });
      const agreed = outputsAgree(primary, result.outputs);
      this.#stats.recordShadow(shadow.key, { dropped: false, milliseconds: performance.now() - started, failed: false, ...(agreed === undefined ? {} : { agreed }) });
      this.#observer?.shadow(this.key, shadow.key, agreed === undefined ? 'answered' : agreed ? 'agreed' : 'disagreed');
    } catch (error) {
      // No spare capacity for the copy: dropped, as past maxInFlight, never a cost to primary traffic.
      if (causedBy(error, NoSpareCapacityError)) {
        this.#stats.recordShadow(shadow.key, { dropped: true });
        this.#observer?.shadow(this.key, shadow.key, 'dropped');
        return;
      }
      this.#stats.recordShadow(shadow.key, { dropped: false, milliseconds: performance.now() - started, failed: true });
      this.#observer?.shadow(this.key, shadow.key, 'error');
      trace?.fail(failureText(error));
    } finally {
      trace?.end();
      this.#shadowsInFlight -= 1;
    }
  }
}

const ABSOLUTE_TOLERANCE = 1e-4;
const RELATIVE_TOLERANCE = 1e-3;

/**
 * Whether a shadow's outputs agree with the primary's, over the outputs both
 * gave: floats within tolerance or, for classifier-like outputs, with the same
 * argmax along the last axis; everything else equal. Undefined if they share no output.
 */
export function outputsAgree(primary: TensorMap, shadow: TensorMap): boolean | undefined {
  let compared = false;
  for (const [name, mine] of primary) {
    const theirs = shadow.get(name);
    if (theirs === undefined) continue;
    compared = true;
    if (mine.datatype !== theirs.datatype || mine.shape.join() !== theirs.shape.join()) return false;
    const a = mine.data;
    const b = theirs.data;
    if (mine.datatype === 'FP32' || mine.datatype === 'FP64') {
      const close = Array.prototype.every.call(a, (x: number, i: number) => Math.abs(x - (b[i] as number)) <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * Math.abs(x));
      if (!close && !sameArgmax(a as Float32Array, b as Float32Array, mine.shape.at(-1) ?? 1)) return false;
    } else if (!Array.prototype.every.call(a, (x: unknown, i: number) => x === b[i])) {
      return false;
    }
  }
  return compared ? true : undefined;
}

function sameArgmax(a: ArrayLike<number>, b: ArrayLike<number>, width: number): boolean {
  if (width < 2) return false;
  for (let row = 0; row < a.length; row += width) {
    if (argmax(a, row, width) !== argmax(b, row, width)) return false;
  }
  return true;
}

function argmax(values: ArrayLike<number>, start: number, width: number): number {
  let best = start;
  for (let i = start + 1; i < start + width; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best - start;
}
