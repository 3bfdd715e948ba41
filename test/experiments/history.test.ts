/**
 * Statistics over time under a clock the test moves: buckets aligned to the wall clock,
 * percentiles within the histogram's 2% of values computed here, rings bounded, memory per
 * name bounded under 10,000 names; and the admin endpoints over a real gateway.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { History, HISTORY_BYTES_PER_NAME, HISTORY_WINDOWS, type HistoryBucket } from '../../src/experiments/history.ts';
import { adminRequest, buildGateway, scaleModel, scaleRequest } from '../helpers/gateway.ts';

/** A clock at a whole hour, moved by the test. */
function fakeClock(start = Date.UTC(2026, 11, 3, 10)) {
  const clock = { now: start, at: () => clock.now };
  return clock;
}

/** The exact quantile as the statistics define it: the sample of rank ceil(q n). */
function exact(samples: readonly number[], quantile: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(quantile * sorted.length)) - 1] as number;
}

function within2Percent(t: { ok(value: boolean, message: string): void }, reported: number | null, samples: readonly number[], quantile: number, what: string): void {
  const truth = exact(samples, quantile);
  t.ok(reported !== null && reported >= truth * 0.9999 && reported <= truth * 1.02 + 0.001, `${what}: ${reported} vs ${truth} (at most 2% above)`);
}

t.test('buckets of 10 s: counts, errors and percentiles per bucket, empty buckets between, the current one partial', async (t) => {
  const clock = fakeClock();
  const history = new History(clock.at);
  // Bucket 0: 200 latencies from 1 to 200 ms, 10 failures; bucket 1: nothing; bucket 2: 50 of 5 ms ± jitter.
  const first = Array.from({ length: 200 }, (_, i) => i + 1);
  for (const ms of first) history.record('a', ms, false);
  for (let i = 0; i < 10; i++) history.record('a', 9999, true);
  clock.now += 20_000;
  const third = Array.from({ length: 50 }, (_, i) => 5 + (i % 7) * 0.25);
  for (const ms of third) history.record('a', ms, false);
  clock.now += 3_000;
  const buckets = history.buckets('a', '10s', 3);
  t.same(buckets.map((bucket) => bucket.start), ['2026-12-03T10:00:00.000Z', '2026-12-03T10:00:10.000Z', '2026-12-03T10:00:20.000Z']);
  const [b0, b1, b2] = buckets as [HistoryBucket, HistoryBucket, HistoryBucket];
  t.match(b0, { requests: 210, errors: 10, errorRate: 0.0476 });
  t.notOk('partial' in b0);
  within2Percent(t, b0.latencyMs.p50, first, 0.5, 'p50');
  within2Percent(t, b0.latencyMs.p95, first, 0.95, 'p95');
  within2Percent(t, b0.latencyMs.p99, first, 0.99, 'p99');
  t.same(b1, { start: '2026-12-03T10:00:10.000Z', requests: 0, errors: 0, errorRate: null, latencyMs: { p50: null, p95: null, p99: null } }, 'a bucket without requests');
  t.equal(b2.partial, true, 'the bucket in progress says so');
  t.equal(b2.requests, 50);
  within2Percent(t, b2.latencyMs.p99, third, 0.99, 'open bucket p99');
  const minutes = history.buckets('a', '1m', 2);
  t.same(minutes.map((bucket) => [bucket.start, bucket.requests, bucket.errors]), [['2026-12-03T09:59:00.000Z', 0, 0], ['2026-12-03T10:00:00.000Z', 260, 10]], 'the minute holds both 10 s buckets');
  within2Percent(t, minutes[1]?.latencyMs.p50 ?? null, [...first, ...third], 0.5, 'the minute\'s p50 over all its requests');
  t.equal(history.buckets('a', '1h', 1)[0]?.requests, 260);
  t.same(history.buckets('never', '10s', 2).map((bucket) => bucket.requests), [0, 0], 'a name never recorded: empty buckets');
});

t.test('each width keeps its last `keep` buckets; older ones read as empty; a clock stepping back lands in the open bucket', async (t) => {
  const clock = fakeClock();
  const history = new History(clock.at);
  const { keep, ms } = HISTORY_WINDOWS['10s'];
  // One request in each of keep + 20 consecutive buckets, the i-th taking i + 1 ms.
  for (let i = 0; i < keep + 20; i++) {
    history.record('a', i + 1, false);
    clock.now += ms;
  }
  const buckets = history.buckets('a', '10s', keep + 1);
  t.equal(buckets.length, keep + 1);
  t.equal(buckets.at(-1)?.requests, 0, 'the current bucket: nothing yet');
  t.same(buckets.slice(0, -1).map((bucket) => bucket.requests), new Array(keep).fill(1), `the last ${keep} closed buckets, each with its request`);
  within2Percent(t, buckets[0]?.latencyMs.p50 ?? null, [21], 0.5, 'the oldest kept is the 21st');
  t.same(history.buckets('a', '10s', 10_000).length, keep + 1, 'asking for more gives what is kept');
  clock.now -= 5 * ms;
  history.record('a', 1, false);
  t.equal(history.buckets('a', '10s', 1)[0]?.requests, 1, 'no bucket of the past rewritten...');
  clock.now += 5 * ms;
  t.equal(history.buckets('a', '10s', 2)[0]?.requests, 2, '...the sample joined the open one');
});

t.test(`memory: 10,000 names with traffic over six minutes stay within ${HISTORY_BYTES_PER_NAME} bytes each plus their open buckets`, async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Typed arrays' bytes live outside the JS heap.
  const used = () => {
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const clock = fakeClock();
  const history = new History(clock.at);
  gc();
  const before = used();
  for (let minute = 0; minute < 6; minute++) {
    for (let name = 0; name < 10_000; name++) for (let i = 0; i < 3; i++) history.record(`key-${name}`, 1 + ((name + i) % 50), i === 2 && name % 10 === 0);
    clock.now += 60_000;
  }
  gc();
  const perName = (used() - before) / 10_000;
  t.ok(perName < 4096, `${Math.round(perName)} bytes per name after six minutes of traffic`);
  t.equal(history.buckets('key-9999', '1m', 7).filter((bucket) => bucket.requests === 3).length, 6, 'and every name kept its buckets');

  const full = new History(clock.at);
  gc();
  const fullBefore = used();
  // 1,000 names with every ring full: a request an hour for three days, then one a minute for
  // three hours, then one every 10 s for 15 minutes (buckets without requests take nothing).
  const names = 1000;
  const spell = (every: number, times: number) => {
    for (let step = 0; step < times; step++) {
      for (let name = 0; name < names; name++) full.record(`n${name}`, 2, false);
      clock.now += every;
    }
  };
  spell(3_600_000, HISTORY_WINDOWS['1h'].keep + 1);
  spell(60_000, HISTORY_WINDOWS['1m'].keep + 1);
  spell(10_000, HISTORY_WINDOWS['10s'].keep + 1);
  gc();
  const fullPerName = (used() - fullBefore) / names;
  t.ok(fullPerName < HISTORY_BYTES_PER_NAME + 4096, `${Math.round(fullPerName)} bytes per name with every ring full (bound ${HISTORY_BYTES_PER_NAME} + open buckets)`);
  t.equal(full.buckets('n0', '1h', 73).filter((bucket) => bucket.requests > 0).length, 73, 'three days of hours, and the one in progress');
  t.equal(full.buckets('n0', '1m', 181).filter((bucket) => bucket.requests > 0).length, 181);
  t.equal(full.buckets('n0', '10s', 91).filter((bucket) => bucket.requests > 0).length, 90, 'every kept 10 s bucket (the one in progress has none yet)');
  // Held to the end, so that its collection does not fall inside the second measurement.
  t.equal(history.buckets('key-0', '1m', 1).length, 1);
});

t.test('GET /admin/routes/{key}/stats/history and /admin/models/{name}/stats/history over a gateway', async (t) => {
  const { app } = await buildGateway(t, { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3) }, {
    models: [{ name: 'a', path: 'a.onnx' }, { name: 'b', path: 'b.onnx' }],
    routes: [
      { key: 'ab', split: { variants: [{ target: 'a', weight: 1 }, { target: 'b', weight: 1 }] } },
      { key: 'chain', sequence: { steps: [{ name: 'first', target: 'a' }, { target: 'b' }] } },
    ],
  });
  for (let i = 0; i < 20; i++) t.equal((await app.inject({ method: 'POST', url: '/v2/models/ab/infer', payload: scaleRequest(i) })).statusCode, 200);
  for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/v2/models/chain/infer', payload: scaleRequest(i) });
  const bad = await app.inject({ method: 'POST', url: '/v2/models/a/infer', payload: { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] } });
  t.equal(bad.statusCode, 400);
  const split = await app.inject(adminRequest('GET', '/admin/routes/ab/stats/history?window=10s&last=3'));
  t.equal(split.statusCode, 200, split.body);
  const body = split.json() as { key: string; window: string; bucketSeconds: number; variants: Array<{ target: string; buckets: HistoryBucket[] }> };
  t.match(body, { key: 'ab', window: '10s', bucketSeconds: 10 });
  t.same(body.variants.map((variant) => variant.target), ['a', 'b']);
  t.ok(body.variants.every((variant) => variant.buckets.length === 3 && variant.buckets[2]?.partial === true));
  const counted = body.variants.reduce((sum, variant) => sum + variant.buckets.reduce((total, bucket) => total + bucket.requests, 0), 0);
  t.equal(counted, 20, 'every request of the split in one variant\'s buckets');
  t.ok(body.variants.some((variant) => variant.buckets.some((bucket) => bucket.latencyMs.p50 !== null)), 'with latencies');
  const chain = (await app.inject(adminRequest('GET', '/admin/routes/chain/stats/history?window=1m&last=2'))).json() as { steps: Array<{ target: string; buckets: HistoryBucket[] }> };
  t.same(chain.steps.map((step) => [step.target, step.buckets.reduce((sum, bucket) => sum + bucket.requests, 0)]), [['first', 3], ['b', 3]], 'a sequence\'s steps by name (the target\'s when unnamed)');
  const model = (await app.inject(adminRequest('GET', '/admin/models/a/stats/history?window=1h&last=1'))).json() as { name: string; bucketSeconds: number; buckets: HistoryBucket[] };
  t.match(model, { name: 'a', bucketSeconds: 3600 });
  t.ok((model.buckets[0]?.requests ?? 0) >= 4, `the model counts its requests from every key (${model.buckets[0]?.requests})`);
  t.equal((await app.inject(adminRequest('POST', '/admin/routes/ab/stats/reset'))).statusCode, 200);
  const kept = (await app.inject(adminRequest('GET', '/admin/routes/ab/stats/history?window=10s&last=3'))).json() as typeof body;
  t.equal(kept.variants.reduce((sum, variant) => sum + variant.buckets.reduce((total, bucket) => total + bucket.requests, 0), 0), 20, 'stats/reset leaves the history');
  for (const [url, status, message] of [
    ['/admin/routes/ab/stats/history?window=2m', 400, /^window: must be one of 10s, 1m, 1h/],
    ['/admin/routes/ab/stats/history?last=0', 400, /^last: must be a whole number from 1 to 181/],
    ['/admin/routes/ab/stats/history?window=10s&last=92', 400, /^last: must be a whole number from 1 to 91/],
    ['/admin/routes/ab/stats/history?last=abc', 400, /^last:/],
    ['/admin/routes/none/stats/history', 404, /none/],
    ['/admin/models/none/stats/history', 404, /none/],
  ] as const) {
    const answer = await app.inject(adminRequest('GET', url));
    t.equal(answer.statusCode, status, url);
    t.match((answer.json() as { error: string }).error, message, url);
  }
  t.equal((await app.inject({ method: 'GET', url: '/admin/routes/ab/stats/history' })).statusCode, 401, 'admin token needed');
});
