/**
 * The gateway's own TLS, with certificates this test makes with openssl: HTTPS from a real
 * client, a certificate rotated by SIGHUP while a connection stays open, client certificates
 * required and refused, a tenant bound to a certificate subject, gRPC over TLS; and CORS.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import t from 'tap';
import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { Agent, request } from 'undici';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { AUTH, makeRepository, scaleModel, scaleRequest, TOKEN, writeFiles } from '../helpers/gateway.ts';
import { InferenceService } from '../helpers/grpc.ts';
import { findProgram, freePort } from '../helpers/programs.ts';

const openssl = findProgram('openssl');

/** P-256 keys: made in milliseconds, where RSA-2048 takes a good part of a second each. */
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

/** A CA, two server certificates for 127.0.0.1 (the second for rotation) and a client certificate, in `dir`. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync(openssl as string, args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', ...EC_KEY, '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test-ca');
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['server-1', 'server-2']) {
    run('req', ...EC_KEY, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'san.ext');
  }
  run('req', ...EC_KEY, '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/O=Example/CN=team-a');
  run('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2');
  // A client certificate from an authority the gateway does not trust.
  run('req', '-x509', ...EC_KEY, '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=team-a');
  copyFileSync(path.join(dir, 'server-1.pem'), path.join(dir, 'server.pem'));
  copyFileSync(path.join(dir, 'server-1.key'), path.join(dir, 'server.key'));
}

const read = (dir: string, file: string) => execFileSync('cat', [path.join(dir, file)]);

/** The CN of the certificate a fresh TLS connection gets, and the connection. */
async function handshake(port: number, ca: Buffer, client?: { cert: Buffer; key: Buffer }, alpn?: string[]): Promise<{ socket: TLSSocket; cn: string }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...client, ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) });
  await once(socket, 'secureConnect');
  return { socket, cn: String(socket.getPeerCertificate().subject.CN) };
}

/** One HTTP/1.1 request over an open TLS socket; the status and body. */
function over(socket: TLSSocket, line: string, body?: string): Promise<string> {
  const headers = body === undefined ? '' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  socket.write(`${line} HTTP/1.1\r\nhost: localhost\r\n${headers}\r\n${body ?? ''}`);
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += String(chunk);
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      const end = text.indexOf('\r\n\r\n');
      if (length === undefined || end === -1 || Buffer.byteLength(text) < end + 4 + Number(length)) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

t.test('HTTPS with a certificate rotated by SIGHUP: new connections get the new one, an open connection keeps serving', { skip: openssl === undefined ? 'openssl is not installed (Debian package openssl)' : false }, async (t) => {
  const dir = t.testdir();
  makeCertificates(dir);
  writeFiles(dir, { 'models/lin.onnx': scaleModel(2) });
  const grpcPort = await freePort();
  writeFileSync(path.join(dir, 'g.yaml'), [
    'modelRepository: models', 'models:', '  - name: lin', '    path: lin.onnx',
    'server:', '  port: 0', '  tls:', '    cert: server.pem', '    key: server.key', 'grpc:', `  port: ${grpcPort}`, '',
  ].join('\n'));
  const cli = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../dist/cli.js'), 'serve', '--config', path.join(dir, 'g.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { cli.kill('SIGKILL'); });
  let stdout = '';
  cli.stdout.on('data', (chunk) => { stdout += chunk; });
  cli.stderr.on('data', (chunk) => { stdout += chunk; });
  let port = 0;
  for (let waited = 0; port === 0 && waited < 15_000; waited += 20) {
    port = Number(/Server listening at https:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1] ?? 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.ok(port > 0, `listening over HTTPS ${port > 0 ? '' : stdout}`);
  const ca = read(dir, 'ca.pem');

  const kept = await handshake(port, ca);
  t.equal(kept.cn, 'server-1');
  for (let waited = 0; !stdout.includes('gRPC listening') && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  const grpcBefore = await handshake(grpcPort, ca, undefined, ['h2']);
  t.equal(grpcBefore.cn, 'server-1', 'gRPC over TLS, the same certificate');
  grpcBefore.socket.destroy();
  t.match(await over(kept.socket, 'GET /v2/health/ready'), /^HTTP\/1\.1 200/);

  // A renewal: the files replaced, then SIGHUP.
  copyFileSync(path.join(dir, 'server-2.pem'), path.join(dir, 'server.pem'));
  copyFileSync(path.join(dir, 'server-2.key'), path.join(dir, 'server.key'));
  cli.kill('SIGHUP');
  for (let waited = 0; !stdout.includes('TLS certificate reloaded') && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  t.match(stdout, /TLS certificate reloaded/);
  const fresh = await handshake(port, ca);
  t.equal(fresh.cn, 'server-2', 'a new connection gets the new certificate');
  fresh.socket.destroy();
  const grpcAfter = await handshake(grpcPort, ca, undefined, ['h2']);
  t.equal(grpcAfter.cn, 'server-2', 'and so does a new gRPC connection');
  grpcAfter.socket.destroy();
  t.match(await over(kept.socket, 'POST /v2/models/lin/infer', JSON.stringify(scaleRequest(4))), /^HTTP\/1\.1 200[\s\S]*"data":\[8\]/, 'the open connection, on the old certificate, still serves');
  t.equal(kept.socket.getPeerCertificate().subject.CN, 'server-1');
  kept.socket.destroy();

  // A renewal half done (a key that does not exist): the certificate in force stays.
  writeFileSync(path.join(dir, 'server.key'), 'not a key');
  cli.kill('SIGHUP');
  for (let waited = 0; !stdout.includes('TLS certificate not reloaded') && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  t.match(stdout, /TLS certificate not reloaded/);
  t.equal((await handshake(port, ca)).cn, 'server-2', 'still serving with the last good one');
  cli.kill('SIGTERM');
  t.equal((await once(cli, 'exit'))[0], 0);
  t.notMatch(stdout, /grace period over/, 'the connection made just before SIGTERM, with no request, did not hold the exit');
});

t.test('client certificates required: none, or one from another authority, is refused at the handshake; a tenant is bound to its subject', { skip: openssl === undefined ? 'openssl is not installed (Debian package openssl)' : false }, async (t) => {
  const dir = t.testdir();
  makeCertificates(dir);
  writeFiles(dir, { 'models/lin.onnx': scaleModel(2) });
  const repository = path.join(dir, 'models');
  const config = validateConfig({
    admin: { token: TOKEN }, modelRepository: repository, models: [{ name: 'lin', path: 'lin.onnx' }],
    server: { tls: { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.pem'), clientCerts: 'require' } },
    tenants: [{ name: 'team-a', certSubject: 'O=Example,CN=team-a', allow: ['lin'] }],
    grpc: { port: 0 },
  }, repository, {});
  const app = await buildApp(config, { executor: new OnnxExecutor(repository) });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const ca = read(dir, 'ca.pem');
  const client = { cert: read(dir, 'client.pem'), key: read(dir, 'client.key') };

  /** What a connection's first request meets: an answer, or the handshake's refusal. */
  const attempt = (options: { cert?: Buffer; key?: Buffer }) => new Promise<string>((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options });
    socket.once('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? error.message));
    socket.once('data', (chunk) => resolve(`answered ${String(chunk).split('\r\n')[0]}`));
    socket.once('close', () => resolve('closed'));
    socket.once('secureConnect', () => socket.write('GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n'));
  });
  const refused = await attempt({});
  t.match(refused, /CERTIFICATE_REQUIRED|ECONNRESET|closed/i, `without a certificate: ${refused}`);
  const rogueRefused = await attempt({ cert: read(dir, 'rogue.pem'), key: read(dir, 'rogue.key') });
  t.match(rogueRefused, /UNKNOWN_CA|ECONNRESET|closed/i, `a certificate from another authority: ${rogueRefused}`);
  t.match(await attempt(client), /^answered HTTP\/1\.1 200/, 'the certificate the authority signed');

  const agent = new Agent({ connect: { ca, ...client, servername: 'localhost' } });
  t.teardown(() => agent.close());
  const answer = await request(`https://127.0.0.1:${port}/v2/models/lin/infer`, { method: 'POST', dispatcher: agent, body: JSON.stringify(scaleRequest(3)), headers: { 'content-type': 'application/json' } });
  t.equal(answer.statusCode, 200, 'no API key: the certificate names the tenant');
  t.equal(answer.headers['x-modelgate-tenant'], 'team-a');
  t.same(((await answer.body.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]?.data, [6]);
  const admin = await request(`https://127.0.0.1:${port}/admin/models`, { dispatcher: agent, headers: AUTH });
  t.equal(admin.statusCode, 200);
  await admin.body.dump();

  // gRPC over the same TLS: the same certificate names the tenant.
  const grpcPort = await app.grpc.listen('127.0.0.1', 0);
  const stub = new InferenceService(`127.0.0.1:${grpcPort}`, credentials.createSsl(ca, client.key, client.cert), { 'grpc.ssl_target_name_override': 'localhost' });
  t.teardown(() => stub.close());
  const call = (method: string, message: unknown) => new Promise<unknown>((resolve, reject) => {
    ((stub as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: ServiceError | null, response: unknown) => void) => void>)[method] as (request: unknown, metadata: Metadata, callback: (error: ServiceError | null, response: unknown) => void) => void)
      .call(stub as Client, message, new Metadata(), (error, response) => (error === null ? resolve(response) : reject(error)));
  });
  t.same(await call('ModelReady', { name: 'lin' }), { ready: true }, 'gRPC over TLS, the tenant named by the certificate');
  const denied = await call('ModelReady', { name: 'other' }).catch((error: ServiceError) => ({ code: error.code, details: error.details }));
  t.same(denied, { code: 7, details: "This API key may not call key 'other'" }, 'PERMISSION_DENIED outside allow');
});

t.test('CORS on the data plane only: an allowed origin gets its headers and preflight, another origin and /admin get none', async (t) => {
  const repository = makeRepository(t, { 'lin.onnx': scaleModel(2) });
  const app = await buildApp(validateConfig({
    admin: { token: TOKEN }, modelRepository: repository, models: [{ name: 'lin', path: 'lin.onnx' }],
    server: { cors: { origins: ['https://app.example.com'], maxAgeSeconds: 600 } },
  }, repository, {}), { executor: new OnnxExecutor(repository) });
  t.teardown(() => app.close());
  await app.ready();
  const preflight = await app.inject({ method: 'OPTIONS', url: '/v2/models/lin/infer', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' } });
  t.equal(preflight.statusCode, 204);
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
  t.match(String(preflight.headers['access-control-allow-methods']), /POST/);
  t.equal(preflight.headers['access-control-allow-headers'], 'content-type,authorization');
  t.equal(preflight.headers['access-control-max-age'], '600');
  const simple = await app.inject({ method: 'POST', url: '/v2/models/lin/infer', payload: scaleRequest(1), headers: { origin: 'https://app.example.com' } });
  t.equal(simple.statusCode, 200);
  t.equal(simple.headers['access-control-allow-origin'], 'https://app.example.com');
  t.match(String(simple.headers['access-control-expose-headers']), /x-modelgate-variant/);
  t.equal(simple.headers['access-control-allow-credentials'], undefined, 'credentials off by default');

  const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith('access-control-'));
  const stranger = await app.inject({ method: 'POST', url: '/v2/models/lin/infer', payload: scaleRequest(1), headers: { origin: 'https://evil.example.com' } });
  t.equal(stranger.statusCode, 200, 'the server answers; the browser keeps the answer from the page');
  t.same(corsHeaders(stranger.headers), [], 'no CORS headers for an origin not listed');
  const strangerPreflight = await app.inject({ method: 'OPTIONS', url: '/v2/models/lin/infer', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' } });
  t.same(corsHeaders(strangerPreflight.headers), []);
  for (const url of ['/admin/models', '/console']) {
    const answer = await app.inject({ method: 'OPTIONS', url, headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } });
    t.same(corsHeaders(answer.headers), [], `${url}: no CORS`);
    const get = await app.inject({ url, headers: { origin: 'https://app.example.com', ...AUTH } });
    t.same(corsHeaders(get.headers), [], `${url}: no CORS on a GET either`);
  }
});
