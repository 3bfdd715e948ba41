/**
 * Checks a set of routes as a graph over keys, for the configuration file and
 * for live changes alike: every key names one thing, every target exists, no
 * route reaches itself, and nesting stays shallow.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { memberName, type CascadeSpec, type EnsembleSpec, type SwitchSpec } from './graph-schema.ts';
import { linearPattern } from './patterns.ts';
import { POSTPROCESS_OPS, ROUTE_KINDS, type RouteKind, type RouteSpec, type SequenceSpec, type StepSpec } from './schema.ts';
import { displayPath, schemaErrors } from './pointer.ts';

/** The name a step's outputs go by: `<name>.<output>`. */
export function stepName(step: StepSpec): string {
  return step.name ?? step.target;
}

/** Deepest chain of routes inside routes (a split whose variant is a sequence whose step is a split...). */
export const MAX_ROUTE_DEPTH = 8;

/** A problem with one route: `path` is inside the route, e.g. `split.variants[1].target`. */
export interface RouteIssue {
  /** Position of the route in the list checked. */
  readonly index: number;
  readonly key: string;
  readonly path: string;
  readonly message: string;
  /** A cycle: each route may be fine alone, but not with the others (409 for a live change). */
  readonly cycle?: true;
}

/** The kind of a route: the one kind field it sets (the first, if it broke the rule and set several). */
export function routeKind(route: RouteSpec): RouteKind {
  return ROUTE_KINDS.find((kind) => route[kind] !== undefined) ?? 'split';
}

/** Keys a route calls, with where each is named. */
export function routeTargets(route: RouteSpec): Array<{ target: string; path: string }> {
  const targets: Array<{ target: string; path: string }> = [];
  route.split?.variants.forEach((variant, index) => targets.push({ target: variant.target, path: `split.variants[${index}].target` }));
  if (route.split?.shadow !== undefined) targets.push({ target: route.split.shadow.target, path: 'split.shadow.target' });
  route.sequence?.steps.forEach((step, index) => targets.push({ target: step.target, path: `sequence.steps[${index}].target` }));
  route.ensemble?.members.forEach((member, index) => targets.push({ target: member.target, path: `ensemble.members[${index}].target` }));
  route.switch?.cases.forEach((option, index) => targets.push({ target: option.target, path: `switch.cases[${index}].target` }));
  if (route.switch?.default !== undefined) targets.push({ target: route.switch.default, path: 'switch.default' });
  route.cascade?.steps.forEach((step, index) => targets.push({ target: step.target, path: `cascade.steps[${index}].target` }));
  return targets;
}

type Issue = (path: string, message: string) => void;

function checkEnsemble(ensemble: EnsembleSpec, issue: Issue): void {
  const names = new Set<string>();
  ensemble.members.forEach((member, index) => {
    const name = memberName(member);
    if (name.includes('.')) issue(`ensemble.members[${index}].name`, `target '${member.target}' has a dot in its key: give the member a name`);
    else if (names.has(name)) issue(`ensemble.members[${index}].name`, `member name '${name}' is already used: give the member a name of its own`);
    names.add(name);
  });
}

function checkSwitch(choice: SwitchSpec, issue: Issue): void {
  choice.cases.forEach(({ when }, index) => {
    const at = `switch.cases[${index}].when`;
    if ((when.header === undefined) === (when.parameter === undefined)) issue(at, 'needs exactly one of header or parameter');
    const tests = [when.equals, when.in, when.matches].filter((test) => test !== undefined).length;
    if (tests !== 1) issue(at, 'needs exactly one of equals, in or matches');
    if (when.matches !== undefined) {
      try {
        linearPattern(when.matches);
      } catch (error) {
        issue(`${at}.matches`, (error as Error).message);
      }
    }
  });
}

function checkCascade(cascade: CascadeSpec, issue: Issue): void {
  cascade.steps.forEach((step, index) => {
    const at = `cascade.steps[${index}].accept`;
    const last = index === cascade.steps.length - 1;
    if (last && step.accept !== undefined) issue(at, 'the last step takes every row left: it has no accept');
    else if (!last && step.accept === undefined) issue(at, 'every step but the last says which rows it answers');
    else if (step.accept !== undefined && (step.accept.min === undefined) === (step.accept.max === undefined)) issue(at, 'needs exactly one of min or max');
  });
}

const opCheckers = new Map(POSTPROCESS_OPS.map((schema) => [schema.properties.op.const as string, TypeCompiler.Compile(schema)]));

/** What can be checked of a sequence without loading anything: step names, input references, op arguments, plugin names. */
function checkSequence(sequence: SequenceSpec, plugins: ReadonlySet<string> | undefined, issue: Issue): void {
  const earlier = new Set<string>(['request']);
  sequence.steps.forEach((step, index) => {
    const at = `sequence.steps[${index}]`;
    const name = stepName(step);
    if (name.includes('.')) issue(`${at}.name`, `target '${step.target}' has a dot in its key: give the step a name`);
    else if (earlier.has(name)) issue(`${at}.name`, `step name '${name}' is already used (or reserved)`);
    for (const [input, source] of Object.entries(step.inputs ?? {})) {
      const from = source.slice(0, source.indexOf('.'));
      if (!earlier.has(from)) issue(`${at}.inputs.${input}`, `'${source}' names no earlier step (nor request)`);
    }
    (step.postprocess ?? []).forEach((op, opIndex) => {
      const checker = opCheckers.get(op.op) as ReturnType<typeof TypeCompiler.Compile>;
      for (const error of schemaErrors(checker.Errors(op))) issue(displayPath(error.path, `${at}.postprocess[${opIndex}]`), error.message);
      const plugin = (op as { name?: unknown }).name;
      if (op.op === 'plugin' && plugins !== undefined && typeof plugin === 'string' && !plugins.has(plugin)) {
        issue(`${at}.postprocess[${opIndex}].name`, `no plugin '${plugin}' in the plugins directory`);
      }
    });
    earlier.add(name);
  });
}

/** `plugins`: names of the loaded plugins, when known. */
export function checkRoutes(routes: readonly RouteSpec[], modelKeys: ReadonlySet<string>, plugins?: ReadonlySet<string>): RouteIssue[] {
  const issues: RouteIssue[] = [];
  const byKey = new Map<string, RouteSpec>();
  const indexOf = new Map<string, number>();
  routes.forEach((route, index) => {
    const issue = (path: string, message: string) => issues.push({ index, key: route.key, path, message });
    if (modelKeys.has(route.key)) issue('key', `'${route.key}' is already a model key`);
    else if (byKey.has(route.key)) issue('key', `'${route.key}' is already the key of another route`);
    else {
      byKey.set(route.key, route);
      indexOf.set(route.key, index);
    }
    const kinds = ROUTE_KINDS.filter((kind) => route[kind] !== undefined).length;
    if (kinds !== 1) issue('', `a route has exactly one of ${ROUTE_KINDS.join(', ')}`);
    if (route.sequence !== undefined) checkSequence(route.sequence, plugins, issue);
    if (route.ensemble !== undefined) checkEnsemble(route.ensemble, issue);
    if (route.switch !== undefined) checkSwitch(route.switch, issue);
    if (route.cascade !== undefined) checkCascade(route.cascade, issue);
    if (route.split !== undefined && !route.split.variants.some((variant) => variant.weight > 0)) {
      issue('split.variants', 'at least one weight must be positive');
    }
    const rollout = route.split?.rollout;
    if (rollout !== undefined) {
      const variants = route.split?.variants ?? [];
      if (!variants.some((variant) => variant.target === rollout.candidate)) issue('split.rollout.candidate', `'${rollout.candidate}' is not one of the split's variant targets`);
      else if (!variants.some((variant) => variant.target !== rollout.candidate && variant.weight > 0)) issue('split.variants', 'a rollout needs another variant with a positive weight to fall back to');
      if (rollout.steps.some((step, index) => index > 0 && step <= (rollout.steps[index - 1] as number))) issue('split.rollout.steps', `steps must increase: ${JSON.stringify(rollout.steps)}`);
    }
  });
  for (const route of byKey.values()) {
    for (const { target, path } of routeTargets(route)) {
      if (!modelKeys.has(target) && !byKey.has(target)) {
        issues.push({ index: indexOf.get(route.key) as number, key: route.key, path, message: `unknown key '${target}'` });
      }
    }
  }
  if (issues.length === 0) issues.push(...checkCycles(byKey, indexOf));
  return issues;
}

/** Depth-first search; a key on the current path seen again is a cycle. */
function checkCycles(byKey: ReadonlyMap<string, RouteSpec>, indexOf: ReadonlyMap<string, number>): RouteIssue[] {
  const depthOf = new Map<string, number>();
  const onPath: string[] = [];
  const visit = (key: string): number => {
    const known = depthOf.get(key);
    if (known !== undefined) return known;
    const route = byKey.get(key);
    if (route === undefined) return 0;
    if (onPath.includes(key)) throw new CycleError([...onPath.slice(onPath.indexOf(key)), key]);
    onPath.push(key);
    let depth = 1;
    for (const { target } of routeTargets(route)) depth = Math.max(depth, 1 + visit(target));
    onPath.pop();
    depthOf.set(key, depth);
    return depth;
  };
  try {
    for (const route of byKey.values()) {
      const depth = visit(route.key);
      if (depth > MAX_ROUTE_DEPTH) {
        return [{ index: indexOf.get(route.key) as number, key: route.key, path: '', message: `routes nest ${depth} deep; at most ${MAX_ROUTE_DEPTH}` }];
      }
    }
  } catch (error) {
    if (error instanceof CycleError) {
      const key = error.keys[0] as string;
      return [{ index: indexOf.get(key) as number, key, path: '', message: `route cycle: ${error.keys.join(' -> ')}`, cycle: true }];
    }
    throw error;
  }
  return [];
}

class CycleError extends Error {
  readonly keys: readonly string[];
  constructor(keys: readonly string[]) {
    super('cycle');
    this.keys = keys;
  }
}
