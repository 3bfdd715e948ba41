/**
 * Triton's binary tensor data extension: a JSON header of
 * `Inference-Header-Content-Length` bytes, then raw little-endian tensor
 * bytes in input order (`parameters.binary_data_size` on each binary input);
 * BYTES elements as a 4-byte little-endian length and the bytes. With a
 * header length of 0 (or none) the whole body is the single input's data.
 */
import { InvalidInputError } from './errors.ts';
import { allocate, NUL_IN_BYTES } from './datatypes.ts';
import { parseJson } from './json.ts';
import type { Datatype, Signature, Tensor, TensorData } from './types.ts';

export const HEADER_LENGTH = 'inference-header-content-length';

function invalid(message: string): never {
  throw new InvalidInputError(message);
}

function bytesPerElement(datatype: Datatype): number {
  return datatype === 'BYTES' ? 0 : (allocate(datatype, 0) as Exclude<TensorData, string[]>).BYTES_PER_ELEMENT;
}

/**
 * Splits a binary request body at its JSON header. Returns undefined for the
 * raw-body form (header length 0 or absent).
 */
export function splitBody(body: Buffer, headerLength: string | undefined, parse: (text: string) => unknown = parseJson): { header: unknown; reader: BinaryReader } | undefined {
  if (headerLength === undefined || headerLength === '0') return undefined;
  if (!/^\d{1,15}$/.test(headerLength) || Number(headerLength) > body.length) {
    invalid(`Inference-Header-Content-Length '${headerLength}' must be a byte count within the body (${body.length} bytes)`);
  }
  const length = Number(headerLength);
  let header: unknown;
  try {
    header = parse(body.subarray(0, length).toString('utf8'));
  } catch (error) {
    invalid(`the JSON header (Inference-Header-Content-Length ${length}) is not valid JSON: ${(error as Error).message}`);
  }
  return { header, reader: new BinaryReader(body.subarray(length)) };
}

/** Reads binary tensor data in order, as the inputs' binary_data_size say. */
export class BinaryReader {
  readonly #buffer: Buffer;
  #offset = 0;

  constructor(buffer: Buffer) {
    this.#buffer = buffer;
  }

  read(size: unknown, datatype: Datatype, count: number, where: string): TensorData {
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) invalid(`${where}: binary_data_size must be a non-negative integer`);
    const left = this.#buffer.length - this.#offset;
    if (size > left) invalid(`${where}: binary_data_size ${size} runs past the end of the body (${left} bytes left)`);
    const bytes = this.#buffer.subarray(this.#offset, this.#offset + size);
    this.#offset += size;
    return fromBytes(bytes, datatype, count, where);
  }

  /** The body must hold nothing beyond the inputs' data. */
  finish(): void {
    const left = this.#buffer.length - this.#offset;
    if (left > 0) invalid(`the body has ${left} bytes beyond the inputs' binary_data_size`);
  }
}

/**
 * Tensor data from its binary form; checks the size against shape and
 * datatype. `strict` (for inputs bound for a model) refuses BYTES elements
 * that are not UTF-8 or hold NUL, which onnxruntime's strings cannot carry;
 * otherwise invalid UTF-8 is decoded with replacement characters.
 */
export function fromBytes(bytes: Buffer, datatype: Datatype, count: number, where: string, strict = true): TensorData {
  if (datatype === 'BYTES') return readStrings(bytes, count, where, strict);
  const size = bytesPerElement(datatype);
  if (bytes.length !== count * size) {
    invalid(`${where}: binary data has ${bytes.length} bytes but shape and ${datatype} need ${count} × ${size} = ${count * size}`);
  }
  // A copy: request bodies are not aligned for typed arrays, and the tensor outlives the body.
  const data = allocate(datatype, count) as Exclude<TensorData, string[]>;
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  if (datatype === 'BOOL' && (data as Uint8Array).some((value) => value > 1)) invalid(`${where}: BOOL bytes must be 0 or 1`);
  return data;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function readStrings(bytes: Buffer, count: number | undefined, where: string, strict: boolean): string[] {
  const strings: string[] = [];
  let offset = 0;
  while (offset < bytes.length && (count === undefined || strings.length < count)) {
    if (offset + 4 > bytes.length) invalid(`${where}: BYTES element ${strings.length} has a truncated length prefix`);
    const length = bytes.readUInt32LE(offset);
    if (offset + 4 + length > bytes.length) invalid(`${where}: BYTES element ${strings.length} runs past its data`);
    strings.push(strict ? strictString(bytes.subarray(offset + 4, offset + 4 + length), `${where}: BYTES element ${strings.length}`) : bytes.toString('utf8', offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  if (offset !== bytes.length || (count !== undefined && strings.length !== count)) {
    invalid(`${where}: binary data holds ${strings.length} BYTES elements${offset !== bytes.length ? ' and trailing bytes' : ''}, but the shape needs ${count}`);
  }
  return strings;
}

function strictString(bytes: Buffer, where: string): string {
  if (bytes.includes(0)) invalid(`${where} ${NUL_IN_BYTES}`);
  try {
    return utf8.decode(bytes);
  } catch {
    return invalid(`${where} is not valid UTF-8: onnxruntime's strings carry text only`);
  }
}

/** The raw-body form: the whole body is the data of the model's single input; one dynamic dimension is inferred. */
export function decodeRawBody(body: Buffer, signature: Signature): Map<string, Tensor> {
  const spec = signature.inputs[0];
  if (spec === undefined || signature.inputs.length !== 1) invalid(`a raw binary body (Inference-Header-Content-Length 0 or absent) needs a model with one input; this one has ${signature.inputs.length}`);
  const where = `input '${spec.name}'`;
  const dynamic = spec.shape.filter((dim) => dim < 0).length;
  if (dynamic > 1) invalid(`${where}: shape ${JSON.stringify(spec.shape)} has more than one dynamic dimension, so a raw body's shape is ambiguous: send a JSON header`);
  const fixed = spec.shape.filter((dim) => dim >= 0).reduce((a, b) => a * b, 1);
  const elements = spec.datatype === 'BYTES' ? readStrings(body, undefined, where, true).length : body.length / bytesPerElement(spec.datatype);
  const inferred = fixed === 0 ? 0 : elements / fixed;
  if (!Number.isInteger(inferred) || (dynamic === 0 && elements !== fixed)) {
    invalid(`${where}: a raw body of ${body.length} bytes does not fill shape ${JSON.stringify(spec.shape)} of ${spec.datatype}`);
  }
  const shape = spec.shape.map((dim) => (dim < 0 ? inferred : dim));
  return new Map([[spec.name, { datatype: spec.datatype, shape, data: fromBytes(body, spec.datatype, elements, where) }]]);
}

/** BYTES elements in their binary form: each a 4-byte little-endian length, then its bytes. */
export function frameElements(elements: readonly Uint8Array[]): Buffer {
  return Buffer.concat(elements.flatMap((element) => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(element.length);
    return [length, element];
  }));
}

/** A tensor's binary form. */
export function toBytes(tensor: Tensor): Buffer {
  if (Array.isArray(tensor.data)) return frameElements(tensor.data.map((text) => Buffer.from(text, 'utf8')));
  const data = tensor.data as Exclude<TensorData, string[]>;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
