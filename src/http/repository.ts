/**
 * Triton's model repository extension, mapped onto the registry: the index,
 * and load (make resident) and unload (release) by model name. Registered
 * inside the admin plugin, so the bearer token guards it (Triton leaves these
 * open, which is how model servers get taken over). Nothing here chooses a
 * file: load parameters that would (Triton's `config`, `file:`) are refused.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { parseJson } from '@modelgate/client/codec';
import { InvalidInputError } from '../errors.ts';
import type { ModelRegistry, ModelStatus } from '../registry/registry.ts';
import { errors, validatedInHandler } from './schemas.ts';

interface NameParams { name: string }

const security = [{ bearerAuth: [] }];
const Name = Type.Object({ name: Type.String({ description: 'A model name (not a key).' }) });
const IndexEntry = Type.Object({
  name: Type.String(),
  version: Type.String(),
  state: Type.Union([Type.Literal('READY'), Type.Literal('UNAVAILABLE'), Type.Literal('LOADING')]),
  reason: Type.String(),
});

/** A body as Triton's clients send it: empty, or a JSON object (their HTTP library sends no Content-Type). */
function body(raw: unknown, allowed: ReadonlySet<string>, where: string): Record<string, unknown> {
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8').trim() : '';
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch (error) {
    throw new InvalidInputError(`${where}: the body is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidInputError(`${where}: the body must be a JSON object`);
  for (const key of Object.keys(parsed)) {
    if (!allowed.has(key)) throw new InvalidInputError(`${where}: unknown field '${key}'`);
  }
  return parsed as Record<string, unknown>;
}

export function indexEntry(status: ModelStatus, failure: string | undefined) {
  const state = status.state === 'resident' ? 'READY' as const : status.state === 'loading' ? 'LOADING' as const : 'UNAVAILABLE' as const;
  const reason = status.state === 'failed' ? `load failed: ${failure ?? 'unknown error'}` : status.state === 'unloaded' ? 'unloaded' : '';
  return { name: status.name, version: '1', state, reason };
}

export const repositoryRoutes: FastifyPluginAsync<{ registry: ModelRegistry }> = async (app, { registry }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, raw, done) => done(null, raw));

  app.post('/v2/repository/index', {
    // A POST that only reads.
    config: { role: 'read' },
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Every model with its state (Triton\'s repository extension); {"ready": true} lists the resident ones only.', security,
      body: Type.Optional(Type.Object({ ready: Type.Optional(Type.Boolean()) })),
      response: { 200: Type.Array(IndexEntry), ...errors(400, 401) },
    },
  }, async (request) => {
    const { ready } = body(request.body, new Set(['ready']), 'repository index');
    if (ready !== undefined && typeof ready !== 'boolean') throw new InvalidInputError("repository index: 'ready' must be a boolean");
    const entries = registry.status().map((status) => indexEntry(status, registry.failureReason(status.name)));
    return ready === true ? entries.filter((entry) => entry.state === 'READY') : entries;
  });

  app.post<{ Params: NameParams }>('/v2/repository/models/:name/load', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Load a model now, retrying at once after a failed load (Triton\'s repository extension).', security, params: Name,
      response: { 200: Type.Object({}), ...errors(400, 401, 404, 503) },
    },
  }, async (request) => {
    const { parameters } = body(request.body, new Set(['parameters']), `load '${request.params.name}'`);
    if (parameters !== undefined && (parameters === null || typeof parameters !== 'object' || Object.keys(parameters).length > 0)) {
      throw new InvalidInputError(`load '${request.params.name}': load parameters (a config or files) are not supported: models come from the model repository`);
    }
    await registry.load(request.params.name);
    return {};
  });

  app.post<{ Params: NameParams }>('/v2/repository/models/:name/unload', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Unload a model once its in-flight requests finish (Triton\'s repository extension); a pinned model refuses (409).', security, params: Name,
      response: { 200: Type.Object({}), ...errors(400, 401, 404, 409) },
    },
  }, async (request) => {
    const { parameters } = body(request.body, new Set(['parameters']), `unload '${request.params.name}'`);
    const dependents = (parameters as { unload_dependents?: unknown } | undefined)?.unload_dependents;
    if (parameters !== undefined && (parameters === null || typeof parameters !== 'object' || Object.keys(parameters).some((key) => key !== 'unload_dependents') || (dependents !== undefined && typeof dependents !== 'boolean'))) {
      throw new InvalidInputError(`unload '${request.params.name}': the only parameter is 'unload_dependents', a boolean`);
    }
    await registry.unload(request.params.name);
    return {};
  });
};
