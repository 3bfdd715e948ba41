/**
 * `npm run bench`: the gateway against its ceilings, measured in one run.
 * Each server runs in its own process; the load comes from this one
 * (autocannon). Figures are medians of several rounds; ratios are to the
 * baselines of the same run, never absolute targets. Writes bench/results.json.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { credentials, loadPackageDefinition, Metadata, type Client } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { GRPC_LOADER_OPTIONS, GRPC_PROTO } from '@modelgate/client/codec';
import autocannon from 'autocannon';
import { request } from 'undici';
import { freePort } from './ports.ts';
import * as ort from 'onnxruntime-node';
import { buildModel } from '../src/onnx/builder.ts';
import { demoModels } from '../src/demo/build-models.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_ONLY=3,6: those sections only (the ceilings, 1 and 2, always run). */
const ONLY = process.env.BENCH_ONLY?.split(',');
const only = (section: string) => ONLY === undefined || ONLY.includes(section);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROOT = path.resolve(import.meta.dirname, '..');
const work = mkdtempSync(path.join(tmpdir(), 'modelgate-bench-'));

/** A float32 MLP in -> hidden -> out with ReLU, deterministic weights. */
function mlp(input: number, hidden: number, output: number, seed: number): Uint8Array {
  const weights = (n: number, scale: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * scale);
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', input] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', output] }],
    initializers: [
      { name: 'W1', type: 'float32', dims: [input, hidden], values: weights(input * hidden, 1 / Math.sqrt(input)) },
      { name: 'B1', type: 'float32', dims: [hidden], values: weights(hidden, 0.1) },
      { name: 'W2', type: 'float32', dims: [hidden, output], values: weights(hidden * output, 1 / Math.sqrt(hidden)) },
      { name: 'B2', type: 'float32', dims: [output], values: weights(output, 0.1) },
    ],
    nodes: [
      { op: 'Gemm', inputs: ['x', 'W1', 'B1'], outputs: ['h'] },
      { op: 'Relu', inputs: ['h'], outputs: ['r'] },
      { op: 'Gemm', inputs: ['r', 'W2', 'B2'], outputs: ['y'] },
    ],
  });
}

/**
 * A cheap stand-in for the MLP: the same input and output y (through 32 hidden units, not
 * 2048), and a `confidence` output, a row's first input element, so a request decides which
 * of its rows the cheap model is sure of.
 */
function cheapModel(): Uint8Array {
  const weights = (n: number, scale: number) => Array.from({ length: n }, (_, i) => Math.cos(i * 7.77) * scale);
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 512] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 512] }, { name: 'confidence', type: 'float32', shape: ['batch', 1] }],
    initializers: [
      { name: 'W1', type: 'float32', dims: [512, 32], values: weights(512 * 32, 1 / Math.sqrt(512)) },
      { name: 'B1', type: 'float32', dims: [32], values: weights(32, 0.1) },
      { name: 'W2', type: 'float32', dims: [32, 512], values: weights(32 * 512, 1 / Math.sqrt(32)) },
      { name: 'B2', type: 'float32', dims: [512], values: weights(512, 0.1) },
      { name: 'starts', type: 'int64', dims: [1], values: [0n] },
      { name: 'ends', type: 'int64', dims: [1], values: [1n] },
      { name: 'axes', type: 'int64', dims: [1], values: [1n] },
    ],
    nodes: [
      { op: 'Gemm', inputs: ['x', 'W1', 'B1'], outputs: ['h'] },
      { op: 'Relu', inputs: ['h'], outputs: ['r'] },
      { op: 'Gemm', inputs: ['r', 'W2', 'B2'], outputs: ['y'] },
      { op: 'Slice', inputs: ['x', 'starts', 'ends', 'axes'], outputs: ['confidence'] },
    ],
  });
}

const models = new Map<string, Uint8Array>([
  ['cheap.onnx', cheapModel()],
  ['tiny.onnx', demoModels().get('iris/v2.onnx') as Uint8Array],
  ['mlp.onnx', mlp(512, 2048, 512, 1)],
  ['big-identity.onnx', buildModel({ inputs: [{ name: 'x', type: 'float32', shape: ['n'] }], outputs: [{ name: 'y', type: 'float32', shape: ['n'] }], nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }] })],
  ...Array.from({ length: 8 }, (_, i) => [`t${i}.onnx`, mlp(256, 1024, 256, i + 10)] as [string, Uint8Array]),
]);
for (const [file, bytes] of models) writeFileSync(path.join(work, file), bytes);

function config(name: string, document: Record<string, unknown>): string {
  const file = path.join(work, `${name}.json`);
  // The default log level (info): one access-log line per request, as users run it.
  writeFileSync(file, JSON.stringify({ modelRepository: '.', admin: { token: 'bench-token-0123456789' }, ...document }));
  return file;
}

const CLOCK_TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;

/** CPU time a process has used, all its threads, in µs (utime + stime from /proc). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICK * 1e6;
}

const pids = new Map<string, number>();

async function start(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...args, '--port', String(port)], { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      // Any answer means it listens (the no-op server has no health route).
      await fetch(`${url}/v2/health/live`);
      pids.set(url, child.pid as number);
      return { url, child };
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`server ${args.join(' ')} did not start`);
}

function gateway(name: string, document: Record<string, unknown>) {
  return start([path.join(ROOT, 'src/cli.ts'), 'serve', '--config', config(name, document)]);
}

/** The middle value (the upper one of an even count). */
function medianOf(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[values.length >> 1] as number;
}

/** req/s, latency in µs, and the server's CPU µs per request answered; with a counter, how much it grew per request over the measured rounds. */
interface Load { requests: number; p50: number; p99: number; errors: number; cpuPerRequest: number; countedPerRequest?: number }

async function load(url: string, options: { connections: number; body?: string | Buffer; headers?: Record<string, string>; paths?: () => string; path?: string; counter?: () => Promise<number> }): Promise<Load> {
  const results: Load[] = [];
  const pid = pids.get(url) as number;
  const target = {
    url: `${url}${options.path ?? ''}`,
    connections: options.connections,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json', ...options.headers },
    ...(options.body === undefined ? {} : { body: options.body }),
    ...(options.paths === undefined ? {} : { requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, path: (options.paths as () => string)() }) }] }),
  };
  // A second of warm-up, not counted: JIT, first loads, and runIn auto's timing runs.
  await autocannon({ ...target, duration: 1 });
  const countedBefore = await options.counter?.();
  let answered = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const cpuBefore = cpuMicros(pid);
    const result = await autocannon({ ...target, duration: SECONDS });
    const cpu = cpuMicros(pid) - cpuBefore;
    answered += result.requests.total;
    results.push({ requests: result.requests.average, p50: result.latency.p50 * 1000, p99: result.latency.p99 * 1000, errors: result.errors + result.non2xx, cpuPerRequest: cpu / Math.max(1, result.requests.total) });
  }
  const countedAfter = await options.counter?.();
  const median = (pick: (load: Load) => number) => medianOf(results.map(pick));
  return {
    requests: median((r) => r.requests), p50: median((r) => r.p50), p99: median((r) => r.p99), errors: results.reduce((sum, r) => sum + r.errors, 0), cpuPerRequest: median((r) => r.cpuPerRequest),
    ...(countedBefore === undefined || countedAfter === undefined ? {} : { countedPerRequest: (countedAfter - countedBefore) / Math.max(1, answered) }),
  };
}

/** Latency of sequential requests (concurrency 1), in µs: autocannon's histogram has only millisecond resolution. */
async function sequentialLatency(url: string | readonly string[], body: string): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  // With several URLs, a sample is one call to each, one after another.
  const urls = typeof url === 'string' ? [url] : url;
  for (let round = 0; round < ROUNDS; round++) {
    const until = performance.now() + SECONDS * 1000;
    while (performance.now() < until) {
      const begin = performance.now();
      for (const each of urls) {
        const response = await request(each, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await response.body.dump();
      }
      samples.push((performance.now() - begin) * 1000);
    }
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(samples.length * 0.5)] as number, p99: samples[Math.floor(samples.length * 0.99)] as number };
}

/** Runs of raw onnxruntime in this process, per second, at a batch size. */
async function rawRuns(file: string, width: number, batch: number): Promise<number> {
  const session = await ort.InferenceSession.create(path.join(work, file), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const feeds = { [session.inputNames[0] as string]: new ort.Tensor('float32', new Float32Array(batch * width).fill(0.5), [batch, width]) };
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let runs = 0;
    const until = performance.now() + SECONDS * 1000;
    while (performance.now() < until) {
      await session.run(feeds);
      runs += 1;
    }
    rates.push(runs / SECONDS);
  }
  await session.release();
  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)] as number;
}

function binaryBody(rows: number, width: number): { body: Buffer; headers: Record<string, string> } {
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, width], parameters: { binary_data_size: rows * width * 4 } }], outputs: [{ name: 'y', parameters: { binary_data: true } }] }));
  const data = Buffer.from(new Float32Array(rows * width).fill(0.5).buffer);
  return { body: Buffer.concat([header, data]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
}

const GrpcService = (loadPackageDefinition(loadSync(GRPC_PROTO, GRPC_LOADER_OPTIONS)) as unknown as { inference: { GRPCInferenceService: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } }).inference.GRPCInferenceService;

/**
 * gRPC load on a server (its pid known by `url`), from this process: `concurrency` closed loops
 * of unary ModelInfer calls, or as many streams each with one request in flight. Requests per
 * second and the server's CPU µs per request, medians of the rounds, after a second of warm-up.
 */
async function grpcLoad(url: string, address: string, request: unknown, concurrency: number, streaming: boolean): Promise<{ requests: number; cpuPerRequest: number; errors: number }> {
  const clients = Array.from({ length: Math.min(concurrency, 8) }, () => new GrpcService(address, credentials.createInsecure()));
  const pid = pids.get(url) as number;
  let errors = 0;
  const loop = async (index: number, until: number): Promise<number> => {
    const client = clients[index % clients.length] as Client;
    let done = 0;
    if (streaming) {
      const stream = (client as unknown as { ModelStreamInfer(): NodeJS.ReadWriteStream & { write(message: unknown): boolean; end(): void } }).ModelStreamInfer();
      await new Promise<void>((resolve) => {
        stream.on('data', (message: { error_message: string }) => {
          if (message.error_message !== '') errors += 1;
          done += 1;
          if (performance.now() < until) stream.write(request);
          else stream.end();
        });
        stream.on('end', resolve);
        stream.on('error', () => { errors += 1; resolve(); });
        stream.write(request);
      });
      return done;
    }
    while (performance.now() < until) {
      await new Promise<void>((resolve) => {
        (client as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: Error | null) => void) => void>).ModelInfer?.call(client, request, new Metadata(), (error) => {
          if (error !== null) errors += 1;
          resolve();
        });
      });
      done += 1;
    }
    return done;
  };
  const run = async (seconds: number) => {
    const until = performance.now() + seconds * 1000;
    const counts = await Promise.all(Array.from({ length: concurrency }, (_, index) => loop(index, until)));
    return counts.reduce((sum, count) => sum + count, 0);
  };
  await run(1);
  const rounds: Array<{ requests: number; cpuPerRequest: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cpuBefore = cpuMicros(pid);
    const began = performance.now();
    const answered = await run(SECONDS);
    const cpu = cpuMicros(pid) - cpuBefore;
    rounds.push({ requests: answered / ((performance.now() - began) / 1000), cpuPerRequest: cpu / Math.max(1, answered) });
  }
  for (const client of clients) client.close();
  const median = (pick: (round: { requests: number; cpuPerRequest: number }) => number) => medianOf(rounds.map(pick));
  return { requests: median((round) => round.requests), cpuPerRequest: median((round) => round.cpuPerRequest), errors };
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((sum, match) => sum + Number(match[1]), 0);
}

const results: Record<string, unknown> = { rounds: ROUNDS, seconds: SECONDS, node: process.version, machine: { host: hostname(), cpus: cpus().length, model: cpus()[0]?.model } };
const table: Array<[string, string, string]> = [];
const row = (what: string, value: string, ratio = '') => { table.push([what, value, ratio]); process.stderr.write(`${what}: ${value} ${ratio}\n`); };
const children: ChildProcess[] = [];
const started = async (promise: ReturnType<typeof start>) => { const server = await promise; children.push(server.child); return server.url; };
const fixed = (value: number, digits = 0) => value.toFixed(digits);
const signed = (value: number, digits = 0) => `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;

interface Quantiles { p50: number; p99: number }

/** Probes liveness of the URLs from a process of its own while `during` runs; p50/p99 in ms. */
async function probing<T>(urls: string[], seconds: number, during: () => Promise<T>): Promise<{ outcome: T; probes: Quantiles[] }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench/probe.ts'), String(seconds), ...urls], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const outcome = await during();
  await exited;
  return { outcome, probes: JSON.parse(out) as Quantiles[] };
}

/** One closed loop per connection, each request to the path `pick` chooses; per-path latency (ms) and req/s. */
async function closedLoops(url: string, connections: number, body: Buffer, headers: Record<string, string>, pick: () => string, seconds = SECONDS): Promise<{ requests: number; byPath: Map<string, number[]> }> {
  const byPath = new Map<string, number[]>();
  let answered = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < until) {
      const where = pick();
      const begin = performance.now();
      const response = await request(`${url}${where}`, { method: 'POST', headers, body });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`${where}: ${response.statusCode}`);
      answered += 1;
      const list = byPath.get(where) ?? [];
      list.push(performance.now() - begin);
      byPath.set(where, list);
    }
  }));
  return { requests: answered / seconds, byPath };
}

/** The issue's targets, met or not, as the run measured them. */
const targets: Array<{ what: string; value: number; compare: '>=' | '<='; target: number; met: boolean }> = [];
function target(what: string, value: number, compare: '>=' | '<=', goal: number): void {
  targets.push({ what, value, compare, target: goal, met: compare === '>=' ? value >= goal : value <= goal });
}

const p99 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.99)] ?? 0;

try {
  const tinyJson = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [6.7, 3.0, 5.2, 2.3] }] });
  // 1. HTTP ceiling.
  const noop = await started(start([path.join(ROOT, 'bench/noop-server.ts')]));
  const ceiling = await load(noop, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const ceilingLatency = await sequentialLatency(`${noop}/v2/models/tiny/infer`, tinyJson);
  row('1. HTTP ceiling (no-op route), c=32', `${fixed(ceiling.requests)} req/s, ${fixed(ceiling.cpuPerRequest, 1)} µs CPU/req`);
  row('1. HTTP ceiling, c=1 latency', `p50 ${fixed(ceilingLatency.p50)} µs, p99 ${fixed(ceilingLatency.p99)} µs`);
  results.httpCeiling = { c32: ceiling, c1: ceilingLatency };

  // 1b. The hand-written route (bench/handwritten-server.ts): what a team would write instead.
  const handwritten = await started(start([path.join(ROOT, 'bench/handwritten-server.ts'), '--model', path.join(work, 'tiny.onnx')]));
  const byHand = await load(handwritten, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const byHandLatency = await sequentialLatency(`${handwritten}/v2/models/tiny/infer`, tinyJson);
  row('1b. hand-written fastify + onnxruntime route, tiny model, JSON, c=32', `${fixed(byHand.requests)} req/s, ${fixed(byHand.cpuPerRequest, 1)} µs CPU/req`);
  row('1b. hand-written route, c=1 latency', `p50 ${fixed(byHandLatency.p50)} µs, p99 ${fixed(byHandLatency.p99)} µs`);
  results.handwritten = { c32: byHand, c1: byHandLatency };

  // 2. Compute ceiling.
  const tinyRaw = await rawRuns('tiny.onnx', 4, 1);
  const mlpRaw1 = await rawRuns('mlp.onnx', 512, 1);
  const mlpRaw64 = await rawRuns('mlp.onnx', 512, 64);
  row('2. raw onnxruntime, tiny model, batch 1', `${fixed(tinyRaw)} runs/s`);
  row('2. raw onnxruntime, MLP 512-2048-512, batch 1', `${fixed(mlpRaw1)} rows/s`);
  row('2. raw onnxruntime, MLP, batch 64', `${fixed(mlpRaw64 * 64)} rows/s`);
  results.computeCeiling = { tinyRunsPerSecond: tinyRaw, mlpRowsPerSecondBatch1: mlpRaw1, mlpRowsPerSecondBatch64: mlpRaw64 * 64 };

  if (only('3')) {
  // 3. Tiny model through the gateway, JSON, default configuration.
  const tiny = await started(gateway('tiny', { models: [{ name: 'tiny', path: 'tiny.onnx' }] }));
  const tinyLoad = await load(tiny, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const tinyLatency = await sequentialLatency(`${tiny}/v2/models/tiny/infer`, tinyJson);
  const cpuRatio = ceiling.cpuPerRequest / tinyLoad.cpuPerRequest;
  const byHandCpuRatio = byHand.cpuPerRequest / tinyLoad.cpuPerRequest;
  const byHandRequestRatio = tinyLoad.requests / byHand.requests;
  row('3. gateway, tiny model, JSON, c=32', `${fixed(tinyLoad.requests)} req/s, ${fixed(tinyLoad.cpuPerRequest, 1)} µs CPU/req`, `(1)'s CPU / this: ${cpuRatio.toFixed(2)} (target >= 0.75), req/s ${(tinyLoad.requests / ceiling.requests).toFixed(2)} of (1)'s`);
  row('3. gateway against the hand-written route (1b), tiny, JSON, c=32', `(1b)'s CPU / this: ${byHandCpuRatio.toFixed(2)}`, `target >= 1.2; req/s ${byHandRequestRatio.toFixed(2)} of (1b)'s (target >= 1.1)`);
  row('3. gateway, tiny model, c=1 latency', `p50 ${fixed(tinyLatency.p50)} µs, p99 ${fixed(tinyLatency.p99)} µs`, `p50 ${signed(tinyLatency.p50 - ceilingLatency.p50)} µs over (1) (target <= +60), ${signed(tinyLatency.p50 - byHandLatency.p50)} µs over (1b); p99 ${(tinyLatency.p99 / ceilingLatency.p99).toFixed(2)}x (1)'s`);
  results.tiny = { c32: tinyLoad, c1: tinyLatency, cpuRatio, requestRatio: tinyLoad.requests / ceiling.requests, handwrittenCpuRatio: byHandCpuRatio, handwrittenRequestRatio: byHandRequestRatio, p50AboveCeilingMicros: tinyLatency.p50 - ceilingLatency.p50, p50AboveHandwrittenMicros: tinyLatency.p50 - byHandLatency.p50, p99RatioToCeiling: tinyLatency.p99 / ceilingLatency.p99 };
  target('tiny JSON, c=32: hand-written CPU/req ÷ modelgate\'s', byHandCpuRatio, '>=', 1.2);
  target('tiny JSON, c=32: modelgate req/s ÷ hand-written', byHandRequestRatio, '>=', 1.1);
  target('tiny JSON, c=32: no-op CPU/req ÷ modelgate\'s', cpuRatio, '>=', 0.75);
  target('tiny, c=1: p50 above the no-op route (µs)', tinyLatency.p50 - ceilingLatency.p50, '<=', 60);

  }

  if (only('3b')) {
  // 3b. A lone request's wait under maxQueueDelayMicros 500, against the same model unbatched.
  const delays = await started(gateway('delay', { models: [{ name: 'unbatched', path: 'tiny.onnx', batching: false }, { name: 'delayed', path: 'tiny.onnx', batching: { maxBatchSize: 64, maxQueueDelayMicros: 500 } }] }));
  const unbatched = await sequentialLatency(`${delays}/v2/models/unbatched/infer`, tinyJson);
  const delayed = await sequentialLatency(`${delays}/v2/models/delayed/infer`, tinyJson);
  row('3b. lone request, maxQueueDelayMicros 500 against unbatched, c=1', `p50 ${fixed(delayed.p50)} vs ${fixed(unbatched.p50)} µs`, `+${fixed(delayed.p50 - unbatched.p50)} µs (target <= 600)`);
  results.queueDelay = { unbatched, delayed, addedMicros: delayed.p50 - unbatched.p50 };

  }

  if (only('4')) {
  // 4 and 7. Compute-bound model, single rows, c=64: batching off and on (64 rows, 500 µs); liveness while it runs, beside an idle server.
  const mlpBody = binaryBody(1, 512);
  const mlpJson = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(0.5) }] });
  const idle = await started(gateway('idle', { models: [{ name: 'tiny', path: 'tiny.onnx' }] }));
  const floorMicros = 1e6 / (mlpRaw64 * 64) + ceiling.cpuPerRequest;
  const mlp: Record<string, Load> = {};
  for (const batching of [false, true]) {
    // Probed on its main port and on server.healthPort (answered by a thread of its own).
    const healthPort = await freePort();
    const url = await started(gateway(`mlp-${batching}`, { server: { healthPort }, models: [{ name: 'mlp', path: 'mlp.onnx', batching: batching ? { maxBatchSize: 64, maxQueueDelayMicros: 500 } : false }] }));
    const label = batching ? 'on' : 'off';
    const { outcome: binary, probes } = await probing([url, `http://127.0.0.1:${healthPort}`, idle], SECONDS * ROUNDS, () => load(url, { connections: 64, body: mlpBody.body, headers: mlpBody.headers, path: '/v2/models/mlp/infer' }));
    const json = await load(url, { connections: 64, body: mlpJson, path: '/v2/models/mlp/infer' });
    mlp[label] = binary;
    const [loaded, healthThread, quiet] = probes as [Quantiles, Quantiles, Quantiles];
    row(`4. gateway, MLP single rows, binary, c=64, batching ${label}`, `${fixed(binary.requests)} rows/s, ${fixed(binary.cpuPerRequest)} µs CPU/row`, `${(binary.requests / (mlpRaw64 * 64)).toFixed(2)} of raw batched (target >= 0.4), CPU floor ${fixed(floorMicros)} µs/row: ${(floorMicros / binary.cpuPerRequest).toFixed(2)} (target >= 0.7)`);
    row(`4. gateway, MLP single rows, JSON, c=64, batching ${label}`, `${fixed(json.requests)} rows/s`);
    row(`7. liveness p99 while (4) batching ${label}, main port, beside an idle server`, `${loaded.p99.toFixed(1)} vs ${quiet.p99.toFixed(1)} ms`, `target <= ${(quiet.p99 * 1.25 + 1).toFixed(1)} ms`);
    row(`7. liveness p99 while (4) batching ${label}, server.healthPort`, `${healthThread.p99.toFixed(1)} ms`, `target <= ${(quiet.p99 * 1.25 + 1).toFixed(1)} ms`);
    results[`mlpBatching_${label}`] = { binary, json, liveness: { loaded, healthPort: healthThread, idle: quiet }, ratioToRawBatched: binary.requests / (mlpRaw64 * 64), cpuFloorMicros: floorMicros, cpuFloorRatio: floorMicros / binary.cpuPerRequest };
  }
  row('4. batching on / off, binary', `${((mlp.on as Load).requests / (mlp.off as Load).requests).toFixed(2)}x`, 'target >= 2.5');
  results.mlpBatchingGain = (mlp.on as Load).requests / (mlp.off as Load).requests;
  const mlpByHand = await started(start([path.join(ROOT, 'bench/handwritten-server.ts'), '--model', path.join(work, 'mlp.onnx')]));
  const byHandJson = await load(mlpByHand, { connections: 64, body: mlpJson, path: '/v2/models/mlp/infer' });
  const onJson = (results.mlpBatching_on as { json: Load }).json;
  row('4. hand-written route (1b), MLP single rows, JSON, c=64', `${fixed(byHandJson.requests)} rows/s, ${fixed(byHandJson.cpuPerRequest)} µs CPU/row`, `gateway batching on: ${(onJson.requests / byHandJson.requests).toFixed(2)}x its rows/s`);
  results.mlpHandwritten = { json: byHandJson, gatewayRowsRatio: onJson.requests / byHandJson.requests };
  const binaryOn = mlp.on as Load;
  target('MLP binary rows, c=64: CPU floor ÷ CPU per row', floorMicros / binaryOn.cpuPerRequest, '>=', 0.7);
  target('MLP binary rows, c=64: rows/s ÷ raw onnxruntime batch 64', binaryOn.requests / (mlpRaw64 * 64), '>=', 0.4);
  target('MLP binary rows, c=64: batching on ÷ off', binaryOn.requests / (mlp.off as Load).requests, '>=', 2.5);

  }

  if (only('5')) {
  // 5. 1 MiB FP32 input, binary against JSON.
  const big = await started(gateway('big', { models: [{ name: 'big', path: 'big-identity.onnx' }] }));
  const floats = 262144;
  const bigBinary = binaryBody(1, floats);
  const bigBinaryBody = { ...bigBinary, body: Buffer.concat([Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [floats], parameters: { binary_data_size: floats * 4 } }], outputs: [{ name: 'y', parameters: { binary_data: true } }] })), Buffer.alloc(floats * 4)]) };
  bigBinaryBody.headers = { ...bigBinary.headers, 'inference-header-content-length': String(bigBinaryBody.body.length - floats * 4) };
  const viaBinary = await load(big, { connections: 8, body: bigBinaryBody.body, headers: bigBinaryBody.headers, path: '/v2/models/big/infer' });
  const viaJson = await load(big, { connections: 8, body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [floats], data: new Array(floats).fill(0.5) }] }), path: '/v2/models/big/infer' });
  row('5. 1 MiB FP32 in and out, binary', `${viaBinary.requests.toFixed(1)} req/s`, `${(viaBinary.requests / viaJson.requests).toFixed(1)}x JSON`);
  row('5. 1 MiB FP32 in and out, JSON', `${viaJson.requests.toFixed(1)} req/s`);
  results.binaryVsJson = { binary: viaBinary, json: viaJson, ratio: viaBinary.requests / viaJson.requests };

  }

  if (only('8')) {
  // 8. One hop: the tiny model on a remote modelgate (a gateway of its own, as in (3)), called directly and through a second gateway.
  const tiny = await started(gateway('remote-tiny', { models: [{ name: 'tiny', path: 'tiny.onnx' }] }));
  const hop = await started(gateway('hop', { models: [{ name: 'tiny', remote: { url: tiny, model: 'tiny', connections: 32 } }] }));
  const direct = await load(tiny, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const viaHop = await load(hop, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const directLatency = await sequentialLatency(`${tiny}/v2/models/tiny/infer`, tinyJson);
  const hopLatency = await sequentialLatency(`${hop}/v2/models/tiny/infer`, tinyJson);
  row('8. remote hop, tiny model, c=32: direct / through a gateway', `${fixed(direct.requests)} / ${fixed(viaHop.requests)} req/s`, `${(viaHop.requests / direct.requests).toFixed(2)} of direct`);
  row('8. remote hop, c=1 latency: direct / through a gateway', `p50 ${fixed(directLatency.p50)} / ${fixed(hopLatency.p50)} µs`, `+${fixed(hopLatency.p50 - directLatency.p50)} µs for the hop`);
  results.remoteHop = { direct, viaHop, directLatency, hopLatency, ratio: viaHop.requests / direct.requests };

  }

  if (only('9')) {
  // 9. Graphs. A cascade whose cheap first step is sure of 8 rows in 10 (their first element is 1),
  // against every row to the expensive MLP; an ensemble of three against the three called in turn.
  const graphs = await started(gateway('graphs', {
    models: [{ name: 'cheap', path: 'cheap.onnx' }, { name: 'mlp', path: 'mlp.onnx' }, ...[0, 1, 2].map((i) => ({ name: `t${i}`, path: `t${i}.onnx` }))],
    routes: [
      { key: 'cascade', cascade: { steps: [{ target: 'cheap', accept: { output: 'confidence', min: 0.5 } }, { target: 'mlp' }] } },
      { key: 'three', ensemble: { members: [0, 1, 2].map((i) => ({ target: `t${i}` })) } },
    ],
  }));
  const rows = 10;
  const x = new Float32Array(rows * 512).fill(0.5);
  for (let row = 0; row < 8; row++) x[row * 512] = 1;
  for (let row = 8; row < rows; row++) x[row * 512] = 0;
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 512], parameters: { binary_data_size: x.byteLength } }], outputs: [{ name: 'y', parameters: { binary_data: true } }] }));
  const cascadeBody = { body: Buffer.concat([header, Buffer.from(x.buffer)]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
  const viaCascade = await load(graphs, { connections: 16, ...cascadeBody, path: '/v2/models/cascade/infer' });
  const allExpensive = await load(graphs, { connections: 16, ...cascadeBody, path: '/v2/models/mlp/infer' });
  row('9. cascade, 10-row requests, 8 rows accepted by a cheap model, c=16', `${fixed(viaCascade.requests * rows)} rows/s, ${fixed(viaCascade.cpuPerRequest / rows)} µs CPU/row`, `${(viaCascade.requests / allExpensive.requests).toFixed(2)}x the rows/s, ${(viaCascade.cpuPerRequest / allExpensive.cpuPerRequest).toFixed(2)} of the CPU per row of every row to the MLP`);
  row('9. every row to the expensive MLP, same requests', `${fixed(allExpensive.requests * rows)} rows/s, ${fixed(allExpensive.cpuPerRequest / rows)} µs CPU/row`);
  const body256 = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.5) }] });
  const ensemble = await sequentialLatency(`${graphs}/v2/models/three/infer`, body256);
  const inTurn = await sequentialLatency([0, 1, 2].map((i) => `${graphs}/v2/models/t${i}/infer`), body256);
  row('9. ensemble of three (256-1024-256), c=1: ensemble / the three in turn', `p50 ${fixed(ensemble.p50)} / ${fixed(inTurn.p50)} µs`, `${(ensemble.p50 / inTurn.p50).toFixed(2)} of the time`);
  results.graphs = { cascade: viaCascade, allExpensive, cascadeRowsRatio: viaCascade.requests / allExpensive.requests, cascadeCpuRatio: viaCascade.cpuPerRequest / allExpensive.cpuPerRequest, ensemble, inTurn, ensembleLatencyRatio: ensemble.p50 / inTurn.p50 };
  }

  if (only('10')) {
  // 10. gRPC beside REST, one gateway serving both: the tiny model per request (REST JSON, REST
  // binary, gRPC unary with raw tensors, gRPC streams) and the MLP per row, batching on.
  const grpcPort = await freePort();
  const both = await started(gateway('grpc', { grpc: { port: grpcPort }, models: [{ name: 'tiny', path: 'tiny.onnx' }, { name: 'mlp', path: 'mlp.onnx', batching: { maxBatchSize: 64, maxQueueDelayMicros: 500 } }] }));
  const address = `127.0.0.1:${grpcPort}`;
  const tinyHeader = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }], outputs: [{ name: 'probabilities', parameters: { binary_data: true } }, { name: 'label', parameters: { binary_data: true } }] }));
  const tinyBinary = Buffer.concat([tinyHeader, Buffer.from(new Float32Array([6.7, 3.0, 5.2, 2.3]).buffer)]);
  const tinyGrpc = { model_name: 'tiny', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [Buffer.from(new Float32Array([6.7, 3.0, 5.2, 2.3]).buffer)] };
  const restJson = await load(both, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' });
  const restBinary = await load(both, { connections: 32, body: tinyBinary, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(tinyHeader.length) }, path: '/v2/models/tiny/infer' });
  const unary = await grpcLoad(both, address, tinyGrpc, 32, false);
  const streamed = await grpcLoad(both, address, tinyGrpc, 32, true);
  const line = (load: { requests: number; cpuPerRequest: number }) => `${fixed(load.requests)} req/s, ${fixed(load.cpuPerRequest, 1)} µs CPU/req`;
  row('10. tiny model, c=32: REST JSON', line(restJson));
  row('10. tiny model, c=32: REST binary', line(restBinary));
  row('10. tiny model, c=32: gRPC unary, raw tensors', line(unary), `CPU ${(unary.cpuPerRequest / restBinary.cpuPerRequest).toFixed(2)} of REST binary's (target <= 1)`);
  row('10. tiny model, 32 streams: gRPC streaming', line(streamed), `CPU ${(streamed.cpuPerRequest / unary.cpuPerRequest).toFixed(2)} of unary's (target <= 1)`);
  const mlpRow = Buffer.from(new Float32Array(512).fill(0.5).buffer);
  const mlpGrpc = { model_name: 'mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 512] }], raw_input_contents: [mlpRow] };
  const mlpRest = binaryBody(1, 512);
  const mlpBinary = await load(both, { connections: 64, body: mlpRest.body, headers: mlpRest.headers, path: '/v2/models/mlp/infer' });
  const mlpUnary = await grpcLoad(both, address, mlpGrpc, 64, false);
  const mlpStream = await grpcLoad(both, address, mlpGrpc, 64, true);
  const rowsLine = (load: { requests: number; cpuPerRequest: number }) => `${fixed(load.requests)} rows/s, ${fixed(load.cpuPerRequest)} µs CPU/row`;
  row('10. MLP single rows, c=64, batching on: REST binary', rowsLine(mlpBinary));
  row('10. MLP single rows, c=64: gRPC unary, raw tensors', rowsLine(mlpUnary), `CPU ${(mlpUnary.cpuPerRequest / mlpBinary.cpuPerRequest).toFixed(2)} of REST binary's`);
  row('10. MLP single rows, 64 streams: gRPC streaming', rowsLine(mlpStream), `CPU ${(mlpStream.cpuPerRequest / mlpUnary.cpuPerRequest).toFixed(2)} of unary's`);
  results.grpc = { tiny: { restJson, restBinary, unary, streamed }, mlp: { restBinary: mlpBinary, unary: mlpUnary, streamed: mlpStream } };
  }

  if (only('11')) {
  // 11. The cost of tenants at the edge: the tiny model, JSON, c=32, on one gateway without tenants
  // and on one with them (an API key checked per request, and a token bucket too high to refuse).
  // The model runs in the event loop in all three: runIn auto moves it there at a moment that
  // varies from run to run, and that (a thread hop per batch or none) would swamp the edge's cost.
  const key = 'bench-tenant-key';
  const digest = `sha256:${createHash('sha256').update(key).digest('hex')}`;
  const tinyInLoop = [{ name: 'tiny', path: 'tiny.onnx', runIn: 'eventLoop' }];
  const open = await started(gateway('tenants-off', { models: tinyInLoop }));
  const keyed = await started(gateway('tenants-on', {
    models: tinyInLoop,
    tenants: [{ name: 'bench', apiKeys: [digest], allow: ['tiny'] }],
  }));
  const limited = await started(gateway('tenants-limited', {
    models: tinyInLoop,
    tenants: [{ name: 'bench', apiKeys: [digest], allow: ['t*'], rateLimit: { requestsPerSecond: 1e6, burst: 1e6 }, maxInFlight: 1024 }],
  }));
  const authorization = { authorization: `Bearer ${key}` };
  // Interleaved, each first once: on two cores, whichever runs just after another load pays for it.
  const targets = [
    { url: open, headers: {} },
    { url: keyed, headers: authorization },
    { url: limited, headers: authorization },
  ];
  const measured: Load[][] = [[], [], []];
  for (const order of [[0, 1, 2], [1, 2, 0], [2, 0, 1]]) {
    for (const index of order) measured[index]?.push(await load(targets[index]?.url as string, { connections: 32, body: tinyJson, headers: targets[index]?.headers ?? {}, path: '/v2/models/tiny/infer' }));
  }
  const middle = (loads: Load[]): Load => [...loads].sort((a, b) => a.cpuPerRequest - b.cpuPerRequest)[1] as Load;
  const [off, on, withLimits] = measured.map(middle) as [Load, Load, Load];
  on.errors = measured[1]?.reduce((sum, each) => sum + each.errors, 0) ?? 0;
  withLimits.errors = measured[2]?.reduce((sum, each) => sum + each.errors, 0) ?? 0;
  for (const [name, measured] of [['tenants off', off], ['tenants on, API key', on], ['tenants on, key, glob, rate limit and maxInFlight', withLimits]] as const) {
    row(`11. tiny model, JSON, c=32, ${name}`, `${fixed(measured.requests)} req/s, ${fixed(measured.cpuPerRequest, 1)} µs CPU/req`, measured === off ? '' : `${signed(measured.cpuPerRequest - off.cpuPerRequest, 1)} µs CPU/req, ${(measured.requests / off.requests).toFixed(2)} of off's req/s`);
  }
  if (on.errors + withLimits.errors > 0) throw new Error(`tenant bench: ${on.errors + withLimits.errors} errors`);
  results.tenants = { off, on, withLimits, addedMicros: on.cpuPerRequest - off.cpuPerRequest, addedMicrosWithLimits: withLimits.cpuPerRequest - off.cpuPerRequest };

  }

  if (only('12')) {
  // 12. The cost of tracing: the tiny model, JSON, c=32, tracing off, on at 1% and on at 100%,
  // exporting over OTLP/HTTP protobuf to a sink in this process (its CPU is not the gateway's).
  // The model runs in the event loop in all three, as in 11, and the three are interleaved.
  let exported = 0;
  const sink = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => { exported += chunk.length; });
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const collector = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
  const tinyInLoop = [{ name: 'tiny', path: 'tiny.onnx', runIn: 'eventLoop' }];
  const urls = [
    await started(gateway('tracing-off', { models: tinyInLoop })),
    await started(gateway('tracing-1', { models: tinyInLoop, tracing: { otlpEndpoint: collector, sampleRatio: 0.01 } })),
    await started(gateway('tracing-100', { models: tinyInLoop, tracing: { otlpEndpoint: collector, sampleRatio: 1 } })),
  ];
  const measured: Load[][] = [[], [], []];
  for (const order of [[0, 1, 2], [1, 2, 0], [2, 0, 1]]) {
    for (const index of order) measured[index]?.push(await load(urls[index] as string, { connections: 32, body: tinyJson, path: '/v2/models/tiny/infer' }));
  }
  sink.close();
  const middle = (loads: Load[]): Load => [...loads].sort((a, b) => a.cpuPerRequest - b.cpuPerRequest)[1] as Load;
  const [off, sampled, all] = measured.map(middle) as [Load, Load, Load];
  const dropped = await metric(urls[2] as string, 'modelgate_trace_spans_dropped_total');
  for (const [name, each] of [['tracing off', off], ['tracing on, 1% sampled', sampled], ['tracing on, every request', all]] as const) {
    row(`12. tiny model, JSON, c=32, ${name}`, `${fixed(each.requests)} req/s, ${fixed(each.cpuPerRequest, 1)} µs CPU/req`, each === off ? '' : `${signed(each.cpuPerRequest - off.cpuPerRequest, 1)} µs CPU/req, ${(each.requests / off.requests).toFixed(2)} of off's req/s`);
  }
  row('12. tracing, every request: exported', `${fixed(exported / 1e6, 1)} MB of OTLP protobuf, ${dropped} spans dropped`);
  results.tracing = { off, sampled1Percent: sampled, every: all, addedMicros1Percent: sampled.cpuPerRequest - off.cpuPerRequest, addedMicrosEvery: all.cpuPerRequest - off.cpuPerRequest, exportedBytes: exported, droppedSpans: dropped };
  }

  if (only('13')) {
  // 13. The MLP's first request after a cold load (batching off), against a warm request's
  // latency, with warm-up (the default) and without. The admin API loads it, so the load itself
  // is not in the first request's time. The two models take turns, round after round.
  const cold = await started(gateway('cold', { models: [{ name: 'warmed', path: 'mlp.onnx', batching: false }, { name: 'unwarmed', path: 'mlp.onnx', batching: false, warmup: false }] }));
  const row512 = binaryBody(1, 512);
  const admin = { authorization: 'Bearer bench-token-0123456789' };
  const timed = async (name: string): Promise<number> => {
    const begin = performance.now();
    const response = await request(`${cold}/v2/models/${name}/infer`, { method: 'POST', headers: row512.headers, body: row512.body });
    await response.body.dump();
    if (response.statusCode !== 200) throw new Error(`cold-start bench: ${name} answered ${response.statusCode}`);
    return (performance.now() - begin) * 1000;
  };
  const firsts: Record<string, number[]> = { warmed: [], unwarmed: [] };
  const warms: Record<string, number[]> = { warmed: [], unwarmed: [] };
  const idles: Record<string, number[]> = { warmed: [], unwarmed: [] };
  for (let round = 0; round < ROUNDS * 4; round++) {
    for (const name of ['warmed', 'unwarmed']) {
      await (await request(`${cold}/admin/models/${name}/unload`, { method: 'POST', headers: admin })).body.dump();
      const loaded = await request(`${cold}/admin/models/${name}/load`, { method: 'POST', headers: admin });
      await loaded.body.dump();
      if (loaded.statusCode !== 200) throw new Error(`cold-start bench: loading ${name} answered ${loaded.statusCode}`);
      firsts[name]?.push(await timed(name));
      const after: number[] = [];
      for (let i = 0; i < 20; i++) after.push(await timed(name));
      warms[name]?.push(medianOf(after));
      // The control: the same warm session after 200 ms without requests.
      await new Promise((resolve) => setTimeout(resolve, 200));
      idles[name]?.push(await timed(name));
    }
  }
  const coldStart: Record<string, { first: number; warm: number; afterIdle: number; ratio: number }> = {};
  for (const name of ['warmed', 'unwarmed']) {
    const first = medianOf(firsts[name] as number[]);
    const warm = medianOf(warms[name] as number[]);
    const afterIdle = medianOf(idles[name] as number[]);
    coldStart[name] = { first, warm, afterIdle, ratio: first / warm };
    row(`13. MLP, first request after a cold load, batching off, warm-up ${name === 'warmed' ? 'on (default)' : 'off'}`, `${fixed(first)} µs vs ${fixed(warm)} µs warm`, `${(first / warm).toFixed(2)}x${name === 'warmed' ? ' (target <= 2)' : ''}; a warm session after 200 ms idle: ${fixed(afterIdle)} µs, ${(afterIdle / warm).toFixed(2)}x`);
  }
  results.coldStart = coldStart;
  target('MLP: first request after a cold load ÷ a warm one, warm-up on', (coldStart.warmed as { ratio: number }).ratio, '<=', 2);
  }

  if (only('6')) {
  // 6. Thrash: 8 models of a few MB, c=64: uniform keys at cap 2, grouped against fifo;
  // Zipf keys (s = 1.2, one closed loop per connection) at caps 2 and 8, p99 of the 2 hottest.
  const thrashModels = Array.from({ length: 8 }, (_, i) => ({ name: `t${i}`, path: `t${i}.onnx` }));
  const body256 = binaryBody(1, 256);
  const zipfWeights = Array.from({ length: 8 }, (_, i) => 1 / (i + 1) ** 1.2);
  const zipfTotal = zipfWeights.reduce((a, b) => a + b, 0);
  const zipf = () => {
    let point = Math.random() * zipfTotal;
    return `/v2/models/t${zipfWeights.findIndex((weight) => (point -= weight) < 0)}/infer`;
  };
  const uniform = () => `/v2/models/t${Math.floor(Math.random() * 8)}/infer`;
  const thrash: Record<string, { requests: number; loadsPer1000: number }> = {};
  for (const scheduling of ['grouped', 'fifo'] as const) {
    const url = await started(gateway(`thrash-${scheduling}`, { registry: { maxResidentModels: 2, scheduling }, models: thrashModels }));
    // Loads counted over the measured rounds only, the warm-up's left out.
    const outcome = await load(url, { connections: 64, body: body256.body, headers: body256.headers, paths: uniform, counter: () => metric(url, 'modelgate_model_loads_total') });
    const loadsPer1000 = (outcome.countedPerRequest as number) * 1000;
    thrash[scheduling] = { requests: outcome.requests, loadsPer1000 };
    row(`6. thrash, 8 models, uniform keys, cap 2, ${scheduling}, c=64`, `${fixed(outcome.requests)} req/s, ${loadsPer1000.toFixed(1)} loads/1000 req, p99 ${(outcome.p99 / 1000).toFixed(1)} ms`);
    results[`thrash_uniform_${scheduling}`] = { ...outcome, loadsPer1000 };
  }
  const grouped = thrash.grouped as { requests: number; loadsPer1000: number };
  const fifo = thrash.fifo as { requests: number; loadsPer1000: number };
  row('6. thrash, grouped / fifo', `loads ${(grouped.loadsPer1000 / fifo.loadsPer1000).toFixed(2)} (target <= 0.2), req/s ${(grouped.requests / fifo.requests).toFixed(1)}x (target >= 3)`);
  const hottest: Record<number, number> = {};
  for (const cap of [8, 2]) {
    const url = await started(gateway(`zipf-${cap}`, { registry: { maxResidentModels: cap }, models: thrashModels }));
    // A second of warm-up, as load() has: the first loads are not the steady state.
    await closedLoops(url, 64, body256.body, body256.headers, zipf, 1);
    const rounds: Array<Awaited<ReturnType<typeof closedLoops>>> = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await closedLoops(url, 64, body256.body, body256.headers, zipf));
    const hot = ['/v2/models/t0/infer', '/v2/models/t1/infer'].flatMap((where) => rounds.flatMap((round) => round.byPath.get(where) ?? []));
    const all = rounds.flatMap((round) => [...round.byPath.values()].flat());
    hottest[cap] = p99(hot);
    const perKey = Array.from({ length: 8 }, (_, i) => p99(rounds.flatMap((round) => round.byPath.get(`/v2/models/t${i}/infer`) ?? [])));
    const text = await (await fetch(`${url}/metrics`)).text();
    const loadsByKey = Array.from({ length: 8 }, (_, i) => Number(new RegExp(`^modelgate_model_loads_total\\{model="t${i}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0));
    row(`6. Zipf s=1.2 keys, cap ${cap}, c=64 closed loops`, `${fixed(rounds.reduce((sum, round) => sum + round.requests, 0) / ROUNDS)} req/s, p99 of the 2 hottest ${p99(hot).toFixed(1)} ms, of all ${p99(all).toFixed(1)} ms`);
    row(`6. Zipf, cap ${cap}, by key t0..t7 (hottest first)`, `p99 ${perKey.map((value) => value.toFixed(0)).join(' ')} ms; loads ${loadsByKey.join(' ')}`);
    results[`zipf_cap${cap}`] = { hottestP99Ms: p99(hot), allP99Ms: p99(all), p99MsByKey: perKey, loadsByKey };
  }
  row('6. Zipf, p99 of the 2 hottest, cap 2 / cap 8', `${((hottest[2] as number) / (hottest[8] as number)).toFixed(2)}x`, 'target <= 2');
  results.thrash = { groupedOverFifoLoads: grouped.loadsPer1000 / fifo.loadsPer1000, groupedOverFifoRequests: grouped.requests / fifo.requests, zipfHottestP99Cap2OverCap8: (hottest[2] as number) / (hottest[8] as number) };
  }
} finally {
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null) resolve(undefined);
    child.once('exit', resolve);
    child.kill('SIGTERM');
  })));
}

results.targets = targets;
writeFileSync(path.join(ROOT, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);
const width = Math.max(...table.map(([what]) => what.length));
const goals = Math.max(0, ...targets.map(({ what }) => what.length));
const goalLines = targets.map(({ what, value, compare, target: goal, met }) => `${what.padEnd(goals)}  ${value.toFixed(2).padStart(7)}  (target ${compare} ${goal})  ${met ? 'met' : 'MISSED'}`);
process.stdout.write(`\n${table.map(([what, value, ratio]) => `${what.padEnd(width)}  ${value}${ratio === '' ? '' : `  (${ratio})`}`).join('\n')}\n\nTargets\n${goalLines.join('\n')}\n\nbench/results.json written (medians of ${ROUNDS} rounds of ${SECONDS} s)\n`);
