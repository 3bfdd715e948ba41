/**
 * The operator console's pages and assets, built into dist/console by `npm run build`.
 * The pages hold no data (everything comes from the admin API, with the token the operator
 * types), so they load without a token. Security headers are set by this plugin's own hook,
 * on these routes only: the V2 data plane pays nothing for them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

/** Strict: nothing but this origin, no inline script or style, no eval, never framed. */
export const CONSOLE_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

const HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** dist/console, from dist/http (built) or src/http (run from source after a build). */
function assetsDirectory(): string | undefined {
  for (const candidate of ['../console/', '../../dist/console/']) {
    const directory = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${directory}index.html`)) return directory;
  }
  return undefined;
}

export const consoleRoutes: FastifyPluginAsync = async (app) => {
  app.addHook('onSend', (_request, reply, payload, done) => {
    for (const [name, value] of Object.entries(HEADERS)) reply.header(name, value);
    done(null, payload);
  });
  const directory = assetsDirectory();
  const page = directory === undefined ? undefined : readFileSync(`${directory}index.html`);
  const servePage = async (_request: unknown, reply: FastifyReply) => {
    if (page === undefined) {
      reply.code(503);
      return { error: 'The console is not built: run npm run build' };
    }
    reply.type('text/html; charset=utf-8');
    reply.header('cache-control', 'no-cache');
    return page;
  };
  const schema = { hide: true };
  app.get('/console', { schema }, servePage);
  // Deep links (/console/keys/{key}) are the same page: it reads the path itself.
  app.get('/console/*', { schema }, servePage);
  if (directory !== undefined) {
    await app.register(fastifyStatic, {
      root: directory, prefix: '/console/assets/', decorateReply: false, index: false, allowedPath: (pathName) => !pathName.endsWith('index.html'),
      cacheControl: true, maxAge: 0, etag: true, lastModified: true,
    });
  }
};
