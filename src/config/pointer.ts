/**
 * Field paths in messages: TypeBox reports JSON pointers; people read
 * `models[0].name`. One format for the configuration file and the admin API.
 */
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';

/** JSON pointer `/models/0/name` to `models[0].name`; `prefix` goes before it (`split` + `/variants/0` -> `split.variants[0]`). */
export function displayPath(pointer: string, prefix = ''): string {
  const path = pointer.slice(1).split('/').filter((part) => part !== '')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((out, part) => (/^\d+$/.test(part) ? `${out}[${part}]` : out === '' ? part : `${out}.${part}`), prefix);
  return path === '' ? '(root)' : path;
}

/**
 * A schema's errors, with each union's narrowed to the one branch the value went into: for
 * `warmup: false | { … }` given an object, `warmup.inputs.x.shape[0]: Expected integer …`
 * rather than `warmup: Expected union value`. A union whose branches all fail at its own path
 * (a value of none of its types) keeps its one error. A field with a default is never reported
 * missing.
 */
export function schemaErrors(errors: Iterable<ValueError>): ValueError[] {
  const all = narrowUnions(errors);
  // Defaults are filled in only where the document validates, so inside a branch that failed for
  // another reason a defaulted field reads as missing: that is never the user's mistake.
  const defaulted = new Set(all.filter((error) => error.type === ValueErrorType.ObjectRequiredProperty && 'default' in error.schema).map((error) => error.path));
  const kept = all.filter((error) => !(defaulted.has(error.path) && error.value === undefined));
  return kept.length > 0 ? kept : all;
}

/** An admin body's problems as the API words them: each field's path (`body` for the body itself) and what is wrong. */
export function bodyProblems(errors: Iterable<ValueError>): string[] {
  return schemaErrors(errors).map((problem) => `${problem.path === '' ? 'body' : displayPath(problem.path)}: ${problem.message}`);
}

function narrowUnions(errors: Iterable<ValueError>): ValueError[] {
  const out: ValueError[] = [];
  for (const error of errors) {
    if (error.type !== ValueErrorType.Union) {
      out.push(error);
      continue;
    }
    const deeper = error.errors.map((branch) => [...branch]).filter((branch) => branch.length > 0 && branch.every((each) => each.path.length > error.path.length));
    const [branch] = deeper;
    if (deeper.length === 1 && branch !== undefined) out.push(...narrowUnions(branch));
    else out.push(error);
  }
  return out;
}
