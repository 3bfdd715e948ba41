/**
 * Keeps the live-state document: writes it through the store (a compare-and-swap on the version
 * with a shared store), remembers which version this replica holds, and reads the shared
 * store's, so the router can apply a newer one or re-seed an older one. With a shared store, a
 * copy of each applied document is kept beside the configuration, for a restart while the
 * store is down.
 */
import { savedAtOf, type RouteState } from '../store/document.ts';
import type { ConfigStore } from '../store/store.ts';

/** The shared document moved on since this replica last read it: the write did not happen. */
export class StaleDocumentError extends Error {}

/** What metrics show of the shared document. */
export interface SharedState {
  readonly up: boolean;
  /** Version of the document this replica serves (0: none yet). */
  readonly version: number;
  /** When that version was written, ms since the epoch (undefined: not known). */
  readonly savedAt: number | undefined;
}

export type Log = (message: string, details: Record<string, unknown>) => void;

export class DocumentKeeper {
  readonly #store: ConfigStore | undefined;
  readonly #localCopy: ConfigStore | undefined;
  readonly #log: Log;
  /** Version of the document this replica holds: the last it applied or wrote. */
  #version: number;
  #savedAt: number | undefined;
  /** The version the shared store held when last read or written: what a write expects to replace (every write reads it first). */
  #storedVersion = 0;
  /** Since when the shared store has not answered a read (undefined: it answers). */
  #unreadSince: number | undefined;

  constructor(store: ConfigStore | undefined, localCopy: ConfigStore | undefined, state: RouteState | undefined, log: Log) {
    this.#store = store;
    this.#localCopy = localCopy;
    this.#version = state?.counter ?? 0;
    this.#savedAt = savedAtOf(state);
    this.#log = log;
  }

  /** Whether other replicas share the store. */
  get shared(): boolean {
    return this.#store?.shared === true;
  }

  /** Version of the document this replica holds. */
  get version(): number {
    return this.#version;
  }

  get savedAt(): number | undefined {
    return this.#savedAt;
  }

  /** The shared document as this replica has it; undefined without a shared store. */
  state(): SharedState | undefined {
    if (this.#store?.shared !== true) return undefined;
    return { up: this.#store.up, version: this.#version, savedAt: this.#savedAt };
  }

  /** Stores `document` (StaleDocumentError when another replica's write came first), then holds it. */
  async save(document: RouteState): Promise<void> {
    if (this.#store !== undefined) {
      if (!(await this.#store.write(document, this.#storedVersion))) throw new StaleDocumentError();
      this.#storedVersion = document.counter;
    }
    await this.held(document);
  }

  /** Records `document` as the one this replica holds, and keeps the local copy. */
  async held(document: RouteState): Promise<void> {
    this.#version = document.counter;
    this.#savedAt = savedAtOf(document);
    // Awaited, under the change lock: copies written one at a time (they share a temporary file
    // name), in version order, and done before a shutdown can close the process under them.
    await this.#localCopy?.write(document, 0).catch((error: unknown) => {
      this.#log('local copy of the shared configuration not written', { reason: (error as Error).message });
    });
  }

  /**
   * Reads the shared document: `adopt` gets it when it is newer than this replica's; `mine` is
   * stored when the store holds an older one or none (Redis restarted empty), so the fleet
   * re-seeds it from the newest document a replica holds.
   */
  async read(adopt: (document: RouteState) => Promise<void>, mine: () => RouteState): Promise<void> {
    const store = this.#store as ConfigStore;
    const stored = await store.read();
    this.#storedVersion = stored?.counter ?? 0;
    if (stored !== undefined && stored.counter > this.#version) {
      await adopt(stored);
      return;
    }
    if (this.#storedVersion < this.#version) {
      const document = mine();
      if (await store.write(document, this.#storedVersion)) {
        this.#log('shared configuration re-seeded from this replica', { version: document.counter, found: this.#storedVersion });
        this.#storedVersion = document.counter;
      }
    }
  }

  /** Logs a failed read once per outage (the poll tries again every few seconds), and its end. */
  reported(reading: Promise<void>): Promise<void> {
    return reading.then(() => {
      if (this.#unreadSince === undefined) return;
      this.#log('shared configuration read again', { afterMs: Date.now() - this.#unreadSince });
      this.#unreadSince = undefined;
    }, (error: unknown) => {
      if (this.#unreadSince !== undefined) return;
      this.#unreadSince = Date.now();
      this.#log('shared configuration not read: serving the last applied document', { reason: (error as Error).message });
    });
  }
}
