/**
 * The deploy/ configurations, run: three replicas (CLI processes) serving deploy/gateway.yaml
 * with Redis, behind nginx and HAProxy as shipped (only addresses rewritten). Every key stays
 * on one replica; a sticky user gets one variant on every replica; a change through the proxy
 * reaches the whole fleet; the compose file and the Kubernetes manifests agree with them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { validateConfig } from '../../src/config/load.ts';
import { buildDemoModels } from '../../src/demo/build-models.ts';
import { DEPLOY, startHaproxy, startNginx, startReplica, type Replica } from '../helpers/cluster.ts';
import { AUTH, TOKEN, type TestContext } from '../helpers/gateway.ts';
import { clientOf, InferenceService } from '../helpers/grpc.ts';
import { eventually, skipWithout, startRedis } from '../helpers/programs.ts';

const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

async function replicaOf(url: string, init: RequestInit = {}): Promise<string> {
  const response = await fetch(url, init);
  await response.arrayBuffer();
  return response.headers.get('x-modelgate-replica') as string;
}

async function fleet(t: TestContext, size = 3) {
  const redis = await startRedis(t);
  const directory = t.testdir();
  const repository = path.join(directory, 'models');
  await buildDemoModels(repository);
  const document = parse(readFileSync(path.join(DEPLOY, 'gateway.yaml'), 'utf8')) as Record<string, unknown>;
  const replicas: Replica[] = [];
  for (let i = 1; i <= size; i++) {
    // Side by side on one host: each replica's health port is a free one.
    const server = { ...(document.server as Record<string, unknown>), healthPort: 0 };
    replicas.push(await startReplica(t, path.join(directory, `replica-${i}`), `modelgate-${i}`, { ...document, server, modelRepository: repository }, { REDIS_URL: redis.url, MODELGATE_ADMIN_TOKEN: TOKEN }));
  }
  return { redis, directory, replicas };
}

const skipCluster = skipWithout('redis-server') || skipWithout('nginx', 'nginx-light');

t.test('nginx as shipped: each key on one replica, sticky users alike everywhere, changes reach every replica', { skip: skipCluster }, async (t) => {
  const { directory, replicas } = await fleet(t);
  const proxy = await startNginx(t, path.join(directory, 'nginx'), replicas);
  const names = new Set(replicas.map((replica) => replica.name));

  // Placement by key: every request for a key lands on the replica the first one did.
  const placement = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 60; i++) {
      const key = `key-${i}`;
      const replica = await replicaOf(`${proxy.url}/v2/models/${key}/ready`);
      t.ok(names.has(replica), `answered by a replica (${replica})`);
      if (round === 0) placement.set(key, replica);
      else if (placement.get(key) !== replica) t.fail(`${key} moved from ${placement.get(key)} to ${replica}`);
    }
  }
  t.equal(new Set(placement.values()).size, 3, 'the keys spread over all three replicas');
  // A header-hashing client: x-model-key places the request as the path does.
  for (const key of ['key-1', 'key-2', 'key-3']) {
    t.equal(await replicaOf(`${proxy.url}/v2/models/${key}/ready`, { headers: { 'x-model-key': key } }), placement.get(key));
  }
  const mismatch = await fetch(`${proxy.url}/v2/models/key-1/ready`, { headers: { 'x-model-key': 'key-2' } });
  t.equal(mismatch.status, 400, 'a header that disagrees with the path is refused');

  // Inference through the proxy, and the model loaded only where its key lives.
  const answer = await fetch(`${proxy.url}/v2/models/iris-v2/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(FLOWER) });
  t.equal(answer.status, 200);
  const home = answer.headers.get('x-modelgate-replica');
  for (const replica of replicas) {
    const models = await (await fetch(`${replica.url}/admin/models`, { headers: AUTH })).json() as { models: Array<{ name: string; state: string }> };
    const state = models.models.find((model) => model.name === 'iris-v2')?.state;
    t.equal(state === 'resident', replica.name === home, `${replica.name}: iris-v2 ${state}`);
  }

  // Requests without a key are spread (nginx's hash falls back to round-robin on an empty key).
  const spread = new Set<string>();
  for (let i = 0; i < 12; i++) spread.add(await replicaOf(`${proxy.url}/v2/health/ready`));
  t.equal(spread.size, 3, 'health and admin requests reach every replica');

  // A sticky user gets the same variant from every replica.
  for (let user = 0; user < 40; user++) {
    const variants = new Set<string>();
    for (const replica of replicas) {
      const response = await fetch(`${replica.url}/v2/models/iris/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': `user-${user}` }, body: JSON.stringify(FLOWER) });
      t.equal(response.status, 200);
      variants.add(response.headers.get('x-modelgate-variant') as string);
    }
    if (variants.size !== 1) t.fail(`user-${user} got ${[...variants].join(' and ')}`);
  }

  // A change through the proxy (it lands on some replica) reaches every replica.
  const change = await fetch(`${proxy.url}/admin/routes/iris`, {
    method: 'PATCH', headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ split: { variants: [{ target: 'iris-v1', weight: 10 }, { target: 'iris-v2', weight: 90 }] } }),
  });
  t.equal(change.status, 200, await change.text());
  const etag = change.headers.get('etag');
  for (const replica of replicas) {
    await eventually(`${replica.name} serves the change`, async () => (await fetch(`${replica.url}/admin/routes/iris`, { headers: AUTH })).headers.get('etag') === etag, 5000);
  }
  // The same stale ETag through another replica: 412.
  const other = replicas.find((replica) => replica.name !== change.headers.get('x-modelgate-replica')) as Replica;
  const stale = await fetch(`${other.url}/admin/routes/iris`, {
    method: 'PATCH', headers: { ...AUTH, 'content-type': 'application/json', 'if-match': '"1"' },
    body: JSON.stringify({ split: { variants: [{ target: 'iris-v1', weight: 50 }, { target: 'iris-v2', weight: 50 }] } }),
  });
  t.equal(stale.status, 412);

  // A rolling restart: SIGTERM drains one replica; nginx moves its keys to the others, nothing fails.
  const leaving = replicas[2] as Replica;
  const movedKey = [...placement].find(([, replica]) => replica === leaving.name)?.[0] as string;
  await leaving.child.stop('SIGTERM');
  const after = await fetch(`${proxy.url}/v2/models/${movedKey}/ready`);
  t.not(after.headers.get('x-modelgate-replica'), leaving.name, 'its keys move to the remaining replicas');
  t.equal(after.status, 404, 'and are answered there');
  for (const [key, replica] of placement) {
    if (replica !== leaving.name) t.equal(await replicaOf(`${proxy.url}/v2/models/${key}/ready`), replica, `${key} stays put`);
  }
});

t.test('HAProxy: each key on one replica; as shipped (bounded load) nearly always', { skip: skipCluster || skipWithout('haproxy') }, async (t) => {
  const { directory, replicas } = await fleet(t);
  // Without hash-balance-factor, placement is a pure function of the key.
  const strict = await startHaproxy(t, path.join(directory, 'haproxy-strict'), replicas, false);
  const proxy = await startHaproxy(t, path.join(directory, 'haproxy'), replicas);
  const placement = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 60; i++) {
      const key = `key-${i}`;
      const replica = await replicaOf(`${strict.url}/v2/models/${key}/ready`);
      if (round === 0) placement.set(key, replica);
      else if (placement.get(key) !== replica) t.fail(`${key} moved from ${placement.get(key)} to ${replica}`);
    }
  }
  t.equal(new Set(placement.values()).size, 3, 'the keys spread over all three replicas');
  // Bounded load sends a request past its key's replica only while that one is above 1.5 times
  // the average in flight: with one request at a time, (nearly) never. Same ring, same homes.
  let home = 0;
  for (const [key, replica] of placement) if (await replicaOf(`${proxy.url}/v2/models/${key}/ready`) === replica) home += 1;
  t.ok(home >= placement.size * 0.9, `${home} of ${placement.size} keys at their home replica through the bounded-load proxy`);
  for (const key of ['key-4', 'key-5']) {
    t.equal(await replicaOf(`${strict.url}/v2/models/other/ready`, { headers: { 'x-model-key': key } }).catch(() => 'error'), placement.get(key), 'x-model-key places the request');
  }
  const answer = await fetch(`${proxy.url}/v2/models/iris-pipeline/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(FLOWER) });
  t.equal(answer.status, 200);
  t.same(((await answer.json()) as { outputs: Array<{ data: unknown[] }> }).outputs.at(-1)?.data, ['setosa']);
});

t.test('nginx as shipped, over gRPC: every call for a key (x-model-key metadata) lands on one replica', { skip: skipCluster }, async (t) => {
  const { directory, replicas } = await fleet(t);
  const proxy = await startNginx(t, path.join(directory, 'nginx'), replicas);
  const client = clientOf(InferenceService, proxy.grpcAddress as string);
  t.teardown(() => client.close());
  /** The replica that answered a call for `key`: from the answer's metadata, or an error's trailers. */
  const replicaOver = (key: string) => new Promise<string>((resolve, reject) => {
    const metadata = new Metadata();
    metadata.set('x-model-key', key);
    let replica: string | undefined;
    const call = (client as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: ServiceError | null) => void) => { on(event: 'metadata', listener: (metadata: Metadata) => void): void }>).ModelMetadata?.call(client, { name: key }, metadata, (error) => {
      const named = replica ?? (error?.metadata.get('x-modelgate-replica')[0] as string | undefined);
      if (named === undefined) reject(error ?? new Error('no x-modelgate-replica'));
      else resolve(named);
    });
    call?.on('metadata', (answer) => { replica = answer.get('x-modelgate-replica')[0] as string | undefined; });
  });
  const names = new Set(replicas.map((replica) => replica.name));
  const placement = new Map<string, string>();
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 30; i++) {
      const key = i < 3 ? ['iris', 'iris-v1', 'iris-v2'][i] as string : `key-${i}`;
      const replica = await replicaOver(key);
      t.ok(names.has(replica), `answered by a replica (${replica})`);
      if (round === 0) placement.set(key, replica);
      else if (placement.get(key) !== replica) t.fail(`${key} moved from ${placement.get(key)} to ${replica}`);
    }
  }
  t.equal(new Set(placement.values()).size, 3, 'the keys spread over all three replicas');
  // nginx hashes each upstream on its own ring (the servers' addresses differ by port), so a key's
  // REST and gRPC calls may land on different replicas: each protocol keeps its keys in place.
});

t.test('docker-compose.yml and the Kubernetes manifests agree with the tested configurations', async (t) => {
  const gateway = readFileSync(path.join(DEPLOY, 'gateway.yaml'), 'utf8');
  const env = { HOSTNAME: 'modelgate-1', MODELGATE_ADMIN_TOKEN: TOKEN };
  // As in the image: the file in /app/config, the models in /app/models.
  const app = t.testdir({ config: {}, models: {} });
  const config = validateConfig(parse(gateway), path.join(app, 'config'), env);
  t.equal(config.modelRepository, path.join(app, 'models'));
  t.equal(config.store.redis?.url, 'redis://redis:6379');
  t.equal(config.server.replica, 'modelgate-1');

  const compose = parse(readFileSync(path.join(DEPLOY, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { volumes?: string[]; command?: string[]; environment?: Record<string, string> }> };
  const nginx = readFileSync(path.join(DEPLOY, 'nginx/modelgate.conf'), 'utf8');
  const upstreams = [...nginx.matchAll(/server (modelgate-\d+):8080/g)].map((match) => match[1]);
  const replicas = Object.keys(compose.services).filter((name) => name.startsWith('modelgate-'));
  t.same(upstreams, replicas, 'nginx lists exactly the compose replicas');
  t.same([...readFileSync(path.join(DEPLOY, 'haproxy/haproxy.cfg'), 'utf8').matchAll(/server (modelgate-\d+) \1:8080/g)].map((match) => match[1]), replicas, 'so does HAProxy');
  t.ok(compose.services.nginx?.volumes?.includes('./nginx/modelgate.conf:/etc/nginx/conf.d/default.conf:ro'), 'compose mounts the tested nginx config');
  for (const name of replicas) {
    t.ok(compose.services[name]?.volumes?.includes('./gateway.yaml:/app/config/cluster.yaml:ro'), `${name} serves deploy/gateway.yaml`);
    t.equal(compose.services[name]?.environment?.REDIS_URL, 'redis://redis:6379');
  }
  t.ok(compose.services.redis, 'compose runs Redis');

  const manifests = parseAllDocuments(readFileSync(path.join(DEPLOY, 'kubernetes/modelgate.yaml'), 'utf8')).map((document) => document.toJS()) as Array<Record<string, any>>;
  t.same(manifests.map((manifest) => manifest.kind), ['ConfigMap', 'Secret', 'Deployment', 'Service', 'DestinationRule', 'BackendTrafficPolicy', 'Deployment', 'Service']);
  t.equal(manifests[0]?.data['cluster.yaml'], gateway, 'the ConfigMap holds deploy/gateway.yaml word for word');
  const container = manifests[2]?.spec.template.spec.containers[0];
  t.equal(container.readinessProbe.httpGet.path, '/v2/health/ready');
  t.equal(container.livenessProbe.httpGet.path, '/v2/health/live');
  t.equal(container.livenessProbe.httpGet.port, 'health', 'liveness on the health port');
  t.same(container.ports.find((port: { name: string }) => port.name === 'health')?.containerPort, config.server.healthPort, 'the container port is server.healthPort');
  t.same(container.ports.find((port: { name: string }) => port.name === 'grpc')?.containerPort, config.grpc?.port, 'and the grpc one grpc.port');
  t.match(manifests[3]?.spec.ports, [{ name: 'http' }, { name: 'grpc', port: 8001, appProtocol: 'grpc' }], 'the Service carries gRPC');
  t.same([...nginx.matchAll(/server (modelgate-\d+):8001/g)].map((match) => match[1]), replicas, 'nginx\'s gRPC upstream lists them too');
  t.ok(manifests[2]?.spec.template.spec.terminationGracePeriodSeconds * 1000 > 30_000 + 5000, 'the pod outlives the drain and the preStop pause');
  t.equal(manifests[4]?.spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName, 'x-model-key');
  t.same(manifests[5]?.spec.loadBalancer, { type: 'ConsistentHash', consistentHash: { type: 'Header', header: { name: 'x-model-key' } } });
});
