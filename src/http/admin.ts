/**
 * The admin API. Every route, whatever its method, needs the bearer token:
 * TorchServe's open management API (ShellTorch) is the lesson.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { UnauthorizedError } from '../errors.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { Router } from '../live/router.ts';
import { remoteStatus, type LiveModels } from '../live/live-models.ts';
import { modelAdmin } from './admin-models.ts';
import { routeAdmin } from './admin-routes.ts';
import { repositoryRoutes } from './repository.ts';
import { errors, ModelListResponse, ModelName, ModelStatusResponse } from './schemas.ts';

interface NameParams { name: string }

export interface AdminOptions {
  token: string;
  registry: ModelRegistry;
  router: Router;
  live: LiveModels;
  maxModelBytes: number;
}

/** Compares digests, so neither the token's content nor its length shows in the timing. */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const match = /^Bearer ([^\s]+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256').update(match?.[1] ?? '').digest();
  const wanted = createHash('sha256').update(expected).digest();
  return timingSafeEqual(given, wanted) && match !== null;
}

export const adminRoutes: FastifyPluginAsync<AdminOptions> = async (app, { token, registry, router, live, maxModelBytes }) => {
  app.addHook('onRequest', async (request) => {
    if (!tokenMatches(token, request.headers.authorization)) {
      throw new UnauthorizedError(request.headers.authorization === undefined ? 'Admin API needs a bearer token' : 'Admin token is not valid');
    }
  });

  const security = [{ bearerAuth: [] }];

  app.get('/admin/models', {
    schema: { tags: ['admin'], summary: 'Every configured model with its state.', security, response: { 200: ModelListResponse, ...errors(401) } },
  }, async () => ({
    models: [
      ...registry.status().map((model) => {
        const reason = model.state === 'failed' ? registry.failureReason(model.name) : undefined;
        return reason === undefined ? model : { ...model, reason };
      }),
      ...[...live.remotes()].map(remoteStatus),
    ],
    capacity: registry.capacity(),
  }));

  app.post<{ Params: NameParams }>('/admin/models/:name/load', {
    schema: {
      tags: ['admin'], summary: 'Load a model now (retries at once after a failed load).', security, params: ModelName,
      response: { 200: ModelStatusResponse, ...errors(401, 404, 503) },
    },
  }, async (request) => registry.load(request.params.name));

  app.post<{ Params: NameParams }>('/admin/models/:name/unload', {
    schema: {
      tags: ['admin'], summary: 'Unload a model; answers once in-flight requests have finished and its session is released.', security, params: ModelName,
      response: { 200: ModelStatusResponse, ...errors(401, 404, 409) },
    },
  }, async (request) => registry.unload(request.params.name));

  await app.register(routeAdmin, { router });
  await app.register(modelAdmin, { live, maxModelBytes });
  await app.register(repositoryRoutes, { registry });
};
