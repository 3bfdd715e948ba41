import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import t from 'tap';
import { buildGateway, infer, makeRepository, scaleModel, scaleRequest, TOKEN } from '../helpers/gateway.ts';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { HEARTBEAT_MS } from '../../src/http/health-thread.ts';
import { eventually } from '../helpers/programs.ts';

const files = { 'm.onnx': scaleModel(2) };
const models = [{ name: 'm', path: 'm.onnx' }];

/** GETs (or sends `method` to) the health port from another process, so it works while this event loop is held. */
function probeBlocking(port: number, path: string, method = 'GET'): { status: number; body: string } {
  const script = `fetch('http://127.0.0.1:${port}${path}', { method: '${method}' }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  return JSON.parse(child.stdout) as { status: number; body: string };
}

async function probe(port: number, path: string, method = 'GET') {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** Holds this thread's event loop, as a long synchronous run would. */
function hold(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

t.test('the health port answers liveness and readiness, and nothing else', async (t) => {
  const { app } = await buildGateway(t, files, { server: { healthPort: 0 }, models });
  const port = app.health?.port as number;
  t.ok(port > 0, `listening on ${port}`);
  const live = await probe(port, '/v2/health/live');
  t.equal(live.status, 200);
  t.same(JSON.parse(live.body), { live: true });
  t.equal(live.headers.get('cache-control'), 'no-store');
  t.match(live.headers.get('content-type'), /^application\/json/);
  t.same(JSON.parse((await probe(port, '/v2/health/ready?x=1')).body), { ready: true });
  const other = await probe(port, '/v2/models/m/infer', 'POST');
  t.equal(other.status, 404);
  t.match(JSON.parse(other.body).error, /only GET \/v2\/health\/live and \/v2\/health\/ready/);
  const posted = await probe(port, '/v2/health/live', 'POST');
  t.equal(posted.status, 405);
  t.match(JSON.parse(posted.body).error, /POST is not allowed here/);
  t.equal((await probe(port, '/v2/health/ready', 'HEAD')).status, 200);
  // The main port answers as before, and serves.
  t.equal((await app.inject({ url: '/v2/health/live' })).statusCode, 200);
  t.same((await infer(app, 'm', scaleRequest(4))).json().outputs[0].data, [8]);
});

t.test('the health port answers while the event loop is busy, and says not live once it has not turned for livenessStallMs', async (t) => {
  const { app } = await buildGateway(t, files, { server: { healthPort: 0 }, models });
  // The loop is held while the probe runs (spawnSync): answered all the same, by the thread.
  const during = probeBlocking(app.health?.port as number, '/v2/health/live');
  t.equal(during.status, 200, 'live while the loop is held for less than the bound (10 s by default)');

  const stalling = await buildGateway(t, files, { server: { healthPort: 0, livenessStallMs: 400 }, models });
  const port = stalling.app.health?.port as number;
  hold(800);
  const stalled = probeBlocking(port, '/v2/health/live');
  t.equal(stalled.status, 503, 'not live once the loop has been held past the bound');
  t.match(JSON.parse(stalled.body), { live: false, error: /the event loop has not turned for \d+ ms/ });
  t.same(JSON.parse(probeBlocking(port, '/v2/health/ready').body), { ready: false });
  // Turning again: the next heartbeat makes it live.
  await eventually('live again', async () => (await probe(port, '/v2/health/live')).status === 200, 50 * HEARTBEAT_MS);
  t.equal((await probe(port, '/v2/health/live')).status, 200, 'live again');
  t.equal((await probe(port, '/v2/health/ready')).status, 200, 'ready again');
});

t.test('readiness on the health port follows the gateway: at once, not at the next heartbeat', async (t) => {
  const { app } = await buildGateway(t, files, { server: { healthPort: 0 }, models });
  const port = app.health?.port as number;
  app.dataPlane.ready = false;
  // Read while the loop is held: the change was published when it was made.
  const notReady = probeBlocking(port, '/v2/health/ready');
  t.equal(notReady.status, 503);
  t.same(JSON.parse(notReady.body), { ready: false });
  t.equal(probeBlocking(port, '/v2/health/live').status, 200, 'still live');
  app.dataPlane.ready = true;
  t.equal(probeBlocking(port, '/v2/health/ready').status, 200);
});

t.test('closing the gateway stops the health port; a port in use fails the start with the reason', async (t) => {
  const { app } = await buildGateway(t, files, { server: { healthPort: 0 }, models });
  const port = app.health?.port as number;
  await app.close();
  await t.rejects(fetch(`http://127.0.0.1:${port}/v2/health/live`), 'nothing listens any more');

  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const busyPort = (taken.address() as { port: number }).port;
  const repository = makeRepository(t, files);
  const config = validateConfig({ admin: { token: TOKEN }, server: { healthPort: busyPort }, models, modelRepository: repository }, repository, {});
  const second = await buildApp(config);
  t.teardown(() => second.close());
  await t.rejects(async () => { await second.ready(); }, { message: `server.healthPort: cannot listen on 127.0.0.1:${busyPort} (EADDRINUSE)` });
});

t.test('server.healthPort and livenessStallMs are validated', async (t) => {
  const repository = makeRepository(t, files);
  t.throws(() => validateConfig({ server: { healthPort: 70000 }, models, modelRepository: repository }, repository, {}), /server\.healthPort: Expected integer to be less or equal to 65535/);
  t.throws(() => validateConfig({ server: { livenessStallMs: 10 }, models, modelRepository: repository }, repository, {}), /server\.livenessStallMs: Expected integer to be greater or equal to 200/);
});
