/**
 * The rules of the resident set's capacity, over the registry's entries: what
 * fits under the caps, whose load goes next, which model to evict. Pure: the
 * registry acts on their answers.
 */
import type { RegistryConfig } from '../config/schema.ts';
import type { Flow } from '../waiting.ts';
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
  const waiting = [...entries].filter((other) => other.slotWaitSince !== undefined);
  const weight = demandWeights(waiting);
  let best: Entry | undefined;
  for (const other of waiting) {
    if (best === undefined || before(other, best, scheduling, now, weight)) best = other;
  }
  return best;
}

/**
 * What the requests waiting for each load weigh. Without tenants, their count. With tenants,
 * each tenant's share spread over the loads its requests wait for, in proportion to them: a
 * tenant flooding one cold model weighs its share there, no more, so another tenant's model
 * with a few requests waiting is not kept behind it.
 */
function demandWeights(waiting: readonly Entry[]): (entry: Entry) => number {
  const totals = new Map<string, number>();
  for (const entry of waiting) {
    for (const [tenant, { count }] of entry.waitingBy) totals.set(tenant, (totals.get(tenant) ?? 0) + count);
  }
  if (totals.size === 0) return (entry) => entry.waiting;
  return (entry) => {
    let weight = 0;
    for (const [tenant, { count, share }] of entry.waitingBy) weight += (share * count) / (totals.get(tenant) as number);
    return weight;
  };
}

/**
 * Whether a request is refused because the model's queue (waiting and in progress) is full. With
 * tenants, a full queue still takes a request of a tenant holding less than its share of it
 * (among the tenants there), up to twice maxQueueSize in all: a flood fills a queue for its own
 * tenant only.
 */
export function queueFull(entry: Entry, flow: Flow | undefined): boolean {
  const total = entry.waiting + entry.inFlight;
  const limit = entry.config.maxQueueSize;
  if (total < limit) return false;
  if (flow === undefined || total >= 2 * limit) return true;
  let shares = entry.queuedBy.has(flow.name) ? 0 : flow.share;
  for (const { share } of entry.queuedBy.values()) shares += share;
  return (entry.queuedBy.get(flow.name)?.count ?? 0) >= (limit * flow.share) / shares;
}

/** Adds `delta` to the flow's count in `counts`, forgetting flows that reach 0. */
export function countIn(counts: Map<string, { count: number; share: number }>, flow: Flow, delta: number): void {
  const count = (counts.get(flow.name)?.count ?? 0) + delta;
  if (count <= 0) counts.delete(flow.name);
  else counts.set(flow.name, { count, share: flow.share });
}

function before(a: Entry, b: Entry, scheduling: RegistryConfig['scheduling'], now: number, weight: (entry: Entry) => number): boolean {
  const aSince = a.slotWaitSince as number;
  const bSince = b.slotWaitSince as number;
  const aStarving = starving(a, now);
  const bStarving = starving(b, now);
  if (scheduling === 'fifo' || aStarving || bStarving) {
    return aStarving !== bStarving ? aStarving : aSince < bSince;
  }
  const aWeight = weight(a);
  const bWeight = weight(b);
  return aWeight !== bWeight ? aWeight > bWeight : aSince < bSince;
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
