/**
 * A cascade route, row by row: the first step runs on every row; the rows it
 * is sure of (the largest element of its `accept.output` in the row at least
 * `min`, or at most `max`) are answered there, and only the others go on to
 * the next step, as one smaller batch. The last step takes every row left.
 * The answer puts each row back in the request's order, from the step that
 * answered it: a cheap model answers what it can, the expensive one the rest.
 */
import type { InferRequest, InferResult, Signature, Tensor, TensorMap, TensorSpec } from '@modelgate/client/codec';
import type { CascadeSpec } from '../config/graph-schema.ts';
import { InferenceFailedError, InvalidInputError } from '../errors.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { mergeRows, rowMaxima, takeAllRows, takeRows } from '../ops/combine.ts';
import { GraphTarget } from './nodes.ts';
import { commonSignature } from './signature.ts';
import type { RouteObserver } from './split.ts';
import type { InferContext, Target } from './target.ts';

/** The output that says, per row, the index of the step that answered it (INT64), when a request asks for it. */
export const CASCADE_STEP = 'cascade_step';

type Part = { readonly tensor: Tensor; readonly rows: readonly number[] };

export class CascadeTarget extends GraphTarget implements Target {
  readonly kind = 'cascade';
  readonly #spec: CascadeSpec;
  readonly #steps: readonly Target[];
  /** The outputs every step gives: what the answer is made of. */
  #outputs: readonly string[] = [];

  constructor(key: string, spec: CascadeSpec, steps: readonly Target[], stats: RouteStats, observer?: RouteObserver) {
    super(key, stats, observer);
    this.#spec = spec;
    this.#steps = steps;
  }

  async prepare(): Promise<void> {
    for (const step of this.#steps) await step.prepare();
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    // Known in the common case: the data plane reads a key's signature before its first request.
    if (this.knownSignature() === undefined) await this.signature();
    const rows = rowsOf(request.inputs);
    const parts = new Map<string, Part[]>();
    const stepOf = new BigInt64Array(rows);
    // Where each row of the batch a step runs on sits in the request.
    let positions = Array.from({ length: rows }, (_, row) => row);
    let inputs = request.inputs;
    for (const [index, step] of this.#spec.steps.entries()) {
      const label = String(index);
      const target = this.#steps[index] as Target;
      const result = await this.nodes.timed(label, context, 'modelgate.cascade.step', { 'modelgate.target': target.key, 'modelgate.cascade.rows': positions.length }, (inner) => target.infer({ inputs }, inner));
      if (rows === 0) return { modelName: this.key, outputs: pick(result.outputs, request.outputs) };
      const accepted: number[] = [];
      const passed: number[] = [];
      if (step.accept === undefined) {
        accepted.push(...positions.keys());
      } else {
        const { output, min, max } = step.accept;
        const scores = result.outputs.get(output);
        if (scores === undefined) throw new InferenceFailedError(this.key, `step ${index} ('${step.target}') gave no '${output}'`);
        rowMaxima(scores).forEach((score, row) => (min !== undefined ? score >= min : score <= (max as number)) ? accepted.push(row) : passed.push(row));
      }
      this.nodes.rows(label, positions.length, accepted.length);
      const answered = accepted.map((row) => positions[row] as number);
      for (const row of answered) stepOf[row] = BigInt(index);
      for (const name of this.#outputs) {
        const tensor = result.outputs.get(name);
        if (tensor === undefined) throw new InferenceFailedError(this.key, `step ${index} ('${step.target}') gave no '${name}'`);
        const list = parts.get(name) ?? [];
        list.push({ tensor: passed.length === 0 ? tensor : takeRows(tensor, accepted), rows: answered });
        parts.set(name, list);
      }
      if (passed.length === 0) break;
      inputs = takeAllRows(inputs, passed);
      positions = passed.map((row) => positions[row] as number);
    }
    const outputs: TensorMap = new Map();
    for (const name of request.outputs ?? [...parts.keys()]) {
      if (name === CASCADE_STEP) outputs.set(name, { datatype: 'INT64', shape: [rows], data: stepOf });
      else if (parts.has(name)) outputs.set(name, this.#merge(name, parts.get(name) as Part[], rows));
    }
    return { modelName: this.key, outputs };
  }

  assertReady(): void {
    for (const step of this.#steps) step.assertReady();
  }

  #merge(name: string, parts: readonly Part[], rows: number): Tensor {
    const [first] = parts as [Part];
    for (const { tensor } of parts) {
      if (tensor.datatype !== first.tensor.datatype || tensor.shape.slice(1).join() !== first.tensor.shape.slice(1).join()) {
        throw new InferenceFailedError(this.key, `the steps gave '${name}' as ${first.tensor.datatype} rows of [${first.tensor.shape.slice(1).join(', ')}] and ${tensor.datatype} rows of [${tensor.shape.slice(1).join(', ')}]`);
      }
    }
    return mergeRows(parts, rows);
  }

  /** The inputs every step takes, the outputs every step gives, and `cascade_step`. */
  protected async makeSignature(): Promise<Signature> {
    const signatures = await Promise.all(this.#steps.map((step) => step.signature()));
    const labels = this.#spec.steps.map((step, index) => `step ${index} ('${step.target}')`);
    const { inputs } = commonSignature(signatures, labels);
    for (const input of inputs) {
      if (input.shape[0] !== -1) throw new Error(`input '${input.name}' has no dynamic first dimension (shape ${JSON.stringify(input.shape)}): a cascade passes rows on`);
    }
    // The outputs every step gives (a step may give more, like an ensemble's renamed members'), alike in each.
    const [first] = signatures as [Signature];
    let shared = [...first.outputs];
    signatures.forEach((signature, index) => {
      const theirs = new Map(signature.outputs.map((spec) => [spec.name, spec]));
      shared = shared.filter((spec) => theirs.has(spec.name));
      for (const spec of shared) {
        const other = theirs.get(spec.name) as TensorSpec;
        const rowsAgree = other.shape.length === spec.shape.length && other.shape.slice(1).every((dim, axis) => dim === spec.shape[axis + 1] || dim === -1 || spec.shape[axis + 1] === -1);
        if (other.datatype !== spec.datatype || !rowsAgree) {
          throw new Error(`${labels[index]} gives '${spec.name}' as ${other.datatype} ${JSON.stringify(other.shape)}, but ${labels[0]} as ${spec.datatype} ${JSON.stringify(spec.shape)}: the steps' rows must agree`);
        }
      }
      const accept = this.#spec.steps[index]?.accept;
      const scores = accept === undefined ? undefined : theirs.get(accept.output);
      if (accept !== undefined && (scores === undefined || scores.datatype === 'BYTES')) {
        throw new Error(`${labels[index]}: accept.output '${accept.output}' is ${scores === undefined ? 'not one of its outputs' : 'BYTES, not numbers'}`);
      }
    });
    if (shared.length === 0) throw new Error(`the steps give no output in common: ${signatures.map((signature, index) => `${labels[index]} gives ${describe(signature.outputs)}`).join('; ')}`);
    this.#outputs = shared.map((spec) => spec.name);
    const stepSpec: TensorSpec = { name: CASCADE_STEP, datatype: 'INT64', shape: [-1] };
    return { inputs, outputs: [...shared, stepSpec] };
  }
}

/** The request's rows: the first dimension every input shares. */
function rowsOf(inputs: TensorMap): number {
  let rows: number | undefined;
  let named = '';
  for (const [name, tensor] of inputs) {
    const count = tensor.shape[0];
    if (count === undefined) throw new InvalidInputError(`input '${name}' is a scalar: a cascade passes rows on, along the first dimension`);
    if (rows !== undefined && count !== rows) throw new InvalidInputError(`input '${name}' has ${count} rows and input '${named}' ${rows}: a cascade's inputs share their first dimension`);
    rows = count;
    named = name;
  }
  return rows ?? 0;
}

function pick(outputs: TensorMap, wanted: readonly string[] | undefined): TensorMap {
  if (wanted === undefined) return outputs;
  return new Map(wanted.flatMap((name) => (outputs.has(name) ? [[name, outputs.get(name) as Tensor] as const] : [])));
}

function describe(specs: readonly TensorSpec[]): string {
  return `(${specs.map((spec) => `${spec.name} ${spec.datatype} ${JSON.stringify(spec.shape)}`).join(', ')})`;
}
