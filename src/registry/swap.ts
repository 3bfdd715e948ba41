/**
 * A hot swap: a new version of a model (its file or options) put in place, loaded. It loads
 * beside the current session under the caps (idle models are evicted to make room), takes
 * every request from then on, and the old session is released when the requests holding it
 * finish, so none fails and no batch mixes versions. Where nothing else can make room (a cap
 * of 1), the current version drains first and requests wait for the new one. A version that
 * does not load changes nothing: the swap rejects with the reason, and the current version
 * serves on.
 */
import type { ModelConfig } from '../config/schema.ts';
import type { LoadedModel } from '../executor/types.ts';
import type { Entry, ModelState } from './entry.ts';
import { loadFailureReason, residentBytes, startLoad, tooLarge, type LoadParts } from './loading.ts';

export async function swapVersion(entry: Entry, config: ModelConfig, parts: LoadParts): Promise<void> {
  if (entry.loading !== undefined) await entry.loading.catch(() => undefined);
  const bytes = await residentBytes(config);
  const { maxResidentBytes } = parts.config;
  if (maxResidentBytes !== undefined && bytes > maxResidentBytes) throw tooLarge(config, bytes);
  if (!(await parts.slots.reserveBeside(entry, bytes))) {
    await swapDrainingFirst(entry, config, parts);
    return;
  }
  const started = performance.now();
  let model: LoadedModel;
  try {
    model = await parts.executor.load(config);
  } catch (error) {
    throw new Error(loadFailureReason(error));
  } finally {
    entry.stagingBytes = undefined;
    parts.slots.freed.notify();
  }
  while (entry.draining) await entry.drained.wait();
  install(entry, config, model, bytes, parts);
  parts.events.loaded?.(config.name, performance.now() - started);
}

/** The new version becomes current; the current session is released now if idle, else when its leases end. */
function install(entry: Entry, config: ModelConfig, model: LoadedModel, bytes: number, parts: LoadParts): void {
  const old = entry.model;
  if (old !== undefined) {
    if (entry.inFlight === 0) void old.release();
    else entry.retired.set(entry.generation, { model: old, bytes: entry.bytes, inFlight: entry.inFlight });
  }
  entry.generation += 1;
  entry.inFlight = 0;
  entry.model = model;
  void model.lost?.then(() => parts.slots.lose(entry, model));
  entry.config = config;
  entry.bytes = bytes;
  entry.signature = model.signature;
  entry.reading = undefined;
  entry.state = 'resident';
  entry.holdsSlot = true;
  entry.failure = undefined;
  entry.loads += 1;
}

/** No room beside: drain the current version, load the new one in its place; if it fails, the old configuration loads again for the waiting requests. */
async function swapDrainingFirst(entry: Entry, config: ModelConfig, parts: LoadParts): Promise<void> {
  const previous = entry.config;
  const swap = (async () => {
    if (entry.state === 'resident' && !entry.draining) await parts.slots.evict(entry, 'unload');
    while (entry.draining) await entry.drained.wait();
    entry.config = config;
    entry.signature = undefined;
    entry.reading = undefined;
    entry.state = 'unloaded';
    entry.failure = undefined;
    startLoad(entry, parts);
    await entry.loading;
    if ((entry.state as ModelState) === 'failed') {
      const reason = (entry.failure as { reason: string } | undefined)?.reason ?? 'unknown error';
      entry.config = previous;
      entry.state = 'unloaded';
      entry.failure = undefined;
      throw new Error(reason);
    }
  })();
  entry.swapping = swap.finally(() => { entry.swapping = undefined; });
  await swap;
}
