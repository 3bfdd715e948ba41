/**
 * The admin API. Every route, whatever its method, needs a bearer token
 * (TorchServe's open management API, ShellTorch, is the lesson), and the role
 * the route asks for: read for a GET, admin for a change unless the route says
 * operate (its `config.role`). Every change is audited.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Role } from '../config/schema.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { Router } from '../live/router.ts';
import { remoteStatus, type LiveModels } from '../live/live-models.ts';
import { modelAdmin } from './admin-models.ts';
import { routeAdmin } from './admin-routes.ts';
import { repositoryRoutes } from './repository.ts';
import { errors, ModelListResponse, ModelName, ModelStatusResponse } from './schemas.ts';
import { AdminCredentials, type AdminIdentity, type AuditLog } from './admin-auth.ts';
import { tenantAdmin } from './admin-tenants.ts';
import type { LiveTenants } from '../tenants/live.ts';
import type { Tenants } from '../tenants/tenants.ts';
import type { History } from '../experiments/history.ts';

export { tokenMatches } from './admin-auth.ts';

interface NameParams { name: string }

declare module 'fastify' {
  interface FastifyRequest {
    /** The admin API's caller, once its token is checked. */
    adminIdentity: AdminIdentity | undefined;
  }
  interface FastifyContextConfig {
    /** The role an admin route needs beyond the default (read for GET, admin otherwise). */
    role?: Role;
  }
}

export interface AdminOptions {
  credentials: AdminCredentials;
  audit: AuditLog;
  /** With tenants: their live changes and their counters. */
  tenants?: { live: LiveTenants; directory: Tenants } | undefined;
  registry: ModelRegistry;
  router: Router;
  live: LiveModels;
  maxModelBytes: number;
  /** Each model's requests over time. */
  modelHistory: History;
}

/** The ETag of what an admin change names, by its path: a route, a model or a tenant; null when it does not exist. */
function etagOf(request: FastifyRequest, router: Router, tenants: LiveTenants | undefined): string | null {
  const match = /^\/admin\/(routes|models|tenants)\/([^/?]+)/.exec(request.url);
  if (match === null) return null;
  const name = decodeURIComponent(match[2] as string);
  let version: number | undefined;
  if (match[1] === 'routes') version = router.hasRoute(name) ? router.get(name).version : undefined;
  else if (match[1] === 'models') version = router.modelVersion(name);
  else version = tenants?.list().find((view) => view.name === name)?.version;
  return version === undefined ? null : `"${version}"`;
}

export const adminRoutes: FastifyPluginAsync<AdminOptions> = async (app, { credentials, audit, tenants, registry, router, live, maxModelBytes, modelHistory }) => {
  app.decorateRequest('adminIdentity', undefined);
  const before = new WeakMap<FastifyRequest, string | null>();
  app.addHook('onRequest', async (request) => {
    const identity = credentials.identify(request.headers.authorization);
    request.adminIdentity = identity;
    const reading = request.method === 'GET' || request.method === 'HEAD';
    const role = request.routeOptions.config.role ?? (reading ? 'read' : 'admin');
    AdminCredentials.require(identity, role, `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`);
    if (!reading) before.set(request, etagOf(request, router, tenants?.live));
  });
  app.addHook('onResponse', async (request, reply) => {
    const identity = request.adminIdentity;
    if (identity === undefined || !before.has(request)) return;
    audit.record({
      at: new Date().toISOString(), method: request.method, path: request.url.split('?')[0] as string, status: reply.statusCode,
      role: identity.role, fingerprint: identity.fingerprint, etagBefore: before.get(request) ?? null, etagAfter: etagOf(request, router, tenants?.live),
    });
  });

  const security = [{ bearerAuth: [] }];

  app.get('/admin/whoami', {
    schema: {
      tags: ['admin'], summary: "The caller's role and its token's fingerprint (the console turns read-only for the read role).", security,
      response: { 200: Type.Object({ role: Type.String(), fingerprint: Type.String() }), ...errors(401) },
    },
  }, async (request) => request.adminIdentity as AdminIdentity);

  app.get('/admin/audit', {
    schema: {
      tags: ['admin'], summary: 'The last 1,000 admin changes, newest first: what, when, by which role and token fingerprint, the ETag before and after.', security,
      response: {
        200: Type.Object({
          entries: Type.Array(Type.Object({
            at: Type.String({ format: 'date-time' }), method: Type.String(), path: Type.String(), status: Type.Integer(), role: Type.String(), fingerprint: Type.String(),
            etagBefore: Type.Union([Type.String(), Type.Null()]), etagAfter: Type.Union([Type.String(), Type.Null()]),
          })),
        }),
        ...errors(401),
      },
    },
  }, async () => ({ entries: audit.list() }));

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
    config: { role: 'operate' },
    schema: {
      tags: ['admin'], summary: 'Load a model now (retries at once after a failed load).', security, params: ModelName,
      response: { 200: ModelStatusResponse, ...errors(401, 404, 503) },
    },
  }, async (request) => registry.load(request.params.name));

  app.post<{ Params: NameParams }>('/admin/models/:name/unload', {
    config: { role: 'operate' },
    schema: {
      tags: ['admin'], summary: 'Unload a model; answers once in-flight requests have finished and its session is released.', security, params: ModelName,
      response: { 200: ModelStatusResponse, ...errors(401, 404, 409) },
    },
  }, async (request) => registry.unload(request.params.name));

  await app.register(routeAdmin, { router });
  await app.register(modelAdmin, { live, maxModelBytes, history: modelHistory });
  await app.register(repositoryRoutes, { registry });
  await app.register(tenantAdmin, { tenants });
};
