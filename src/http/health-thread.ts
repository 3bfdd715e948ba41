/**
 * Liveness and readiness on a port of their own, answered by a thread of
 * their own (`server.healthPort`). On the main port a probe waits its turn
 * behind every request the event loop is working through: under a saturating
 * load its answer comes tens of ms late. Here the event loop stamps a
 * heartbeat into shared memory every HEARTBEAT_MS, with its readiness; the
 * thread answers from that at once. So liveness says what it should (the
 * event loop still turns: a loop stuck for `server.livenessStallMs` is not
 * live) without queueing behind the work it is asked about.
 */
import { Worker } from 'node:worker_threads';

/** How often the event loop stamps its heartbeat. */
export const HEARTBEAT_MS = 100;

/** [0] the last heartbeat, ms of the monotonic clock; [1] 1 while ready. */
const ANSWERER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const state = new Float64Array(workerData.shared);
const now = () => Number(process.hrtime.bigint() / 1000000n);
const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
const send = (response, status, body) => {
  const text = JSON.stringify(body);
  response.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) });
  response.end(text);
};
const server = http.createServer((request, response) => {
  const path = (request.url || '').split('?')[0];
  if (path !== '/v2/health/live' && path !== '/v2/health/ready') return send(response, 404, { error: "this port answers only GET /v2/health/live and /v2/health/ready" });
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, { error: request.method + ' is not allowed here: use GET' });
  const age = now() - state[0];
  const stalled = age > workerData.stallMs;
  if (path === '/v2/health/live') return stalled ? send(response, 503, { live: false, error: 'the event loop has not turned for ' + age + ' ms' }) : send(response, 200, { live: true });
  const ready = state[1] === 1 && !stalled;
  return send(response, ready ? 200 : 503, { ready });
});
server.keepAliveTimeout = 5000;
server.on('error', (error) => parentPort.postMessage({ error: error.code || error.message }));
server.listen(workerData.port, workerData.host, () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (message) => {
  if (message !== 'close') return;
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
`;

export interface HealthOptions {
  host: string;
  port: number;
  /** A heartbeat older than this: not live (and not ready). */
  stallMs: number;
}

export class HealthThread {
  readonly #shared = new SharedArrayBuffer(16);
  readonly #state = new Float64Array(this.#shared, 0, 2);
  #thread: Worker | undefined;
  #beat: NodeJS.Timeout | undefined;
  #ready = false;
  /** The port it listens on, once started. */
  port: number | undefined;

  /** Starts the thread and its listener; rejects if it cannot listen (the port in use, say). */
  async start(options: HealthOptions): Promise<number> {
    this.#stamp();
    this.#beat = setInterval(() => this.#stamp(), HEARTBEAT_MS).unref();
    const thread = new Worker(ANSWERER, { eval: true, workerData: { ...options, shared: this.#shared }, stdout: false, stderr: false });
    this.#thread = thread;
    const outcome = await new Promise<{ port?: number; error?: string }>((resolve) => {
      thread.once('message', resolve);
      thread.once('error', (error) => resolve({ error: error.message }));
      thread.once('exit', () => resolve({ error: 'the health thread stopped' }));
    });
    if (outcome.port === undefined) {
      await this.close();
      throw new Error(`server.healthPort: cannot listen on ${options.host}:${options.port} (${outcome.error ?? 'unknown error'})`);
    }
    thread.unref();
    this.port = outcome.port;
    return outcome.port;
  }

  /** What the thread answers for readiness from now on (published at once, not at the next heartbeat). */
  set ready(value: boolean) {
    this.#ready = value;
    this.#stamp();
  }

  async close(): Promise<void> {
    clearInterval(this.#beat);
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread === undefined) return;
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    thread.postMessage('close');
    const timer = setTimeout(() => void thread.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }

  #stamp(): void {
    this.#state[0] = Number(process.hrtime.bigint() / 1000000n);
    this.#state[1] = this.#ready ? 1 : 0;
  }
}
