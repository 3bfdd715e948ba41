/**
 * A switch route: the first case whose condition holds for the request (a
 * header, or a request-level parameter) takes it, else the default. Like a
 * split, every case gets the whole request; unlike one, the choice is the
 * request's, not chance's, so the cases must take the same inputs.
 */
import type { InferRequest, InferResult, Signature } from '@modelgate/client/codec';
import type { ConditionSpec, SwitchSpec } from '../config/graph-schema.ts';
import { linearPattern, MAX_MATCHED_LENGTH } from '../config/patterns.ts';
import { NoCaseMatchedError } from '../errors.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { GraphTarget } from './nodes.ts';
import { commonSignature } from './signature.ts';
import type { RouteObserver } from './split.ts';
import type { InferContext, Target } from './target.ts';

/** The names a switch's cases go by in its statistics and in `x-modelgate-case`: their index, and `default`. */
export function caseLabels(spec: SwitchSpec): string[] {
  return [...spec.cases.map((_, index) => String(index)), ...(spec.default === undefined ? [] : ['default'])];
}

type Test = (value: string) => boolean;

function testOf(when: ConditionSpec): Test {
  if (when.matches !== undefined) {
    const pattern = linearPattern(when.matches);
    return (value) => value.length <= MAX_MATCHED_LENGTH && pattern.test(value);
  }
  const accepted = new Set((when.in ?? [when.equals]).map(String));
  return (value) => accepted.has(value);
}

/** A header's or parameter's value as text; objects and arrays are no value a case compares. */
function textOf(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
}

export class SwitchTarget extends GraphTarget implements Target {
  readonly kind = 'switch';
  readonly #cases: ReadonlyArray<{ readonly when: ConditionSpec; readonly test: Test; readonly target: Target }>;
  readonly #fallback: Target | undefined;

  constructor(key: string, spec: SwitchSpec, cases: readonly Target[], fallback: Target | undefined, stats: RouteStats, observer?: RouteObserver) {
    super(key, stats, observer);
    this.#cases = spec.cases.map((option, index) => ({ when: option.when, test: testOf(option.when), target: cases[index] as Target }));
    this.#fallback = fallback;
  }

  /** What every case (and the default) accepts; rejects, naming the target, if they disagree. */
  protected async makeSignature(): Promise<Signature> {
    const all = this.#all();
    return commonSignature(await Promise.all(all.map((target) => target.signature())), all.map((target) => target.key));
  }

  async prepare(): Promise<void> {
    for (const target of this.#all()) await target.prepare();
  }

  infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    const index = this.#cases.findIndex(({ when, test }) => {
      const value = textOf(when.header !== undefined ? context.header(when.header) : request.parameters?.[when.parameter as string]);
      return value !== undefined && test(value);
    });
    const target = index === -1 ? this.#fallback : this.#cases[index]?.target;
    if (target === undefined) {
      const tested = [...new Set(this.#cases.map(({ when }) => (when.header !== undefined ? `header ${when.header}` : `parameter '${when.parameter}'`)))];
      throw new NoCaseMatchedError(this.key, `its cases test ${tested.join(', ')}`);
    }
    const label = index === -1 ? 'default' : String(index);
    context.cases?.push(label);
    return this.nodes.timed(label, context, 'modelgate.switch.case', { 'modelgate.case': label, 'modelgate.target': target.key }, (inner) => target.infer(request, inner));
  }

  /** Ready when every target a request could be sent to is. */
  assertReady(): void {
    for (const target of this.#all()) target.assertReady();
  }

  #all(): Target[] {
    return [...this.#cases.map(({ target }) => target), ...(this.#fallback === undefined ? [] : [this.#fallback])];
  }
}
