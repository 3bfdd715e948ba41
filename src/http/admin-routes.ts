/**
 * Live route changes and their statistics. Registered inside the admin
 * plugin, so its bearer check covers every method here.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { CascadeSchema, EnsembleSchema, SwitchSchema } from '../config/graph-schema.ts';
import { ROUTE_KINDS, RouteBodySchema, RoutePatchSchema, SequenceSchema, SplitSchema } from '../config/schema.ts';
import type { Router, RouteView } from '../live/router.ts';
import { RouteConflictError } from '../errors.ts';
import { command } from '../experiments/rollouts.ts';
import { errors, validatedInHandler } from './schemas.ts';
import { HISTORY_DESCRIPTION, HistoryBuckets, historyQuery, HistoryQuery, type HistoryQueryParams } from './history.ts';
import { AdminCredentials } from './admin-auth.ts';

interface KeyParams { key: string }

const security = [{ bearerAuth: [] }];
const Key = Type.Object({ key: Type.String({ description: 'The route key.' }) });
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ description: 'Change only if the route is at this version (its ETag); else 412.' })) });
const RouteBody = { ...RouteBodySchema, examples: [{ split: { variants: [{ target: 'iris-v1', weight: 90 }, { target: 'iris-v2', weight: 10 }], stickyHeader: 'x-user-id' } }] };
const RouteResponse = Type.Object({
  key: Type.String(),
  kind: Type.Union(ROUTE_KINDS.map((kind) => Type.Literal(kind)), { description: 'Which field holds the route.' }),
  version: Type.Integer({ description: 'Changes with every live change; the ETag is this number, quoted.' }),
  split: Type.Optional(SplitSchema),
  sequence: Type.Optional(SequenceSchema),
  ensemble: Type.Optional(EnsembleSchema),
  switch: Type.Optional(SwitchSchema),
  cascade: Type.Optional(CascadeSchema),
});
const Percentiles = Type.Object({ p50: Type.Union([Type.Number(), Type.Null()]), p95: Type.Union([Type.Number(), Type.Null()]), p99: Type.Union([Type.Number(), Type.Null()]) });
const Interval = (description: string) => Type.Union([
  Type.Object({ value: Type.Number(), low95: Type.Number(), high95: Type.Number() }),
  Type.Null(),
], { description });
const entry = {
  target: Type.String(), requests: Type.Integer(), errors: Type.Integer(), latencyMs: Percentiles,
  errorRate: Interval('errors / requests with its 95% Wilson score interval; null with no requests.'),
  tenants: Type.Optional(Type.Record(Type.String(), Type.Object({ requests: Type.Integer(), errors: Type.Integer() }), { description: 'With tenants: the requests and errors of each tenant that called.' })),
};
const Window = Type.Object({
  since: Type.String({ format: 'date-time' }),
  variants: Type.Optional(Type.Array(Type.Object({
    ...entry,
    errorRateDifference: Type.Optional(Interval('This variant\'s error rate minus the first variant\'s, with its 95% Newcombe interval: while it contains 0, the data do not yet tell the two apart. Absent on the first variant; null while either has no requests.')),
  }), { description: "A split's variants." })),
  members: Type.Optional(Type.Array(Type.Object(entry), { description: "An ensemble's members, by member name." })),
  cases: Type.Optional(Type.Array(Type.Object(entry), { description: "A switch's cases, by index (and default): the requests each took." })),
  steps: Type.Optional(Type.Array(Type.Object({
    ...entry,
    rows: Type.Integer({ description: 'Rows the step ran on.' }),
    accepted: Type.Integer({ description: 'Rows it answered.' }),
    acceptedShare: Type.Union([Type.Number(), Type.Null()], { description: 'accepted / rows; null before any row.' }),
  }), { description: "A cascade's steps, by index." })),
  shadow: Type.Optional(Type.Object({
    target: Type.String(), sent: Type.Integer(), dropped: Type.Integer(), errors: Type.Integer(), compared: Type.Integer(),
    agreement: Type.Union([Type.Number(), Type.Null()], { description: 'Share of compared shadow answers that agreed with the primary.' }),
    agreementInterval: Interval('The agreement with its 95% Wilson score interval; null before any comparison.'),
    latencyMs: Percentiles,
  })),
});
const StatsResponse = Type.Object({ key: Type.String(), version: Type.Integer(), sinceChange: Window, sinceStart: Window });
const NodeHistory = (description: string) => Type.Optional(Type.Array(Type.Object({ target: Type.String(), buckets: HistoryBuckets }), { description }));
const HistoryResponse = Type.Object({
  key: Type.String(),
  window: Type.String(),
  bucketSeconds: Type.Integer(),
  variants: NodeHistory("A split's variants."),
  members: NodeHistory("An ensemble's members, by member name."),
  cases: NodeHistory("A switch's cases, by index (and default)."),
  steps: NodeHistory("A sequence's steps by name, or a cascade's by index."),
});

function present(view: RouteView) {
  return { key: view.key, kind: view.kind, version: view.version, [view.kind]: view.route[view.kind] };
}

/** Whether a patch only sets the weights of the split's variants, the same targets in the same order. */
function onlyWeights(view: RouteView, body: unknown): boolean {
  const split = (body as { split?: Record<string, unknown> } | null)?.split;
  if (body === null || typeof body !== 'object' || Object.keys(body).length !== 1 || split === undefined || Object.keys(split).join() !== 'variants') return false;
  const variants = split.variants as Array<{ target?: unknown }> | undefined;
  const current = view.route.split?.variants ?? [];
  return Array.isArray(variants) && variants.length === current.length && variants.every((variant, index) => variant?.target === current[index]?.target);
}

function withEtag(reply: FastifyReply, view: RouteView) {
  reply.header('etag', `"${view.version}"`);
  return present(view);
}

export const routeAdmin: FastifyPluginAsync<{ router: Router }> = async (app, { router }) => {
  app.get('/admin/routes', {
    schema: { tags: ['admin'], summary: 'Every split and sequence route, with its version.', security, response: { 200: Type.Object({ routes: Type.Array(RouteResponse) }), ...errors(401) } },
  }, async () => ({ routes: router.list().map(present) }));

  app.get<{ Params: KeyParams }>('/admin/routes/:key', {
    schema: { tags: ['admin'], summary: 'One route as configured, with its version (also as ETag).', security, params: Key, response: { 200: RouteResponse, ...errors(401, 404) } },
  }, async (request, reply) => withEtag(reply, router.get(request.params.key)));

  app.put<{ Params: KeyParams; Headers: { 'if-match'?: string } }>('/admin/routes/:key', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Create (201) or replace (200) a route. Its new targets are loaded before it goes live; nothing changes on an error.',
      security, params: Key, headers: IfMatch, body: RouteBody, response: { 200: RouteResponse, 201: RouteResponse, ...errors(400, 401, 409, 412) },
    },
  }, async (request, reply) => {
    const { created, view } = await router.put(request.params.key, request.body, request.headers['if-match']);
    return reply.code(created ? 201 : 200).send(withEtag(reply, view));
  });

  app.patch<{ Params: KeyParams; Headers: { 'if-match'?: string } }>('/admin/routes/:key', {
    // Weights are traffic, an operator's: any other change of the route needs admin (checked below).
    config: { role: 'operate' },
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: "Change some fields of a split (e.g. its variants' weights); the rest stay.",
      security, params: Key, headers: IfMatch, body: RoutePatchSchema,
      response: { 200: RouteResponse, ...errors(400, 401, 404, 409, 412) },
    },
  }, async (request, reply) => {
    const identity = request.adminIdentity;
    if (identity?.role === 'operate' && !onlyWeights(router.get(request.params.key), request.body)) {
      AdminCredentials.require(identity, 'admin', "A patch of anything but the variants' weights");
    }
    return withEtag(reply, await router.patch(request.params.key, request.body, request.headers['if-match']));
  });

  app.delete<{ Params: KeyParams; Headers: { 'if-match'?: string } }>('/admin/routes/:key', {
    schema: {
      tags: ['admin'], summary: 'Delete a route (409 while another route targets it).', security, params: Key, headers: IfMatch,
      response: { 204: Type.Null(), ...errors(401, 404, 409, 412) },
    },
  }, async (request, reply) => {
    await router.remove(request.params.key, request.headers['if-match']);
    return reply.code(204).send();
  });

  app.get<{ Params: KeyParams }>('/admin/routes/:key/stats', {
    schema: {
      tags: ['admin'], summary: 'Per-variant requests, errors and latency since the last change (or reset) and since start; shadow agreement.',
      security, params: Key, response: { 200: StatsResponse, ...errors(401, 404) },
    },
  }, async (request) => router.stats(request.params.key));

  app.get<{ Params: KeyParams; Querystring: HistoryQueryParams }>('/admin/routes/:key/stats/history', {
    validatorCompiler: validatedInHandler,
    schema: {
      tags: ['admin'], summary: 'Per-variant (or per-node) requests, errors and latency p50/p95/p99 in buckets of 10 s, 1 min or 1 h, for the last N buckets.',
      description: HISTORY_DESCRIPTION, security, params: Key, querystring: HistoryQuery, response: { 200: HistoryResponse, ...errors(400, 401, 404) },
    },
  }, async (request) => {
    const { window, last } = historyQuery(request.query);
    return router.history(request.params.key, window, last);
  });

  app.post<{ Params: KeyParams & { action: 'pause' | 'resume' | 'abort' } }>('/admin/routes/:key/rollout/:action', {
    config: { role: 'operate' },
    schema: {
      tags: ['admin'], summary: 'Pause a progressing rollout (its weight holds), resume a paused one, or abort one (roll back: the candidate gets no traffic, reason "aborted").',
      security, params: Type.Object({ key: Key.properties.key, action: Type.Union([Type.Literal('pause'), Type.Literal('resume'), Type.Literal('abort')]) }),
      response: { 200: RouteResponse, ...errors(400, 401, 404, 409) },
    },
  }, async (request, reply) => {
    const { key, action } = request.params;
    const route = router.get(key).route;
    if (route.split?.rollout === undefined) throw new RouteConflictError(`route '${key}' has no rollout`);
    await router.updateRollout(key, (current) => command(current, action));
    return withEtag(reply, router.get(key));
  });

  app.post<{ Params: KeyParams }>('/admin/routes/:key/stats/reset', {
    config: { role: 'operate' },
    schema: { tags: ['admin'], summary: 'Start a new statistics window.', security, params: Key, response: { 200: StatsResponse, ...errors(401, 404) } },
  }, async (request) => {
    router.resetStats(request.params.key);
    return router.stats(request.params.key);
  });
};
