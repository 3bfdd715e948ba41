/**
 * A sequence route: each step's outputs, post-processed, feed the next step,
 * so users need not turn a V2 response into the next V2 request themselves
 * (KServe InferenceGraph's complaint, kserve#3051). Each step holds its model
 * only while it runs, so a chain longer than the resident cap still completes.
 */
import type { InferRequest, InferResult, Signature, TensorMap, TensorSpec } from '@modelgate/client/codec';
import type { PostprocessSpec, SequenceSpec, StepSpec } from '../config/schema.ts';
import { stepName } from '../config/route-graph.ts';
import { StepFailedError, StepOutputMissingError } from '../errors.ts';
import { checkTensor } from '../protocol/decode.ts';
import { applyOps, describeOps, type Plugin } from '../ops/postprocess.ts';
import type { RouteStats } from '../experiments/stats.ts';
import { inSpan, type InferContext, type Target } from './target.ts';

/** A step's post-processing; each op was checked against its own schema when the route was set (graph.ts). */
function opsOf(step: StepSpec): readonly PostprocessSpec[] {
  return (step.postprocess ?? []) as PostprocessSpec[];
}

interface Plan {
  readonly signature: Signature;
  /** Per step: input name -> source (`request.<input>` or `<step>.<output>`). */
  readonly bindings: ReadonlyArray<ReadonlyMap<string, string>>;
  readonly inputs: ReadonlyArray<readonly TensorSpec[]>;
}

export class SequenceTarget implements Target {
  readonly kind = 'sequence';
  readonly key: string;
  readonly #spec: SequenceSpec;
  readonly #steps: readonly Target[];
  readonly #plugins: ReadonlyMap<string, Plugin>;
  #plan: Promise<Plan> | undefined;
  #known: Signature | undefined;

  readonly #stats: RouteStats | undefined;

  /** @param stats where each step's requests, errors and latency go (its history). */
  constructor(key: string, spec: SequenceSpec, steps: readonly Target[], plugins: ReadonlyMap<string, Plugin>, stats?: RouteStats) {
    this.key = key;
    this.#spec = spec;
    this.#steps = steps;
    this.#plugins = plugins;
    this.#stats = stats;
  }

  /** The first step's inputs (and any other request inputs steps name) and the last step's outputs, after post-processing. */
  async signature(): Promise<Signature> {
    this.#known = (await this.#planned()).signature;
    return this.#known;
  }

  knownSignature(): Signature | undefined {
    return this.#known;
  }

  async prepare(): Promise<void> {
    for (const step of this.#steps) await step.prepare();
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    const plan = await this.#planned();
    const tensors: TensorMap = new Map();
    for (const [name, tensor] of request.inputs) tensors.set(`request.${name}`, tensor);
    let last: TensorMap = new Map();
    for (const [index, step] of this.#spec.steps.entries()) {
      const name = stepName(step);
      const started = performance.now();
      try {
        const inputs: TensorMap = new Map();
        const specs = plan.inputs[index] as readonly TensorSpec[];
        for (const [input, source] of plan.bindings[index] as ReadonlyMap<string, string>) {
          const tensor = tensors.get(source);
          if (tensor === undefined) throw new StepOutputMissingError(input, source);
          checkTensor(tensor, specs.find((spec) => spec.name === input) as TensorSpec, `input '${input}' (from ${source})`);
          inputs.set(input, tensor);
        }
        const target = this.#steps[index] as Target;
        last = await inSpan(context, 'modelgate.sequence.step', { 'modelgate.route': this.key, 'modelgate.node': name, 'modelgate.target': target.key }, async (inner) => {
          const result = await target.infer({ inputs }, inner);
          return applyOps(result.outputs, opsOf(step), this.#plugins, 'outputs');
        });
      } catch (error) {
        this.#stats?.recordStep(name, performance.now() - started, true);
        throw new StepFailedError(name, error);
      }
      this.#stats?.recordStep(name, performance.now() - started, false);
      for (const [output, tensor] of last) tensors.set(`${name}.${output}`, tensor);
    }
    const outputs: TensorMap = new Map();
    for (const name of request.outputs ?? [...last.keys()]) {
      const tensor = last.get(name);
      if (tensor !== undefined) outputs.set(name, tensor);
    }
    if (request.parameters?.return_intermediate === true) {
      for (const [name, tensor] of tensors) if (!name.startsWith('request.')) outputs.set(name, tensor);
    }
    return { modelName: this.key, outputs };
  }

  assertReady(): void {
    for (const step of this.#steps) step.assertReady();
  }

  #planned(): Promise<Plan> {
    this.#plan ??= this.#makePlan();
    this.#plan.catch(() => { this.#plan = undefined; });
    return this.#plan;
  }

  /** Works out every step's input bindings from the steps' signatures; rejects naming the step that does not fit. */
  async #makePlan(): Promise<Plan> {
    const signatures = await Promise.all(this.#steps.map((step) => step.signature()));
    const known = new Map<string, TensorSpec>();
    /** Steps whose outputs are known only once they run (after a plugin without `describe`). */
    const opaque = new Set<string>();
    const requestInputs = new Map<string, TensorSpec>();
    const bindings: Array<Map<string, string>> = [];
    let previous: readonly TensorSpec[] | undefined;
    let previousName = 'request';
    let outputs: TensorSpec[] | undefined = [];
    this.#spec.steps.forEach((step, index) => {
      const name = stepName(step);
      const signature = signatures[index] as Signature;
      const where = `step '${name}'`;
      const binding = new Map<string, string>();
      // A Map: an input named like an Object member (constructor, toString) is no mapping of the step's.
      const mapped = new Map(Object.entries(step.inputs ?? {}));
      for (const input of signature.inputs) {
        let source = mapped.get(input.name);
        if (source === undefined && previous === undefined) source = `request.${input.name}`;
        if (source === undefined && index > 0 && opaque.has(previousName)) source = `${previousName}.${input.name}`;
        if (source === undefined && previous !== undefined) {
          const match = previous.find((spec) => spec.name === input.name)
            ?? (previous.length === 1 && signature.inputs.length === 1 ? previous[0] : undefined);
          if (match === undefined) {
            throw new Error(`${where}: input '${input.name}' is unmapped: '${previousName}' gives (${previous.map((spec) => spec.name).join(', ')}); map it with inputs`);
          }
          source = `${previousName}.${match.name}`;
        }
        const ref = source as string;
        if (ref.startsWith('request.')) {
          const asked = requestInputs.get(ref.slice(8));
          if (asked !== undefined && asked.datatype !== input.datatype) throw new Error(`${where}: input '${input.name}' takes ${input.datatype}, but '${ref}' is ${asked.datatype}`);
          requestInputs.set(ref.slice(8), asked ?? { ...input, name: ref.slice(8) });
        } else if (!opaque.has(ref.slice(0, ref.indexOf('.')))) {
          if (!known.has(ref)) throw new Error(`${where}: input '${input.name}' maps to '${ref}', which no earlier step gives`);
          const from = known.get(ref);
          if (from !== undefined && from.datatype !== input.datatype) {
            throw new Error(`${where}: input '${input.name}' takes ${input.datatype}, but '${ref}' is ${from.datatype}`);
          }
        }
        binding.set(input.name, ref);
      }
      for (const name of mapped.keys()) {
        if (!signature.inputs.some((input) => input.name === name)) throw new Error(`${where}: inputs names '${name}', which '${step.target}' does not take`);
      }
      bindings.push(binding);
      outputs = describeOps(signature.outputs, opsOf(step), this.#plugins, where);
      if (outputs === undefined) opaque.add(name);
      for (const spec of outputs ?? []) known.set(`${name}.${spec.name}`, spec);
      previous = outputs;
      previousName = name;
    });
    return { signature: { inputs: [...requestInputs.values()], outputs: outputs ?? [] }, bindings, inputs: signatures.map((signature) => signature.inputs) };
  }
}
