import { createHash } from 'node:crypto';
import t from 'tap';
import type { RouteSpec } from '../../src/config/schema.ts';
import { applyState, baseHolds, canonicalJson, entryDigest, sameContent, type RouteState } from '../../src/store/document.ts';

const route: RouteSpec = { key: 'ab', split: { variants: [{ target: 'one', weight: 1 }, { target: 'two', weight: 3 }], stickyHeader: 'x-user' } };
/** The same route as a file rewritten in another key order would give it. */
const reordered = JSON.parse('{"split":{"stickyHeader":"x-user","variants":[{"weight":1,"target":"one"},{"weight":3,"target":"two"}]},"key":"ab"}') as RouteSpec;

t.test('canonical JSON sorts keys at every level and keeps array order', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  t.equal(canonicalJson(route), canonicalJson(reordered));
  t.not(JSON.stringify(route), JSON.stringify(reordered), 'the two differ as plain JSON text');
  t.ok(sameContent(route, reordered));
  t.notOk(sameContent(route, { ...route, split: { ...route.split, stickyHeader: 'x-other' } }));
  t.notOk(sameContent([1, 2], [2, 1]), 'array order counts');
  t.equal(canonicalJson({ ['__proto__']: 1, constructor: 2 }), JSON.stringify(JSON.parse('{"__proto__":1,"constructor":2}')), 'keys named like Object members are kept as data');
});

t.test('a digest is of the content: the same for another key order, different for other content', async (t) => {
  const expected = createHash('sha256').update('{"key":"ab","split":{"stickyHeader":"x-user","variants":[{"target":"one","weight":1},{"target":"two","weight":3}]}}').digest('hex').slice(0, 32);
  t.equal(entryDigest(route), expected);
  t.equal(entryDigest(reordered), expected);
  t.equal(entryDigest(undefined), null);
  t.not(entryDigest({ ...route, key: 'other' }), expected);
});

t.test('a base holds for the canonical digest, and for the digest state files written before it was canonical', async (t) => {
  const legacy = createHash('sha256').update(JSON.stringify(route)).digest('hex').slice(0, 32);
  t.ok(baseHolds(entryDigest(route), reordered));
  t.ok(baseHolds(legacy, route), 'an older state file still applies over the file it was written against');
  t.notOk(baseHolds(legacy, { ...route, split: { ...route.split!, stickyHeader: 'x-changed' } }));
  t.ok(baseHolds(null, undefined), 'no configured route, and none was there');
  t.notOk(baseHolds(null, route), 'a route added to the file since wins');
  t.notOk(baseHolds(entryDigest(route), undefined), 'a route removed from the file since wins');
});

t.test('a live change survives the configuration file rewritten in another key order', async (t) => {
  const live: RouteSpec = { key: 'ab', split: { variants: [{ target: 'two', weight: 1 }] } };
  const state: RouteState = { format: 1, counter: 7, routes: { ab: { base: entryDigest(route), route: live, version: 7 } } };
  const applied = applyState([reordered], state);
  t.same(applied.routes, [live]);
  t.same([...applied.versions], [['ab', 7]]);
  t.same(applied.dropped, []);
  t.equal(applied.counter, 7);
});

t.test('applying a document: dropped when the file changed the route, deletions kept, versions numbered after the file', async (t) => {
  const other: RouteSpec = { key: 'seq', sequence: { steps: [{ target: 'one' }] } };
  const changed: RouteSpec = { key: 'ab', split: { variants: [{ target: 'one', weight: 2 }] } };
  const state: RouteState = {
    format: 1, counter: 9,
    routes: {
      ab: { base: entryDigest(route), route: { key: 'ab', split: { variants: [{ target: 'two', weight: 1 }] } }, version: 8 },
      seq: { base: entryDigest(other), route: null, version: 9 },
    },
  };
  const applied = applyState([changed, other], state);
  t.same(applied.routes, [changed], 'ab as the file has it now; seq deleted live');
  t.same(applied.dropped, ['ab']);
  t.same([...applied.versions], [['ab', 1]]);
  t.same([...applied.kept.keys()], ['seq']);
  const none = applyState([route, other], undefined);
  t.same([...none.versions], [['ab', 1], ['seq', 2]]);
  t.equal(none.counter, 2);
});
