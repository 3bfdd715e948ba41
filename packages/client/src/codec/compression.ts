/**
 * HTTP compression of V2 bodies, as Triton does it: `Content-Encoding: gzip`
 * or `deflate` (zlib-wrapped, as Python's zlib.compress writes it; raw
 * deflate is accepted too) on requests, and answers compressed when
 * `Accept-Encoding` asks. Used by the server and the client alike.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { BodyTooLargeError, InvalidInputError, UnsupportedMediaTypeError } from './errors.ts';

export type Encoding = 'gzip' | 'deflate';

/** Below this many bytes an answer is sent as it is: compressing it would cost more than it saves. */
export const COMPRESSION_THRESHOLD = 1024;

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);

/**
 * The body with its `Content-Encoding` undone. At most `limit` bytes are
 * inflated: a body that would inflate beyond it is refused (413) as soon as
 * it does, without inflating the rest. Decompression runs on libuv's thread
 * pool, off the event loop.
 */
export async function decompress(body: Buffer, contentEncoding: string | undefined, limit: number): Promise<Buffer> {
  const encoding = contentEncoding?.trim().toLowerCase() ?? '';
  if (encoding === '' || encoding === 'identity') return body;
  const options = { maxOutputLength: limit };
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return await gunzip(body, options);
    if (encoding === 'deflate') return await (isZlibWrapped(body) ? inflate(body, options) : inflateRaw(body, options));
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new BodyTooLargeError(`the ${encoding} body inflates to more than the limit of ${limit} bytes (server.bodyLimitBytes)`);
    }
    throw new InvalidInputError(`the request body is not valid ${encoding} data: ${(error as Error).message}`);
  }
  throw new UnsupportedMediaTypeError(`Content-Encoding '${contentEncoding}' is not supported: send gzip, deflate or identity`);
}

/** A zlib stream starts with CMF/FLG: deflate method, a window that fits, and a check that the pair is a multiple of 31. */
function isZlibWrapped(body: Buffer): boolean {
  const [cmf, flg] = body;
  return cmf !== undefined && flg !== undefined && (cmf & 0x0f) === 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 === 0;
}

/**
 * The coding to answer with for an `Accept-Encoding` header: gzip or deflate,
 * the one with the higher q-value (gzip on a tie), or none.
 */
export function chooseEncoding(acceptEncoding: string | undefined): Encoding | undefined {
  if (acceptEncoding === undefined) return undefined;
  let best: Encoding | undefined;
  let bestQ = 0;
  let wildcard: number | undefined;
  const seen = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((param) => param.trim()).find((param) => param.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!Number.isFinite(q)) continue;
    if (name === '*') wildcard = q;
    else seen.set(name, q);
  }
  for (const encoding of ['gzip', 'deflate'] as const) {
    const q = seen.get(encoding) ?? (encoding === 'gzip' ? seen.get('x-gzip') : undefined) ?? wildcard ?? 0;
    if (q > bestQ) {
      best = encoding;
      bestQ = q;
    }
  }
  return best;
}

/** Compresses a body with the given coding, on libuv's thread pool. */
export function compress(body: Buffer | string, encoding: Encoding): Promise<Buffer> {
  return encoding === 'gzip' ? gzip(body) : deflate(body);
}
