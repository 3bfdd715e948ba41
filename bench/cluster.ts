/**
 * `npm run bench:cluster`: a fleet on this machine (replica processes, Redis, nginx and
 * HAProxy with deploy/'s configurations) measured as issue 14 asks:
 *   1. keys moved when the replica set grows 3 -> 4 and shrinks 3 -> 2 (1,000 keys), against
 *      a modulo hash;
 *   2. model loads per 1,000 requests fleet-wide, Zipf keys over 40 models, cap 4 per replica:
 *      consistent hash vs round-robin through nginx; max/avg requests per replica through
 *      HAProxy with and without bounded load;
 *   3. propagation of 100 weight changes made through one replica, and with the hint
 *      connections killed before each change;
 *   4. split accuracy across the fleet after a 90/10 change, sticky and not.
 * Needs redis-server, nginx and haproxy (Debian packages; .ci/run installs them). Writes
 * bench/cluster-results.json.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { affineModel } from '../src/onnx/builder.ts';
import { startHaproxy, startNginx, startReplica, type Proxy, type Replica } from '../test/helpers/cluster.ts';
import { findProgram, startRedis } from '../test/helpers/programs.ts';

for (const program of ['redis-server', 'nginx', 'haproxy']) {
  if (findProgram(program) === undefined) {
    process.stderr.write(`bench:cluster needs ${program} (Debian package ${program === 'nginx' ? 'nginx-light' : program})\n`);
    process.exit(2);
  }
}

const TOKEN = 'bench-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const work = mkdtempSync(path.join(tmpdir(), 'modelgate-cluster-'));
const stops: Array<() => unknown> = [];
const scope = { teardown: (fn: () => unknown) => { stops.push(fn); } };
const results: Record<string, unknown> = {};
const row = (what: string, value: string) => process.stderr.write(`${what}: ${value}\n`);
const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
};

/** Deterministic numbers in [0, 1): the same keys and users on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function placementOf(proxy: Proxy, keys: readonly string[]): Promise<Map<string, string>> {
  const pool = new Pool(proxy.url, { connections: 8 });
  const placement = new Map<string, string>();
  for (let i = 0; i < keys.length; i += 8) {
    await Promise.all(keys.slice(i, i + 8).map(async (key) => {
      const response = await pool.request({ method: 'GET', path: `/v2/models/${key}/ready` });
      await response.body.dump();
      placement.set(key, response.headers['x-modelgate-replica'] as string);
    }));
  }
  await pool.close();
  return placement;
}

const loadsOf = async (replicas: readonly Replica[]) => {
  let total = 0;
  for (const replica of replicas) {
    const text = await (await fetch(`${replica.url}/metrics`)).text();
    for (const match of text.matchAll(/^modelgate_model_loads_total\{[^}]*\} (\S+)$/gm)) total += Number(match[1]);
  }
  return total;
};

/** `count` requests from `connections` closed loops; returns requests per replica. */
async function drive(url: string, count: number, connections: number, next: () => { path: string; headers?: Record<string, string> }, body: string): Promise<Map<string, number>> {
  const pool = new Pool(url, { connections });
  const perReplica = new Map<string, number>();
  let sent = 0;
  let failed = 0;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (sent < count) {
      sent += 1;
      const { path: where, headers = {} } = next();
      const response = await pool.request({ method: 'POST', path: where, body, headers: { 'content-type': 'application/json', ...headers } });
      await response.body.dump();
      if (response.statusCode !== 200) failed += 1;
      const replica = response.headers['x-modelgate-replica'] as string;
      perReplica.set(replica, (perReplica.get(replica) ?? 0) + 1);
    }
  }));
  await pool.close();
  if (failed > 0) throw new Error(`${failed} of ${count} requests failed`);
  return perReplica;
}

try {
  // 1. Keys moved. Replicas with no models: placement is all that is measured here.
  {
    const bare = { admin: { token: TOKEN }, modelRepository: '.', server: { replica: '${HOSTNAME}' } };
    const replicas: Replica[] = [];
    for (let i = 1; i <= 4; i++) replicas.push(await startReplica(scope, path.join(work, 'bare'), `replica-${i}`, bare));
    const keys = Array.from({ length: 1000 }, (_, i) => `key-${i}`);
    const measured: Record<string, unknown> = {};
    for (const balance of ['consistent', 'modulo'] as const) {
      const placements: Record<string, Map<string, string>> = {};
      for (const [name, set] of [['3', replicas.slice(0, 3)], ['4', replicas], ['2', replicas.slice(0, 2)]] as const) {
        const proxy = await startNginx(scope, path.join(work, `nginx-${balance}-${name}`), set, balance);
        placements[name] = await placementOf(proxy, keys);
        await proxy.child.stop();
      }
      const three = placements['3'] as Map<string, string>;
      const four = placements['4'] as Map<string, string>;
      const two = placements['2'] as Map<string, string>;
      const grown = keys.filter((key) => three.get(key) !== four.get(key));
      const shrunk = keys.filter((key) => three.get(key) !== two.get(key));
      const removedOwned = keys.filter((key) => three.get(key) === 'replica-3').length;
      measured[balance] = {
        grow: { moved: grown.length, toNew: grown.filter((key) => four.get(key) === 'replica-4').length },
        shrink: { moved: shrunk.length, ofRemoved: shrunk.filter((key) => three.get(key) === 'replica-3').length, removedOwned },
      };
      row(`1. ${balance} hash, 1,000 keys, 3 -> 4 replicas`, `${grown.length} moved (${(grown.length / 10).toFixed(1)}%), ${grown.filter((key) => four.get(key) === 'replica-4').length} of them to the new replica`);
      row(`1. ${balance} hash, 1,000 keys, 3 -> 2 replicas`, `${shrunk.length} moved (${(shrunk.length / 10).toFixed(1)}%), ${shrunk.filter((key) => three.get(key) === 'replica-3').length} of them the removed replica's (it held ${removedOwned})`);
    }
    results.keysMoved = measured;
    for (const replica of replicas) await replica.child.stop();
  }

  // 2. Loads per 1,000 requests, Zipf s = 1.2 over 40 models, cap 4 per replica.
  {
    const repository = path.join(work, 'models40');
    const models = Array.from({ length: 40 }, (_, i) => ({ name: `m${i}`, path: `m${i}.onnx` }));
    mkdirSync(repository, { recursive: true });
    for (let i = 0; i < 40; i++) {
      writeFileSync(path.join(repository, `m${i}.onnx`), affineModel({ inFeatures: 256, outFeatures: 256, weights: Array.from({ length: 256 * 256 }, (_, j) => Math.sin(i + j)), bias: Array.from({ length: 256 }, () => 0) }));
    }
    const document = { admin: { token: TOKEN }, modelRepository: repository, server: { replica: '${HOSTNAME}' }, registry: { maxResidentModels: 4 }, models };
    const body = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256], data: Array.from({ length: 256 }, (_, i) => i / 256) }] });
    const weights = Array.from({ length: 40 }, (_, i) => 1 / (i + 1) ** 1.2);
    const total = weights.reduce((a, b) => a + b, 0);
    const zipf = (seed: number) => {
      const next = random(seed);
      return () => {
        let point = next() * total;
        return { path: `/v2/models/m${weights.findIndex((weight) => (point -= weight) < 0)}/infer` };
      };
    };
    const REQUESTS = Number(process.env.BENCH_CLUSTER_REQUESTS ?? 6000);
    const measured: Record<string, unknown> = {};
    let homes = new Map<string, string>();
    for (const [name, start] of [
      ['nginx consistent hash', (replicas: Replica[]) => startNginx(scope, path.join(work, 'nginx-zipf-consistent'), replicas, 'consistent')],
      ['nginx round-robin', (replicas: Replica[]) => startNginx(scope, path.join(work, 'nginx-zipf-rr'), replicas, 'roundRobin')],
      ['HAProxy consistent, bounded load 150%', (replicas: Replica[]) => startHaproxy(scope, path.join(work, 'haproxy-bounded'), replicas, true)],
      ['HAProxy consistent, unbounded', (replicas: Replica[]) => startHaproxy(scope, path.join(work, 'haproxy-unbounded'), replicas, false)],
    ] as const) {
      const replicas: Replica[] = [];
      for (let i = 1; i <= 3; i++) replicas.push(await startReplica(scope, path.join(work, `zipf-${name.replace(/\W+/g, '-')}`), `replica-${i}`, document));
      const proxy = await start(replicas);
      if (name === 'nginx consistent hash') homes = await placementOf(proxy, models.map((model) => model.name));
      // Warm-up: the first loads of every model are not what is compared.
      await drive(proxy.url, 600, 16, zipf(7), body);
      const before = await loadsOf(replicas);
      const started = performance.now();
      const perReplica = await drive(proxy.url, REQUESTS, 16, zipf(11), body);
      const seconds = (performance.now() - started) / 1000;
      const loads = (await loadsOf(replicas)) - before;
      const counts = [...perReplica.values()];
      const maxOverAvg = Math.max(...counts) / (counts.reduce((a, b) => a + b, 0) / 3);
      measured[name] = { loadsPer1000: (loads / REQUESTS) * 1000, requestsPerSecond: REQUESTS / seconds, perReplica: Object.fromEntries(perReplica), maxOverAvg };
      row(`2. ${name}, Zipf over 40 models, cap 4 per replica, c=16`, `${((loads / REQUESTS) * 1000).toFixed(1)} loads per 1,000 requests, ${(REQUESTS / seconds).toFixed(0)} req/s, requests per replica max/avg ${maxOverAvg.toFixed(2)} (${counts.join(' ')})`);
      await proxy.child.stop();
      for (const replica of replicas) await replica.child.stop();
    }
    const ratio = (measured['nginx consistent hash'] as { loadsPer1000: number }).loadsPer1000 / (measured['nginx round-robin'] as { loadsPer1000: number }).loadsPer1000;
    // What placement alone can give: a replica that kept exactly its 4 most requested keys resident
    // would miss only the rest. Round-robin: every replica keeps the 4 hottest of 40; consistent
    // hash: each keeps the 4 hottest of the keys nginx sent it.
    const roundRobinMisses = weights.slice(4).reduce((a, b) => a + b, 0) / total;
    const consistentMisses = [...new Set(homes.values())].reduce((sum, replica) => {
      const own = weights.filter((_, i) => homes.get(`m${i}`) === replica);
      return sum + own.slice(4).reduce((a, b) => a + b, 0) / total;
    }, 0);
    row('2. loads, consistent hash / round-robin', `${ratio.toFixed(3)} (target <= 0.333); perfect caches under the same placement would give ${(consistentMisses / roundRobinMisses).toFixed(3)} (${(consistentMisses * 1000).toFixed(0)} vs ${(roundRobinMisses * 1000).toFixed(0)} misses per 1,000)`);
    results.loads = { ...measured, consistentOverRoundRobin: ratio, perfectCacheRatio: consistentMisses / roundRobinMisses };
  }

  // 3 and 4: a fleet sharing a split through Redis.
  {
    const redis = await startRedis(scope);
    const repository = path.join(work, 'split-models');
    mkdirSync(repository, { recursive: true });
    writeFileSync(path.join(repository, 'a.onnx'), affineModel({ inFeatures: 1, outFeatures: 1, weights: [1], bias: [0] }));
    writeFileSync(path.join(repository, 'b.onnx'), affineModel({ inFeatures: 1, outFeatures: 1, weights: [2], bias: [0] }));
    const pollMs = 1000;
    const document = {
      admin: { token: TOKEN }, modelRepository: repository, server: { replica: '${HOSTNAME}' },
      models: [{ name: 'a', path: 'a.onnx' }, { name: 'b', path: 'b.onnx' }],
      routes: [{ key: 'ab', split: { variants: [{ target: 'a', weight: 50 }, { target: 'b', weight: 50 }], stickyHeader: 'x-user-id' } }],
      store: { redis: { url: redis.url, key: 'bench', pollMs } },
    };
    const replicas: Replica[] = [];
    for (let i = 1; i <= 3; i++) replicas.push(await startReplica(scope, path.join(work, 'shared', `replica-${i}`), `replica-${i}`, document));
    const [writer, ...others] = replicas as [Replica, ...Replica[]];
    const patch = async (first: number) => {
      const response = await fetch(`${writer.url}/admin/routes/ab`, {
        method: 'PATCH', headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ split: { variants: [{ target: 'a', weight: first }, { target: 'b', weight: 100 - first }] } }),
      });
      if (response.status !== 200) throw new Error(`PATCH answered ${response.status}: ${await response.text()}`);
      return { etag: response.headers.get('etag') as string, at: performance.now() };
    };
    const arrival = async (replica: Replica, etag: string, since: number) => {
      for (;;) {
        const response = await fetch(`${replica.url}/admin/routes/ab`, { headers: AUTH });
        await response.arrayBuffer();
        if (response.headers.get('etag') === etag) return performance.now() - since;
        if (performance.now() - since > 30_000) throw new Error('a change did not arrive in 30 s');
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    const propagate = async (changes: number, before?: () => Promise<unknown>) => {
      const delays: number[] = [];
      for (let i = 0; i < changes; i++) {
        await before?.();
        const { etag, at } = await patch(10 + (i % 80));
        const each = await Promise.all(others.map((replica) => arrival(replica, etag, at)));
        delays.push(Math.max(...each));
      }
      return { p50: percentile(delays, 0.5), p99: percentile(delays, 0.99), max: Math.max(...delays) };
    };
    const hinted = await propagate(100);
    row('3. 100 weight changes through one replica, until both others serve them', `p50 ${hinted.p50.toFixed(1)} ms, p99 ${hinted.p99.toFixed(1)} ms, max ${hinted.max.toFixed(1)} ms`);
    const admin = new Redis(redis.url);
    const killed = await propagate(30, () => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    row(`3. the same with the hint connections killed before each change (poll ${pollMs} ms)`, `p50 ${killed.p50.toFixed(1)} ms, p99 ${killed.p99.toFixed(1)} ms, max ${killed.max.toFixed(1)} ms`);
    // Hints lost without a reconnection (written straight into Redis with no PUBLISH): the poll alone.
    const polled: number[] = [];
    for (let i = 0; i < 10; i++) {
      const [version, text] = await admin.hmget('bench', 'version', 'document');
      const stored = JSON.parse(text as string);
      const next = Number(version) + 1;
      stored.counter = next;
      stored.routes.ab = { ...stored.routes.ab, version: next, route: { ...stored.routes.ab.route, split: { ...stored.routes.ab.route.split, variants: [{ target: 'a', weight: 30 + i }, { target: 'b', weight: 70 - i }] } } };
      const at = performance.now();
      await admin.hset('bench', 'version', String(next), 'document', JSON.stringify(stored));
      polled.push(Math.max(...await Promise.all(replicas.map((replica) => arrival(replica, `"${next}"`, at)))));
    }
    row(`3. a change with no hint at all (poll ${pollMs} ms), 10 changes`, `p50 ${percentile(polled, 0.5).toFixed(0)} ms, max ${Math.max(...polled).toFixed(0)} ms`);
    admin.disconnect();
    results.propagation = { hinted, hintConnectionsKilled: killed, noHint: { p50: percentile(polled, 0.5), max: Math.max(...polled) }, pollMs };

    // 4. Split accuracy through the proxy after a 90/10 change.
    const proxy = await startNginx(scope, path.join(work, 'nginx-split'), replicas);
    const { etag, at } = await patch(90);
    await Promise.all(replicas.map((replica) => arrival(replica, etag, at)));
    const body = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [1] }] });
    const share = async (sticky: boolean) => {
      const next = random(sticky ? 3 : 5);
      const pool = new Pool(proxy.url, { connections: 8 });
      let toB = 0;
      const REQUESTS = 10_000;
      let sent = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (sent < REQUESTS) {
          sent += 1;
          const headers: Record<string, string> = { 'content-type': 'application/json', ...(sticky ? { 'x-user-id': `user-${Math.floor(next() * 1e9)}` } : {}) };
          const response = await pool.request({ method: 'POST', path: '/v2/models/ab/infer', body, headers });
          const answer = await response.body.json() as { model_name: string };
          if (answer.model_name === 'b') toB += 1;
        }
      }));
      await pool.close();
      return toB / REQUESTS;
    };
    const stickyShare = await share(true);
    const plainShare = await share(false);
    row('4. after a 90/10 change, 10,000 requests through nginx', `share of the 10% variant: sticky users ${(stickyShare * 100).toFixed(2)}%, no sticky header ${(plainShare * 100).toFixed(2)}% (target 10 ± 2)`);
    // Sticky users never change variant while weights stay put, whichever replica answers.
    let changed = 0;
    const users = 500;
    for (let user = 0; user < users; user++) {
      const seen = new Set<string>();
      for (const replica of replicas) {
        const response = await fetch(`${replica.url}/v2/models/ab/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': `u-${user}` }, body });
        seen.add(((await response.json()) as { model_name: string }).model_name);
      }
      if (seen.size > 1) changed += 1;
    }
    row('4. sticky users asked on each of the 3 replicas', `${changed} of ${users} saw more than one variant`);
    results.splitAccuracy = { stickyShare, plainShare, stickyUsersChanged: changed, users };
  }
  writeFileSync(path.resolve(import.meta.dirname, 'cluster-results.json'), `${JSON.stringify(results, null, 2)}\n`);
} finally {
  for (const stop of stops.reverse()) await stop();
}
