import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { LogStream } from '../../src/telemetry/log-stream.ts';

function file(t: Test) {
  const name = path.join(t.testdir(), 'log');
  const fd = openSync(name, 'w');
  t.teardown(() => closeSync(fd));
  return { fd, read: () => readFileSync(name, 'utf8') };
}

t.test('lines are held, then written together after the delay, in order', async (t) => {
  const { fd, read } = file(t);
  const stream = new LogStream({ fd, maxDelayMs: 30 });
  for (let i = 0; i < 100; i++) stream.write(`{"n":${i}}\n`);
  t.equal(read(), '', 'nothing written at once');
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.same(read().trimEnd().split('\n').map((line) => JSON.parse(line).n), Array.from({ length: 100 }, (_, i) => i));
});

t.test('past maxBytes the buffer is written at once; flushSync writes the rest', async (t) => {
  const { fd, read } = file(t);
  const stream = new LogStream({ fd, maxBytes: 100, maxDelayMs: 60_000 });
  const line = `${'x'.repeat(39)}\n`;
  stream.write(line);
  stream.write(line);
  t.equal(read(), '');
  stream.write(line);
  t.equal(read(), line.repeat(3), 'written when 120 bytes waited');
  stream.write('last ä\n');
  t.equal(read(), line.repeat(3));
  stream.flushSync();
  t.equal(read(), `${line.repeat(3)}last ä\n`);
  stream.flushSync();
  t.equal(read(), `${line.repeat(3)}last ä\n`, 'nothing twice');
});

t.test('past maxBufferedBytes new lines are dropped, counted, and the count written', async (t) => {
  const { fd, read } = file(t);
  const stream = new LogStream({ fd, maxBytes: 1 << 30, maxBufferedBytes: 10, maxDelayMs: 60_000 });
  stream.write('0123456789ab\n');
  stream.write('dropped\n');
  stream.write('dropped\n');
  stream.flushSync();
  const lines = read().trimEnd().split('\n');
  t.equal(lines[0], '0123456789ab');
  t.match(JSON.parse(lines[1] as string), { level: 40, msg: 'log lines dropped: stdout was not read', dropped: 2 });
});
