/**
 * The resident set's places under the caps: a load waits here for its turn and for room,
 * evicting idle models or draining busy ones as the scheduling's rules (capacity.ts) say; a
 * new version reserves a place beside the current one. A session leaves its place when it is
 * released, never under a request: an evicted model that is busy drains first.
 */
import type { RegistryConfig } from '../config/schema.ts';
import { NoSpareCapacityError } from '../errors.ts';
import type { LoadedModel } from '../executor/types.ts';
import type { Warmed } from '../executor/warmup.ts';
import { evictionCandidates, fairCandidates, fitsBeside, mayFreeSlot, nextInLine, starvesIn } from './capacity.ts';
import type { Entry } from './entry.ts';
import { Signal } from './signal.ts';

/** Observes registry events, for logs and metrics. */
export interface RegistryEvents {
  /** `milliseconds` includes the warm-up, which `warmup` describes. */
  loaded?(name: string, milliseconds: number, warmup?: Warmed): void;
  loadFailed?(name: string, reason: string): void;
  evicted?(name: string, reason: 'capacity' | 'unload' | 'lost'): void;
}

export class Slots {
  /** Signalled whenever a slot may have come free, or the line of loads waiting for one changed. */
  readonly freed = new Signal();
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #config: Readonly<RegistryConfig>;
  readonly #events: RegistryEvents;

  /** @param entries the registry's models, read as they are at each decision. */
  constructor(entries: ReadonlyMap<string, Entry>, config: Readonly<RegistryConfig>, events: RegistryEvents) {
    this.#entries = entries;
    this.#config = config;
    this.#events = events;
  }

  /** Whether the entry's sessions fit beside every place held now. */
  fits(entry: Entry): boolean {
    return this.fitsBeside(entry.bytes);
  }

  fitsBeside(bytes: number): boolean {
    return fitsBeside(this.#entries.values(), this.#config, bytes);
  }

  /** Whether some load waits for a place. */
  get contended(): boolean {
    return [...this.#entries.values()].some((other) => other.slotWaitSince !== undefined);
  }

  /** Waits until the entry fits under the caps, evicting or draining others as needed. */
  async reserve(entry: Entry): Promise<void> {
    let victim: Entry | undefined;
    entry.slotWaitSince = performance.now();
    try {
      for (;;) {
        const fits = this.fits(entry);
        if (entry.spareLoad) {
          if (fits) break;
          throw new NoSpareCapacityError(entry.config.name);
        }
        // A slot that comes free goes to the load next in line, not to whichever waiter wakes first.
        if (nextInLine(this.#entries.values(), this.#config.scheduling, performance.now()) !== entry) {
          await this.freed.wait();
          continue;
        }
        if (fits) break;
        victim = await this.#makeRoom(entry, victim);
      }
      entry.holdsSlot = true;
    } finally {
      entry.slotWaitSince = undefined;
      // The line moved on: the next load may proceed.
      this.freed.notify();
    }
  }

  /** Holds a place under the caps for a new version beside the entry's sessions, evicting idle models; false if only draining this model could make room. */
  async reserveBeside(entry: Entry, bytes: number): Promise<boolean> {
    for (;;) {
      if (this.fitsBeside(bytes)) {
        entry.stagingBytes = bytes;
        return true;
      }
      const idle = [...this.#entries.values()]
        .filter((other) => other !== entry && other.state === 'resident' && !other.draining && !other.config.pinned && other.waiting === 0 && other.inFlight === 0)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (idle === undefined) return false;
      await this.evict(idle, 'capacity');
    }
  }

  /** Evicts an idle model, or starts draining a busy one, then waits for a slot to come free; returns the model being drained. */
  async #makeRoom(entry: Entry, victim: Entry | undefined): Promise<Entry | undefined> {
    // A load a shadow started holds a slot: wait for it, then it is the first to go.
    const shadowLoad = [...this.#entries.values()].find((other) => other !== entry && other.expendable && other.loading !== undefined);
    if (shadowLoad?.loading !== undefined) {
      await shadowLoad.loading.catch(() => undefined);
      return victim;
    }
    const now = performance.now();
    let candidates = evictionCandidates(this.#entries.values(), entry, this.#config.scheduling, now);
    if (this.#config.scheduling === 'grouped') candidates = fairCandidates(this.#entries.values(), entry, candidates, now);
    const idle = candidates.find((other) => other.inFlight === 0);
    if (idle !== undefined) {
      entry.evictedForLoad.push(idle.config.name);
      await this.evict(idle, 'capacity');
      return victim;
    }
    if (victim === undefined || !victim.draining) {
      victim = candidates[0];
      if (victim !== undefined) {
        entry.evictedForLoad.push(victim.config.name);
        void this.evict(victim, 'capacity');
      }
      else if (!mayFreeSlot(this.#entries.values(), entry)) throw new Error('it does not fit under the registry caps beside the pinned models');
    }
    // Left to wait beside far hotter models: look again, at the latest, when this load starves.
    const timer = victim === undefined ? setTimeout(() => this.freed.notify(), Math.max(0, starvesIn(entry, now)) + 1) : undefined;
    await this.freed.wait();
    clearTimeout(timer);
    return victim;
  }

  /**
   * Takes a resident model out of the resident set. Its session is released
   * at once if it is idle (the promise settles then), else when its last lease ends.
   */
  evict(entry: Entry, reason: 'capacity' | 'unload'): Promise<void> {
    entry.draining = true;
    entry.state = 'unloaded';
    entry.evictions += 1;
    this.#events.evicted?.(entry.config.name, reason);
    return entry.inFlight === 0 ? this.releaseSession(entry) : Promise.resolve();
  }

  /** The session is gone without a release (its worker stopped): the model leaves the resident set and loads again when wanted. */
  lose(entry: Entry, model: LoadedModel): void {
    if (entry.model !== model) return;
    entry.model = undefined;
    if (entry.state === 'resident') entry.state = 'unloaded';
    entry.draining = false;
    entry.holdsSlot = false;
    this.#events.evicted?.(entry.config.name, 'lost');
    entry.drained.notify();
    this.freed.notify();
  }

  /** Releases the entry's session and frees its place. */
  async releaseSession(entry: Entry): Promise<void> {
    const model = entry.model;
    entry.model = undefined;
    try {
      await model?.release();
    } finally {
      entry.draining = false;
      entry.holdsSlot = false;
      entry.drained.notify();
      this.freed.notify();
    }
  }
}
