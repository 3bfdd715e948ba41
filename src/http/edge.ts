/**
 * The gateway's own TLS and CORS: HTTPS (and gRPC over TLS) from certificate files re-read on
 * SIGHUP, so a certificate renewed by cert-manager or a cron job is used by new connections
 * without a restart or a dropped request; and CORS for browser applications calling the data
 * plane, never /admin or /console.
 */
import { readFileSync } from 'node:fs';
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import type { CorsConfig, TlsConfig } from '../config/schema.ts';

/** What a TLS server needs of the configured files, read now. */
export interface TlsFiles {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly ca?: Buffer | undefined;
}

export function readTlsFiles(tls: Readonly<TlsConfig>): TlsFiles {
  return { key: readFileSync(tls.key), cert: readFileSync(tls.cert), ...(tls.ca === undefined ? {} : { ca: readFileSync(tls.ca) }) };
}

/** node:https options: the files, and whether client certificates are asked for or required. */
export function httpsOptions(tls: Readonly<TlsConfig>) {
  return {
    ...readTlsFiles(tls),
    requestCert: tls.clientCerts !== undefined,
    rejectUnauthorized: tls.clientCerts === 'require',
  };
}

/** The answer headers a browser application may read. */
const EXPOSED = ['x-request-id', 'x-modelgate-variant', 'x-modelgate-case', 'x-modelgate-tenant', 'x-modelgate-replica', 'inference-header-content-length', 'retry-after'];

/** CORS on the data plane only: an origin not listed, or a path outside /v2, gets no CORS headers at all. */
export async function installCors(app: FastifyInstance, config: Readonly<CorsConfig>): Promise<void> {
  const origins = new Set(config.origins);
  await app.register(cors, {
    hideOptionsRoute: true,
    delegator: (request, callback) => {
      const origin = request.headers.origin;
      const allowed = origin !== undefined && origins.has(origin) && (request.url === '/v2' || request.url.startsWith('/v2/'));
      callback(null, {
        origin: allowed ? origin : false,
        credentials: config.credentials,
        methods: ['GET', 'HEAD', 'POST'],
        exposedHeaders: EXPOSED,
        ...(config.maxAgeSeconds === undefined ? {} : { maxAge: config.maxAgeSeconds }),
      });
    },
  });
}
