/**
 * Validates a V2 JSON inference request against a signature and decodes its
 * tensors, before anything runs. Every rejection is an InvalidInputError that
 * names the field or tensor at fault.
 */
import { allocate, type BinaryReader, convertElement, type Datatype, type InferRequest, isDatatype, jsonText, NUL_IN_BYTES, type Signature, type Tensor, type TensorData, type TensorMap, type TensorSpec } from '@modelgate/client/codec';
import { InvalidInputError } from '../errors.ts';

/** Largest element count of one tensor; beyond it no body limit could carry the data anyway. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

const REQUEST_FIELDS = new Set(['id', 'parameters', 'inputs', 'outputs']);
const INPUT_FIELDS = new Set(['name', 'shape', 'datatype', 'data', 'parameters']);
const OUTPUT_FIELDS = new Set(['name', 'parameters']);

function invalid(message: string): never {
  throw new InvalidInputError(message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkFields(value: Record<string, unknown>, allowed: ReadonlySet<string>, where: string): void {
  for (const field of Object.keys(value)) {
    if (!allowed.has(field)) invalid(`${where}: unknown field '${field}'`);
  }
}

/**
 * Decodes `body` (a parsed JSON value, or the JSON header of a binary
 * request, whose binary inputs `reader` reads) for a target with the given signature.
 */
export function decodeInferRequest(body: unknown, signature: Signature, reader?: BinaryReader): InferRequest {
  if (!isObject(body)) invalid('request body must be a JSON object');
  checkFields(body, REQUEST_FIELDS, 'request');
  if (body.id !== undefined && typeof body.id !== 'string') invalid("request: 'id' must be a string");
  if (body.parameters !== undefined && !isObject(body.parameters)) invalid("request: 'parameters' must be an object");
  if (!Array.isArray(body.inputs)) invalid("request: 'inputs' must be an array of tensors");

  const specs = new Map(signature.inputs.map((spec) => [spec.name, spec]));
  const inputs: TensorMap = new Map();
  body.inputs.forEach((input: unknown, index: number) => {
    if (!isObject(input)) invalid(`inputs[${index}] must be an object`);
    if (typeof input.name !== 'string') invalid(`inputs[${index}]: 'name' must be a string`);
    const where = `input '${input.name}'`;
    const spec = specs.get(input.name);
    if (spec === undefined) invalid(`${where} is not an input of this model (inputs: ${names(signature.inputs)})`);
    if (inputs.has(input.name)) invalid(`${where} appears more than once`);
    checkFields(input, INPUT_FIELDS, where);
    inputs.set(input.name, decodeTensor(input, spec, where, reader));
  });
  reader?.finish();
  const missing = signature.inputs.filter((spec) => !inputs.has(spec.name));
  if (missing.length > 0) invalid(`missing input${missing.length > 1 ? 's' : ''} ${missing.map((spec) => `'${spec.name}'`).join(', ')}`);

  // An empty list asks for what no list asks for: every output (the protocol makes the field optional).
  const listed = body.outputs === undefined ? undefined : decodeOutputs(body.outputs, signature);
  const outputs = listed?.length === 0 ? undefined : listed;
  const parameters = body.parameters as Record<string, unknown> | undefined;
  if (parameters?.binary_data_output !== undefined && typeof parameters.binary_data_output !== 'boolean') invalid("request: 'binary_data_output' must be a boolean");
  const binary = parameters?.binary_data_output === true ? 'all' as const : binaryOutputs(body.outputs);
  const classification = outputs === undefined ? undefined : classifications(body.outputs as Array<{ name: string; parameters?: Record<string, unknown> }>, signature);
  return {
    inputs,
    ...(body.id === undefined ? {} : { id: body.id as string }),
    ...(outputs === undefined ? {} : { outputs }),
    ...(parameters === undefined ? {} : { parameters }),
    ...(binary === undefined ? {} : { binaryOutputs: binary }),
    ...(classification === undefined ? {} : { classification }),
  };
}

/** Outputs asked for as their top classes (`parameters.classification`, a class count), if any. */
function classifications(outputs: ReadonlyArray<{ name: string; parameters?: Record<string, unknown> }>, signature: Signature): ReadonlyMap<string, number> | undefined {
  const chosen = new Map<string, number>();
  for (const output of outputs) {
    const count = output.parameters?.classification;
    if (count === undefined) continue;
    const where = `requested output '${output.name}'`;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) invalid(`${where}: 'classification' must be a positive whole number of classes`);
    const spec = signature.outputs.find((candidate) => candidate.name === output.name) as TensorSpec;
    if (spec.datatype === 'BYTES' || spec.datatype === 'BOOL') invalid(`${where}: classification needs a numeric output, not ${spec.datatype}`);
    chosen.set(output.name, count);
  }
  return chosen.size === 0 ? undefined : chosen;
}

/** Outputs asked for in binary form (`parameters.binary_data`), if any. */
function binaryOutputs(outputs: unknown): ReadonlySet<string> | undefined {
  const chosen = new Set<string>();
  for (const output of (outputs ?? []) as Array<{ name: string; parameters?: { binary_data?: unknown } }>) {
    const flag = output.parameters?.binary_data;
    if (flag !== undefined && typeof flag !== 'boolean') invalid(`requested output '${output.name}': 'binary_data' must be a boolean`);
    if (flag === true) chosen.add(output.name);
  }
  return chosen.size === 0 ? undefined : chosen;
}

function decodeOutputs(outputs: unknown, signature: Signature): string[] {
  if (!Array.isArray(outputs)) invalid("request: 'outputs' must be an array");
  const known = new Set(signature.outputs.map((spec) => spec.name));
  const chosen: string[] = [];
  outputs.forEach((output: unknown, index: number) => {
    if (!isObject(output) || typeof output.name !== 'string') invalid(`outputs[${index}]: 'name' must be a string`);
    const where = `requested output '${output.name}'`;
    checkFields(output, OUTPUT_FIELDS, where);
    if (output.parameters !== undefined && !isObject(output.parameters)) invalid(`${where}: 'parameters' must be an object`);
    if (!known.has(output.name)) invalid(`${where} is not an output of this model (outputs: ${names(signature.outputs)})`);
    if (chosen.includes(output.name)) invalid(`${where} appears more than once`);
    chosen.push(output.name);
  });
  return chosen;
}

/** Checks the declared shape and datatype of one input against its spec. */
export function checkShape(shape: unknown, datatype: unknown, spec: TensorSpec, where: string): { shape: number[]; datatype: Datatype; count: number } {
  if (!isDatatype(datatype)) invalid(`${where}: 'datatype' must be one of the V2 datatypes, got ${datatype === undefined ? 'nothing' : jsonText(datatype)}`);
  if (datatype !== spec.datatype) invalid(`${where}: datatype ${datatype} does not match the model's ${spec.datatype}`);
  if (!Array.isArray(shape)) invalid(`${where}: 'shape' must be an array of dimensions`);
  let count = 1;
  for (const dim of shape) {
    if (typeof dim === 'bigint' && dim > 0n) invalid(`${where}: shape ${jsonText(shape)} has more than ${MAX_ELEMENTS} elements`);
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0) {
      invalid(`${where}: shape ${jsonText(shape)} must hold non-negative integers`);
    }
    count *= dim;
    if (count > MAX_ELEMENTS) invalid(`${where}: shape ${jsonText(shape)} has more than ${MAX_ELEMENTS} elements`);
  }
  const dims = shape as number[];
  checkDims(dims, spec, where);
  return { shape: dims, datatype, count };
}

function checkDims(shape: readonly number[], spec: TensorSpec, where: string): void {
  if (shape.length !== spec.shape.length || spec.shape.some((dim, axis) => dim >= 0 && dim !== shape[axis])) {
    invalid(`${where}: shape ${jsonText(shape)} does not match the model's ${JSON.stringify(spec.shape)} (-1: any size)`);
  }
}

/** Checks a tensor produced inside the gateway (a step's input in a sequence) against the spec of the input it feeds. */
export function checkTensor(tensor: Tensor, spec: TensorSpec, where: string): void {
  if (tensor.datatype !== spec.datatype) invalid(`${where}: datatype ${tensor.datatype} does not match the model's ${spec.datatype}`);
  checkDims(tensor.shape, spec, where);
}

function decodeTensor(input: Record<string, unknown>, spec: TensorSpec, where: string, reader: BinaryReader | undefined): Tensor {
  const { shape, datatype, count } = checkShape(input.shape, input.datatype, spec, where);
  if (input.parameters !== undefined && !isObject(input.parameters)) invalid(`${where}: 'parameters' must be an object`);
  const binarySize = (input.parameters as Record<string, unknown> | undefined)?.binary_data_size;
  if (binarySize !== undefined) {
    if (reader === undefined) invalid(`${where}: binary_data_size needs the binary extension (Content-Type application/octet-stream and Inference-Header-Content-Length)`);
    if (input.data !== undefined) invalid(`${where}: has both 'data' and binary_data_size`);
    return { datatype, shape, data: reader.read(binarySize, datatype, count, where) };
  }
  if (input.data === undefined) invalid(`${where}: 'data' is missing`);
  const data = allocate(datatype, count);
  const raw = input.data;
  if (shape.length === 0 && !Array.isArray(raw)) {
    store(data, 0, datatype, raw, where);
  } else if (!Array.isArray(raw)) {
    invalid(`${where}: 'data' must be an array`);
  } else if (Array.isArray(raw[0])) {
    fillNested(data, datatype, raw, shape, where);
  } else if (raw.length === count) {
    for (let i = 0; i < count; i++) store(data, i, datatype, raw[i], where);
  } else {
    invalid(`${where}: data has ${raw.length} elements but shape ${jsonText(shape)} needs ${count}`);
  }
  return { datatype, shape, data };
}

/** Nested data must mirror the shape exactly: same depth, every row full. */
function fillNested(data: TensorData, datatype: Datatype, raw: unknown[], shape: readonly number[], where: string): void {
  let offset = 0;
  const walk = (value: unknown, axis: number, path: string): void => {
    if (axis === shape.length) {
      if (Array.isArray(value)) invalid(`${where}: data${path} is nested deeper than shape ${jsonText(shape)}`);
      store(data, offset++, datatype, value, where);
      return;
    }
    if (!Array.isArray(value) || value.length !== shape[axis]) {
      invalid(`${where}: data${path} must be an array of ${shape[axis]} along axis ${axis} (ragged or misshapen data)`);
    }
    value.forEach((item, index) => walk(item, axis + 1, `${path}[${index}]`));
  };
  walk(raw, 0, '');
}

function store(data: TensorData, index: number, datatype: Datatype, value: unknown, where: string): void {
  const converted = convertElement(datatype, value);
  if (typeof converted === 'object') {
    // Marked, so the data plane can read the document again exactly and retry.
    if (converted.inexact === true) throw Object.assign(new InvalidInputError(`${where}: element ${index}: ${converted.error}`), { inexact: true });
    invalid(`${where}: element ${index}: ${converted.error}`);
  }
  if (typeof converted === 'string' && converted.includes('\0')) invalid(`${where}: element ${index} ${NUL_IN_BYTES}`);
  (data as unknown as Array<typeof converted>)[index] = converted;
}

function names(specs: readonly TensorSpec[]): string {
  return specs.map((spec) => spec.name).join(', ');
}
