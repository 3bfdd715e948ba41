/**
 * Live changes shared through a real redis-server: replicas (gateways in this
 * process, each with its own state file, one model repository) converge on one
 * document; If-Match holds across them; an outage keeps inference up and makes
 * writes 503; a Redis restarted empty is re-seeded from the replicas.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import t from 'tap';
import { adminRequest, AUTH, infer, metricsOf, scaleModel, scaleRequest, startGateway, TOKEN, writeFiles, type TestContext } from '../helpers/gateway.ts';
import { eventually, skipWithout, startRedis } from '../helpers/programs.ts';

const files = { 'one.onnx': scaleModel(1), 'two.onnx': scaleModel(2), 'three.onnx': scaleModel(3) };
const models = ['one', 'two', 'three'].map((name) => ({ name, path: `${name}.onnx`, batching: false }));
const routes = [{ key: 'ab', split: { variants: [{ target: 'one', weight: 50 }, { target: 'two', weight: 50 }] } }];

const weights = (first: number) => ({ split: { variants: [{ target: 'one', weight: first }, { target: 'two', weight: 100 - first }] } });

async function weightsOf(app: FastifyInstance): Promise<number[]> {
  const view = (await app.inject(adminRequest('GET', '/admin/routes/ab'))).json();
  return view.split.variants.map((variant: { weight: number }) => variant.weight);
}

interface Fleet {
  replicas: FastifyInstance[];
  stateFiles: string[];
  repository: string;
  start(stateFile?: string): Promise<FastifyInstance>;
}

async function fleet(t: TestContext, url: string, size: number, pollMs = 200, ownRepositories = false): Promise<Fleet> {
  // t.testdir() empties its folder on every call: one call, the repository and state files inside.
  const base = t.testdir();
  const shared = path.join(base, 'models');
  writeFiles(shared, files);
  const start = async (stateFile = path.join(base, `replica-${replicas.length}.state.json`)) => {
    let repository = shared;
    if (ownRepositories) {
      // t.testdir() is one folder per test: a repository of its own is made beside it.
      repository = mkdtempSync(path.join(tmpdir(), 'modelgate-repository-'));
      writeFiles(repository, files);
      t.teardown(() => rmSync(repository, { recursive: true, force: true }));
    }
    const app = await startGateway({
      admin: { token: TOKEN }, modelRepository: repository, models, routes, stateFile,
      server: { replica: `r${replicas.length}` }, store: { redis: { url, key: 'fleet', pollMs } },
    }, repository);
    t.teardown(() => app.close());
    replicas.push(app);
    stateFiles.push(stateFile);
    return app;
  };
  const replicas: FastifyInstance[] = [];
  const stateFiles: string[] = [];
  for (let i = 0; i < size; i++) await start();
  return { replicas, stateFiles, repository: shared, start };
}


const skip = skipWithout('redis-server');

t.test('a change through one replica reaches every other; If-Match holds across them', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { replicas: [a, b, c] } = await fleet(t, redis.url, 3);
  if (a === undefined || b === undefined || c === undefined) throw new Error('three replicas');
  const response = await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(90)));
  t.equal(response.statusCode, 200, response.body);
  t.equal(response.headers['x-modelgate-replica'], 'r0');
  const etag = response.headers.etag as string;
  for (const replica of [b, c]) {
    await eventually('the change arrives', async () => (await weightsOf(replica)).join() === '90,10', 5000);
    t.equal((await replica.inject(adminRequest('GET', '/admin/routes/ab'))).headers.etag, etag, 'same version everywhere');
  }
  // Two operators, one ETag, two replicas: the second gets 412 and changes nothing.
  const first = await b.inject(adminRequest('PATCH', '/admin/routes/ab', weights(70), { 'if-match': etag }));
  t.equal(first.statusCode, 200, first.body);
  const second = await c.inject(adminRequest('PATCH', '/admin/routes/ab', weights(20), { 'if-match': etag }));
  t.equal(second.statusCode, 412, second.body);
  t.match(second.json().error, /is at version/);
  await eventually('every replica at 70/30', async () => (await Promise.all([a, b, c].map(weightsOf))).every((w) => w.join() === '70,30'), 5000);

  // Concurrent writes without If-Match on every replica: each lands once, versions never repeat.
  const answers = await Promise.all([a, b, c].map((replica, i) => replica.inject(adminRequest('PATCH', '/admin/routes/ab', weights(10 + i)))));
  t.same(answers.map((answer) => answer.statusCode), [200, 200, 200], answers.map((answer) => answer.body).join('\n'));
  const versions = answers.map((answer) => Number(JSON.parse(answer.headers.etag as string)));
  t.equal(new Set(versions).size, 3, `three versions: ${versions.join(', ')}`);
  const last = answers[versions.indexOf(Math.max(...versions))]?.json().split.variants[0].weight;
  await eventually('every replica on the last write', async () => (await Promise.all([a, b, c].map(weightsOf))).every((w) => w[0] === last), 5000);

  const metrics = (await c.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /modelgate_store_up\{replica="r2"\} 1/);
  t.match(metrics, new RegExp(`modelgate_store_document_version\\{replica="r2"\\} ${Math.max(...versions)}`));
  const age = Number(/^modelgate_store_document_age_seconds\{replica="r2"\} (\S+)$/m.exec(metrics)?.[1]);
  t.ok(age >= 0 && age < 30, `the applied document's age: ${age} s`);
});

t.test('live models are shared: one uploaded through a replica serves on the others', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { replicas: [a, b] } = await fleet(t, redis.url, 2);
  if (a === undefined || b === undefined) throw new Error('two replicas');
  const put = await a.inject(adminRequest('PUT', '/admin/models/tripler', { path: 'three.onnx', keys: ['triple'], batching: false }));
  t.equal(put.statusCode, 201, put.body);
  await eventually('the new key serves on the other replica', async () => (await infer(b, 'triple', scaleRequest(2))).statusCode === 200, 5000);
  t.same((await infer(b, 'triple', scaleRequest(2))).json().outputs[0].data, [6]);
  // A route over the new model, then the model's removal once the route is gone.
  t.equal((await b.inject(adminRequest('PUT', '/admin/routes/abc', { split: { variants: [{ target: 'one', weight: 1 }, { target: 'triple', weight: 1 }] } }))).statusCode, 201);
  await eventually('the route reaches the first replica', async () => (await a.inject(adminRequest('GET', '/admin/routes/abc'))).statusCode === 200, 5000);
  t.equal((await a.inject(adminRequest('DELETE', '/admin/routes/abc'))).statusCode, 204);
  t.equal((await a.inject(adminRequest('DELETE', '/admin/models/tripler'))).statusCode, 204);
  await eventually('the model is gone everywhere', async () => (await infer(b, 'triple', scaleRequest(2))).statusCode === 404, 5000);
  t.equal((await b.inject(adminRequest('GET', '/admin/models/tripler'))).statusCode, 404);
});

t.test('a model file one replica lacks: it answers 503 there, and later changes still arrive', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { replicas: [a, b] } = await fleet(t, redis.url, 2, 200, true);
  if (a === undefined || b === undefined) throw new Error('two replicas');
  const upload = await a.inject({ method: 'PUT', url: '/admin/models/uploaded/file', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, payload: Buffer.from(scaleModel(5)) });
  t.equal(upload.statusCode, 201, upload.body);
  t.same((await infer(a, 'uploaded', scaleRequest(2))).json().outputs[0].data, [10]);
  await eventually('the model reaches the other replica', async () => (await b.inject(adminRequest('GET', '/admin/models/uploaded'))).statusCode === 200, 5000);
  const there = await infer(b, 'uploaded', scaleRequest(2));
  t.equal(there.statusCode, 503, 'its file is only in the first replica\'s repository');
  t.match(there.json().error, /failed to load/);
  t.notMatch(there.body, /\/tmp|\.uploads/, 'no path in the answer');
  // A new version of a model whose file this replica lacks: the running version serves on.
  t.equal((await a.inject(adminRequest('PUT', '/admin/models/one', { path: 'two.onnx', batching: false }))).statusCode, 200);
  t.equal((await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(35)))).statusCode, 200);
  await eventually('later changes arrive all the same', async () => (await weightsOf(b)).join() === '35,65', 5000);
  t.same((await infer(b, 'one', scaleRequest(3))).json().outputs[0].data, [6], 'the new version of one, whose file both have');
});

t.test('Redis down: inference and readiness stay, writes 503; back empty: re-seeded, converged', { skip }, async (t) => {
  const redis = await startRedis(t);
  const fleetOf = await fleet(t, redis.url, 2);
  const [a, b] = fleetOf.replicas;
  if (a === undefined || b === undefined) throw new Error('two replicas');
  t.equal((await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(80)))).statusCode, 200);
  await eventually('the change arrives', async () => (await weightsOf(b)).join() === '80,20', 5000);
  // Each replica keeps the document it applied beside its configuration.
  const copy = fleetOf.stateFiles[1] as string;
  const version = Number(JSON.parse((await b.inject(adminRequest('GET', '/admin/routes/ab'))).headers.etag as string));
  await eventually('the local copy is written', () => {
    try {
      return JSON.parse(readFileSync(copy, 'utf8')).counter === version;
    } catch {
      return false;
    }
  }, 5000);
  const stateFile = path.join(path.dirname(copy), 'restarted.state.json');
  copyFileSync(copy, stateFile);

  await redis.child.stop();
  const write = await b.inject(adminRequest('PATCH', '/admin/routes/ab', weights(60)));
  t.equal(write.statusCode, 503, write.body);
  t.ok(Number(write.headers['retry-after']) >= 1, 'Retry-After');
  t.match(write.json().error, /shared configuration store is unavailable/);
  t.equal((await b.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode, 200, 'still ready');
  t.equal((await infer(b, 'ab', scaleRequest(1))).statusCode, 200, 'still serving');
  t.same(await weightsOf(b), [80, 20], 'nothing changed');
  await eventually('metrics show the store down', async () => /modelgate_store_up\{replica="r1"\} 0/.test((await b.inject({ method: 'GET', url: '/metrics' })).body), 5000);

  // A replica restarted during the outage serves what it last knew.
  const restarted = await fleetOf.start(stateFile);
  t.same(await weightsOf(restarted), [80, 20], 'the restarted replica has the last document');

  // Redis comes back with nothing in it: the replicas put their document back and go on.
  await startRedis(t, redis.port);
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  await eventually('the store re-seeded', async () => (await client.hget('fleet', 'version')) !== null, 10_000);
  // Another replica may re-seed before b's client has reconnected: until then b refuses writes, as it should.
  await eventually('b to see the store again', async () => /^modelgate_store_up(\{[^}]*\})? 1$/m.test(await metricsOf(b)), 10_000);
  const written = await b.inject(adminRequest('PATCH', '/admin/routes/ab', weights(30)));
  t.equal(written.statusCode, 200, written.body);
  for (const replica of [a, restarted]) await eventually('the write after the outage arrives', async () => (await weightsOf(replica)).join() === '30,70', 5000);
});

t.test('a Redis key that holds something else: writes refused with what Redis said, inference unharmed', { skip }, async (t) => {
  const redis = await startRedis(t);
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  await client.set('fleet', 'not a hash');
  const { replicas: [a] } = await fleet(t, redis.url, 1);
  if (a === undefined) throw new Error('one replica');
  const write = await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(60)));
  t.equal(write.statusCode, 503, write.body);
  t.match(write.json().error, /Redis refused the command: WRONGTYPE/);
  t.equal((await infer(a, 'ab', scaleRequest(1))).statusCode, 200);
  await client.del('fleet');
  t.equal((await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(60)))).statusCode, 200, 'fine once the key is freed');
  await client.hset('fleet', 'version', '999', 'document', '{"format":2}');
  const foreign = await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(61)));
  t.equal(foreign.statusCode, 503);
  t.match(foreign.json().error, /does not hold a modelgate document/);
});

t.test('a document written without a hint arrives by the poll', { skip }, async (t) => {
  const redis = await startRedis(t);
  const pollMs = 300;
  const { replicas: [a] } = await fleet(t, redis.url, 1, pollMs);
  if (a === undefined) throw new Error('one replica');
  t.equal((await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(40)))).statusCode, 200);
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  // Another replica's write whose PUBLISH was lost: the same document, one version on.
  const [version, text] = await client.hmget('fleet', 'version', 'document');
  const document = JSON.parse(text as string);
  const next = Number(version) + 1;
  document.counter = next;
  document.routes.ab.version = next;
  document.routes.ab.route.split.variants = [{ target: 'one', weight: 25 }, { target: 'two', weight: 75 }];
  await client.hset('fleet', 'version', String(next), 'document', JSON.stringify(document));
  const delay = await eventually('the poll finds it', async () => (await weightsOf(a)).join() === '25,75', 5000);
  t.ok(delay <= pollMs + 250, `arrived after ${delay} ms (poll ${pollMs} ms)`);
  t.equal((await a.inject(adminRequest('GET', '/admin/routes/ab'))).headers.etag, `"${next}"`);
});

t.test('with hint connections killed, changes still arrive within the poll interval', { skip }, async (t) => {
  const redis = await startRedis(t);
  const pollMs = 300;
  const { replicas: [a, b] } = await fleet(t, redis.url, 2, pollMs);
  if (a === undefined || b === undefined) throw new Error('two replicas');
  const client = new Redis(redis.url);
  t.teardown(() => client.disconnect());
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    await client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    t.equal((await a.inject(adminRequest('PATCH', '/admin/routes/ab', weights(11 + i)))).statusCode, 200);
    delays.push(await eventually('the change arrives', async () => (await weightsOf(b))[0] === 11 + i, 5000));
  }
  t.ok(Math.max(...delays) <= pollMs + 250, `delays ${delays.join(', ')} ms within the ${pollMs} ms poll (+ scheduling)`);
});

t.test('a tenant key revoked on one replica is refused by the others once the document arrives; keys stay digests in Redis', { skip }, async (t) => {
  const redis = await startRedis(t);
  const base = t.testdir();
  const repository = path.join(base, 'models');
  writeFiles(repository, files);
  const digest = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;
  const start = async (index: number) => {
    const app = await startGateway({
      admin: { token: TOKEN }, modelRepository: repository, models, stateFile: path.join(base, `r${index}.state.json`),
      server: { replica: `r${index}` }, store: { redis: { url: redis.url, key: 'tenants', pollMs: 200 } },
      tenants: [{ name: 'ops', apiKeys: [digest('ops-key')], allow: ['*'] }],
    }, repository);
    t.teardown(() => app.close());
    return app;
  };
  const a = await start(0);
  const b = await start(1);
  const call = (app: FastifyInstance, key: string) => infer(app, 'one', scaleRequest(2), { authorization: `Bearer ${key}` }).then((answer) => answer.statusCode);
  const created = await a.inject(adminRequest('PUT', '/admin/tenants/team', { apiKeys: [digest('team-key')], allow: ['one'] }));
  t.equal(created.statusCode, 201);
  const arrived = await eventually('the new tenant reaches b', async () => (await call(b, 'team-key')) === 200, 5000);
  t.ok(arrived < 5000, `created on a, accepted by b after ${arrived} ms`);
  const stored = new Redis(redis.url);
  t.teardown(() => stored.quit());
  const text = JSON.stringify(await stored.hgetall('tenants'));
  t.match(text, digest('team-key').slice(7), 'the document holds the digest');
  t.notOk(text.includes('team-key') || text.includes('ops-key'), 'and never a key');
  t.equal((await a.inject(adminRequest('DELETE', '/admin/tenants/team'))).statusCode, 204);
  t.equal(await call(a, 'team-key'), 401, 'refused at once where it was revoked');
  const revoked = await eventually('the revocation reaches b', async () => (await call(b, 'team-key')) === 401, 5000);
  t.ok(revoked < 5000, `refused by b after ${revoked} ms (its poll is 200 ms; a published hint is faster)`);
  t.equal(await call(b, 'ops-key'), 200, 'the configured tenant is untouched');
});
