/**
 * Signatures of composed targets: what a split's variants all accept and all give, and a
 * route's signature worked out once.
 */
import type { Signature, TensorSpec } from '@modelgate/client/codec';

/** Two dimensions agree if equal or if either is dynamic (-1); the merged one is the fixed of the two. */
export function mergeDims(a: readonly number[], b: readonly number[]): number[] | undefined {
  if (a.length !== b.length) return undefined;
  const merged: number[] = [];
  for (let axis = 0; axis < a.length; axis++) {
    const x = a[axis] as number;
    const y = b[axis] as number;
    if (x >= 0 && y >= 0 && x !== y) return undefined;
    merged.push(x >= 0 ? x : y);
  }
  return merged;
}

/**
 * The signature every one of `signatures` satisfies: the same inputs (names,
 * datatypes, compatible shapes), and the outputs they share by name and
 * datatype (with dimensions that differ made dynamic). Throws an Error naming
 * the first disagreement; `names[i]` names `signatures[i]` in it.
 */
export function commonSignature(signatures: readonly Signature[], names: readonly string[]): Signature {
  const [first, ...rest] = signatures;
  if (first === undefined) throw new Error('no signatures to merge');
  let inputs: TensorSpec[] = [...first.inputs];
  let outputs: TensorSpec[] = [...first.outputs];
  rest.forEach((signature, offset) => {
    const name = names[offset + 1];
    const against = `'${names[0]}'`;
    const theirs = new Map(signature.inputs.map((spec) => [spec.name, spec]));
    if (theirs.size !== inputs.length || inputs.some((spec) => !theirs.has(spec.name))) {
      throw new Error(`'${name}' takes inputs (${[...theirs.keys()].join(', ')}), but ${against} takes (${inputs.map((spec) => spec.name).join(', ')})`);
    }
    inputs = inputs.map((spec) => {
      const other = theirs.get(spec.name) as TensorSpec;
      if (other.datatype !== spec.datatype) throw new Error(`'${name}' takes input '${spec.name}' as ${other.datatype}, but ${against} as ${spec.datatype}`);
      const shape = mergeDims(spec.shape, other.shape);
      if (shape === undefined) {
        throw new Error(`'${name}' takes input '${spec.name}' with shape ${JSON.stringify(other.shape)}, incompatible with ${JSON.stringify(spec.shape)} of ${against}`);
      }
      return { ...spec, shape };
    });
    const theirOutputs = new Map(signature.outputs.map((spec) => [spec.name, spec]));
    outputs = outputs.flatMap((spec) => {
      const other = theirOutputs.get(spec.name);
      if (other === undefined || other.datatype !== spec.datatype || other.shape.length !== spec.shape.length) return [];
      return [{ ...spec, shape: spec.shape.map((dim, axis) => (dim === other.shape[axis] ? dim : -1)) }];
    });
  });
  return { inputs, outputs };
}

/** A signature worked out once, and again after a failure (a target that could not load yet): a split's, a graph's. */
export class SignatureOnce {
  readonly #work: () => Promise<Signature>;
  #pending: Promise<Signature> | undefined;
  #known: Signature | undefined;

  constructor(work: () => Promise<Signature>) {
    this.#work = work;
  }

  get(): Promise<Signature> {
    this.#pending ??= this.#work().then((signature) => {
      this.#known = signature;
      return signature;
    });
    this.#pending.catch(() => { this.#pending = undefined; });
    return this.#pending;
  }

  get known(): Signature | undefined {
    return this.#known;
  }
}
