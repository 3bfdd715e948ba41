/**
 * The Open Inference Protocol's REST endpoints: thin adapters over the data plane.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { HEADER_LENGTH } from '../protocol/binary.ts';
import type { DataPlane } from '../protocol/dataplane.ts';
import {
  errors, InferRequestBody, InferResponseBody, Key, LiveResponse, ModelMetadataResponse,
  ModelReadyResponse, ReadyResponse, ServerMetadataResponse, validatedInHandler,
} from './schemas.ts';

interface KeyParams { key: string }

export const v2Routes: FastifyPluginAsync<{ dataPlane: DataPlane }> = async (app, { dataPlane }) => {
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

  app.get<{ Params: KeyParams }>('/v2/models/:key', {
    schema: {
      tags: ['metadata'], summary: 'Metadata of a key: its input and output tensors.', params: Key,
      response: { 200: ModelMetadataResponse, ...errors(404, 503) },
    },
  }, async (request) => dataPlane.modelMetadata(request.params.key));

  app.get<{ Params: KeyParams }>('/v2/models/:key/ready', {
    schema: {
      tags: ['health'], summary: 'Whether a key can serve now (a lazily loaded model counts as ready unless its last load failed).', params: Key,
      response: { 200: ModelReadyResponse, ...errors(404, 503) },
    },
  }, async (request) => {
    const { key } = request.params;
    dataPlane.target(key).assertReady();
    return { name: key, ready: true };
  });

  app.post<{ Params: KeyParams }>('/v2/models/:key/infer', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['inference'],
      summary: 'Run inference on a key: V2 JSON tensors, or Triton\'s binary tensor extension.',
      description: 'Binary extension: Content-Type application/octet-stream, Inference-Header-Content-Length N; the body is N bytes of this JSON (binary inputs carry parameters.binary_data_size instead of data), then the inputs\' little-endian bytes in order (BYTES: 4-byte length + bytes each). With N = 0 (or no header) the body is the single input\'s raw data. Outputs with parameters.binary_data (or all, with request parameter binary_data_output) come back the same way, with the response header Inference-Header-Content-Length.',
      consumes: ['application/json', 'application/octet-stream'],
      params: Key,
      headers: Type.Object({ [HEADER_LENGTH]: Type.Optional(Type.String({ description: 'Binary extension: length of the JSON header at the start of the body.' })) }),
      body: Type.Ref(InferRequestBody),
      response: { 200: InferResponseBody, ...errors(400, 404, 413, 415, 500, 503) },
    },
  }, async (request, reply) => {
    const header = (name: string) => {
      const value = request.headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    };
    const payload = Buffer.isBuffer(request.body) ? { binary: request.body, headerLength: header(HEADER_LENGTH) } : { json: request.body };
    // A client that goes away before its answer drops its queued work.
    const gone = new AbortController();
    reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort(); });
    const { body, headerLength, context } = await dataPlane.infer(request.params.key, payload, header, gone.signal);
    if (context.decisions.length > 0) reply.header('x-modelgate-variant', context.decisions.join(','));
    if (headerLength === undefined) return reply.type('application/json; charset=utf-8').send(body);
    return reply.type('application/octet-stream').header(HEADER_LENGTH, String(headerLength)).send(body);
  });
};
