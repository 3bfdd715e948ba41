/**
 * One place maps errors to V2 error bodies: the gateway's own typed errors,
 * fastify's (bad JSON, body too large, wrong content type, 404) and anything
 * unexpected, whose details stay in the log.
 */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const FASTIFY_MESSAGES = new Map<string, string>([
  ['FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is larger than the limit (server.bodyLimitBytes; admin.maxModelBytes for model uploads)'],
  ['FST_ERR_CTP_EMPTY_JSON_BODY', 'Request body is empty but content-type is application/json'],
  ['FST_ERR_CTP_INVALID_JSON_BODY', 'Request body is not valid JSON'],
]);

/** The status and the V2 error text an error is answered with: an unexpected error's details stay in the log. */
export function publicError(error: FastifyError): { status: number; message: string; unexpected: boolean } {
  const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  if (status >= 500 && error.code?.startsWith('MG_') !== true) return { status: 500, message: 'Internal server error', unexpected: true };
  const message = FASTIFY_MESSAGES.get(error.code)
    ?? (error instanceof SyntaxError ? `Request body is not valid JSON: ${error.message}` : error.message);
  return { status, message, unexpected: false };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError & { retryAfterSeconds?: number }, request, reply) => {
    const { status, message, unexpected } = publicError(error);
    const traceId = request.trace?.recording === true ? { traceId: request.trace.traceId } : {};
    if (unexpected) {
      request.log.error({ requestId: request.id, ...traceId, err: error }, 'unexpected error');
      return reply.code(500).send({ error: message });
    }
    if (status >= 500) request.log.warn({ requestId: request.id, ...traceId, code: error.code, reason: error.message }, 'request failed');
    if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
    if (status === 401) reply.header('www-authenticate', 'Bearer realm="modelgate"');
    return reply.code(status).send({ error: message });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `No route ${request.method} ${request.url.split('?')[0]}` });
  });
}

/**
 * Errors fastify raises before routing (a key past maxParamLength, a URL it
 * cannot decode), answered in the V2 shape like every other.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const message = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is longer than 100 characters: keys and model names have at most 64' : `Bad request: ${error.message}`;
  void reply.code(status).send({ error: message });
}

const CLIENT_ERROR_STATUS = new Map<string, [number, string]>([
  ['HPE_HEADER_OVERFLOW', [431, 'Request Header Fields Too Large']],
  ['ERR_HTTP_REQUEST_TIMEOUT', [408, 'Request Timeout']],
]);

/**
 * Requests Node's HTTP parser rejects never reach fastify's routes or error
 * handler (a malformed request line, Content-Length with Transfer-Encoding):
 * they are answered here, in the V2 error shape too, and the connection closed.
 */
export function clientErrorHandler(error: Error & { code?: string; reason?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text] = CLIENT_ERROR_STATUS.get(error.code ?? '') ?? [400, 'Bad Request'];
  const reason = error.reason ?? error.message;
  const body = JSON.stringify({ error: `Malformed HTTP request: ${reason}${reason.endsWith('.') ? '' : '.'}` });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
