/**
 * `npm run fuzz`: the long campaign. A gateway runs in its own process, as
 * users run it; fuzzed requests go to it over real sockets, one at a time,
 * as a fast-check property, so a failure is shrunk to its smallest form and
 * the seed replays it. Prints the seed, the status counts, the server's
 * resident memory before and after, and exits non-zero on any 5xx, reset,
 * hang, malformed error, changed control answer or unbounded memory growth.
 *
 *   FUZZ_REQUESTS (default 100000)   FUZZ_SEED (default: random)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Pool } from 'undici';
import { freePort } from '../../bench/ports.ts';
import { checkAnswer, CONTROL, fuzzedRequest, fuzzGateway } from './arbitraries.ts';

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 100_000);
const SEED = process.env.FUZZ_SEED === undefined ? Date.now() ^ (Math.random() * 0x7fffffff) : Number(process.env.FUZZ_SEED);
const ROOT = path.resolve(import.meta.dirname, '../..');
/** Growth of the server's resident memory over the campaign beyond which it fails: leaks show as steady growth. */
const MAX_GROWTH_BYTES = 128 * 1024 * 1024;

const work = mkdtempSync(path.join(tmpdir(), 'modelgate-fuzz-'));
const { files, config } = fuzzGateway();
for (const [file, bytes] of Object.entries(files)) writeFileSync(path.join(work, file), bytes);
writeFileSync(path.join(work, 'fuzz.json'), JSON.stringify({ ...config, modelRepository: '.', admin: { token: 'fuzz-token-0123456789abcdef' }, server: { ...(config.server as object), logLevel: 'error' } }));

const port = await freePort();
const child = spawn(process.execPath, [path.join(ROOT, 'src/cli.ts'), 'serve', '--config', path.join(work, 'fuzz.json'), '--port', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
let exited: number | null | undefined;
child.on('exit', (code) => { exited = code; });
const origin = `http://127.0.0.1:${port}`;
const pool = new Pool(origin, { connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });

async function send(method: 'GET' | 'POST', url: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  const response = await pool.request({ method, path: url, headers, ...(body === undefined ? {} : { body }) });
  return { status: response.statusCode, headers: response.headers, body: Buffer.from(await response.body.arrayBuffer()) };
}

async function residentBytes(): Promise<number> {
  const metrics = (await send('GET', '/metrics')).body.toString('utf8');
  return Number(/^modelgate_process_resident_memory_bytes(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1]);
}

async function controlHolds(): Promise<boolean> {
  const answer = await send('POST', `/v2/models/${CONTROL.key}/infer`, CONTROL.body, { 'content-type': 'application/json' });
  return answer.status === 200 && JSON.stringify(JSON.parse(answer.body.toString()).outputs[0].data) === JSON.stringify(CONTROL.answer);
}

const statuses = new Map<number, number>();
let sent = 0;
let warm = 0;
let failure: unknown;
const started = Date.now();
try {
  for (let attempt = 0; ; attempt++) {
    try {
      await send('GET', '/v2/health/ready');
      break;
    } catch (error) {
      if (attempt > 200 || exited !== undefined) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  console.log(`fuzz: seed ${SEED}, ${REQUESTS} requests to ${origin} (replay: FUZZ_SEED=${SEED} npm run fuzz)`);
  await fc.assert(fc.asyncProperty(fuzzedRequest(), async ({ request, sent: out, mutated }) => {
    let answer;
    try {
      answer = await send('POST', `/v2/models/${encodeURIComponent(out.key)}/infer`, out.body, out.headers);
    } catch (error) {
      throw new Error(`no answer (${exited === undefined ? 'server running' : `server exited ${exited}`}): ${(error as Error).message}`);
    }
    sent += 1;
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    const problem = checkAnswer(answer.status, answer.headers, answer.body, request, mutated);
    if (problem !== undefined) throw new Error(`${problem}\n  key ${out.key}, headers ${JSON.stringify(out.headers)}`);
    if (sent === 2000) warm = await residentBytes();
    if (sent % 5000 === 0) {
      if (!(await controlHolds())) throw new Error(`the control key's answer changed after ${sent} requests`);
      process.stdout.write(`  ${sent} requests, ${Math.round(sent / ((Date.now() - started) / 1000))}/s, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}\n`);
    }
  }), { numRuns: REQUESTS, seed: SEED, endOnFailure: false });
  const end = await residentBytes();
  const grew = end - warm;
  console.log(`fuzz: ${sent} answers in ${((Date.now() - started) / 1000).toFixed(0)} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}; 5xx: ${[...statuses].filter(([status]) => status >= 500).reduce((sum, [, count]) => sum + count, 0)}; server resident memory ${(warm / 2 ** 20).toFixed(0)} MiB after warm-up, ${(end / 2 ** 20).toFixed(0)} MiB at the end`);
  if (warm > 0 && grew > MAX_GROWTH_BYTES) throw new Error(`the server's resident memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  if (!(await controlHolds())) throw new Error('the control key\'s answer changed');
} catch (error) {
  failure = error;
} finally {
  await pool.close();
  child.kill('SIGTERM');
}
if (failure !== undefined) {
  console.error(`fuzz: FAILED (seed ${SEED}, after ${sent} answers; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))})\n${(failure as Error).message}`);
  process.exitCode = 1;
}
