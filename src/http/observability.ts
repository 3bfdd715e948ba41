/**
 * What operators see of each request: an id (x-request-id, accepted or
 * made, and echoed), one log line, metrics; and the drain at shutdown, when
 * new requests get 503 with Connection: close while in-flight ones finish.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { LogController } from 'fastify';
import { ShuttingDownError, withRetryAfter } from '../errors.ts';
import type { Metrics } from '../telemetry/metrics.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Uses the client's x-request-id when it is a sane token, else a fresh UUID. */
export function requestId(request: { headers: Record<string, string | string[] | undefined> }): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * fastify makes a child logger per request to bind its id; the lines that need the id carry it
 * themselves instead, so requests share the server's logger (a pino child costs microseconds).
 */
export function sameLogger<L>(logger: L): L {
  return logger;
}

/** One line per request, written when it completes; fastify's own pair of lines is off. */
export class OneLinePerRequest extends LogController {
  readonly #everyRequest: boolean;

  /** @param everyRequest false: only requests answered with a 5xx. */
  constructor(everyRequest = true) {
    super({ requestIdLogLabel: 'requestId' });
    this.#everyRequest = everyRequest;
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: { statusCode: number; elapsedTime: number }): void {
    if (!this.#everyRequest && reply.statusCode < 500) return;
    const params = request.params as { key?: string } | undefined;
    const line = {
      requestId: request.id,
      method: request.method,
      url: request.url.split('?')[0],
      ...(params?.key === undefined ? {} : { key: params.key }),
      ...(request.admission === undefined ? {} : { tenant: request.admission.tenant }),
      ...(request.trace?.recording === true ? { traceId: request.trace.traceId } : {}),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 1000) / 1000,
    };
    if (error !== null && reply.statusCode >= 500) request.log.error(line, 'request');
    else request.log.info(line, 'request');
  }
}

const ALWAYS_ANSWERED = new Set(['/v2/health/live', '/v2/health/ready', '/metrics']);

export interface Drain {
  /** Starts turning new requests away. */
  begin(): void;
}

/** Request ids, the metrics endpoint and the shutdown drain (per-request metrics are the infer routes' own hook). */
export function installObservability(app: FastifyInstance, metrics: Metrics, replica: { readonly name: string }): Drain {
  let draining = false;
  // Callback-style hooks: they run on every request, and async ones cost a promise each.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // Behind a key-affinity proxy, which replica answered (placement is the proxy's; this makes it visible).
    reply.header('x-modelgate-replica', replica.name);
    if (draining && !ALWAYS_ANSWERED.has(request.url.split('?')[0] as string)) {
      reply.header('connection', 'close');
      done(withRetryAfter(new ShuttingDownError(), 1));
      return;
    }
    done();
  });
  // Answers sent while draining close their connection, so keep-alive clients of
  // in-flight requests do not hold the shutdown open until the grace period ends.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });
  app.get('/metrics', { schema: { tags: ['metrics'], summary: 'Prometheus metrics (text format).' } }, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return { begin() { draining = true; } };
}
