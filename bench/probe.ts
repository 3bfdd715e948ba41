/**
 * A liveness prober in its own process, so the load generator's event loop
 * does not colour what it measures: GET /v2/health/live on each URL given,
 * 50 times a second each, for the seconds given; prints the p50 and p99 of
 * each, in ms, as JSON.
 *   node bench/probe.ts <seconds> <url>...
 */
import { request } from 'undici';

const [seconds, ...urls] = process.argv.slice(2);
const until = performance.now() + Number(seconds) * 1000;
const samples = urls.map(() => [] as number[]);
await Promise.all(urls.map(async (url, index) => {
  for (let next = performance.now(); next < until; next += 20) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
    const begin = performance.now();
    const response = await request(`${url}/v2/health/live`);
    await response.body.dump();
    (samples[index] as number[]).push(performance.now() - begin);
  }
}));
const quantile = (values: number[], q: number) => values.sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))] ?? 0;
process.stdout.write(JSON.stringify(samples.map((values) => ({ p50: quantile(values, 0.5), p99: quantile(values, 0.99), count: values.length }))));
