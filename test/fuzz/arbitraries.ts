/**
 * fast-check arbitraries for the protocol edge: valid V2 requests for a set
 * of keys (JSON and binary, with and without requested outputs, parameters
 * and ids), and mutations of them (any field replaced by any JSON value,
 * shapes and datatypes changed, header lengths, truncated, extended and
 * flipped bodies, content types and encodings). Shared by the bounded
 * property tests in `npm test` and the long campaign of `npm run fuzz`.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { jsonText, parseJsonExact } from '@modelgate/client/codec';
import { addMulModel, affineModel, identityModel, type ElemType } from '../../src/onnx/builder.ts';

export type Datatype = 'BOOL' | 'UINT8' | 'INT64' | 'FP16' | 'FP32' | 'BYTES';

interface KeySpec {
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly datatype: Datatype }>;
  readonly outputs: readonly string[];
}

const ELEMENTS: ReadonlyArray<[Datatype, ElemType]> = [['BOOL', 'bool'], ['UINT8', 'uint8'], ['INT64', 'int64'], ['FP16', 'float16'], ['FP32', 'float32'], ['BYTES', 'string']];

/** Every fuzzed key with what it takes and gives: an identity model per datatype, a two-input model, a split and a sequence. */
export const KEYS = new Map<string, KeySpec>([
  ...ELEMENTS.map(([datatype]): [string, KeySpec] => [datatype.toLowerCase(), { inputs: [{ name: 'x', datatype }], outputs: ['y'] }]),
  ['addmul', { inputs: [{ name: 'a', datatype: 'FP32' }, { name: 'b', datatype: 'FP32' }], outputs: ['sum', 'product'] }],
  ['split', { inputs: [{ name: 'x', datatype: 'FP32' }], outputs: ['y'] }],
  ['chain', { inputs: [{ name: 'x', datatype: 'FP32' }], outputs: ['y'] }],
]);

/** The key no fuzzed request is sent to: its answer must never change. */
export const CONTROL = { key: 'control', body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 1], data: [1.5, -2] }] }), answer: [3, -4] };

/** Model files and the configuration serving the keys above. */
export function fuzzGateway(): { files: Record<string, Uint8Array>; config: Record<string, unknown> } {
  const files: Record<string, Uint8Array> = {
    'addmul.onnx': addMulModel('float32'),
    'f32b.onnx': identityModel('float32', ['n']),
    'control.onnx': affineModel({ inFeatures: 1, outFeatures: 1, weights: [2], bias: [0] }),
  };
  const models: Array<Record<string, unknown>> = [
    { name: 'addmul', path: 'addmul.onnx' }, { name: 'f32b', path: 'f32b.onnx' }, { name: 'control', path: 'control.onnx' },
  ];
  for (const [datatype, elem] of ELEMENTS) {
    files[`${datatype}.onnx`] = identityModel(elem, ['n']);
    models.push({ name: datatype.toLowerCase(), path: `${datatype}.onnx` });
  }
  const routes = [
    { key: 'split', split: { variants: [{ target: 'fp32', weight: 1 }, { target: 'f32b', weight: 1 }], stickyHeader: 'x-user' } },
    { key: 'chain', sequence: { steps: [{ name: 'one', target: 'fp32' }, { name: 'two', target: 'f32b' }] } },
  ];
  return { files, config: { models, routes, server: { bodyLimitBytes: 1024 * 1024, defaultTimeoutMicros: 10_000_000 } } };
}

const f16round = (Math as unknown as { f16round(x: number): number }).f16round;

/** One element of a datatype, as JSON can carry it (64-bit integers as bigints, written as digits). */
export function element(datatype: Datatype): fc.Arbitrary<unknown> {
  switch (datatype) {
    case 'BOOL': return fc.boolean();
    case 'UINT8': return fc.integer({ min: 0, max: 255 });
    case 'INT64': return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    // JSON has no -0 (JSON.stringify writes 0), so the values drawn avoid it.
    case 'FP16': return fc.float({ noNaN: true, noDefaultInfinity: true, min: -65504, max: 65504 }).map((x) => f16round(x) || 0);
    case 'FP32': return fc.float({ noNaN: true, noDefaultInfinity: true }).map((x) => x || 0);
    case 'BYTES': return fc.string({ unit: 'grapheme', maxLength: 8 }).filter((text) => !text.includes('\0'));
  }
}

/** A valid request, as values: what goes in, and how it is to be sent. */
export interface ValidRequest {
  readonly key: string;
  readonly rows: number;
  readonly data: ReadonlyMap<string, readonly unknown[]>;
  readonly id?: string | undefined;
  readonly outputs?: ReadonlyArray<{ name: string; binary?: boolean }> | undefined;
  readonly binaryInputs: boolean;
  readonly binaryOutputAll: boolean;
}

export function validRequest(): fc.Arbitrary<ValidRequest> {
  return fc.constantFrom(...KEYS.keys()).chain((key) => {
    const spec = KEYS.get(key) as KeySpec;
    return fc.integer({ min: 0, max: 5 }).chain((rows) => fc.record({
      key: fc.constant(key),
      rows: fc.constant(rows),
      data: fc.tuple(...spec.inputs.map((input) => fc.array(element(input.datatype), { minLength: rows, maxLength: rows })))
        .map((arrays) => new Map(spec.inputs.map((input, index) => [input.name, arrays[index] as unknown[]]))),
      id: fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
      outputs: fc.option(fc.subarray([...spec.outputs]).chain((names) => fc.tuple(...names.map((name) => fc.record({ name: fc.constant(name), binary: fc.option(fc.boolean(), { nil: undefined }) }, { requiredKeys: ['name'] })))), { nil: undefined }),
      binaryInputs: fc.boolean(),
      binaryOutputAll: fc.boolean(),
    }));
  });
}

export function bytesOf(datatype: Datatype, values: readonly unknown[]): Buffer {
  switch (datatype) {
    case 'BOOL': return Buffer.from(values.map((value) => (value ? 1 : 0)));
    case 'UINT8': return Buffer.from(values as number[]);
    case 'INT64': return Buffer.from(new BigInt64Array(values as bigint[]).buffer);
    case 'FP16': return Buffer.from(new (globalThis as unknown as { Float16Array: new (values: number[]) => { buffer: ArrayBuffer } }).Float16Array(values as number[]).buffer);
    case 'FP32': return Buffer.from(new Float32Array(values as number[]).buffer);
    case 'BYTES': return Buffer.concat((values as string[]).flatMap((text) => {
      const bytes = Buffer.from(text, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }));
  }
}

/** A request document as JS values (bigints for 64-bit integers) and the binary tail, if any. */
export interface Wire {
  document: Record<string, unknown>;
  blobs: Buffer[];
}

export function toWire(request: ValidRequest): Wire {
  const spec = KEYS.get(request.key) as KeySpec;
  const blobs: Buffer[] = [];
  const inputs = spec.inputs.map((input) => {
    const values = request.data.get(input.name) as unknown[];
    const tensor: Record<string, unknown> = { name: input.name, shape: [values.length], datatype: input.datatype };
    if (request.binaryInputs) {
      const bytes = bytesOf(input.datatype, values);
      blobs.push(bytes);
      tensor.parameters = { binary_data_size: bytes.length };
    } else {
      tensor.data = values;
    }
    return tensor;
  });
  const document: Record<string, unknown> = { inputs };
  if (request.id !== undefined) document.id = request.id;
  if (request.outputs !== undefined) {
    document.outputs = request.outputs.map((output) => ({ name: output.name, ...(output.binary === undefined ? {} : { parameters: { binary_data: output.binary } }) }));
  }
  if (request.binaryOutputAll) document.parameters = { binary_data_output: true };
  return { document, blobs };
}

/** An HTTP request to send: key, body bytes and headers. */
export interface Sent {
  readonly key: string;
  readonly body: Buffer;
  readonly headers: Record<string, string>;
}

export function encodeWire(key: string, wire: Wire, headers: Record<string, string> = {}): Sent {
  const json = Buffer.from(jsonText(wire.document));
  if (wire.blobs.length === 0) return { key, body: json, headers: { 'content-type': 'application/json', ...headers } };
  return { key, body: Buffer.concat([json, ...wire.blobs]), headers: { 'inference-header-content-length': String(json.length), ...headers } };
}

/** Any JSON value, and the values that break careless parsers. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, -1, 0, 1.5, 1e308, -1e308, 2 ** 53 + 2, 2n ** 64n, -(2n ** 70n), '', 'NaN', '__proto__', [], {}, [[]], [-1], [2 ** 31], true),
);

/** Every path (keys and indices) inside a JSON value. */
function paths(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const here = [prefix];
  if (Array.isArray(value)) return here.concat(...value.map((item, index) => paths(item, [...prefix, index])));
  if (value !== null && typeof value === 'object') return here.concat(...Object.entries(value).map(([key, item]) => paths(item, [...prefix, key])));
  return here;
}

function setAt(root: Record<string, unknown>, path: ReadonlyArray<string | number>, value: unknown): Record<string, unknown> {
  if (path.length === 0) return value as Record<string, unknown>;
  const copy = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  // An own property, even for '__proto__', as a parsed JSON document would have.
  Object.defineProperty(node, path[path.length - 1] as string, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

type Mutation = (sent: Sent, wire: Wire) => Sent;

/** One mutation of a request: each keeps its own randomness in the arbitrary. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Any field (or the whole document) replaced by any value.
  fc.tuple(fc.nat(), anyValue).map(([pick, value]): Mutation => (sent, wire) => {
    const all = paths(wire.document);
    return encodeWire(sent.key, { document: setAt(wire.document, all[pick % all.length] as Array<string | number>, value), blobs: wire.blobs }, {});
  }),
  // An extra field, dangerous names included.
  fc.tuple(fc.nat(), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'extra'), anyValue).map(([pick, name, value]): Mutation => (sent, wire) => {
    const objects = paths(wire.document).filter((path) => {
      let node: unknown = wire.document;
      for (const step of path) node = (node as Record<string | number, unknown>)[step];
      return node !== null && typeof node === 'object' && !Array.isArray(node);
    });
    return encodeWire(sent.key, { document: setAt(wire.document, [...(objects[pick % objects.length] as Array<string | number>), name], value), blobs: wire.blobs });
  }),
  // Another datatype, or another shape, for one input: valid-looking, wrong for the data or the model.
  fc.tuple(fc.nat(), fc.constantFrom('BOOL', 'UINT8', 'INT8', 'INT32', 'INT64', 'UINT64', 'FP16', 'FP32', 'FP64', 'BYTES', 'BF16', 'fp32')).map(([pick, datatype]): Mutation => (sent, wire) => {
    const inputs = wire.document.inputs as unknown[];
    return encodeWire(sent.key, { document: setAt(wire.document, ['inputs', pick % inputs.length, 'datatype'], datatype), blobs: wire.blobs });
  }),
  fc.tuple(fc.nat(), fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 4 })).map(([pick, shape]): Mutation => (sent, wire) => {
    const inputs = wire.document.inputs as unknown[];
    return encodeWire(sent.key, { document: setAt(wire.document, ['inputs', pick % inputs.length, 'shape'], shape), blobs: wire.blobs });
  }),
  // Inference-Header-Content-Length: any integer or text.
  fc.oneof(fc.integer({ min: -10, max: 1 << 20 }).map(String), fc.constantFrom('', 'abc', '1e3', '0x10', '-0', ' 12', '99999999999999999999')).map((value): Mutation => (sent) => ({ ...sent, headers: { ...sent.headers, 'inference-header-content-length': value } })),
  // Truncated, extended, flipped bodies.
  fc.nat().map((cut): Mutation => (sent) => ({ ...sent, body: sent.body.subarray(0, cut % (sent.body.length + 1)) })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra): Mutation => (sent) => ({ ...sent, body: Buffer.concat([sent.body, extra]) })),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, bits]): Mutation => (sent) => {
    if (sent.body.length === 0) return sent;
    const body = Buffer.from(sent.body);
    const index = at % body.length;
    body[index] = (body[index] as number) ^ bits;
    return { ...sent, body };
  }),
  // Content types and encodings.
  fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', 'application/xml', '', 'garbage', 'application/json; charset=latin1').map((type): Mutation => (sent) => {
    const headers = { ...sent.headers };
    if (type === '') delete headers['content-type'];
    else headers['content-type'] = type;
    return { ...sent, headers };
  }),
  fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'gzip, gzip', 'GZIP').map((coding): Mutation => (sent) => ({ ...sent, headers: { ...sent.headers, 'content-encoding': coding } })),
  fc.constant<Mutation>((sent) => ({ ...sent, body: gzipSync(sent.body), headers: { ...sent.headers, 'content-encoding': 'gzip' } })),
  // Another key's body, or an unknown key.
  fc.constantFrom(...KEYS.keys(), 'nope', '%2e%2e', 'a'.repeat(300)).map((key): Mutation => (sent) => ({ ...sent, key })),
);

/** A valid request, sent as it is or mutated up to three times. */
export function fuzzedRequest(): fc.Arbitrary<{ request: ValidRequest; sent: Sent; mutated: boolean }> {
  return fc.tuple(validRequest(), fc.array(mutation, { maxLength: 3 })).map(([request, mutations]) => {
    const wire = toWire(request);
    let sent = encodeWire(request.key, wire);
    for (const mutate of mutations) sent = mutate(sent, wire);
    return { request, sent, mutated: mutations.length > 0 };
  });
}

const PATH = /(?:^|[\s'"(])\/(?:tmp|work|home|root|usr|var|app)\//;

/**
 * What every answer must be: 200 with outputs as the key declares them (and,
 * for an unmutated request, the inputs echoed exactly by identity models), or
 * a 4xx whose body is exactly `{"error": string}` naming no path. Returns
 * what is wrong, or undefined.
 */
export function checkAnswer(status: number, headers: Record<string, unknown>, body: Buffer, request: ValidRequest, mutated: boolean): string | undefined {
  if (status >= 500) return `status ${status}: ${body.toString('utf8').slice(0, 300)}`;
  if (status >= 400) {
    if (!String(headers['content-type']).startsWith('application/json')) return `a ${status} with content-type ${String(headers['content-type'])}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return `a ${status} whose body is not JSON: ${body.toString('utf8').slice(0, 200)}`;
    }
    if (parsed === null || typeof parsed !== 'object' || Object.keys(parsed).join() !== 'error' || typeof (parsed as { error: unknown }).error !== 'string') {
      return `a ${status} whose body is not {"error": string}: ${body.toString('utf8').slice(0, 200)}`;
    }
    if (PATH.test((parsed as { error: string }).error)) return `a ${status} naming a path: ${(parsed as { error: string }).error}`;
    return undefined;
  }
  if (status < 200 || status >= 300) return `status ${status}`;
  if (mutated) return undefined;
  if (status !== 200) return `status ${status}`;
  const headerLength = headers['inference-header-content-length'];
  const end = headerLength === undefined ? body.length : Number(headerLength);
  const answer = parseJsonExact(body.subarray(0, end).toString('utf8')) as { outputs: Array<{ name: string; datatype: string; shape: number[]; data?: unknown[] }> };
  const spec = KEYS.get(request.key) as KeySpec;
  const wanted = request.outputs === undefined || request.outputs.length === 0 ? spec.outputs : request.outputs.map((output) => output.name);
  const names = answer.outputs.map((output) => output.name);
  if (names.join() !== wanted.join()) return `outputs ${names.join()} for ${wanted.join()}`;
  const datatype = spec.inputs[0]?.datatype as Datatype;
  let offset = end;
  for (const output of answer.outputs) {
    if (output.datatype !== datatype || output.shape.join() !== String(request.rows)) return `output ${output.name} is ${output.datatype} ${JSON.stringify(output.shape)}`;
    const expected = expectedOutput(request, output.name);
    const size = (output as { parameters?: { binary_data_size?: number } }).parameters?.binary_data_size;
    if (size !== undefined) {
      const bytes = body.subarray(offset, offset + size);
      offset += size;
      if (!bytes.equals(bytesOf(datatype, expected))) return `output ${output.name}: binary data differs from what went in`;
    } else if (jsonText(output.data) !== jsonText(expected.map((x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)))) {
      return `output ${output.name}: ${jsonText(output.data)} for ${jsonText(expected)}`;
    }
  }
  return undefined;
}

/** What a valid request's output must hold, computed here: identity models echo; addmul adds and multiplies in float32. */
function expectedOutput(request: ValidRequest, name: string): unknown[] {
  if (request.key !== 'addmul') return [...(request.data.get('x') as unknown[])];
  const a = request.data.get('a') as number[];
  const b = request.data.get('b') as number[];
  return a.map((x, i) => Math.fround(name === 'sum' ? x + (b[i] as number) : x * (b[i] as number)));
}
