/**
 * The Open Inference Protocol's REST endpoints: thin adapters over the data plane.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify';
import { chooseEncoding, compress, COMPRESSION_THRESHOLD, HEADER_LENGTH } from '@modelgate/client/codec';
import { InvalidInputError } from '../errors.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { Trace } from '../trace.ts';
import { publicError } from './error-handler.ts';
import { readInferBody } from '../protocol/body.ts';
import { routeHeaders, type DataPlane } from '../inference/dataplane.ts';
import { socketSubject, type Admission, type Tenants } from '../tenants/tenants.ts';
import {
  errors, InferRequestBody, InferResponseBody, Key, KeyVersion, LiveResponse, ModelMetadataResponse,
  ModelReadyResponse, ReadyResponse, ServerMetadataResponse, StatisticsResponse, validatedInHandler,
} from './schemas.ts';

interface KeyParams { key: string; version?: string }

export interface V2Options {
  dataPlane: DataPlane;
  bodyLimit: number;
  /** Told the key, status, seconds and tenant ('' without tenants) of every inference request answered, however it ended. */
  observe(key: string, status: number, seconds: number, tenant: string): void;
  /** With tenants: who may call the data plane (undefined: anyone). */
  tenants?: Tenants | undefined;
  /** With tracing: each inference request gets a span, continuing the caller's traceparent. */
  tracing?: Tracing | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant's admission of a data-plane call, with tenants. */
    admission: Admission | undefined;
    /** An inference request's span, with tracing. */
    trace: Trace | undefined;
  }
}

/**
 * With tenants, a data-plane call is identified (401), checked against the tenant's allow list
 * (403) and limits (429) before anything else is read, and counted in progress until its
 * connection is done with it. Every answer past identification names the tenant.
 */
function admitted(tenants: Tenants, everyKey = false): onRequestHookHandler {
  return (request, reply, done) => {
    try {
      const header = request.headers.authorization;
      const admission = tenants.call(header, header === undefined ? socketSubject(request.raw.socket) : undefined, everyKey ? undefined : (request.params as KeyParams).key);
      request.admission = admission;
      reply.header('x-modelgate-tenant', admission.tenant);
      reply.raw.once('close', () => admission.done());
      done();
    } catch (error) {
      const tenant = (error as { tenant?: string }).tenant;
      if (tenant !== undefined) reply.header('x-modelgate-tenant', tenant);
      done(error as Error);
    }
  };
}

/** A tenant's API key where the configuration has a tenants section; without one, the data plane is open. */
const dataPlaneSecurity: Array<Record<string, string[]>> = [{ tenantKey: [] }, {}];

function tenantOf(request: FastifyRequest): string {
  return request.admission?.tenant ?? '';
}

/**
 * A mesh that hashes on the x-model-key header (Istio, Envoy) places a request by that header: one that
 * names another key than the path would be served on a replica chosen for another model, so it is refused.
 */
function sameKey(request: FastifyRequest, _reply: unknown, done: HookHandlerDoneFunction): void {
  const named = request.headers['x-model-key'];
  const { key } = request.params as KeyParams;
  if (named === undefined || named === key) {
    done();
    return;
  }
  const shown = Array.isArray(named) ? 'more than one value' : `'${named.length > 64 ? `${named.slice(0, 64)}…` : named}'`;
  done(new InvalidInputError(`x-model-key: the header names ${shown}, the path the key '${key}': send the path's key, or no header`));
}

export const v2Routes: FastifyPluginAsync<V2Options> = async (app, { dataPlane, bodyLimit, observe, tenants, tracing }) => {
  app.decorateRequest('admission', undefined);
  app.decorateRequest('trace', undefined);
  const perKey = tenants === undefined ? sameKey : [sameKey, admitted(tenants)];
  // Inference bodies arrive as bytes whatever their Content-Type (Triton's Python client sends none):
  // the protocol layer tells JSON from binary, inflates compressed bodies and refuses what it cannot read.
  app.removeAllContentTypeParsers();
  const asBytes = (_request: unknown, body: Buffer, done: (error: null, body: Buffer) => void) => done(null, body);
  // The usual types by name: fastify finds those from the header string as it is, while the
  // catch-all parses the header into a media type on every request.
  app.addContentTypeParser(['application/json', 'application/octet-stream'], { parseAs: 'buffer' }, asBytes);
  app.addContentTypeParser('*', { parseAs: 'buffer' }, asBytes);

  app.get('/v2/health/live', {
    schema: { tags: ['health'], summary: 'Liveness: 200 while the process can serve.', response: { 200: LiveResponse } },
  }, async () => ({ live: true }));

  app.get('/v2/health/ready', {
    schema: { tags: ['health'], summary: 'Readiness: 200 once start-up is done and until shutdown begins.', response: { 200: ReadyResponse, 503: ReadyResponse } },
  }, async (_request, reply) => {
    const ready = dataPlane.ready;
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  app.get('/v2', {
    schema: { tags: ['metadata'], summary: 'Server metadata.', response: { 200: ServerMetadataResponse } },
  }, async () => dataPlane.serverMetadata());

  // Statistics first: '/v2/models/stats' is a static path and wins over the ':key' one, as in Triton.
  app.get('/v2/models/stats', {
    schema: { tags: ['metadata'], summary: 'Statistics of every key (Triton\'s statistics extension).', response: { 200: StatisticsResponse, ...errors(401, 429) }, security: dataPlaneSecurity },
    ...(tenants === undefined ? {} : { onRequest: admitted(tenants, true) }),
  }, async (request) => dataPlane.statistics(undefined, undefined, tenants === undefined ? undefined : (key) => tenants.allows(tenantOf(request), key)));

  for (const prefix of ['/v2/models/:key', '/v2/models/:key/versions/:version']) {
    const params = prefix.includes(':version') ? KeyVersion : Key;
    const versioned = prefix.includes(':version') ? ' (Triton clients name a model version; every key serves version 1.)' : '';
    const route = `${prefix.replace(/:(\w+)/g, '{$1}')}/infer`;

    app.get<{ Params: KeyParams }>(prefix, {
      onRequest: perKey,
      schema: {
        tags: ['metadata'], summary: `Metadata of a key: its input and output tensors.${versioned}`, params,
        response: { 200: ModelMetadataResponse, ...errors(401, 403, 404, 429, 503) },
        security: dataPlaneSecurity,
      },
    }, async (request) => dataPlane.modelMetadata(request.params.key, request.params.version));

    app.get<{ Params: KeyParams }>(`${prefix}/ready`, {
      onRequest: perKey,
      schema: {
        tags: ['health'], summary: `Whether a key can serve now (a lazily loaded model counts as ready unless its last load failed).${versioned}`, params,
        response: { 200: ModelReadyResponse, ...errors(401, 403, 404, 429, 503) },
        security: dataPlaneSecurity,
      },
    }, async (request) => {
      const { key, version } = request.params;
      dataPlane.target(key, version).assertReady();
      return { name: key, ready: true };
    });

    app.get<{ Params: KeyParams }>(`${prefix}/stats`, {
      onRequest: perKey,
      schema: {
        tags: ['metadata'], summary: `Statistics of a key (Triton's statistics extension).${versioned}`, params,
        response: { 200: StatisticsResponse, ...errors(401, 403, 404, 429) },
        security: dataPlaneSecurity,
      },
    }, async (request) => dataPlane.statistics(request.params.key, request.params.version));

    app.post<{ Params: KeyParams }>(`${prefix}/infer`, {
      onRequest: perKey,
      validatorCompiler: validatedInHandler,
      // A hook of this route only: nothing to look up per request, and other routes pay nothing.
      onResponse: (request, reply, done) => {
        observe(request.params.key, reply.statusCode, reply.elapsedTime / 1000, tenantOf(request));
        if (request.trace?.recording === true) {
          request.trace.set({ 'http.response.status_code': reply.statusCode });
          request.trace.end();
        }
        done();
      },
      schema: {
        tags: ['inference'],
        summary: `Run inference on a key: V2 JSON tensors, or Triton's binary tensor extension.${versioned}`,
        description: INFER_DESCRIPTION,
        consumes: ['application/json', 'application/octet-stream'],
        params,
        headers: Type.Object({
          [HEADER_LENGTH]: Type.Optional(Type.String({ description: 'Binary extension: length of the JSON header at the start of the (decompressed) body.' })),
          'content-encoding': Type.Optional(Type.String({ description: 'gzip or deflate: the body is compressed.' })),
          'accept-encoding': Type.Optional(Type.String({ description: 'gzip or deflate: answers of 1 KiB or more come back compressed.' })),
          'x-model-key': Type.Optional(Type.String({ description: 'For meshes that place requests by this header (consistent hashing): must name the key in the path, else 400.' })),
        }),
        body: Type.Ref(InferRequestBody),
        response: { 200: InferResponseBody, ...errors(400, 401, 403, 404, 413, 415, 429, 500, 503, 504) },
        security: dataPlaneSecurity,
      },
    }, async (request, reply) => {
      const header = (name: string) => {
        const value = request.headers[name.toLowerCase()];
        return Array.isArray(value) ? value[0] : value;
      };
      if (tracing === undefined) return infer(request, reply, header);
      const trace = tracing.request(header, () => ({
        'modelgate.key': request.params.key,
        'modelgate.request_id': request.id,
        'http.request.method': 'POST',
        'http.route': route,
        'url.path': request.url.split('?')[0],
        ...(request.admission === undefined ? {} : { 'modelgate.tenant': request.admission.tenant }),
      }), performance.now() - reply.elapsedTime);
      // An unrecorded span only carries the trace on to remote calls: nothing to end or mark.
      if (!trace.recording) return infer(request, reply, header, trace);
      request.trace = trace;
      // onResponse ends it with the status; 'close' without an answer sent means the client went away.
      reply.raw.once('close', () => {
        if (!reply.sent) trace.fail('the client went away before the answer');
        setImmediate(() => trace.end());
      });
      try {
        return await infer(request, reply, header, trace);
      } catch (error) {
        trace.fail(publicError(error as FastifyError).message);
        throw error;
      }
    });
  }

  /** Reads, runs and answers an inference request; `trace` is its span, with tracing. */
  async function infer(request: FastifyRequest<{ Params: KeyParams }>, reply: FastifyReply, header: (name: string) => string | undefined, trace?: Trace): Promise<FastifyReply> {
    const payload = await readInferBody({
      // No body and no Content-Type: fastify runs no parser at all.
      body: (request.body as Buffer | undefined) ?? Buffer.alloc(0),
      contentType: header('content-type'),
      contentEncoding: header('content-encoding'),
      headerLength: header(HEADER_LENGTH),
      limit: bodyLimit,
    });
    // A client that goes away before its answer drops its queued work.
    const gone = new AbortController();
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
    const { key, version } = request.params;
    const { body, headerLength, context } = await dataPlane.infer(key, payload, { header, signal: gone.signal, version, flow: request.admission?.flow, trace });
    request.admission?.waited(context.timing?.waitMs ?? 0);
    for (const [name, value] of routeHeaders(context)) reply.header(name, value);
    if (headerLength === undefined) reply.type('application/json; charset=utf-8');
    else reply.type('application/octet-stream').header(HEADER_LENGTH, String(headerLength));
    // A string's length never exceeds its byte length: no need to measure its UTF-8.
    const encoding = body.length >= COMPRESSION_THRESHOLD ? chooseEncoding(header('accept-encoding')) : undefined;
    reply.header('vary', 'accept-encoding');
    if (encoding === undefined) return reply.send(body);
    return reply.header('content-encoding', encoding).send(await compress(body, encoding));
  }
};

const INFER_DESCRIPTION = [
  'JSON: Content-Type application/json (or none, as Triton\'s clients send). INT64/UINT64 elements may be plain JSON integers of any size, read exactly, or decimal strings.',
  'Binary extension: Inference-Header-Content-Length N; the body is N bytes of this JSON (binary inputs carry parameters.binary_data_size instead of data), then the inputs\' little-endian bytes in order (BYTES: 4-byte length + bytes each). With N = 0 (or no header, with Content-Type application/octet-stream) the body is the single input\'s raw data. Outputs with parameters.binary_data (or all, with request parameter binary_data_output) come back the same way, with the response header Inference-Header-Content-Length.',
  'Content-Encoding gzip or deflate compresses the request; Accept-Encoding asks for a compressed answer. Output parameter classification: k answers that output as its top k classes, "value:index" BYTES.',
].join('\n\n');
