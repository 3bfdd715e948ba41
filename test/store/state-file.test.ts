import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { StateNotSavedError } from '../../src/errors.ts';
import type { RouteState } from '../../src/store/document.ts';
import { readState, writeAtomically, writeState } from '../../src/store/state-file.ts';
import { StateFileStore } from '../../src/store/store.ts';

const state: RouteState = { format: 1, counter: 3, savedAt: '2026-01-02T03:04:05.000Z', routes: { ab: { base: null, route: null, version: 3 } } };

t.test('written whole, owner-only, read back as written; no temporary file left', async (t) => {
  const folder = t.testdir();
  const file = path.join(folder, 'gateway.state.json');
  await writeState(file, state);
  t.same(await readState(file), state);
  t.equal(readFileSync(file, 'utf8'), `${JSON.stringify(state, null, 2)}\n`);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.same(readdirSync(folder), ['gateway.state.json']);
  await writeAtomically(file, 'second');
  t.equal(readFileSync(file, 'utf8'), 'second', 'replaced');
});

t.test('no file is no state; a file of another shape is refused', async (t) => {
  const folder = t.testdir({ 'other.json': JSON.stringify({ format: 2, counter: 1, routes: {} }), 'routes-null.json': JSON.stringify({ format: 1, counter: 1, routes: null }), 'text.json': 'not json' });
  t.equal(await readState(path.join(folder, 'absent.json')), undefined);
  await t.rejects(readState(path.join(folder, 'other.json')), /not a modelgate route state file/);
  await t.rejects(readState(path.join(folder, 'routes-null.json')), /not a modelgate route state file/);
  await t.rejects(readState(path.join(folder, 'text.json')), SyntaxError);
});

t.test('the state file store: a write that cannot happen is a StateNotSavedError naming the cause', async (t) => {
  const folder = t.testdir();
  const store = new StateFileStore(path.join(folder, 'missing-folder', 'state.json'));
  t.equal(store.shared, false);
  await t.rejects(store.write(state), StateNotSavedError);
  await t.rejects(store.write(state), { statusCode: 500, message: /\(ENOENT\)/ });
  const good = new StateFileStore(path.join(folder, 'state.json'));
  t.equal(await good.write(state), true);
  t.same(await good.read(), state);
  writeFileSync(path.join(folder, 'state.json'), '{}');
  await t.rejects(good.read(), /not a modelgate route state file/);
});
