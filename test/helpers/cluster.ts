/**
 * A fleet on this machine, as users run one: modelgate replicas (CLI processes on loopback
 * ports, a configuration written for each), Redis, and nginx or HAProxy in front, their
 * configurations taken from deploy/ with only the addresses rewritten. Used by the cluster
 * tests and `npm run bench:cluster`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { findProgram, freePort, startChild, waitForPort, type Child, type Teardown } from './programs.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli.ts');
export const DEPLOY = path.join(ROOT, 'deploy');

export interface Replica {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** The gRPC port, when the configuration has `grpc`. */
  readonly grpcPort?: number | undefined;
  readonly child: Child;
}

/**
 * Starts `node src/cli.ts serve` with `document` (a configuration, written to `directory`)
 * and waits until it is ready. `env` adds to the process's environment.
 */
export async function startReplica(t: Teardown, directory: string, name: string, document: Record<string, unknown>, env: Record<string, string> = {}): Promise<Replica> {
  mkdirSync(directory, { recursive: true });
  const file = path.join(directory, `${name}.yaml`);
  // Side by side on one host: each replica's gRPC port is a free one.
  const grpcPort = document.grpc === undefined ? undefined : await freePort();
  writeFileSync(file, stringify(grpcPort === undefined ? document : { ...document, grpc: { ...(document.grpc as Record<string, unknown>), port: grpcPort } }));
  const port = await freePort();
  const child = startChild(t, process.execPath, [CLI, 'serve', '--config', file, '--host', '127.0.0.1', '--port', String(port)], {
    ...process.env, HOSTNAME: name, MODELGATE_LOG_LEVEL: 'warn', ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/v2/health/ready`).then((response) => response.ok, () => false);
    if (ready) break;
    if (child.process.exitCode !== null || Date.now() > deadline) throw new Error(`replica ${name} did not start: ${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { name, port, url, grpcPort, child };
}

export interface Proxy {
  readonly url: string;
  /** host:port of the proxy's gRPC listener, where it has one. */
  readonly grpcAddress?: string;
  readonly child: Child;
}

/**
 * nginx over `replicas` with deploy/nginx/modelgate.conf, its servers and port rewritten.
 * `balance`: consistent (as shipped), modulo (`hash` without `consistent`: the control), or
 * roundRobin (no hash).
 */
export async function startNginx(t: Teardown, directory: string, replicas: readonly Replica[], balance: 'consistent' | 'modulo' | 'roundRobin' = 'consistent'): Promise<Proxy> {
  const port = await freePort();
  mkdirSync(directory, { recursive: true });
  let site = readFileSync(path.join(DEPLOY, 'nginx/modelgate.conf'), 'utf8');
  const servers = replicas.map((replica) => `    server 127.0.0.1:${replica.port} max_fails=3 fail_timeout=5s;`).join('\n');
  site = site.replace(/(    server modelgate-\d+:8080[^\n]*\n)+/, `${servers}\n`);
  site = site.replace('listen 8080;', `listen 127.0.0.1:${port};`);
  const grpcPort = await freePort();
  const grpcServers = replicas.map((replica) => `    server 127.0.0.1:${replica.grpcPort ?? 1} max_fails=3 fail_timeout=5s;`).join('\n');
  site = site.replace(/(    server modelgate-\d+:8001[^\n]*\n)+/, `${grpcServers}\n`);
  site = site.replace('listen 8001 http2;', `listen 127.0.0.1:${grpcPort} http2;`);
  if (balance === 'modulo') site = site.replace('hash $modelgate_key consistent;', 'hash $modelgate_key;');
  if (balance === 'roundRobin') site = site.replace('hash $modelgate_key consistent;', '');
  if (!site.includes(`127.0.0.1:${replicas[0]?.port}`) || !site.includes(`127.0.0.1:${port}`)) throw new Error('deploy/nginx/modelgate.conf no longer has the lines this harness rewrites');
  writeFileSync(path.join(directory, 'modelgate.conf'), site);
  const temporary = (name: string) => `${name}_temp_path ${path.join(directory, name)};`;
  writeFileSync(path.join(directory, 'nginx.conf'), [
    'daemon off;', 'worker_processes 1;', `pid ${path.join(directory, 'nginx.pid')};`, `error_log ${path.join(directory, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    `http { access_log off; ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temporary).join(' ')} include ${path.join(directory, 'modelgate.conf')}; }`,
  ].join('\n'));
  const child = startChild(t, findProgram('nginx') as string, ['-p', directory, '-c', path.join(directory, 'nginx.conf'), '-e', path.join(directory, 'error.log')], undefined, 'SIGTERM');
  await waitForPort(port).catch((error: Error) => { throw new Error(`${error.message}: ${child.output()} ${readFileSync(path.join(directory, 'error.log'), 'utf8')}`); });
  return { url: `http://127.0.0.1:${port}`, grpcAddress: `127.0.0.1:${grpcPort}`, child };
}

/** HAProxy over `replicas` with deploy/haproxy/haproxy.cfg; `bounded: false` drops hash-balance-factor. */
export async function startHaproxy(t: Teardown, directory: string, replicas: readonly Replica[], bounded = true): Promise<Proxy> {
  const port = await freePort();
  mkdirSync(directory, { recursive: true });
  let config = readFileSync(path.join(DEPLOY, 'haproxy/haproxy.cfg'), 'utf8');
  const servers = replicas.map((replica) => `    server ${replica.name} 127.0.0.1:${replica.port}`).join('\n');
  config = config.replace(/(    server modelgate-\d+ modelgate-\d+:8080\n?)+/, `${servers}\n`);
  config = config.replace('bind :8080', `bind 127.0.0.1:${port}`);
  // No DNS to ask for loopback addresses.
  config = config.replace(/resolvers dns\n(    [^\n]*\n)+/, '').replace(' resolvers dns', '');
  if (!bounded) config = config.replace(/    hash-balance-factor \d+\n/, '');
  if (!config.includes(`127.0.0.1:${replicas[0]?.port}`)) throw new Error('deploy/haproxy/haproxy.cfg no longer has the lines this harness rewrites');
  const file = path.join(directory, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = startChild(t, findProgram('haproxy') as string, ['-db', '-f', file]);
  await waitForPort(port).catch((error: Error) => { throw new Error(`${error.message}: ${child.output()}`); });
  // Servers start up (rise 2, inter 2s would take 4 s): HAProxy counts them up until a check fails.
  return { url: `http://127.0.0.1:${port}`, child };
}
