import t from 'tap';
import type { Tensor } from '@modelgate/client/codec';
import { BUCKETS, bucketBounds, outputsAgree, stickyBucket } from '../../src/routing/split.ts';
import { commonSignature } from '../../src/routing/signature.ts';
import { LatencyHistogram } from '../../src/experiments/stats.ts';

function variantOf(bounds: readonly number[], bucket: number): number {
  return bounds.findIndex((bound) => bucket < bound);
}

t.test('buckets are laid out in variant order by weight', async (t) => {
  t.same(bucketBounds([90, 10]), [9000, 10000]);
  t.same(bucketBounds([1, 1, 2]), [2500, 5000, 10000]);
  t.same(bucketBounds([0, 3]), [0, 10000]);
  t.equal(BUCKETS, 10000);
});

t.test('90/10 to 80/20: every user on the 10% variant stays, and only users at the border move', async (t) => {
  const before = bucketBounds([90, 10]);
  const after = bucketBounds([80, 20]);
  let moved = 0;
  let left = 0;
  const users = 20_000;
  for (let user = 0; user < users; user++) {
    const bucket = stickyBucket('iris', `user-${user}`);
    const was = variantOf(before, bucket);
    const now = variantOf(after, bucket);
    if (was === 1 && now !== 1) left += 1;
    if (was !== now) moved += 1;
  }
  t.equal(left, 0, 'no user left the 10% variant');
  // About 10% of users should move (from the 90% side into the widened 20% range); 5 sigma bounds.
  const sigma = Math.sqrt(users * 0.1 * 0.9);
  t.ok(Math.abs(moved - users * 0.1) < 5 * sigma, `${moved} of ${users} users moved`);
  const differ = Array.from({ length: 100 }, (_, user) => stickyBucket('iris', `u${user}`) !== stickyBucket('other', `u${user}`)).filter(Boolean).length;
  t.ok(differ > 95, 'the route key is part of the hash: a user lands independently on each route');
});

t.test('a user\'s bucket is fixed by the route and the user alone, the same in every process and release', async (t) => {
  // Computed outside Node, as the first four bytes of sha256(route NUL user) mod 10,000:
  //   printf 'iris\0%s' alice | openssl dgst -sha256 -r | cut -c1-8   -> 0c11bdb6 -> 9270
  // A hash with a per-process seed, or any change of the formula, moves every sticky user.
  const known: Array<[string, string, number]> = [
    ['iris', 'user-0', 6128], ['iris', 'user-1', 5201], ['iris', 'alice', 9270], ['iris', '42', 4972], ['other', 'alice', 6480],
  ];
  for (const [route, user, bucket] of known) t.equal(stickyBucket(route, user), bucket, `${route} / ${user}`);
});

t.test('sticky buckets are uniform enough to carry the shares', async (t) => {
  const counts = [0, 0];
  const bounds = bucketBounds([70, 30]);
  for (let user = 0; user < 10_000; user++) counts[variantOf(bounds, stickyBucket('r', String(user)))]! += 1;
  t.ok(Math.abs((counts[1] as number) - 3000) < 5 * Math.sqrt(10_000 * 0.21), `30% variant got ${counts[1]}`);
});

t.test('shadow agreement', async (t) => {
  const tensor = (data: number[], shape = [data.length], datatype: Tensor['datatype'] = 'FP32'): Tensor =>
    ({ datatype, shape, data: datatype === 'INT64' ? BigInt64Array.from(data.map(BigInt)) : new Float32Array(data) });
  const map = (entries: Record<string, Tensor>) => new Map(Object.entries(entries));
  t.equal(outputsAgree(map({ y: tensor([1, 2]) }), map({ y: tensor([1.00001, 2.0001]) })), true, 'within tolerance');
  t.equal(outputsAgree(map({ y: tensor([5], [1, 1]) }), map({ y: tensor([5.1], [1, 1]) })), false, 'beyond tolerance, and no classes to compare');
  t.equal(outputsAgree(map({ y: tensor([1, 2]) }), map({ y: tensor([1.5, 2]) })), true, 'beyond tolerance but the same argmax');
  t.equal(outputsAgree(map({ p: tensor([0.1, 0.9, 0.8, 0.2], [2, 2]) }), map({ p: tensor([0.3, 0.7, 0.6, 0.4], [2, 2]) })), true, 'same argmax per row');
  t.equal(outputsAgree(map({ p: tensor([0.1, 0.9], [1, 2]) }), map({ p: tensor([0.9, 0.1], [1, 2]) })), false, 'argmax differs');
  t.equal(outputsAgree(map({ y: tensor([1, 2]) }), map({ y: tensor([1, 2, 3]) })), false, 'shapes differ');
  t.equal(outputsAgree(map({ l: tensor([1, 2], [2], 'INT64') }), map({ l: tensor([1, 2], [2], 'INT64') })), true, 'integers equal');
  t.equal(outputsAgree(map({ l: tensor([1, 2], [2], 'INT64') }), map({ l: tensor([1, 3], [2], 'INT64') })), false);
  t.equal(outputsAgree(map({ a: tensor([1]) }), map({ b: tensor([1]) })), undefined, 'nothing in common');
});

t.test('common signatures of variants', async (t) => {
  const sig = (shape: number[], datatype: Tensor['datatype'] = 'FP32', name = 'x') => ({
    inputs: [{ name, datatype, shape }], outputs: [{ name: 'y', datatype: 'FP32' as const, shape }, { name: 'only', datatype: 'FP32' as const, shape: [1] }],
  });
  t.same(commonSignature([sig([-1, 4]), sig([2, -1])], ['a', 'b']).inputs, [{ name: 'x', datatype: 'FP32', shape: [2, 4] }]);
  t.same(commonSignature([sig([-1, 4]), sig([3, 4])], ['a', 'b']).outputs, [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }, { name: 'only', datatype: 'FP32', shape: [1] }]);
  t.throws(() => commonSignature([sig([-1, 4]), sig([-1, 5])], ['a', 'b']), /'b' takes input 'x' with shape \[-1,5\], incompatible with \[-1,4\] of 'a'/);
  t.throws(() => commonSignature([sig([-1]), sig([-1], 'INT32')], ['a', 'b']), /'b' takes input 'x' as INT32, but 'a' as FP32/);
  t.throws(() => commonSignature([sig([-1]), sig([-1], 'FP32', 'z')], ['a', 'b']), /'b' takes inputs \(z\), but 'a' takes \(x\)/);
});

t.test('latency percentiles within the 2% bucket width', async (t) => {
  const histogram = new LatencyHistogram();
  t.equal(histogram.percentile(0.5), null);
  for (let ms = 1; ms <= 1000; ms++) histogram.record(ms);
  for (const [quantile, exact] of [[0.5, 500], [0.95, 950], [0.99, 990]] as const) {
    const value = histogram.percentile(quantile) as number;
    t.ok(value >= exact && value <= exact * 1.021, `p${quantile * 100}: ${value} vs ${exact}`);
  }
  t.equal(histogram.count, 1000);
});
