/**
 * An ensemble route: every member gets the request's inputs at once (not one
 * after another, which is what Triton users report of its ensembles), and the
 * answer holds each member's outputs renamed `<member>.<output>`, or one
 * output reduced across the members. Members hold their models only while
 * they run, so an ensemble larger than the resident cap still completes.
 */
import type { InferRequest, InferResult, Signature, Tensor, TensorMap, TensorSpec } from '@modelgate/client/codec';
import { memberName, type CombineSpec, type EnsembleSpec } from '../config/graph-schema.ts';
import { InferenceFailedError, MemberFailedError, NoMemberAnsweredError } from '../errors.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { combinable, combineTensors } from '../ops/combine.ts';
import { untilStopped } from '../waiting.ts';
import { GraphTarget } from './nodes.ts';
import { commonSignature, mergeDims } from './signature.ts';
import type { RouteObserver } from './split.ts';
import type { InferContext, Target } from './target.ts';

/** The combined output's spec, from every member's; throws an Error naming the members that disagree. */
function combinedSpec(combine: CombineSpec, signatures: readonly Signature[], names: readonly string[]): TensorSpec {
  let merged: TensorSpec | undefined;
  signatures.forEach((signature, index) => {
    const name = names[index] as string;
    const spec = signature.outputs.find((output) => output.name === combine.output);
    if (spec === undefined) throw new Error(`combine: member '${name}' gives no output '${combine.output}' (it gives ${signature.outputs.map((output) => output.name).join(', ')})`);
    if (!combinable(combine.op, spec.datatype)) throw new Error(`combine: ${combine.op} cannot reduce '${combine.output}' of member '${name}', a ${spec.datatype} tensor`);
    if (merged === undefined) {
      merged = spec;
      return;
    }
    const shape = mergeDims(merged.shape, spec.shape);
    if (spec.datatype !== merged.datatype || shape === undefined) {
      throw new Error(`combine: members '${names[0]}' and '${name}' give '${combine.output}' as ${merged.datatype} ${JSON.stringify(merged.shape)} and ${spec.datatype} ${JSON.stringify(spec.shape)}: the shapes and datatypes must agree`);
    }
    merged = { ...merged, shape };
  });
  return { ...(merged as TensorSpec), name: combine.as ?? combine.output };
}

export class EnsembleTarget extends GraphTarget implements Target {
  readonly kind = 'ensemble';
  readonly #spec: EnsembleSpec;
  readonly #members: readonly Target[];
  readonly #names: readonly string[];

  constructor(key: string, spec: EnsembleSpec, members: readonly Target[], stats: RouteStats, observer?: RouteObserver) {
    super(key, stats, observer);
    this.#spec = spec;
    this.#members = members;
    this.#names = spec.members.map(memberName);
  }

  /** Loads every member, one at a time; an optional member that cannot load does not stop the route. */
  async prepare(): Promise<void> {
    for (const [index, member] of this.#members.entries()) {
      await member.prepare().catch((error: unknown) => {
        if (this.#required(index)) throw error;
      });
    }
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    const settled = await Promise.all(this.#members.map((member, index) => {
      const name = this.#names[index] as string;
      const run = this.nodes.timed(name, context, 'modelgate.ensemble.member', { 'modelgate.target': member.key }, (inner) => member.infer({ inputs: request.inputs }, inner));
      // An optional member still running at the request's deadline is left out, not waited for.
      const bounded = this.#required(index) ? run : untilStopped(run, { deadline: context.deadline }, name);
      return bounded.then((result) => ({ result, error: undefined }), (error: unknown) => ({ result: undefined, error }));
    }));
    const missing: string[] = [];
    const present: Array<{ readonly index: number; readonly result: InferResult }> = [];
    for (const [index, { result, error }] of settled.entries()) {
      const name = this.#names[index] as string;
      if (result !== undefined) present.push({ index, result });
      else if (this.#required(index)) throw new MemberFailedError(name, error);
      else missing.push(name);
    }
    if (present.length === 0) {
      throw new NoMemberAnsweredError(this.key, settled.map(({ error }, index) => `${this.#names[index]}: ${(error as Error).message}`).join('; '));
    }
    const renamed: TensorMap = new Map();
    for (const { index, result } of present) {
      for (const [output, tensor] of result.outputs) renamed.set(`${this.#names[index]}.${output}`, tensor);
    }
    const combine = this.#spec.combine;
    const combinedName = combine === undefined ? undefined : combine.as ?? combine.output;
    const combined = combine === undefined ? undefined : this.#combine(combine, present);
    const outputs: TensorMap = new Map();
    const wanted = request.outputs ?? (combined === undefined ? [...renamed.keys()] : [combinedName as string]);
    for (const name of wanted) {
      const tensor = name === combinedName ? combined : renamed.get(name);
      if (tensor !== undefined) outputs.set(name, tensor);
    }
    if (request.parameters?.return_intermediate === true) {
      for (const [name, tensor] of renamed) if (!outputs.has(name)) outputs.set(name, tensor);
    }
    return { modelName: this.key, outputs, ...(missing.length === 0 ? {} : { parameters: { ensemble_missing: missing } }) };
  }

  /** Ready when every required member is. */
  assertReady(): void {
    this.#members.forEach((member, index) => {
      if (this.#required(index)) member.assertReady();
    });
  }

  #required(index: number): boolean {
    return this.#spec.members[index]?.required !== false;
  }

  #combine(combine: CombineSpec, present: ReadonlyArray<{ readonly index: number; readonly result: InferResult }>): Tensor {
    const tensors = present.map(({ index, result }) => {
      const tensor = result.outputs.get(combine.output);
      if (tensor === undefined) throw new InferenceFailedError(this.key, `member '${this.#names[index]}' gave no '${combine.output}'`);
      return tensor;
    });
    const [first] = tensors as [Tensor];
    tensors.forEach((tensor, at) => {
      if (tensor.datatype !== first.datatype || tensor.shape.join() !== first.shape.join()) {
        throw new InferenceFailedError(this.key, `member '${this.#names[present[at]?.index as number]}' gave '${combine.output}' as ${tensor.datatype} [${tensor.shape.join(', ')}], not ${first.datatype} [${first.shape.join(', ')}] like the others`);
      }
    });
    return combineTensors(combine.op, tensors, present.map(({ index }) => this.#spec.members[index]?.weight ?? 1));
  }

  /** The inputs every member takes; the combined output (if any), then every member's outputs renamed. */
  protected async makeSignature(): Promise<Signature> {
    const signatures = await Promise.all(this.#members.map((member) => member.signature()));
    const { inputs } = commonSignature(signatures.map((signature) => ({ inputs: signature.inputs, outputs: [] })), this.#names);
    const renamed = signatures.flatMap((signature, index) => signature.outputs.map((output) => ({ ...output, name: `${this.#names[index]}.${output.name}` })));
    const combine = this.#spec.combine;
    return { inputs, outputs: combine === undefined ? renamed : [combinedSpec(combine, signatures, this.#names), ...renamed] };
  }
}
