/**
 * Weighted fair queuing over the tenants (flows) whose work waits for one model, after
 * self-clocked fair queuing (Golestani, 1994): each item is tagged with its flow's virtual
 * finish time, max(virtual time, the flow's last finish) + cost / share, and the smallest tag
 * goes first. Two backlogged flows with shares 3 and 1 are served 3:1 in cost (rows); a flow
 * that was idle comes back at the current virtual time, with no credit saved up, so a flood
 * from one tenant waits behind its own work and not in front of everyone's. With one flow
 * (no tenants) it is a FIFO queue.
 */
import { DeadlineExceededError, RequestAbortedError } from '../errors.ts';
import type { Signature, TensorMap } from '@modelgate/client/codec';
import type { Flow, Waiting } from '../waiting.ts';
import type { LoadedModel } from './types.ts';
import type { Warmed } from './warmup.ts';

interface Tagged<T> {
  readonly item: T;
  readonly tag: number;
}

class FlowQueue<T> {
  items: Array<Tagged<T>> = [];
  head = 0;
  finish = 0;

  get empty(): boolean {
    return this.head === this.items.length;
  }
}

const ANYONE: Flow = { name: '', share: 1 };

export class FairQueue<T> {
  readonly #flows = new Map<string, FlowQueue<T>>();
  #virtual = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(item: T, flow: Flow = ANYONE, cost = 1): void {
    let queue = this.#flows.get(flow.name);
    if (queue === undefined) {
      queue = new FlowQueue();
      this.#flows.set(flow.name, queue);
    }
    // The share as of this item: a tenant changed live is weighed anew from its next request.
    queue.finish = Math.max(this.#virtual, queue.finish) + cost / (flow.share > 0 ? flow.share : 1);
    queue.items.push({ item, tag: queue.finish });
    this.#size += 1;
  }

  /** The item to serve next, left in place. */
  peek(): T | undefined {
    const queue = this.#next();
    return queue === undefined ? undefined : (queue.items[queue.head] as Tagged<T>).item;
  }

  shift(): T | undefined {
    const queue = this.#next();
    if (queue === undefined) return undefined;
    const { item, tag } = queue.items[queue.head] as Tagged<T>;
    queue.head += 1;
    this.#size -= 1;
    this.#virtual = tag;
    if (queue.empty) {
      queue.items = [];
      queue.head = 0;
    } else if (queue.head > 1024 && queue.head * 2 > queue.items.length) {
      queue.items = queue.items.slice(queue.head);
      queue.head = 0;
    }
    return item;
  }

  /** Takes out every item `drop` says to (a request whose client went away), in no particular order. */
  remove(drop: (item: T) => boolean): void {
    for (const queue of this.#flows.values()) {
      const items = queue.items;
      let kept = queue.head;
      for (let read = queue.head; read < items.length; read += 1) {
        const tagged = items[read] as Tagged<T>;
        if (drop(tagged.item)) this.#size -= 1;
        else items[kept++] = tagged;
      }
      items.length = kept;
    }
  }

  #next(): FlowQueue<T> | undefined {
    let best: FlowQueue<T> | undefined;
    let bestTag = Number.POSITIVE_INFINITY;
    for (const [name, queue] of this.#flows) {
      if (queue.empty) {
        // An idle flow is forgotten once the virtual clock has passed its last finish: it owes nothing.
        if (queue.finish <= this.#virtual) this.#flows.delete(name);
        continue;
      }
      const tag = (queue.items[queue.head] as Tagged<T>).tag;
      if (tag < bestTag) {
        best = queue;
        bestTag = tag;
      }
    }
    return best;
  }
}

interface Queued {
  readonly inputs: TensorMap;
  readonly outputs: readonly string[];
  readonly waiting: Waiting;
  resolve(outputs: TensorMap): void;
  reject(error: unknown): void;
}

/**
 * A model that does not batch, with tenants: as many runs sent as it can use at once (its
 * `concurrency`), the rest waiting here in fair order rather than in its thread's FIFO.
 */
export class FairModel implements LoadedModel {
  readonly signature: Signature;
  readonly lost: Promise<void> | undefined;
  readonly concurrency: number | undefined;
  readonly warmup: Warmed | undefined;
  readonly #name: string;
  readonly #inner: LoadedModel;
  readonly #queue = new FairQueue<Queued>();
  #running = 0;

  constructor(name: string, inner: LoadedModel) {
    this.#name = name;
    this.#inner = inner;
    this.signature = inner.signature;
    this.lost = inner.lost;
    this.concurrency = inner.concurrency;
    this.warmup = inner.warmup;
  }

  run(inputs: TensorMap, outputs: readonly string[], waiting: Waiting = {}): Promise<TensorMap> {
    if (this.#running < (this.#inner.concurrency ?? 1)) return this.#send(inputs, outputs);
    return new Promise((resolve, reject) => this.#queue.push({ inputs, outputs, waiting, resolve, reject }, waiting.flow));
  }

  release(): Promise<void> {
    return this.#inner.release();
  }

  #send(inputs: TensorMap, outputs: readonly string[]): Promise<TensorMap> {
    this.#running += 1;
    return this.#inner.run(inputs, outputs).finally(() => {
      this.#running -= 1;
      this.#next();
    });
  }

  #next(): void {
    const now = performance.now();
    for (let queued = this.#queue.shift(); queued !== undefined; queued = this.#queue.shift()) {
      const { deadline, signal } = queued.waiting;
      if (signal?.aborted === true) queued.reject(new RequestAbortedError(this.#name));
      else if (deadline !== undefined && now >= deadline) queued.reject(new DeadlineExceededError(this.#name));
      else {
        queued.waiting.started?.();
        this.#send(queued.inputs, queued.outputs).then(queued.resolve, queued.reject);
        return;
      }
    }
  }
}
