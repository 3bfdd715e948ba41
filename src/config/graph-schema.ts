/**
 * The inference-graph route kinds beside splits and sequences: an ensemble
 * (every member gets the request at once, answers renamed or combined), a
 * switch (the first case whose condition holds takes the request) and a
 * cascade (row by row: a step's sure rows are answered, the rest go on).
 */
import { Type, type Static } from '@sinclair/typebox';

const KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const Target = Type.String({ pattern: KEY_PATTERN, description: 'A key: a model or any route.' });
const TensorName = Type.String({ minLength: 1, maxLength: 128 });

export const COMBINE_OPS = ['mean', 'weighted_mean', 'max', 'min', 'vote'] as const;

export const EnsembleSchema = Type.Object({
  members: Type.Array(Type.Object({
    target: Target,
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$', description: "The member's outputs are named <name>.<output>; default the target key (no dots)." })),
    weight: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "The member's weight in weighted_mean. Default 1." })),
    required: Type.Optional(Type.Boolean({ description: "Default true: its failure fails the request. false: a failure (or the request's deadline) leaves it out, listed in the answer's parameters.ensemble_missing." })),
  }, { additionalProperties: false }), { minItems: 1, maxItems: 16, description: 'Every member gets the same request inputs, all at once.' }),
  combine: Type.Optional(Type.Object({
    op: Type.Union(COMBINE_OPS.map((name) => Type.Literal(name)), { description: 'mean and weighted_mean (FP16/FP32/FP64), max and min (numeric), vote (the most frequent value per element, integer types, BOOL and BYTES; a tie goes to the earliest member).' }),
    output: Type.String({ minLength: 1, maxLength: 128, description: "The output every member gives, reduced element-wise across the members." }),
    as: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Name of the combined tensor; default the output name.' })),
  }, { additionalProperties: false, description: "Without it, the answer holds every member's outputs as <name>.<output>." })),
}, { additionalProperties: false });

const Value = Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]);

export const ConditionSchema = Type.Object({
  header: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$', description: 'A request header (gRPC metadata) by name.' })),
  parameter: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'A request-level V2 parameter by name.' })),
  equals: Type.Optional(Value),
  in: Type.Optional(Type.Array(Value, { minItems: 1, maxItems: 256 })),
  matches: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'A regular expression the whole value must match; refused when set if it could backtrack catastrophically.' })),
}, { additionalProperties: false, description: 'Exactly one of header or parameter, and exactly one of equals, in or matches. Values are compared as text.' });

export const SwitchSchema = Type.Object({
  cases: Type.Array(Type.Object({
    when: ConditionSchema,
    target: Target,
  }, { additionalProperties: false }), { minItems: 1, maxItems: 64, description: 'Tried in order: the first whose condition holds takes the request.' }),
  default: Type.Optional(Type.String({ pattern: KEY_PATTERN, description: 'The target when no case holds; without it, such a request is refused (400).' })),
}, { additionalProperties: false });

export const CascadeSchema = Type.Object({
  steps: Type.Array(Type.Object({
    target: Target,
    accept: Type.Optional(Type.Object({
      output: TensorName,
      min: Type.Optional(Type.Number({ description: "A row is accepted when the largest element of the output in that row is at least this." })),
      max: Type.Optional(Type.Number({ description: 'Or: when the largest element is at most this.' })),
    }, { additionalProperties: false, description: 'Which rows this step answers; the others go on to the next step. Every step but the last has one, with exactly one of min or max.' })),
  }, { additionalProperties: false }), { minItems: 2, maxItems: 8 }),
}, { additionalProperties: false });

export type EnsembleSpec = Static<typeof EnsembleSchema>;
export type EnsembleMember = EnsembleSpec['members'][number];
export type CombineSpec = NonNullable<EnsembleSpec['combine']>;
export type ConditionSpec = Static<typeof ConditionSchema>;
export type SwitchSpec = Static<typeof SwitchSchema>;
export type CascadeSpec = Static<typeof CascadeSchema>;
export type CascadeStep = CascadeSpec['steps'][number];

/** The name an ensemble member's outputs go by: `<name>.<output>`. */
export function memberName(member: EnsembleMember): string {
  return member.name ?? member.target;
}
