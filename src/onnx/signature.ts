/**
 * A model's inputs and outputs, read from its ONNX file without an
 * onnxruntime session: `ModelProto.graph`'s `input`, `output` and the names
 * of its `initializer`s, walked with a protobuf wire reader that reads field
 * headers and skips every payload it does not need by seeking past it, so a
 * file of 500 MB of weights costs a few kilobytes of reads and no objects.
 * Metadata, docs and request validation then cost no load.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Datatype, Signature, TensorSpec } from '@modelgate/client/codec';

/** ONNX `TensorProto.DataType` -> V2 datatype; others (complex, bfloat16, float8...) V2 cannot carry. */
const ELEM_TYPES = new Map<number, Datatype>([
  [1, 'FP32'], [2, 'UINT8'], [3, 'INT8'], [4, 'UINT16'], [5, 'INT16'], [6, 'INT32'], [7, 'INT64'],
  [8, 'BYTES'], [9, 'BOOL'], [10, 'FP16'], [11, 'FP64'], [12, 'UINT32'], [13, 'UINT64'],
]);

const WINDOW = 64 * 1024;

/** Random-access reads of a file through one small window. */
class Source {
  readonly #handle: FileHandle;
  readonly size: number;
  #window = Buffer.alloc(0);
  #windowStart = 0;

  constructor(handle: FileHandle, size: number) {
    this.#handle = handle;
    this.size = size;
  }

  /** The bytes [position, position + length), read from disk only when outside the window. */
  async bytes(position: number, length: number): Promise<Buffer> {
    if (position < 0 || position + length > this.size) throw new Error('truncated');
    const offset = position - this.#windowStart;
    if (offset >= 0 && offset + length <= this.#window.length) return this.#window.subarray(offset, offset + length);
    const size = Math.min(Math.max(length, WINDOW), this.size - position);
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await this.#handle.read(buffer, 0, size, position);
    if (bytesRead < length) throw new Error('truncated');
    this.#window = buffer.subarray(0, bytesRead);
    this.#windowStart = position;
    return this.#window.subarray(0, length);
  }
}

interface Field {
  readonly number: number;
  readonly wireType: number;
  /** A varint's value (numbers here stay far below 2^53), or a length-delimited field's byte range. */
  readonly value: number;
  readonly start: number;
  readonly end: number;
}

async function varint(source: Source, position: number): Promise<{ value: number; next: number }> {
  const bytes = await source.bytes(position, Math.min(10, source.size - position));
  let value = 0;
  let scale = 1;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { value, next: position + i + 1 };
    scale *= 128;
  }
  throw new Error('bad varint');
}

/** The fields of the message in [start, end), payloads skipped unless asked for. */
async function* fields(source: Source, start: number, end: number): AsyncGenerator<Field> {
  let position = start;
  while (position < end) {
    const tag = await varint(source, position);
    const number = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    position = tag.next;
    if (wireType === 0) {
      const { value, next } = await varint(source, position);
      yield { number, wireType, value, start: position, end: next };
      position = next;
    } else if (wireType === 2) {
      const { value: length, next } = await varint(source, position);
      if (next + length > end) throw new Error('a field runs past its message');
      yield { number, wireType, value: length, start: next, end: next + length };
      position = next + length;
    } else if (wireType === 1) {
      position += 8;
    } else if (wireType === 5) {
      position += 4;
    } else {
      throw new Error(`wire type ${wireType}`);
    }
  }
  if (position !== end) throw new Error('a field runs past its message');
}

async function text(source: Source, field: Field): Promise<string> {
  return (await source.bytes(field.start, field.end - field.start)).toString('utf8');
}

/** ValueInfoProto -> name, and its tensor type if it has one V2 can carry. */
async function valueInfo(source: Source, start: number, end: number): Promise<TensorSpec> {
  let name = '';
  let datatype: Datatype | undefined;
  let shape: number[] = [];
  for await (const field of fields(source, start, end)) {
    if (field.number === 1 && field.wireType === 2) name = await text(source, field);
    if (field.number !== 2 || field.wireType !== 2) continue;
    for await (const type of fields(source, field.start, field.end)) {
      if (type.number !== 1 || type.wireType !== 2) continue; // only tensor_type
      for await (const tensor of fields(source, type.start, type.end)) {
        if (tensor.number === 1 && tensor.wireType === 0) datatype = ELEM_TYPES.get(tensor.value);
        if (tensor.number !== 2 || tensor.wireType !== 2) continue;
        shape = [];
        for await (const dim of fields(source, tensor.start, tensor.end)) {
          if (dim.number !== 1 || dim.wireType !== 2) continue;
          let size = -1;
          for await (const part of fields(source, dim.start, dim.end)) {
            if (part.number === 1 && part.wireType === 0) size = part.value;
          }
          shape.push(size);
        }
      }
    }
  }
  if (datatype === undefined) throw new Error(`tensor '${name}' has a type the V2 protocol cannot carry`);
  return { name, datatype, shape };
}

/**
 * The model's signature as onnxruntime will report it: graph inputs that are
 * not initializers, and graph outputs; dynamic or named dimensions as -1.
 * Rejects if the file is not an ONNX model or holds a type V2 cannot carry.
 */
export async function readSignature(file: string): Promise<Signature> {
  const handle = await open(file, 'r');
  try {
    const source = new Source(handle, (await handle.stat()).size);
    let graph: Field | undefined;
    for await (const field of fields(source, 0, source.size)) {
      if (field.number === 7 && field.wireType === 2) graph = field;
    }
    if (graph === undefined) throw new Error('no graph');
    const inputs: Array<{ start: number; end: number }> = [];
    const outputs: Array<{ start: number; end: number }> = [];
    const initializers = new Set<string>();
    for await (const field of fields(source, graph.start, graph.end)) {
      if (field.wireType !== 2) continue;
      if (field.number === 11) inputs.push(field);
      else if (field.number === 12) outputs.push(field);
      else if (field.number === 5) {
        // TensorProto: only its name (field 8); raw_data and the rest are skipped unread.
        for await (const part of fields(source, field.start, field.end)) {
          if (part.number === 8 && part.wireType === 2) initializers.add(await text(source, part));
        }
      }
    }
    const specs = async (ranges: typeof inputs) => Promise.all(ranges.map((range) => valueInfo(source, range.start, range.end)));
    return {
      inputs: (await specs(inputs)).filter((spec) => !initializers.has(spec.name)),
      outputs: await specs(outputs),
    };
  } finally {
    await handle.close();
  }
}
