/**
 * Live model changes as the document keeps them: a model's definition as a configuration file
 * entry (what is persisted and digested), and the document's changes applied over the
 * configured models, as route changes are (store/document.ts).
 */
import { validateModel } from '../config/load.ts';
import { DEFAULT_WARMUP, type ModelConfig, type RemoteModelConfig } from '../config/schema.ts';
import { baseHolds, canonicalJson, entryDigest, type ModelEntry, type ModelStateEntry } from '../store/document.ts';

export function entryOfRemote(model: RemoteModelConfig): ModelEntry {
  return { name: model.name, keys: [...model.keys], remote: model.remote };
}

/** A model's definition as a configuration file entry: what is persisted and digested. */
export function entryOf(model: ModelConfig): ModelEntry {
  const entry = { name: model.name, path: model.path, keys: [...model.keys], pinned: model.pinned, session: model.session, batching: model.batching, maxQueueSize: model.maxQueueSize, instances: model.instances, runIn: model.runIn };
  // The default warm-up is left out, so that a model's digest (a live change's base) is what it was before warm-up existed.
  return canonicalJson(model.warmup) === canonicalJson(DEFAULT_WARMUP) ? entry : { ...entry, warmup: model.warmup };
}

/**
 * Applies the state file's live model changes over the configured models at
 * start-up, as route changes are applied: an entry counts only while the file
 * still has the version of the model it replaced; a deleted model stays deleted.
 */
export function applyModelState(configured: readonly ModelConfig[], configuredRemotes: readonly RemoteModelConfig[], state: Readonly<Record<string, ModelStateEntry>> | undefined, repository: string, log: (message: string, details: Record<string, unknown>) => void): { models: ModelConfig[]; remotes: RemoteModelConfig[]; kept: Map<string, ModelStateEntry>; versions: Map<string, number>; digests: Map<string, string> } {
  const local = new Map(configured.map((model) => [model.name, model]));
  const remote = new Map(configuredRemotes.map((model) => [model.name, model]));
  const entries = new Map([
    ...configured.map((model): [string, ModelEntry] => [model.name, entryOf(model)]),
    ...configuredRemotes.map((model): [string, ModelEntry] => [model.name, entryOfRemote(model)]),
  ]);
  const digests = new Map([...entries].map(([name, entry]) => [name, entryDigest(entry) as string]));
  const versions = new Map([...digests.keys()].map((name) => [name, 0]));
  const kept = new Map<string, ModelStateEntry>();
  for (const [name, entry] of Object.entries(state ?? {})) {
    if (!baseHolds(entry.base, entries.get(name))) {
      log('live model change dropped: the configuration file changed this model since', { model: name });
      continue;
    }
    local.delete(name);
    remote.delete(name);
    if (entry.model === null) {
      versions.delete(name);
      kept.set(name, entry);
      continue;
    }
    const checked = validateModel(entry.model, repository);
    if (checked.issues !== undefined) {
      log('live model change dropped: it no longer validates', { model: name, issues: checked.issues });
      const original = configured.find((model) => model.name === name);
      const originalRemote = configuredRemotes.find((model) => model.name === name);
      if (original !== undefined) local.set(name, original);
      if (originalRemote !== undefined) remote.set(name, originalRemote);
      continue;
    }
    if (checked.remote !== undefined) remote.set(name, checked.remote);
    else local.set(name, checked.model);
    versions.set(name, entry.version);
    kept.set(name, entry);
  }
  const all = [...local.values(), ...remote.values()];
  const owners = new Map<string, string>();
  const clash = all.some((model) => model.keys.some((key) => {
    const owner = owners.get(key);
    owners.set(key, model.name);
    return owner !== undefined && owner !== model.name;
  }));
  if (clash) {
    log('state file models ignored: their keys clash with the configuration', {});
    return { models: [...configured], remotes: [...configuredRemotes], kept: new Map(), versions: new Map([...digests.keys()].map((name) => [name, 0])), digests };
  }
  return { models: [...local.values()], remotes: [...remote.values()], kept, versions, digests };
}
