/**
 * Where live changes are kept: one versioned document (every live route and model change,
 * `RouteState`, its counter the version), read and written whole. Two adapters: the state
 * file beside the configuration (the default, this process alone) and Redis (shared by
 * every replica).
 */
import { StateNotSavedError } from '../errors.ts';
import type { RouteState } from './document.ts';
import { readState, writeState } from './state-file.ts';

export interface ConfigStore {
  /** Whether other replicas write to it too: their documents arrive, and a write can lose a race. */
  readonly shared: boolean;
  /** Whether the last exchange with it worked. */
  readonly up: boolean;
  /** The stored document; undefined when there is none. Throws (a V2 error) when the store does not answer. */
  read(): Promise<RouteState | undefined>;
  /**
   * Stores `document` if the stored version is still `expected` (0: none); false when another
   * write came first. Throws a V2 error (the change is refused) when it cannot store it.
   */
  write(document: RouteState, expected: number): Promise<boolean>;
  /** Calls `hint` whenever a newer document may have been stored elsewhere. */
  watch(hint: () => void): void;
  close(): Promise<void>;
}

/** The state file: written atomically, by this process only (its changes run one at a time). */
export class StateFileStore implements ConfigStore {
  readonly shared = false;
  readonly up = true;
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  read(): Promise<RouteState | undefined> {
    return readState(this.#file);
  }

  async write(document: RouteState): Promise<boolean> {
    try {
      await writeState(this.#file, document);
    } catch (error) {
      throw new StateNotSavedError((error as NodeJS.ErrnoException).code ?? 'error');
    }
    return true;
  }

  watch(): void {}

  async close(): Promise<void> {}
}
