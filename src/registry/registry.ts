/**
 * The keyed model registry: Beam's KeyedModelHandler done by a server. Keys
 * map onto models; a model loads once, lazily, however many keys and callers
 * want it; at most `maxResidentModels` (and `maxResidentBytes`) hold a session
 * at any moment, loading and draining ones included, so the cap is honest.
 *
 * Requests hold a lease while they use a model. Eviction picks an idle model
 * in the order the scheduling gives (capacity.ts: least demanded, or least
 * recently used); when every candidate is busy it takes the first out of the
 * resident set (no new leases) and releases its session when its last lease
 * ends, so no request loses its model.
 */
import type { Capacity, ModelStatus } from '@modelgate/client/wire';
import type { Signature } from '@modelgate/client/codec';
import type { ModelConfig, RegistryConfig } from '../config/schema.ts';
import { DeadlineExceededError, ModelLoadFailedError, ModelNotFoundError, ModelPinnedError, NoSpareCapacityError, QueueFullError, withRetryAfter } from '../errors.ts';
import type { Executor, LoadedModel } from '../executor/types.ts';
import { untilStopped, type Waiting } from '../waiting.ts';
import { countIn, queueFull } from './capacity.ts';
import { demandAt, Entry, type ModelState, type Retired } from './entry.ts';
import { startLoad, type LoadParts } from './loading.ts';
import { Slots, type RegistryEvents } from './slots.ts';
import { swapVersion } from './swap.ts';

export type { ModelState } from './entry.ts';
export type { RegistryEvents } from './slots.ts';

// What the admin API shows of a model: the client package's shape, so the two cannot drift.
export type { ModelStatus } from '@modelgate/client/wire';

/** A model held for one use; `release` exactly once. */
export interface Lease {
  readonly model: LoadedModel;
  readonly name: string;
  release(): void;
}

export class ModelRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #executor: Executor;
  readonly #config: Readonly<RegistryConfig>;
  readonly #slots: Slots;
  readonly #parts: LoadParts;
  #clock = 0;
  /** fifo scheduling: each acquisition waits for the one before it. */
  #arrivals: Promise<unknown> = Promise.resolve();

  readonly #readSignature: ((model: ModelConfig) => Promise<Signature>) | undefined;

  /**
   * @param readSignature reads a model's inputs and outputs from its file without a
   *   session, so metadata, docs and validation cost no load; absent, they load the model.
   */
  constructor(models: readonly ModelConfig[], config: Readonly<RegistryConfig>, executor: Executor, events: RegistryEvents = {}, readSignature?: (model: ModelConfig) => Promise<Signature>) {
    for (const model of models) this.#entries.set(model.name, new Entry(model));
    this.#config = config;
    this.#executor = executor;
    this.#slots = new Slots(this.#entries, config, events);
    this.#parts = { executor, slots: this.#slots, events, config };
    this.#readSignature = readSignature;
  }

  /** Reads every model's signature from its file, where it can; a file that cannot be read is left to its first load. */
  async readSignatures(): Promise<void> {
    await Promise.all([...this.#entries.values()].map((entry) => this.#fileSignature(entry)));
  }

  /** Loads the pinned models; rejects if one cannot load. */
  async loadPinned(): Promise<void> {
    const pinned = [...this.#entries.values()].filter((entry) => entry.config.pinned);
    await Promise.all(pinned.map(async (entry) => (await this.acquire(entry.config.name)).release()));
  }

  /**
   * Takes a lease on the model, loading it first if it is not resident. With
   * `waiting`, a request that is still waiting when its deadline passes gets
   * 504, and one whose client went away is dropped; past the model's
   * maxQueueSize, requests get 503 at once.
   */
  async acquire(name: string, waiting: Waiting = {}, spareOnly = false): Promise<Lease> {
    if (spareOnly) return this.#spare(name);
    if (this.#config.scheduling === 'fifo') {
      const turn = this.#arrivals.then(() => this.#admit(name, waiting));
      this.#arrivals = turn.catch(() => undefined);
      return turn;
    }
    return this.#admit(name, waiting);
  }

  /**
   * A lease from spare capacity only, for shadow copies: the model if it is
   * resident, else a load into a slot that is free now, else NoSpareCapacity.
   * It never evicts, never waits in line and does not count as demand; a model
   * it loads is the first to go when primary traffic needs the slot.
   */
  async #spare(name: string): Promise<Lease> {
    const entry = this.#entry(name);
    if (entry.removed) throw new ModelNotFoundError(name);
    if (entry.state === 'resident' && !entry.draining) return this.#lease(entry, true);
    // A model backing off after a failed load: the copy fails as a primary request would.
    this.assertServable(name);
    if (entry.loading === undefined) {
      const idle = entry.swapping === undefined && !entry.draining;
      if (!idle || !this.#slots.fits(entry) || this.#slots.contended) throw new NoSpareCapacityError(name);
      entry.spareLoad = true;
      entry.expendable = true;
      startLoad(entry, this.#parts);
    }
    // A load under way (a shadow's, or primary traffic's) costs nothing more to wait for.
    await entry.loading;
    if ((entry.state as ModelState) === 'failed') this.#throwFailure(entry);
    if (entry.state !== 'resident' || entry.draining) throw new NoSpareCapacityError(name);
    return this.#lease(entry, true);
  }

  async #admit(name: string, waiting: Waiting): Promise<Lease> {
    const entry = this.#entry(name);
    if (entry.removed) throw new ModelNotFoundError(name);
    const flow = waiting.flow;
    if (queueFull(entry, flow)) {
      throw withRetryAfter(new QueueFullError(name, String(entry.waiting + entry.inFlight)), 1);
    }
    if (waiting.deadline !== undefined && performance.now() >= waiting.deadline) throw new DeadlineExceededError(name);
    // Primary traffic wants it: a load a shadow started may now make room like any other.
    entry.spareLoad = false;
    if (flow === undefined) return this.#wait(entry, waiting);
    // A tenant's place in the queue is held from now until its lease ends.
    countIn(entry.queuedBy, flow, 1);
    let lease: Lease;
    try {
      lease = await this.#wait(entry, waiting);
    } catch (error) {
      countIn(entry.queuedBy, flow, -1);
      throw error;
    }
    let released = false;
    return {
      model: lease.model,
      name: lease.name,
      release() {
        if (released) return;
        released = true;
        lease.release();
        countIn(entry.queuedBy, flow, -1);
      },
    };
  }

  /** A lease at once if the model is resident, else when its load (and a slot) is done. */
  async #wait(entry: Entry, waiting: Waiting): Promise<Lease> {
    if (entry.state === 'resident' && !entry.draining) return this.#lease(entry);
    const flow = waiting.flow;
    entry.waiting += 1;
    if (flow !== undefined) countIn(entry.waitingBy, flow, 1);
    let abandoned = false;
    const since = performance.now();
    const joined = entry.loading !== undefined;
    const loads = entry.loads;
    const attempt = this.#acquire(entry).then((lease) => {
      if (abandoned) lease.release();
      return lease;
    });
    try {
      const lease = await untilStopped(attempt, waiting, entry.config.name);
      if (entry.loads !== loads) waiting.loaded?.(since, entry.evictedForLoad, joined, entry.model?.warmup?.runs);
      return lease;
    } catch (error) {
      abandoned = true;
      throw error;
    } finally {
      entry.waiting -= 1;
      if (flow !== undefined) countIn(entry.waitingBy, flow, -1);
      entry.quiet.notify();
    }
  }

  async #acquire(entry: Entry): Promise<Lease> {
    for (;;) {
      // A failed swap leaves the old configuration in place: the loop then loads it.
      if (entry.swapping !== undefined) await entry.swapping.catch(() => undefined);
      if (entry.state === 'resident' && !entry.draining) return this.#lease(entry);
      if (entry.draining) await entry.drained.wait();
      else if (entry.loading !== undefined) await entry.loading.catch(() => undefined);
      else startLoad(entry, this.#parts);
      if (entry.state === 'failed') this.#throwFailure(entry);
    }
  }

  /** The model's inputs and outputs if it has loaded before (they are kept after eviction). */
  knownSignature(name: string): Signature | undefined {
    return this.#entry(name).signature;
  }

  /** The model's inputs and outputs: known from a session or its file, else read from the file, else loaded. */
  async signature(name: string): Promise<Signature> {
    const entry = this.#entry(name);
    const known = entry.signature ?? await this.#fileSignature(entry);
    if (known !== undefined) return known;
    const lease = await this.acquire(name);
    // Held until the next turn of the event loop: the request that asked usually
    // leases the model for its run before then, so the model is not idle (and
    // evictable) in between, which would mean loading it twice.
    setImmediate(() => lease.release());
    return lease.model.signature;
  }

  /** Throws the load failure (503, Retry-After) while the model is backing off after a failed load. */
  assertServable(name: string): void {
    const entry = this.#entry(name);
    if (entry.state === 'failed' && Date.now() < (entry.failure?.until ?? 0)) this.#throwFailure(entry);
  }

  /** Loads the model now, retrying at once if it had failed. */
  async load(name: string): Promise<ModelStatus> {
    const entry = this.#entry(name);
    if (entry.state === 'failed') entry.failure = undefined;
    (await this.acquire(name)).release();
    return this.#status(entry);
  }

  /** Takes the model out of the resident set; resolves once its session is released. */
  async unload(name: string): Promise<ModelStatus> {
    const entry = this.#entry(name);
    if (entry.config.pinned) throw new ModelPinnedError(name);
    if (entry.loading !== undefined) await entry.loading.catch(() => undefined);
    if (entry.state === 'failed') {
      entry.state = 'unloaded';
      entry.failure = undefined;
    }
    if (entry.state === 'resident' && !entry.draining) await this.#slots.evict(entry, 'unload');
    if (entry.draining) await entry.drained.wait();
    return this.#status(entry);
  }

  /** Adds a model; it loads lazily, like the configured ones. */
  add(config: ModelConfig): void {
    if (this.#entries.has(config.name)) throw new Error(`model '${config.name}' exists already`);
    this.#entries.set(config.name, new Entry(config));
  }

  /**
   * Puts a new version of a model (its file or options) in place, loaded, as swap.ts
   * says: no request fails and no batch mixes versions. A version that does not load
   * changes nothing: this rejects with the reason, and the current version serves on.
   */
  replace(config: ModelConfig): Promise<void> {
    return swapVersion(this.#entry(config.name), config, this.#parts);
  }


  /** Removes a model once the requests that hold or wait for it have finished, releasing its sessions. New leases are refused at once. */
  async remove(name: string): Promise<void> {
    const entry = this.#entry(name);
    entry.removed = true;
    for (;;) {
      if (entry.loading !== undefined) await entry.loading.catch(() => undefined);
      else if (entry.swapping !== undefined) await entry.swapping.catch(() => undefined);
      else if (entry.waiting > 0 || entry.inFlight > 0 || entry.retired.size > 0) await entry.quiet.wait();
      else break;
    }
    if (entry.state === 'resident' && !entry.draining) await this.#slots.evict(entry, 'unload');
    while (entry.draining) await entry.drained.wait();
    this.#entries.delete(name);
    this.#slots.freed.notify();
  }

  /** Whether the registry holds a model of that name (local; remote models are not its business). */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The configuration in force for a model. */
  config(name: string): ModelConfig {
    return this.#entry(name).config;
  }

  /** Why the model's last load failed, if it is backing off after one. */
  failureReason(name: string): string | undefined {
    const entry = this.#entry(name);
    return entry.state === 'failed' ? entry.failure?.reason : undefined;
  }

  status(): ModelStatus[] {
    return [...this.#entries.values()].map((entry) => this.#status(entry));
  }

  /** Models holding a place under the caps right now. */
  get residentCount(): number {
    return [...this.#entries.values()].filter((entry) => entry.holdsSlot).length;
  }

  /** The caps and what holds a place under them now (models, and their files' bytes times instances). */
  capacity(): Capacity {
    const holding = [...this.#entries.values()].filter((entry) => entry.holdsSlot);
    return {
      maxResidentModels: this.#config.maxResidentModels ?? null,
      residentModels: holding.length,
      maxResidentBytes: this.#config.maxResidentBytes ?? null,
      residentBytes: holding.reduce((sum, entry) => sum + entry.bytes, 0),
    };
  }

  /** Releases every session; waits for leases still held to end. */
  async close(): Promise<void> {
    await Promise.all([...this.#entries.values()].map(async (entry) => {
      if (entry.loading !== undefined) await entry.loading.catch(() => undefined);
      if (entry.state === 'resident' && !entry.draining) await this.#slots.evict(entry, 'unload');
      if (entry.draining) await entry.drained.wait();
      while (entry.retired.size > 0) await entry.quiet.wait();
    }));
    await this.#executor.close();
  }

  /** The signature in the model's file, read once; undefined if it cannot be read (the load will say why). A session, once open, wins. */
  async #fileSignature(entry: Entry): Promise<Signature | undefined> {
    if (this.#readSignature === undefined) return undefined;
    entry.reading ??= this.#readSignature(entry.config).then((signature) => {
      entry.signature ??= signature;
    }, () => {
      entry.reading = undefined;
    });
    await entry.reading;
    return entry.signature;
  }

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw new ModelNotFoundError(name);
    return entry;
  }

  /** A lease on the current version; a shadow's (`spare`) leaves the LRU order and expendability as they were. */
  #lease(entry: Entry, spare = false): Lease {
    entry.inFlight += 1;
    if (!spare) {
      entry.lastUsed = ++this.#clock;
      entry.lastUsedAt = Date.now();
      const now = performance.now();
      entry.demand = demandAt(entry, now) + 1;
      entry.demandAt = now;
      entry.expendable = false;
    }
    const model = entry.model as LoadedModel;
    const generation = entry.generation;
    let released = false;
    return {
      model,
      name: entry.config.name,
      release: () => {
        if (released) return;
        released = true;
        entry.quiet.notify();
        const retired = entry.retired.get(generation);
        if (retired !== undefined) {
          retired.inFlight -= 1;
          if (retired.inFlight === 0) void this.#releaseRetired(entry, generation, retired);
          return;
        }
        entry.inFlight -= 1;
        if (entry.inFlight > 0) return;
        if (entry.draining) void this.#slots.releaseSession(entry);
        else this.#slots.freed.notify();
      },
    };
  }

  async #releaseRetired(entry: Entry, generation: number, retired: Retired): Promise<void> {
    try {
      await retired.model.release();
    } finally {
      entry.retired.delete(generation);
      entry.quiet.notify();
      this.#slots.freed.notify();
    }
  }

  #throwFailure(entry: Entry): never {
    const failure = entry.failure ?? { reason: 'unknown error', until: Date.now() };
    throw withRetryAfter(new ModelLoadFailedError(entry.config.name, failure.reason), (failure.until - Date.now()) / 1000);
  }
  #status(entry: Entry): ModelStatus {
    return {
      name: entry.config.name,
      keys: entry.config.keys,
      state: entry.state,
      inFlight: entry.inFlight,
      loads: entry.loads,
      evictions: entry.evictions,
      lastUsedAt: entry.lastUsedAt === undefined ? null : new Date(entry.lastUsedAt).toISOString(),
    };
  }
}
