/**
 * The rules of the resident set's capacity, over the registry's entries: what
 * fits under the caps, whose load goes next, which model to evict. Pure: the
 * registry acts on their answers.
 */
import type { RegistryConfig } from '../config/schema.ts';
import { demandAt, type Entry } from './entry.ts';

/** A load waiting for a slot longer than this goes first, whatever the demand for others. */
const STARVATION_MS = 1000;

/** Whether one more session of `bytes` fits beside every session held now: resident, loading, draining, retired or staged. */
export function fitsBeside(entries: Iterable<Entry>, config: Readonly<RegistryConfig>, bytes: number): boolean {
  const { maxResidentModels, maxResidentBytes } = config;
  let count = 1;
  let total = bytes;
  for (const other of entries) {
    for (const retired of other.retired.values()) {
      count += 1;
      total += retired.bytes;
    }
    if (other.stagingBytes !== undefined) {
      count += 1;
      total += other.stagingBytes;
    }
    if (other.holdsSlot) {
      count += 1;
      total += other.bytes;
    }
  }
  return (maxResidentModels === undefined || count <= maxResidentModels)
    && (maxResidentBytes === undefined || total <= maxResidentBytes);
}

/** Whether the load has waited for a slot past the starvation bound. */
function starving(entry: Entry, now: number): boolean {
  return starvesIn(entry, now) < 0;
}

/** Milliseconds until the load waiting for a slot passes the starvation bound (negative once it has). */
export function starvesIn(entry: Entry, now: number): number {
  return (entry.slotWaitSince ?? now) + STARVATION_MS - now;
}

/**
 * Of the loads waiting for a slot, whose turn it is. grouped: the model most
 * requests wait for, unless a load has waited past the starvation bound
 * (then the oldest); fifo: the oldest.
 */
export function nextInLine(entries: Iterable<Entry>, scheduling: RegistryConfig['scheduling'], now: number): Entry | undefined {
  let best: Entry | undefined;
  for (const other of entries) {
    if (other.slotWaitSince === undefined) continue;
    if (best === undefined || before(other, best, scheduling, now)) best = other;
  }
  return best;
}

function before(a: Entry, b: Entry, scheduling: RegistryConfig['scheduling'], now: number): boolean {
  const aSince = a.slotWaitSince as number;
  const bSince = b.slotWaitSince as number;
  const aStarving = starving(a, now);
  const bStarving = starving(b, now);
  if (scheduling === 'fifo' || aStarving || bStarving) {
    return aStarving !== bStarving ? aStarving : aSince < bSince;
  }
  return a.waiting !== b.waiting ? a.waiting > b.waiting : aSince < bSince;
}

/**
 * The models that may make room for `entry`: resident, unpinned, and no requests
 * waiting for them (a model just loaded for its waiters is not evicted under
 * them). Models only shadows use come first, busy or not. fifo: least recently
 * used first. grouped: least demanded first (leases decayed over about ten
 * seconds), so under skewed traffic the hot models keep their slots and the
 * cold ones take turns in the rest; with equal counts the older use has
 * decayed more, so it is LRU again.
 */
export function evictionCandidates(entries: Iterable<Entry>, entry: Entry, scheduling: RegistryConfig['scheduling'], now: number): Entry[] {
  const all = [...entries]
    .filter((other) => other !== entry && other.state === 'resident' && !other.draining && !other.config.pinned && other.waiting === 0)
    .sort(scheduling === 'fifo' ? (a, b) => a.lastUsed - b.lastUsed : (a, b) => demandAt(a, now) - demandAt(b, now) || a.lastUsed - b.lastUsed);
  const expendable = all.filter((other) => other.expendable);
  return expendable.length > 0 ? expendable : all;
}

/** grouped: a model this many times more in demand than a load waiting for a slot is not evicted for it while another slot will come free. */
const DEMAND_MARGIN = 2;

/**
 * grouped: which of the candidates a load may evict. Those whose demand is
 * within DEMAND_MARGIN of the load's own (its decayed leases and waiting
 * requests); if every one is far hotter, none while another slot is on its way
 * to coming free (a model loading, draining, or just loaded for requests that
 * wait for it) and the load is not starving, else the least demanded only.
 * So a hot model between two batches is not evicted for a cold one: the cold
 * ones take turns in the other slots, and a busy one drains in a few ms.
 */
export function fairCandidates(entries: Iterable<Entry>, entry: Entry, candidates: readonly Entry[], now: number): Entry[] {
  const bound = (demandAt(entry, now) + entry.waiting) * DEMAND_MARGIN;
  const open = candidates.filter((other) => demandAt(other, now) <= bound);
  if (open.length > 0) return open;
  if (mayFreeSlot(entries, entry, candidates) && !starving(entry, now)) return [];
  return candidates.slice(0, 1);
}

/**
 * Whether a slot may still come free for `entry` other than by evicting one of
 * `except`: another model is loading or draining, or is resident, unpinned and
 * busy (evictable once its requests end).
 */
export function mayFreeSlot(entries: Iterable<Entry>, entry: Entry, except: readonly Entry[] = []): boolean {
  return [...entries].some((other) => other !== entry && !except.includes(other) && (
    (other.holdsSlot && (other.draining || other.state === 'loading'))
    || (other.state === 'resident' && !other.config.pinned && (other.inFlight > 0 || other.waiting > 0))));
}
