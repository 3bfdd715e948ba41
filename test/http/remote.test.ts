/**
 * Remote targets against a real V2 server: a second modelgate process on a
 * loopback port, reached over sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { ModelgateClient } from '@modelgate/client';
import { freePort } from '../../bench/ports.ts';
import { validateConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { addMulModel, identityModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, infer, makeRepository, metricsOf, scaleModel, scaleRequest, startGateway, TOKEN, writeFiles } from '../helpers/gateway.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A modelgate process serving f32, addmul (INT64), bytes and three (y = 3x); stopped when the test ends. */
async function startRemote(t: Parameters<typeof makeRepository>[0], port?: number): Promise<{ url: string; port: number; child: ChildProcess; stop: () => Promise<void> }> {
  // Its own folder: the test's fixture folder is the local gateway's repository.
  const directory = mkdtempSync(path.join(tmpdir(), 'modelgate-remote-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  writeFiles(directory, { 'f32.onnx': identityModel('float32', ['n']), 'addmul.onnx': addMulModel('int64'), 'bytes.onnx': identityModel('string', ['n']), 'three.onnx': scaleModel(3) });
  writeFileSync(path.join(directory, 'remote.json'), JSON.stringify({
    modelRepository: '.', admin: { token: 'remote-token-0123456789' }, server: { logLevel: 'error' },
    models: [{ name: 'f32', path: 'f32.onnx' }, { name: 'addmul', path: 'addmul.onnx' }, { name: 'bytes', path: 'bytes.onnx' }, { name: 'three', path: 'three.onnx' }],
  }));
  const chosen = port ?? await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'serve', '--config', path.join(directory, 'remote.json'), '--port', String(chosen)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.teardown(stop);
  const url = `http://127.0.0.1:${chosen}`;
  const probe = new ModelgateClient({ url, maxRetries: 0 });
  try {
    for (let attempt = 0; ; attempt++) {
      if (await probe.serverReady().catch(() => false)) break;
      if (attempt > 200) throw new Error('the remote modelgate did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await probe.close();
  }
  return { url, port: chosen, child, stop };
}

function remoteModels(url: string) {
  return [
    { name: 'r-f32', remote: { url, model: 'f32' }, keys: ['rf32'] },
    { name: 'r-addmul', remote: { url, model: 'addmul' } },
    { name: 'r-bytes', remote: { url, model: 'bytes' } },
    { name: 'r-three', remote: { url, model: 'three', timeoutMs: 2000 } },
  ];
}

t.test('exact values through a remote, both encodings; metadata from the remote; the local name answers', async (t) => {
  const remote = await startRemote(t);
  const { app } = await buildGateway(t, { 'two.onnx': scaleModel(2) }, { models: [{ name: 'two', path: 'two.onnx' }, ...remoteModels(remote.url)] });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const client = new ModelgateClient({ url });
  t.teardown(() => client.close());
  t.same(await client.metadata('rf32'), { name: 'rf32', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] });
  for (const binary of [true, false]) {
    const f32 = await client.infer('rf32', [{ name: 'x', datatype: 'FP32', shape: [3], data: new Float32Array([0.1, -2.5, 3.4028234663852886e38]) }], { binary });
    t.equal(f32.modelName, 'r-f32', 'model_name is the local name');
    t.same(Array.from(f32.outputs[0]?.data as Float32Array), Array.from(new Float32Array([0.1, -2.5, 3.4028234663852886e38])));
    const a = new BigInt64Array([2n ** 62n, -(2n ** 60n) - 1n]);
    const b = new BigInt64Array([1n, 3n]);
    const sum = await client.infer('r-addmul', [{ name: 'a', datatype: 'INT64', shape: [2], data: a }, { name: 'b', datatype: 'INT64', shape: [2], data: b }], { binary, outputs: ['sum'] });
    t.same(Array.from(sum.outputs[0]?.data as BigInt64Array), [2n ** 62n + 1n, -(2n ** 60n) + 2n], 'INT64 beyond 2^53, exact');
    const bytes = await client.infer('r-bytes', [{ name: 'x', datatype: 'BYTES', shape: [3], data: ['hello', '', 'ünïcödé'] }], { binary });
    t.same(bytes.outputs[0]?.data, ['hello', '', 'ünïcödé']);
  }
  const bad = await infer(app, 'rf32', { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] });
  t.equal(bad.statusCode, 400, 'validated against the remote\'s metadata before any call');
});

t.test('a split between a local and a remote model; a chain from local into remote and back', async (t) => {
  const remote = await startRemote(t);
  const { app } = await buildGateway(t, { 'two.onnx': scaleModel(2) }, {
    models: [{ name: 'two', path: 'two.onnx' }, ...remoteModels(remote.url)],
    routes: [
      { key: 'ab', split: { variants: [{ target: 'two', weight: 1 }, { target: 'r-three', weight: 1 }] } },
      { key: 'chain', sequence: { steps: [{ name: 'first', target: 'two' }, { name: 'far', target: 'r-three' }, { name: 'last', target: 'two' }] } },
    ],
  });
  const factors = new Set<number>();
  for (let i = 0; i < 40; i++) factors.add((await infer(app, 'ab', scaleRequest(1))).json().outputs[0].data[0]);
  t.same([...factors].sort(), [2, 3], 'both variants answered');
  const stats = app.router.stats('ab').sinceStart.variants ?? [];
  t.same(stats.map((variant) => variant.errors), [0, 0]);
  t.equal(stats.reduce((sum, variant) => sum + variant.requests, 0), 40);
  const chained = await infer(app, 'chain', scaleRequest(1.5));
  t.equal(chained.statusCode, 200);
  t.same(chained.json().outputs[0].data, [1.5 * 2 * 3 * 2]);
});

t.test('a stuck remote is bounded by the request\'s deadline: 504', async (t) => {
  const sockets = new Set<import('node:net').Socket>();
  const stuck: Server = createServer((socket) => { sockets.add(socket); });
  await new Promise<void>((resolve) => stuck.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    stuck.close(() => resolve());
  }));
  const { port } = stuck.address() as { port: number };
  const { app } = await buildGateway(t, {}, { models: [{ name: 'stuck', remote: { url: `http://127.0.0.1:${port}`, model: 'm' } }] });
  t.equal((await app.inject({ url: '/v2/health/ready' })).statusCode, 200, 'the gateway started with the remote not answering');
  const started = Date.now();
  const response = await infer(app, 'stuck', { parameters: { timeout: 300_000 }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] });
  t.equal(response.statusCode, 504);
  t.match(response.json(), { error: /^The request's deadline passed while it waited for model 'stuck'/ });
  t.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
  t.notMatch(response.body, String(port), 'the remote\'s address is not shown');
});

t.test('a remote killed under traffic fails fast, harms no local key, and is served again once back', async (t) => {
  const remote = await startRemote(t);
  const { app } = await buildGateway(t, { 'two.onnx': scaleModel(2) }, { models: [{ name: 'two', path: 'two.onnx' }, ...remoteModels(remote.url)] });
  t.equal((await infer(app, 'r-three', scaleRequest(1))).statusCode, 200);
  await remote.stop();
  const codes: number[] = [];
  for (let i = 0; i < 12; i++) codes.push((await infer(app, 'r-three', scaleRequest(1))).statusCode);
  t.ok(codes.every((code) => code === 502 || code === 503), `502 then 503: ${codes.join(',')}`);
  t.ok(codes.slice(-3).every((code) => code === 503), 'the breaker is open: failing fast');
  const fast = Date.now();
  const open = await infer(app, 'r-three', scaleRequest(1));
  t.equal(open.statusCode, 503);
  t.ok(Number(open.headers['retry-after']) >= 1);
  t.ok(Date.now() - fast < 200, 'fast');
  t.notMatch(open.body, remote.url);
  t.equal((await app.inject({ url: '/v2/models/r-three/ready' })).statusCode, 503, 'readiness of the key reports the remote');
  t.equal((await app.inject({ url: '/v2/health/ready' })).statusCode, 200, 'the gateway stays ready');
  t.match(await metricsOf(app), /modelgate_remote_breaker_open\{model="r-three"\} 1/);
  t.same((await infer(app, 'two', scaleRequest(2))).json().outputs[0].data, [4], 'local keys unharmed');
  await startRemote(t, remote.port);
  let served = 0;
  const deadline = Date.now() + 10_000;
  while (served === 0 && Date.now() < deadline) {
    if ((await infer(app, 'r-three', scaleRequest(1))).statusCode === 200) served += 1;
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(served, 1, 'served again with no restart of the gateway');
});

t.test('a remote URL that is neither http(s) nor grpc(s) is refused at start-up, naming the field', async (t) => {
  const repository = makeRepository(t, {});
  const attempt = () => validateConfig({ modelRepository: repository, models: [{ name: 'far', remote: { url: 'file:///etc/passwd', model: 'm' } }, { name: 'both', path: 'x.onnx', remote: { url: 'http://127.0.0.1:1', model: 'm' } }] }, repository, {});
  t.throws(attempt, ConfigError);
  try {
    attempt();
  } catch (error) {
    t.same((error as ConfigError).issues, ['models[0].remote.url: must be an http://, https://, grpc:// or grpcs:// URL', 'models[1]: exactly one of path (an ONNX file) or remote (another V2 server)']);
  }
});

t.test('remote models through the live-model admin API, kept across a restart, headers never shown', async (t) => {
  const remote = await startRemote(t);
  const repository = makeRepository(t, { 'two.onnx': scaleModel(2) });
  const document = { admin: { token: TOKEN }, modelRepository: repository, stateFile: 'state.json', models: [{ name: 'two', path: 'two.onnx' }] };
  const first = await startGateway(document, repository);
  const put = (name: string, payload: unknown) => first.inject({ method: 'PUT', url: `/admin/models/${name}`, headers: { ...AUTH, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
  const created = await put('far', { remote: { url: remote.url, model: 'three', headers: { authorization: 'Bearer secret-remote-token' } }, keys: ['far', 'far-alias'] });
  t.equal(created.statusCode, 201);
  t.match(created.json(), { name: 'far', keys: ['far', 'far-alias'], remote: { url: remote.url, model: 'three', timeoutMs: 30000, connections: 16 }, state: 'remote' });
  t.notMatch(created.body, 'secret-remote-token');
  t.notMatch((await first.inject({ url: '/admin/models/far', headers: AUTH })).body, 'secret-remote-token');
  t.same((await infer(first, 'far-alias', scaleRequest(2))).json().outputs[0].data, [6]);
  t.match((await first.inject({ url: '/admin/models', headers: AUTH })).json().models, [{ name: 'two' }, { name: 'far', state: 'remote' }]);
  const unreachable = await put('gone', { remote: { url: 'http://127.0.0.1:1', model: 'x' } });
  t.equal(unreachable.statusCode, 422);
  t.match(unreachable.json(), { error: /^Model 'gone' does not load: its remote server did not answer its metadata/ });
  t.equal((await put('bad', { remote: { url: 'ftp://x', model: 'x' } })).statusCode, 400);
  t.equal((await put('two', { remote: { url: remote.url, model: 'three' } })).statusCode, 409, 'a local model does not turn remote in place');
  t.equal((await first.inject({ method: 'POST', url: '/admin/models/far/reload', headers: AUTH })).statusCode, 409);
  await first.close();
  const second = await startGateway(document, repository);
  t.teardown(() => second.close());
  t.same((await infer(second, 'far', scaleRequest(1))).json().outputs[0].data, [3], 'kept across a restart, with its headers');
  t.equal((await second.inject({ method: 'DELETE', url: '/admin/models/far', headers: AUTH })).statusCode, 204);
  t.equal((await infer(second, 'far', scaleRequest(1))).statusCode, 404);
});

t.test('a remote without the binary extension gets JSON; its 4xx pass through, its 5xx and refusals are 502', async (t) => {
  // A small V2 server by hand: no binary extension, y = x + 1, and chosen failures.
  const seen: Array<{ contentType: string | undefined; body: string }> = [];
  const server = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const send = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.url === '/v2') return send(200, { name: 'plain', version: '1', extensions: [] });
      if (request.url === '/v2/models/m') return send(200, { name: 'm', platform: 'x', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] });
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ contentType: request.headers['content-type'], body });
      const x = (JSON.parse(body) as { inputs: Array<{ data: number[] }> }).inputs[0]?.data[0] as number;
      if (x === 7) return send(422, { error: 'seven is not allowed here' });
      if (x === 8) return send(500, { error: 'internal detail that must not leak' });
      return send(200, { model_name: 'm', outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [x + 1] }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const closed = await freePort();
  const { app } = await buildGateway(t, {}, { models: [{ name: 'plain', remote: { url: `http://127.0.0.1:${port}`, model: 'm' } }, { name: 'refused', remote: { url: `http://127.0.0.1:${closed}`, model: 'm' } }] });
  const request = (x: number) => ({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [x] }] });
  t.same((await infer(app, 'plain', request(1))).json(), { model_name: 'plain', outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [2] }] });
  t.equal(seen[0]?.contentType, 'application/json', 'JSON to a remote without the binary extension');
  const rejected = await infer(app, 'plain', request(7));
  t.equal(rejected.statusCode, 422);
  t.same(rejected.json(), { error: 'seven is not allowed here' });
  const failed = await infer(app, 'plain', request(8));
  t.equal(failed.statusCode, 502);
  t.same(failed.json(), { error: "Model 'plain' is served by a remote server, which failed: it answered 500" });
  const refused = await infer(app, 'refused', request(1));
  t.equal(refused.statusCode, 502, 'a remote that refuses connections');
  t.notMatch(refused.body, String(closed));
});
