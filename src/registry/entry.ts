/**
 * What the registry knows of one model: its configuration, its sessions (the
 * current one, earlier versions still finishing requests, a new one loading
 * beside them) and the counters its scheduling and the admin API read.
 */
import type { Signature } from '@modelgate/client/codec';
import type { ModelConfig } from '../config/schema.ts';
import type { LoadedModel } from '../executor/types.ts';
import { Signal } from './signal.ts';

/** What the admin API shows of a model's state. */
export type ModelState = 'unloaded' | 'loading' | 'resident' | 'failed' | 'remote';

/** A session of an earlier version, still finishing the requests that leased it before a swap. */
export interface Retired {
  readonly model: LoadedModel;
  readonly bytes: number;
  inFlight: number;
}

export class Entry {
  config: ModelConfig;
  state: ModelState = 'unloaded';
  model: LoadedModel | undefined;
  /** Set while a load is under way; callers share it (single flight). */
  loading: Promise<void> | undefined;
  /** The models the latest load evicted (or began draining) to make room, for the spans of requests that waited for it. */
  evictedForLoad: string[] = [];
  /** Taken out of the resident set: no new leases; the session goes when inFlight reaches 0. */
  draining = false;
  /** Requests waiting for a lease (for a load or a slot). */
  waiting = 0;
  /** With tenants: each tenant's requests waiting for a lease, with its share (the grouped scheduler weighs loads by them). */
  readonly waitingBy = new Map<string, { count: number; share: number }>();
  /** With tenants: each tenant's requests waiting for or holding a lease (what maxQueueSize counts, per tenant). */
  readonly queuedBy = new Map<string, { count: number; share: number }>();
  /** When its load began waiting for a slot under the caps; undefined when not waiting. */
  slotWaitSince: number | undefined;
  /** Signalled when a draining model's session has been released. */
  readonly drained = new Signal();
  /** Holds a place under the caps: loading with a slot, resident, or draining. */
  holdsSlot = false;
  bytes = 0;
  inFlight = 0;
  loads = 0;
  evictions = 0;
  /** Logical clock of the last lease, for LRU order. */
  lastUsed = 0;
  /** Leases taken, decayed with a time constant of DEMAND_DECAY_MS, as of `demandAt`: what grouped scheduling evicts by. */
  demand = 0;
  demandAt = 0;
  lastUsedAt: number | undefined;
  failure: { reason: string; until: number } | undefined;
  signature: Signature | undefined;
  /** Reading the signature from the file; kept once it succeeded, so the file is read once. */
  reading: Promise<void> | undefined;
  /** Counts swaps: a lease belongs to the version that was current when it was taken. */
  generation = 0;
  /** Earlier versions' sessions by generation; each holds a place under the caps until its last lease ends. */
  readonly retired = new Map<number, Retired>();
  /** Bytes of a new version loading beside the current one; it holds a place under the caps meanwhile. */
  stagingBytes: number | undefined;
  /** A swap that had to drain the current version first: leases wait for it. */
  swapping: Promise<void> | undefined;
  /** Being removed: new leases are refused. */
  removed = false;
  /** Loaded for shadow copies and not used by primary traffic since: the first to evict. */
  expendable = false;
  /** A load started for a shadow copy: it takes a free slot or gives up, never evicts. */
  spareLoad = false;
  /** Signalled when a lease ends or a waiter leaves. */
  readonly quiet = new Signal();

  constructor(config: ModelConfig) {
    this.config = config;
  }
}

/** How fast past demand fades: a model busy a minute ago counts for little now. */
export const DEMAND_DECAY_MS = 10_000;

/** The entry's decayed lease count at `now` (performance.now() ms). */
export function demandAt(entry: Entry, now: number): number {
  return entry.demand * Math.exp((entry.demandAt - now) / DEMAND_DECAY_MS);
}
