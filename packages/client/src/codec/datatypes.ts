/**
 * V2 datatypes: their storage, their onnxruntime names, and the checks and
 * conversions for one JSON element.
 */
import { jsonText } from './json.ts';
import type { Datatype, TensorData } from './types.ts';

/** Why a BYTES element holding NUL is refused, rather than passed on cut short. */
export const NUL_IN_BYTES = 'holds a NUL character: onnxruntime cuts strings at the first NUL, so it cannot reach the model intact';

interface DatatypeInfo {
  /** onnxruntime's name for the element type. */
  readonly ort: string;
  readonly allocate: (length: number) => TensorData;
}

const INFO = new Map<Datatype, DatatypeInfo>([
  ['BOOL', { ort: 'bool', allocate: (n) => new Uint8Array(n) }],
  ['UINT8', { ort: 'uint8', allocate: (n) => new Uint8Array(n) }],
  ['UINT16', { ort: 'uint16', allocate: (n) => new Uint16Array(n) }],
  ['UINT32', { ort: 'uint32', allocate: (n) => new Uint32Array(n) }],
  ['UINT64', { ort: 'uint64', allocate: (n) => new BigUint64Array(n) }],
  ['INT8', { ort: 'int8', allocate: (n) => new Int8Array(n) }],
  ['INT16', { ort: 'int16', allocate: (n) => new Int16Array(n) }],
  ['INT32', { ort: 'int32', allocate: (n) => new Int32Array(n) }],
  ['INT64', { ort: 'int64', allocate: (n) => new BigInt64Array(n) }],
  ['FP16', { ort: 'float16', allocate: (n) => new Uint16Array(n) }],
  ['FP32', { ort: 'float32', allocate: (n) => new Float32Array(n) }],
  ['FP64', { ort: 'float64', allocate: (n) => new Float64Array(n) }],
  ['BYTES', { ort: 'string', allocate: (n) => new Array<string>(n).fill('') }],
]);

const FROM_ORT = new Map<string, Datatype>([...INFO].map(([datatype, info]) => [info.ort, datatype]));

/** Every V2 datatype the gateway handles. */
export const DATATYPES: readonly Datatype[] = [...INFO.keys()];

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && INFO.has(value as Datatype);
}

function info(datatype: Datatype): DatatypeInfo {
  return INFO.get(datatype) as DatatypeInfo;
}

export function toOrtType(datatype: Datatype): string {
  return info(datatype).ort;
}

/** The V2 datatype of an onnxruntime element type, or undefined for types V2 cannot carry. */
export function fromOrtType(type: string): Datatype | undefined {
  return FROM_ORT.get(type);
}

export function allocate(datatype: Datatype, length: number): TensorData {
  return info(datatype).allocate(length);
}

const INTEGER_RANGES = new Map<Datatype, readonly [number, number]>([
  ['UINT8', [0, 0xff]], ['UINT16', [0, 0xffff]], ['UINT32', [0, 0xffffffff]],
  ['INT8', [-0x80, 0x7f]], ['INT16', [-0x8000, 0x7fff]], ['INT32', [-0x80000000, 0x7fffffff]],
]);
const BIGINT_RANGES = new Map<Datatype, readonly [bigint, bigint]>([
  ['UINT64', [0n, 0xffffffffffffffffn]], ['INT64', [-0x8000000000000000n, 0x7fffffffffffffffn]],
]);
const FLOAT_WORDS = new Map<string, number>([['NaN', Number.NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]]);

/**
 * Converts one JSON element to its stored form, or returns a string saying
 * what is wrong with it. 64-bit integers come as numbers (beyond 2^53 as the
 * bigints `parseJsonExact` reads; a rounded number is `inexact`) or decimal strings; non-finite floats as
 * "NaN", "Infinity" or "-Infinity", the way the gateway writes them.
 */
export function convertElement(datatype: Datatype, value: unknown): number | bigint | string | { error: string; inexact?: true } {
  switch (datatype) {
    case 'BOOL':
      return typeof value === 'boolean' ? (value ? 1 : 0) : { error: `${show(value)} is not a boolean (true or false)` };
    case 'BYTES':
      return typeof value === 'string' ? value : { error: `${show(value)} is not a string` };
    case 'FP32': case 'FP64': case 'FP16': {
      const number = typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : typeof value === 'string' ? FLOAT_WORDS.get(value) : undefined;
      if (number === undefined) return { error: `${show(value)} is not a number` };
      if (Number.isFinite(number) && !Number.isFinite(datatype === 'FP32' ? Math.fround(number) : datatype === 'FP16' ? halfToFloat(floatToHalf(number)) : number)) {
        return { error: `${show(value)} is out of range for ${datatype}` };
      }
      return datatype === 'FP16' ? floatToHalf(number) : number;
    }
    case 'INT64': case 'UINT64': {
      const [low, high] = BIGINT_RANGES.get(datatype) as readonly [bigint, bigint];
      let big: bigint;
      if (typeof value === 'bigint') big = value;
      else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
      else if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) big = BigInt(value);
      else if (typeof value === 'number' && Number.isInteger(value)) {
        // JSON.parse rounded it: the data plane reads the text again exactly (parseJsonExact) and only a
        // literal such as 1.2e18, whose digits past 2^53 were never written, ends here.
        return value < Number(low) || value > Number(high)
          ? { error: `${show(value)} is out of range for ${datatype}` }
          : { error: `${show(value)} is beyond 2^53 and not written as an exact integer: write all its digits, or a decimal string`, inexact: true };
      }
      else return { error: `${show(value)} is not an integer` };
      return big < low || big > high ? { error: `${show(value)} is out of range for ${datatype}` } : big;
    }
    default: {
      const [low, high] = INTEGER_RANGES.get(datatype) as readonly [number, number];
      if (typeof value === 'bigint') return { error: `${show(value)} is out of range for ${datatype}` };
      if (typeof value !== 'number' || !Number.isInteger(value)) return { error: `${show(value)} is not an integer` };
      if (value >= low && value <= high) return value;
      // Past 2^53 the number is rounded: marked inexact, so the message can quote the digits as sent.
      return { error: `${show(value)} is out of range for ${datatype}`, ...(Number.isSafeInteger(value) ? {} : { inexact: true as const }) };
    }
  }
}

function show(value: unknown): string {
  const text = jsonText(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

const scratch = new DataView(new ArrayBuffer(4));

/** IEEE 754 binary32 to binary16 bits, rounding to nearest even. */
export function floatToHalf(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShift(full, shift);
  }
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

function roundShift(value: number, shift: number): number {
  const truncated = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return remainder > halfway || (remainder === halfway && (truncated & 1) === 1) ? truncated + 1 : truncated;
}

/** IEEE 754 binary16 bits to a number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
