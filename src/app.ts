/**
 * Builds the gateway from a validated configuration. It never listens: the
 * CLI does that, and tests use `inject` or listen on port 0 themselves.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { GatewayConfig } from './config/schema.ts';
import { OnnxExecutor } from './executor/onnx.ts';
import type { Executor } from './executor/types.ts';
import { adminRoutes } from './http/admin.ts';
import { installErrorHandling } from './http/error-handler.ts';
import { ErrorBody } from './http/schemas.ts';
import { v2Routes } from './http/v2.ts';
import { DataPlane } from './protocol/dataplane.ts';
import { ModelRegistry } from './registry/registry.ts';
import { ModelTarget } from './routing/model-target.ts';
import { loadPlugins } from './routing/plugins.ts';
import { Router } from './routing/router.ts';
import { readState } from './routing/state-file.ts';
import type { Target } from './routing/target.ts';

export interface BuildOptions {
  /** fastify's logger option. Default: off. */
  logger?: FastifyServerOptions['logger'];
  /** Runs the models. Default: onnxruntime in this process. */
  executor?: Executor;
}

declare module 'fastify' {
  interface FastifyInstance {
    readonly registry: ModelRegistry;
    readonly dataPlane: DataPlane;
    readonly router: Router;
    /** The admin token in force (generated when the configuration has none). */
    readonly adminToken: string;
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function buildApp(config: GatewayConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.server.bodyLimitBytes,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  installErrorHandling(app);
  // Only JSON bodies are part of the protocol: anything else is 415, not parsed as text.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ErrorBody);

  const executor = options.executor ?? new OnnxExecutor(config.modelRepository);
  const registry = new ModelRegistry(config.models, config.registry, executor, {
    loaded: (model, milliseconds) => app.log.info({ model, milliseconds: Math.round(milliseconds * 10) / 10 }, 'model loaded'),
    loadFailed: (model, reason) => app.log.warn({ model, reason }, 'model failed to load'),
    evicted: (model, reason) => app.log.info({ model, reason }, 'model evicted'),
  });
  const modelTargets = new Map<string, Target>();
  for (const model of config.models) {
    for (const key of model.keys) modelTargets.set(key, new ModelTarget(key, model.name, registry));
  }
  const router = new Router(modelTargets, config.routes, {
    stateFile: config.stateFile,
    state: config.stateFile === undefined ? undefined : await readState(config.stateFile),
    log: (message, details) => app.log.info(details, message),
    plugins: await loadPlugins(config.plugins),
  });
  const dataPlane = new DataPlane(() => router.table(), { name: 'modelgate', version: VERSION, extensions: [] });

  let adminToken = config.admin.token;
  if (adminToken === undefined) {
    adminToken = randomBytes(24).toString('base64url');
    app.log.warn(`admin.token is not configured; the admin API token for this run is ${adminToken}`);
  }
  app.decorate('registry', registry);
  app.decorate('dataPlane', dataPlane);
  app.decorate('router', router);
  app.decorate('adminToken', adminToken);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'modelgate', version: VERSION, description: 'Open Inference Protocol (KServe V2) endpoints per key, and the admin API.' },
      tags: [
        { name: 'inference', description: 'V2 inference' },
        { name: 'metadata', description: 'V2 server and model metadata' },
        { name: 'health', description: 'V2 health' },
        { name: 'admin', description: 'Operator API (bearer token)' },
      ],
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(v2Routes, { dataPlane });
  await app.register(adminRoutes, { token: adminToken, registry, router });

  app.addHook('onReady', async () => {
    await registry.loadPinned();
    await router.verify();
    dataPlane.ready = true;
  });
  app.addHook('preClose', async () => {
    dataPlane.ready = false;
  });
  app.addHook('onClose', async () => {
    await registry.close();
  });
  return app;
}
