import t from 'tap';
import { difference, wilson } from '../../src/experiments/intervals.ts';

/** Wilson's bounds as the roots of (p̂ - p)² = z² p (1 - p) / n, solved here by the quadratic formula. */
function roots(events: number, trials: number): [number, number] {
  const z = 1.959963984540054;
  const p = events / trials;
  const a = 1 + (z * z) / trials;
  const b = -(2 * p + (z * z) / trials);
  const c = p * p;
  const root = Math.sqrt(b * b - 4 * a * c);
  return [(-b - root) / (2 * a), (-b + root) / (2 * a)];
}

t.test('Wilson score intervals equal the roots of their defining quadratic', async (t) => {
  for (const [events, trials] of [[0, 10], [5, 10], [10, 10], [1, 3], [81, 263], [3, 1000], [999, 1000]] as const) {
    const interval = wilson(events, trials);
    const [low, high] = roots(events, trials);
    t.ok(interval !== null);
    t.equal(interval?.value, Math.round((events / trials) * 1e6) / 1e6);
    t.ok(Math.abs((interval?.low95 as number) - Math.max(0, low)) < 2e-6, `${events}/${trials} low ${interval?.low95} vs ${low}`);
    t.ok(Math.abs((interval?.high95 as number) - Math.min(1, high)) < 2e-6, `${events}/${trials} high ${interval?.high95} vs ${high}`);
  }
  t.equal(wilson(0, 0), null);
  t.same(wilson(0, 10), { value: 0, low95: 0, high95: 0.277533 });
});

t.test("the difference of two rates: Newcombe's published example, and symmetry", async (t) => {
  // Newcombe (1998), Statistics in Medicine 17:873, Table II: 56/70 - 48/80, method 10: 0.0524 to 0.3339.
  const example = difference({ events: 56, trials: 70 }, { events: 48, trials: 80 });
  t.equal(example?.value, 0.2);
  t.equal(Math.round((example?.low95 as number) * 1e4) / 1e4, 0.0524);
  t.equal(Math.round((example?.high95 as number) * 1e4) / 1e4, 0.3339);
  const reversed = difference({ events: 48, trials: 80 }, { events: 56, trials: 70 });
  t.same(reversed, { value: -0.2, low95: -(example?.high95 as number), high95: -(example?.low95 as number) });
  t.equal(difference({ events: 0, trials: 0 }, { events: 1, trials: 2 }), null);
  const same = difference({ events: 5, trials: 100 }, { events: 5, trials: 100 });
  t.ok((same?.low95 as number) < 0 && (same?.high95 as number) > 0, 'equal rates: an interval around 0');
});
