import t from 'tap';
import { nowMicros, PreciseTimers } from '../../src/executor/timer.ts';

t.test('precise timers fire once each, in deadline order, never early; a cancelled one never fires', async (t) => {
  const timers = new PreciseTimers();
  t.teardown(() => timers.close());
  await timers.start();
  const fired: Array<[string, number]> = [];
  const start = nowMicros();
  const done = new Promise<void>((resolve) => {
    timers.after(3000, () => fired.push(['3 ms', nowMicros() - start]));
    timers.after(800, () => fired.push(['0.8 ms', nowMicros() - start]));
    const cancel = timers.after(1500, () => fired.push(['cancelled', nowMicros() - start]));
    timers.after(20_000, () => {
      fired.push(['20 ms', nowMicros() - start]);
      resolve();
    });
    cancel();
  });
  await done;
  t.same(fired.map(([name]) => name), ['0.8 ms', '3 ms', '20 ms']);
  for (const [name, micros] of fired) t.ok(micros >= Number.parseFloat(name) * 1000, `${name} fired after ${micros} µs`);
  // Timing belongs in the benchmark; here only that nothing waits for a whole extra second.
  t.ok((fired[2]?.[1] as number) < 1_000_000);
});

t.test('timers set from a firing callback, and after a quiet spell, still fire', async (t) => {
  const timers = new PreciseTimers();
  t.teardown(() => timers.close());
  const chain = await new Promise<number>((resolve) => {
    let count = 0;
    const next = () => {
      count += 1;
      if (count === 50) resolve(count);
      else timers.after(100, next);
    };
    timers.after(100, next);
  });
  t.equal(chain, 50);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(await new Promise<string>((resolve) => timers.after(200, () => resolve('fired'))), 'fired');
});
