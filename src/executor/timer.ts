/**
 * Timers with microsecond deadlines. Node's setTimeout counts whole
 * milliseconds and fires at least 1 ms late, which more than doubles a
 * 500 µs batching delay. Here one small thread sleeps in Atomics.wait (a
 * futex wait with a fractional-millisecond timeout: no CPU while it waits)
 * until the earliest deadline, then posts a message that wakes the event
 * loop. The event loop never spins.
 */
import { Worker } from 'node:worker_threads';

/** The sleeping thread: [0] a generation bumped on every change, [1] spare, then the deadline in µs of the monotonic clock (0: none). */
const SLEEPER = `
const { parentPort, workerData } = require('node:worker_threads');
const state = new Int32Array(workerData, 0, 2);
const deadline = new Float64Array(workerData, 8, 1);
const now = () => Number(process.hrtime.bigint() / 1000n);
for (;;) {
  const generation = Atomics.load(state, 0);
  const due = deadline[0];
  if (due === 0) { Atomics.wait(state, 0, generation); continue; }
  const left = due - now();
  if (left > 0) { Atomics.wait(state, 0, generation, left / 1000); continue; }
  parentPort.postMessage(generation);
  Atomics.wait(state, 0, generation);
}
`;

/** The longest the event loop waits out the rest of a timer itself, having been woken early. */
const MAX_EARLY = 300;

/** The monotonic clock in µs, the same in every thread. */
export function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

interface Pending { due: number; fire(): void }

export class PreciseTimers {
  readonly #shared = new SharedArrayBuffer(16);
  readonly #state = new Int32Array(this.#shared, 0, 2);
  readonly #deadline = new Float64Array(this.#shared, 8, 1);
  readonly #pending = new Set<Pending>();
  #thread: Worker | undefined;
  #online: Promise<unknown> | undefined;
  /** µs between the deadline the sleeper was given and this thread running: an average. */
  #wakeLatency = 0;

  /** Calls `fire` once, `micros` from now (within the scheduler's slack, tens of µs); returns a cancel function. */
  after(micros: number, fire: () => void): () => void {
    const pending: Pending = { due: nowMicros() + micros, fire };
    this.#pending.add(pending);
    this.#arm();
    return () => {
      if (this.#pending.delete(pending)) this.#arm();
    };
  }

  /**
   * Starts the sleeping thread ahead of the first timer (starting it takes tens of ms, which
   * the first timer would otherwise wait); resolves once it runs. It stays unreferenced.
   */
  async start(): Promise<void> {
    this.#start();
    await this.#online;
    if (this.#pending.size === 0) this.#thread?.unref();
  }

  /** Stops the thread; pending timers never fire. */
  async close(): Promise<void> {
    this.#pending.clear();
    const thread = this.#thread;
    this.#thread = undefined;
    await thread?.terminate();
  }

  #arm(): void {
    let earliest = 0;
    for (const { due } of this.#pending) if (earliest === 0 || due < earliest) earliest = due;
    if (earliest !== 0) earliest = Math.max(1, earliest - this.#wakeLatency);
    if (earliest === this.#deadline[0]) return;
    if (earliest !== 0) this.#start();
    // A pending timer keeps the process alive, as setTimeout's do; an idle sleeper does not.
    if (earliest === 0) this.#thread?.unref();
    else this.#thread?.ref();
    this.#deadline[0] = earliest;
    Atomics.add(this.#state, 0, 1);
    Atomics.notify(this.#state, 0);
  }

  #start(): Worker {
    if (this.#thread !== undefined) return this.#thread;
    const thread = new Worker(SLEEPER, { eval: true, workerData: this.#shared, stdout: false, stderr: false });
    this.#online = new Promise((resolve) => thread.once('online', resolve));
    thread.on('message', () => this.#fireDue());
    thread.on('error', () => { this.#thread = undefined; });
    this.#thread = thread;
    return thread;
  }

  #fireDue(): void {
    let now = nowMicros();
    // How late the wake-up came (the futex's timer slack, then the message to this thread):
    // the sleeper is told to wake that much early from now on.
    const asked = this.#deadline[0] as number;
    if (asked > 0) this.#wakeLatency = Math.min(MAX_EARLY, Math.max(0, this.#wakeLatency + (now - asked - this.#wakeLatency) / 8));
    let earliest = Infinity;
    for (const { due } of this.#pending) earliest = Math.min(earliest, due);
    // Woken early on purpose: the last few µs pass here, in the event loop's turn.
    while (earliest > now && earliest - now < MAX_EARLY) now = nowMicros();
    const due = [...this.#pending].filter((pending) => pending.due <= now).sort((a, b) => a.due - b.due);
    for (const pending of due) this.#pending.delete(pending);
    // Re-armed before firing: a generation change also releases the sleeper from its post-fire wait.
    this.#deadline[0] = -1;
    this.#arm();
    for (const pending of due) pending.fire();
  }
}

/** One set of precise timers per process is enough: the thread costs nothing while no timer is pending. */
export const preciseTimers = new PreciseTimers();
