#!/usr/bin/env node
/**
 * `modelgate serve --config <file> [--host H] [--port N]`: the only place
 * that listens and handles signals.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { buildApp } from './app.ts';
import { loadConfigFile } from './config/load.ts';
import type { GatewayConfig } from './config/schema.ts';
import { ConfigError } from './errors.ts';
import { LogStream } from './telemetry/log-stream.ts';

const USAGE = `Usage: modelgate serve [--config <file>] [--host <address>] [--port <number>]

  --config  configuration file, YAML (or JSON if it ends in .json); default config/gateway.yaml
  --host    address to listen on; overrides server.host
  --port    port to listen on; overrides server.port
`;

interface ServeArgs {
  config: string;
  host: string | undefined;
  port: number | undefined;
}

/** Parses the command line; throws a usage message on anything it does not know. */
function parseCommandLine(argv: readonly string[]): ServeArgs | 'help' {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', default: 'config/gateway.yaml' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  if (positionals.length !== 1 || positionals[0] !== 'serve') throw new Error(`expected the command 'serve'\n\n${USAGE}`);
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) throw new Error(`--port: '${values.port}' is not a port number (0 to 65535)`);
  }
  return { config: values.config, host: values.host, port };
}

function withOverrides(config: GatewayConfig, args: ServeArgs): GatewayConfig {
  return {
    ...config,
    server: { ...config.server, host: args.host ?? config.server.host, port: args.port ?? config.server.port },
  };
}

/** Resolves with an exit code, or undefined once the server is listening. */
async function main(): Promise<number | undefined> {
  let args: ServeArgs | 'help';
  let config: GatewayConfig;
  try {
    args = parseCommandLine(process.argv.slice(2));
    if (args === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    config = withOverrides(loadConfigFile(args.config), args);
  } catch (error) {
    process.stderr.write(`modelgate: ${error instanceof ConfigError || error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }

  // Log lines are written in batches (a write per request cost a quarter of a tiny model's
  // throughput); what is still buffered is written out when the process exits, however it exits.
  const log = new LogStream();
  process.on('exit', () => {
    try {
      log.flushSync();
    } catch { /* stdout already gone */ }
  });
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp(config, { logger: { level: process.env.MODELGATE_LOG_LEVEL ?? config.server.logLevel, stream: log } });
  } catch (error) {
    process.stderr.write(`modelgate: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  // Connections with no request in progress (a proxy's pre-opened sockets, idle keep-alive ones)
  // are closed as soon as shutdown begins: otherwise one that never sends holds the exit for the
  // whole grace period. Busy ones close after their answer (it says Connection: close).
  const inProgress = new Map<Socket, number>();
  let closing = false;
  // With TLS, requests arrive on the TLS socket, which 'secureConnection' hands over.
  // With TLS 1.3 the server sees the handshake end after the client does: a client that connected
  // just before shutdown arrives here after the idle ones were ended, and would hold the exit.
  app.server.on(config.tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
    if (closing) {
      socket.end();
      return;
    }
    inProgress.set(socket, 0);
    socket.once('close', () => inProgress.delete(socket));
  });
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    inProgress.set(socket, (inProgress.get(socket) ?? 0) + 1);
    response.once('close', () => {
      const left = (inProgress.get(socket) ?? 1) - 1;
      inProgress.set(socket, left);
      if (closing && left === 0) socket.end();
    });
  });
  const shutdown = (signal: string) => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    closing = true;
    // Not ready at once, so load balancers stop sending; new requests get 503 while in-flight ones finish.
    app.drain.begin();
    app.dataPlane.ready = false;
    app.log.info({ signal, graceMs: config.server.shutdownGraceMs }, 'shutting down');
    for (const [socket, requests] of inProgress) if (requests === 0) socket.end();
    setTimeout(() => {
      app.log.warn('grace period over: closing the connections still open');
      app.server.closeAllConnections();
    }, config.server.shutdownGraceMs).unref();
    app.close().then(() => process.exit(0), (error: unknown) => {
      app.log.error({ err: error }, 'error while shutting down');
      process.exit(1);
    });
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  // A renewed certificate: new connections use it, open ones keep theirs.
  process.on('SIGHUP', () => {
    if (config.tls === undefined) {
      app.log.info('SIGHUP: no server.tls to reload');
      return;
    }
    try {
      app.reloadTls();
      app.log.info('TLS certificate reloaded');
    } catch (error) {
      app.log.error({ reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message }, 'TLS certificate not reloaded: the files cannot be read; the previous certificate stays');
    }
  });

  try {
    await app.listen({ host: config.server.host, port: config.server.port });
    if (config.grpc !== undefined) {
      const host = config.grpc.host ?? config.server.host;
      const port = await app.grpc.listen(host, config.grpc.port);
      app.log.info({ host, port }, 'gRPC listening');
    }
  } catch (error) {
    app.log.error({ err: error }, 'cannot start');
    await app.close().catch(() => undefined);
    return 1;
  }
  return undefined;
}

const code = await main();
if (code !== undefined) process.exit(code);
