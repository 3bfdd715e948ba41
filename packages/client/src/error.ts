/** The one error the client throws for a call that failed. */

/**
 * A call the server refused or could not serve: `status` is the HTTP status
 * (0 when no answer came), `message` the server's `error` text, `retryAfter`
 * the seconds its Retry-After asked for, if any.
 */
export class ModelgateError extends Error {
  readonly status: number;
  readonly retryAfter: number | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;

  constructor(message: string, status: number, retryAfter?: number, headers: Readonly<Record<string, string | string[] | undefined>> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ModelgateError';
    this.status = status;
    this.retryAfter = retryAfter;
    this.headers = headers;
  }
}
