/**
 * Tenants through the admin API: list, read, create or replace (keys as digests only), delete,
 * and each one's counters. Registered inside the admin plugin (its token and role checks).
 * Without a tenants section in the configuration the data plane is open and these answer 409.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { TenantBodySchema, TenantSchema } from '../config/schema.ts';
import { TenantConflictError, TenantNotFoundError } from '../errors.ts';
import type { LiveTenants, TenantView } from '../tenants/live.ts';
import type { Tenants } from '../tenants/tenants.ts';
import { errors, validatedInHandler } from './schemas.ts';

interface NameParams { name: string }

const security = [{ bearerAuth: [] }];
const Name = Type.Object({ name: Type.String({ description: 'The tenant.' }) });
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ description: 'Change only if the tenant is at this version (its ETag); else 412.' })) });
const TenantResponse = Type.Object({
  name: Type.String(),
  version: Type.Integer({ description: 'Changes with every live change (0: as configured); the ETag is this number, quoted.' }),
  tenant: TenantSchema,
});
const Body = { ...TenantBodySchema, examples: [{ apiKeys: ['sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'], allow: ['tenant-a', 'iris*'], rateLimit: { requestsPerSecond: 100, burst: 200 }, maxInFlight: 32, share: 1 }] };
const StatsResponse = Type.Object({
  name: Type.String(),
  requests: Type.Integer({ description: 'Calls admitted on this replica.' }),
  forbidden: Type.Integer({ description: '403: calls of a key outside its allow list.' }),
  rateLimited: Type.Integer({ description: '429 from its rate limit.' }),
  overInFlight: Type.Integer({ description: '429 from maxInFlight.' }),
  inFlight: Type.Integer({ description: 'Its calls in progress now.' }),
  queueWait: Type.Object({
    requests: Type.Integer({ description: 'Inference requests that waited for a model (a load, a slot, a place in a batch or run queue).' }),
    meanMs: Type.Union([Type.Number(), Type.Null()]),
    maxMs: Type.Number(),
  }),
  unauthorized: Type.Integer({ description: "401s on this replica: not attributable to a tenant (no valid key), so the gateway's total." }),
});

function withEtag(reply: FastifyReply, view: TenantView) {
  reply.header('etag', `"${view.version}"`);
  return view;
}

export const tenantAdmin: FastifyPluginAsync<{ tenants: { live: LiveTenants; directory: Tenants } | undefined }> = async (app, { tenants }) => {
  const live = (): LiveTenants => {
    if (tenants === undefined) throw new TenantConflictError('tenants are off: the configuration has no tenants section, so the data plane is open; add one (it may be empty) to manage tenants');
    return tenants.live;
  };

  app.get('/admin/tenants', {
    schema: {
      tags: ['admin'], summary: 'Every tenant (keys as digests), and whether tenants are on.', security,
      response: { 200: Type.Object({ enabled: Type.Boolean(), tenants: Type.Array(TenantResponse) }), ...errors(401) },
    },
  }, async () => ({ enabled: tenants !== undefined, tenants: tenants?.live.list() ?? [] }));

  app.get<{ Params: NameParams }>('/admin/tenants/:name', {
    schema: { tags: ['admin'], summary: 'One tenant, with its version (also as ETag).', security, params: Name, response: { 200: TenantResponse, ...errors(401, 404, 409) } },
  }, async (request, reply) => withEtag(reply, live().get(request.params.name)));

  app.put<{ Params: NameParams; Headers: { 'if-match'?: string } }>('/admin/tenants/:name', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Create (201) or replace (200) a tenant; in force at once on this replica, on the others within the store\'s propagation time. API keys as sha256:<hex> digests only.',
      security, params: Name, headers: IfMatch, body: Body, response: { 200: TenantResponse, 201: TenantResponse, ...errors(400, 401, 409, 412) },
    },
  }, async (request, reply) => {
    const { created, view } = await live().put(request.params.name, request.body, request.headers['if-match']);
    return reply.code(created ? 201 : 200).send(withEtag(reply, view));
  });

  app.delete<{ Params: NameParams; Headers: { 'if-match'?: string } }>('/admin/tenants/:name', {
    schema: {
      tags: ['admin'], summary: "Delete a tenant: its keys are refused from now on (401); its calls in progress finish.", security, params: Name, headers: IfMatch,
      response: { 204: Type.Null(), ...errors(401, 404, 409, 412) },
    },
  }, async (request, reply) => {
    await live().remove(request.params.name, request.headers['if-match']);
    return reply.code(204).send();
  });

  app.get<{ Params: NameParams }>('/admin/tenants/:name/stats', {
    schema: {
      tags: ['admin'], summary: "A tenant's calls on this replica since start: admitted, refused (403, 429), in progress, and what its requests waited for models.", security, params: Name,
      response: { 200: StatsResponse, ...errors(401, 404, 409) },
    },
  }, async (request) => {
    const { name } = request.params;
    live().get(name);
    const directory = (tenants as { directory: Tenants }).directory;
    const stats = directory.stats(name);
    if (stats === undefined) throw new TenantNotFoundError(name);
    return {
      name, requests: stats.requests, forbidden: stats.forbidden, rateLimited: stats.rateLimited, overInFlight: stats.overInFlight, inFlight: stats.inFlight,
      queueWait: { requests: stats.waited, meanMs: stats.waited === 0 ? null : stats.waitMs / stats.waited, maxMs: stats.maxWaitMs },
      unauthorized: directory.unauthorized,
    };
  });
};
