/**
 * The errors the codec raises, as plain classes with the `MG_` code and HTTP
 * status the server answers with: the server's errors.ts re-exports them, so
 * its error registry holds them too, and the client needs no web framework to
 * raise them.
 */

class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** 400: a request the protocol rejects; the message names the offending field or tensor. */
export class InvalidInputError extends CodecError {
  readonly code = 'MG_INVALID_INPUT';
  readonly statusCode = 400;
}

/** 413: the request body, or what it inflates to, is larger than the limit (server.bodyLimitBytes). */
export class BodyTooLargeError extends CodecError {
  readonly code = 'MG_BODY_TOO_LARGE';
  readonly statusCode = 413;
  constructor(reason: string) {
    super(`Request body is too large: ${reason}`);
  }
}

/** 415: a Content-Type or Content-Encoding that cannot be read; the message says what is accepted. */
export class UnsupportedMediaTypeError extends CodecError {
  readonly code = 'MG_UNSUPPORTED_MEDIA_TYPE';
  readonly statusCode = 415;
}
