/**
 * A model's entry, as live changes digest it: the default warm-up is left out, so the digest of
 * a model configured before warm-up existed (a live change's base) still holds.
 */
import t from 'tap';
import { entryOf } from '../../src/live/model-state.ts';
import { baseHolds, entryDigest } from '../../src/store/document.ts';
import { makeRepository, modelConfig, scaleModel } from '../helpers/gateway.ts';

t.test('the default warm-up is left out of a model\'s entry; any other, or false, is kept', async (t) => {
  const repository = makeRepository(t, { 'a.onnx': scaleModel(2) });
  const model = (warmup?: unknown) => modelConfig(repository, { name: 'a', path: 'a.onnx', ...(warmup === undefined ? {} : { warmup }) });
  const before = { name: 'a', path: 'a.onnx', keys: ['a'], pinned: false, session: { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all' }, batching: { maxBatchSize: 32, maxQueueDelayMicros: 0 }, maxQueueSize: 1024, instances: 1, runIn: 'auto' };
  t.same(entryOf(model()), before, 'no warmup written: the entry as it was before warm-up');
  t.same(entryOf(model({ batchSizes: [1], runs: 1 })), before, 'the default written out: left out too');
  t.ok(baseHolds(entryDigest(before), entryOf(model())), 'a live change based on the old entry still holds');
  t.same(entryOf(model({ batchSizes: [1, 8] })).warmup, { batchSizes: [1, 8], runs: 1 });
  t.same(entryOf(model(false)).warmup, false);
});
