/**
 * Live models: create, replace, upload, reload and remove models without a
 * restart. Registered inside the admin plugin, so its bearer check covers
 * every method here.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { ModelSchema, SessionOptionsSchema } from '../config/schema.ts';
import type { LiveModels, ModelView, RemoteView } from '../live/live-models.ts';
import { InvalidInputError } from '../errors.ts';
import { errors, validatedInHandler } from './schemas.ts';
import { HISTORY_WINDOWS, type History } from '../experiments/history.ts';
import { HISTORY_DESCRIPTION, HistoryBuckets, historyQuery, HistoryQuery, type HistoryQueryParams } from './history.ts';

interface NameParams { name: string }
interface ForceQuery { force?: unknown }

/** `?force=true` (or false, or absent), read one way for every route that takes it. */
function forced(query: ForceQuery): boolean {
  const { force } = query;
  if (force === undefined || force === 'false' || force === false) return false;
  if (force === 'true' || force === true) return true;
  throw new InvalidInputError(`force: must be true or false, not '${String(force)}'`);
}

const security = [{ bearerAuth: [] }];
const Name = Type.Object({ name: Type.String({ description: 'A model name.' }) });
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ description: 'Change only if the model is at this version (its ETag); else 412.' })) });
const Force = Type.Object({ force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: apply a new version even though its inputs or outputs differ while a route depends on the model. Default false.' })) });
const { name: _name, ...entryFields } = ModelSchema.properties;
const ModelBody = Type.Object(entryFields, { additionalProperties: false, description: 'A model entry as in the configuration file, without its name (the path names it): an ONNX file (path) or another V2 server (remote).', examples: [{ path: 'iris/v3.onnx', keys: ['iris-v3'] }, { remote: { url: 'http://triton.internal:8000', model: 'resnet50' }, keys: ['resnet'] }] });
const ModelResponse = Type.Object({
  name: Type.String(), keys: Type.Array(Type.String()),
  path: Type.Optional(Type.String()), pinned: Type.Optional(Type.Boolean()), maxQueueSize: Type.Optional(Type.Integer()),
  batching: Type.Optional(Type.Unknown()), session: Type.Optional(SessionOptionsSchema), warmup: Type.Optional(Type.Unknown()),
  remote: Type.Optional(Type.Object({ url: Type.String(), model: Type.String(), timeoutMs: Type.Integer(), connections: Type.Integer() }, { description: 'A remote model: where it is served (its headers are never shown).' })),
  version: Type.Integer({ description: 'Moves with every live change of the model; the ETag is this number, quoted.' }),
  state: Type.String(), inFlight: Type.Optional(Type.Integer()), loads: Type.Optional(Type.Integer()), evictions: Type.Optional(Type.Integer()),
  lastUsedAt: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])),
});

function withEtag(reply: FastifyReply, view: ModelView | RemoteView): ModelView | RemoteView {
  reply.header('etag', `"${view.version}"`);
  return view;
}

export const modelAdmin: FastifyPluginAsync<{ live: LiveModels; maxModelBytes: number; history: History }> = async (app, { live, maxModelBytes, history }) => {
  app.get<{ Params: NameParams; Querystring: HistoryQueryParams }>('/admin/models/:name/stats/history', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: "A model's requests, errors and latency p50/p95/p99 (the time at the model: its queue and its run) in buckets of 10 s, 1 min or 1 h, for the last N buckets.",
      description: HISTORY_DESCRIPTION, security, params: Name, querystring: HistoryQuery,
      response: { 200: Type.Object({ name: Type.String(), window: Type.String(), bucketSeconds: Type.Integer(), buckets: HistoryBuckets }), ...errors(400, 401, 404) },
    },
  }, async (request) => {
    const { name } = request.params;
    live.get(name);
    const { window, last } = historyQuery(request.query);
    return { name, window, bucketSeconds: HISTORY_WINDOWS[window].ms / 1000, buckets: history.buckets(name, window, last) };
  });

  app.get<{ Params: NameParams }>('/admin/models/:name', {
    schema: { tags: ['admin'], summary: 'One model: its definition, version (also as ETag) and state.', security, params: Name, response: { 200: ModelResponse, ...errors(401, 404) } },
  }, async (request, reply) => withEtag(reply, live.get(request.params.name)));

  app.put<{ Params: NameParams; Headers: { 'if-match'?: string }; Querystring: ForceQuery }>('/admin/models/:name', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'],
      summary: 'Create (201) or replace (200) a model. Its file is loaded before anything points at it (422 if it does not load); a resident model\'s new version loads beside the old and takes over when ready.',
      security, params: Name, headers: IfMatch, querystring: Force, body: ModelBody,
      response: { 200: ModelResponse, 201: ModelResponse, ...errors(400, 401, 409, 412, 422) },
    },
  }, async (request, reply) => {
    const { created, view } = await live.put(request.params.name, request.body, request.headers['if-match'], forced(request.query));
    return reply.code(created ? 201 : 200).send(withEtag(reply, view));
  });

  app.put<{ Params: NameParams; Headers: { 'if-match'?: string }; Querystring: ForceQuery }>('/admin/models/:name/file', {
    bodyLimit: maxModelBytes,
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'],
      summary: 'Upload a model file (application/octet-stream, up to admin.maxModelBytes): written into the repository under a name the gateway chooses, loaded, then the model (created with keys [name] if new, 201) points at it.',
      consumes: ['application/octet-stream'], security, params: Name, headers: IfMatch, querystring: Force,
      response: { 200: ModelResponse, 201: ModelResponse, ...errors(400, 401, 409, 412, 413, 415, 422) },
    },
  }, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const { created, view } = await live.upload(request.params.name, body, request.headers['if-match'], forced(request.query));
    return reply.code(created ? 201 : 200).send(withEtag(reply, view));
  });

  app.post<{ Params: NameParams; Querystring: ForceQuery }>('/admin/models/:name/reload', {
    schema: {
      tags: ['admin'], summary: 'Load the model\'s file again beside the running version and swap to it when ready; a failed load leaves the old version serving (422).',
      security, params: Name, querystring: Force, response: { 200: ModelResponse, ...errors(401, 404, 409, 422) },
    },
  }, async (request, reply) => withEtag(reply, await live.reload(request.params.name, forced(request.query))));

  app.delete<{ Params: NameParams; Headers: { 'if-match'?: string } }>('/admin/models/:name', {
    schema: {
      tags: ['admin'], summary: 'Remove a model (409 while a route targets it): its keys answer 404 at once; answers once its in-flight requests have finished.',
      security, params: Name, headers: IfMatch, response: { 204: Type.Null(), ...errors(401, 404, 409, 412) },
    },
  }, async (request, reply) => {
    await live.remove(request.params.name, request.headers['if-match']);
    return reply.code(204).send();
  });
};
