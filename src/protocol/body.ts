/**
 * An inference request body as it arrives over HTTP, read the way V2
 * clients send it: Triton's Python client sends no Content-Type at all, so
 * the binary extension is recognised by `Inference-Header-Content-Length`,
 * and anything else is JSON. Free of fastify: the REST layer hands over the
 * bytes and headers.
 */
import { decompress, type InferPayload, parseJson, parseJsonExact } from '@modelgate/client/codec';
import { InvalidInputError, UnsupportedMediaTypeError } from '../errors.ts';

/**
 * Media types an inference body may carry: JSON, the binary extension, and
 * the defaults of clients that post JSON without naming it (curl -d sends
 * x-www-form-urlencoded, fetch with a string body text/plain). Parameters
 * such as `; charset=utf-8` are ignored.
 */
const ACCEPTED = new Set(['application/json', 'text/json', 'application/octet-stream', 'application/x-www-form-urlencoded', 'text/plain']);

export const ACCEPTED_CONTENT_TYPES = 'application/json, application/octet-stream (the binary tensor extension), or none';

export interface RawInferBody {
  readonly body: Buffer;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  /** `Inference-Header-Content-Length`, as sent. */
  readonly headerLength: string | undefined;
  /** The most bytes the body may inflate to. */
  readonly limit: number;
}

/** Checks the content type, undoes any Content-Encoding and tells JSON from the binary form. */
export async function readInferBody(raw: RawInferBody): Promise<InferPayload> {
  const mediaType = raw.contentType?.split(';', 1)[0]?.trim().toLowerCase() ?? '';
  if (mediaType !== '' && !ACCEPTED.has(mediaType) && !mediaType.endsWith('+json')) {
    throw new UnsupportedMediaTypeError(`Content-Type '${mediaType}' is not supported for inference: send ${ACCEPTED_CONTENT_TYPES}`);
  }
  const body = await decompress(raw.body, raw.contentEncoding, raw.limit);
  if (raw.headerLength !== undefined || mediaType === 'application/octet-stream') {
    return { binary: body, headerLength: raw.headerLength };
  }
  if (body.length === 0) throw new InvalidInputError('request body is empty: send a V2 inference request');
  const text = body.toString('utf8');
  try {
    return { json: parseJson(text), exact: () => parseJsonExact(text) };
  } catch (error) {
    throw new InvalidInputError(`Request body is not valid JSON: ${(error as Error).message}`);
  }
}
