/**
 * Loading a model into the resident set: one load however many callers wait for it (they share
 * `entry.loading`), a place under the caps reserved first, and a failure remembered for the
 * backoff period so that requests get its reason (503, Retry-After) instead of each trying again.
 */
import { stat } from 'node:fs/promises';
import type { ModelConfig, RegistryConfig } from '../config/schema.ts';
import { NoSpareCapacityError } from '../errors.ts';
import type { Executor } from '../executor/types.ts';
import type { Entry } from './entry.ts';
import type { RegistryEvents, Slots } from './slots.ts';

/** What a load works with. */
export interface LoadParts {
  readonly executor: Executor;
  readonly slots: Slots;
  readonly events: RegistryEvents;
  readonly config: Readonly<RegistryConfig>;
}

/** Starts the entry's load unless it is backing off after a failed one. */
export function startLoad(entry: Entry, parts: LoadParts): void {
  if (entry.state === 'failed' && Date.now() < (entry.failure?.until ?? 0)) return;
  entry.state = 'loading';
  entry.evictedForLoad = [];
  entry.loading = load(entry, parts).finally(() => {
    entry.loading = undefined;
  });
}

async function load(entry: Entry, parts: LoadParts): Promise<void> {
  const started = performance.now();
  try {
    entry.bytes = await residentBytes(entry.config);
    const { maxResidentBytes } = parts.config;
    if (maxResidentBytes !== undefined && entry.bytes > maxResidentBytes) throw tooLarge(entry.config, entry.bytes);
    await parts.slots.reserve(entry);
    const model = await parts.executor.load(entry.config);
    void model.lost?.then(() => parts.slots.lose(entry, model));
    entry.model = model;
    entry.signature = model.signature;
    entry.state = 'resident';
    entry.loads += 1;
    entry.failure = undefined;
    // A load waiting for this one to become evictable looks again.
    parts.slots.freed.notify();
    parts.events.loaded?.(entry.config.name, performance.now() - started, model.warmup);
  } catch (error) {
    if (error instanceof NoSpareCapacityError) {
      // A shadow's load that found no free slot: not a failure of the model.
      entry.state = 'unloaded';
      entry.spareLoad = false;
      return;
    }
    const reason = loadFailureReason(error);
    entry.state = 'failed';
    entry.failure = { reason, until: Date.now() + parts.config.loadFailureBackoffMs };
    if (entry.holdsSlot) {
      entry.holdsSlot = false;
      parts.slots.freed.notify();
    }
    parts.events.loadFailed?.(entry.config.name, reason);
  }
}

/** What a model's sessions count against maxResidentBytes: its file's size, once per instance. */
export async function residentBytes(config: ModelConfig): Promise<number> {
  try {
    return (await stat(config.file)).size * config.instances;
  } catch (error) {
    throw new Error(loadFailureReason(error));
  }
}

export function tooLarge(config: ModelConfig, bytes: number): Error {
  const what = config.instances === 1 ? `its file (${bytes} bytes) is` : `its ${config.instances} instances (${bytes} bytes) are`;
  return new Error(`${what} larger than registry.maxResidentBytes`);
}

/** Why a load failed, in words a client may read: never a file path. */
export function loadFailureReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'its file is not in the model repository';
  return error instanceof Error ? error.message : String(error);
}
