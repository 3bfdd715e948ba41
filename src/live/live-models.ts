/**
 * Models added, replaced, reloaded and removed without a restart. A change is
 * validated like a configuration file entry, its file checked and loaded
 * before anything points at it (422 if it does not load, nothing changed),
 * then persisted with the routes' live changes and swapped into the route
 * table at once, so a key is always served by the old model or the new one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Signature } from '@modelgate/client/codec';
import { validateModel } from '../config/load.ts';
import { applyModelState, entryOf, entryOfRemote } from './model-state.ts';
import { NAME_PATTERN, type ModelConfig, type RemoteModelConfig } from '../config/schema.ts';
import { InvalidModelError, ModelConflictError, ModelNotFoundError, ModelNotLoadableError, RepositoryNotWritableError } from '../errors.ts';
import type { ModelRegistry, ModelStatus } from '../registry/registry.ts';
import type { RemoteModel } from '../remote/remote-target.ts';
import type { AdoptedModels, Router } from './router.ts';
import { sameContent, type ModelStateEntry } from '../store/document.ts';
import { writeAtomically } from '../store/state-file.ts';
import { checkIfMatch } from './precondition.ts';
import type { Target } from '../routing/target.ts';

/** The configuration's name pattern: an upload names its model in the URL, unchecked by any schema. */
const MODEL_NAME = new RegExp(NAME_PATTERN);

/** Where uploaded files go, inside the repository: names the gateway chooses. */
export const UPLOADS = '.uploads';

/** A model as the admin API shows it: its definition, its version (the ETag) and its state. */
export interface ModelView extends ModelStatus {
  readonly path: string;
  readonly pinned: boolean;
  readonly maxQueueSize: number;
  readonly batching: ModelConfig['batching'];
  readonly session: ModelConfig['session'];
  readonly instances: number;
  readonly runIn: ModelConfig['runIn'];
  readonly warmup: ModelConfig['warmup'];
  readonly version: number;
}

export interface LiveModelsOptions {
  readonly registry: ModelRegistry;
  readonly router: Router;
  readonly repository: string;
  /** The target serving `key` for `model`. */
  readonly target: (key: string, model: string) => Target;
  /** Reads a model file's signature without a session. */
  readonly readSignature: (model: ModelConfig) => Promise<Signature>;
  /** Models on other V2 servers by name, as the route table serves them; changed in place. */
  readonly remotes: Map<string, RemoteModel>;
  /** A client (pool, breaker) for a remote model. */
  readonly remote: (config: RemoteModelConfig) => RemoteModel;
  readonly remoteTarget: (key: string, remote: RemoteModel) => Target;
  /** The models as the configuration file has them: what a shared document's changes apply over. */
  readonly configured: { readonly models: readonly ModelConfig[]; readonly remotes: readonly RemoteModelConfig[] };
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

/** A remote model as the admin API shows it: never its headers. */
export interface RemoteView {
  readonly name: string;
  readonly keys: readonly string[];
  readonly remote: { readonly url: string; readonly model: string; readonly timeoutMs: number; readonly connections: number };
  readonly state: 'remote' | 'unavailable';
  readonly version: number;
}

/** What GET /admin/models lists for a remote model, in the shape of local ones. */
export function remoteStatus(remote: RemoteModel): ModelStatus {
  return { name: remote.name, keys: remote.config.keys, state: remote.open ? 'failed' : 'remote', inFlight: 0, loads: 0, evictions: 0, lastUsedAt: null };
}

/**
 * Refuses (409) a new version whose inputs or outputs differ from the current
 * one's while routes (`users`) depend on the model, unless forced.
 */
function refuseSignatureChange(name: string, current: Signature | undefined, next: Signature, users: readonly string[], force: boolean): void {
  if (force || current === undefined || users.length === 0 || sameContent(current, next)) return;
  throw new ModelConflictError(`model '${name}': the new version's inputs or outputs differ, and route ${users.map((key) => `'${key}'`).join(', ')} depends on them (force: true applies it anyway)`);
}

export class LiveModels {
  readonly #options: LiveModelsOptions;

  constructor(options: LiveModelsOptions) {
    this.#options = options;
  }

  /** The remote models served now. */
  remotes(): IterableIterator<RemoteModel> {
    return this.#options.remotes.values();
  }

  get(name: string): ModelView | RemoteView {
    const { registry, router } = this.#options;
    const remote = this.#options.remotes.get(name);
    if (remote !== undefined) {
      const { url, model, timeoutMs, connections } = remote.config.remote;
      return { name, keys: remote.config.keys, remote: { url, model, timeoutMs, connections }, state: remote.open ? 'unavailable' : 'remote', version: router.modelVersion(name) ?? 0 };
    }
    const config = registry.config(name);
    const status = registry.status().find((model) => model.name === name) as ModelStatus;
    return { ...status, path: config.path, pinned: config.pinned, maxQueueSize: config.maxQueueSize, batching: config.batching, session: config.session, instances: config.instances, runIn: config.runIn, warmup: config.warmup, version: router.modelVersion(name) ?? 0 };
  }

  /** Creates (`created`) or replaces a model from a configuration file entry without its name. */
  put(name: string, body: unknown, ifMatch: string | undefined, force = false): Promise<{ created: boolean; view: ModelView | RemoteView }> {
    return this.#options.router.serialized(async () => {
      this.#checkPrecondition(name, ifMatch);
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidModelError('the body must be a JSON object: a model entry as in the configuration file, without its name');
      if ('name' in body && (body as { name: unknown }).name !== name) throw new InvalidModelError(`name: the body names '${String((body as { name: unknown }).name)}', the path '${name}'`);
      const checked = validateModel({ ...body, name }, this.#options.repository);
      if (checked.issues !== undefined) throw new InvalidModelError(checked.issues.join('; '));
      if (checked.remote !== undefined) return this.#applyRemote(checked.remote, force);
      if (this.#options.remotes.has(name)) throw new ModelConflictError(`model '${name}' is served by a remote server: delete it first to make it a local model`);
      return this.#apply(checked.model, force);
    });
  }

  /** Writes an uploaded file into the repository under a name of the gateway's choosing, then creates or repoints the model at it. */
  upload(name: string, bytes: Buffer, ifMatch: string | undefined, force = false): Promise<{ created: boolean; view: ModelView }> {
    return this.#options.router.serialized(async () => {
      if (!MODEL_NAME.test(name)) throw new InvalidModelError(`name: '${name}' is not a model name (letters, digits, _ . -, up to 64)`);
      this.#checkPrecondition(name, ifMatch);
      if (this.#options.remotes.has(name)) throw new ModelConflictError(`model '${name}' is served by a remote server: it has no file`);
      const relative = `${UPLOADS}/${name}/${Date.now()}-${randomBytes(6).toString('hex')}.onnx`;
      try {
        const file = path.join(this.#options.repository, relative);
        await mkdir(path.dirname(file), { recursive: true });
        await writeAtomically(file, bytes);
      } catch (error) {
        throw new RepositoryNotWritableError((error as NodeJS.ErrnoException).code ?? 'error');
      }
      const existing = this.#exists(name) ? entryOf(this.#options.registry.config(name)) : { name };
      const checked = validateModel({ ...existing, path: relative }, this.#options.repository);
      try {
        if (checked.model === undefined) throw new InvalidModelError((checked.issues ?? []).join('; '));
        return await this.#apply(checked.model, force);
      } catch (error) {
        await unlink(path.join(this.#options.repository, relative)).catch(() => undefined);
        throw error;
      }
    });
  }

  /** Loads the model's file again beside the running version and swaps to it. */
  reload(name: string, force = false): Promise<ModelView> {
    return this.#options.router.serialized(async () => {
      if (this.#options.remotes.has(name)) throw new ModelConflictError(`model '${name}' is served by a remote server: it has no file to load again`);
      if (!this.#exists(name)) throw new ModelNotFoundError(name);
      const config = this.#options.registry.config(name);
      await this.#checkSignature(config, force);
      try {
        await this.#options.registry.replace(config);
      } catch (error) {
        throw new ModelNotLoadableError(name, (error as Error).message);
      }
      return this.get(name) as ModelView;
    });
  }

  /** Removes a model: its keys answer 404 at once; its sessions go when its requests finish. */
  remove(name: string, ifMatch: string | undefined): Promise<void> {
    return this.#options.router.serialized(async () => {
      if (!this.#exists(name)) throw new ModelNotFoundError(name);
      this.#checkPrecondition(name, ifMatch);
      const { registry, router } = this.#options;
      const remote = this.#options.remotes.get(name);
      const keys = remote?.config.keys ?? registry.config(name).keys;
      const users = router.usersOf(keys);
      if (users.length > 0) throw new ModelConflictError(`model '${name}' is a target of route ${users.map((key) => `'${key}'`).join(', ')}`);
      const targets = new Map(router.models());
      for (const key of keys) targets.delete(key);
      await router.changeModels(targets, name, null, this.#base(name));
      if (remote === undefined) await registry.remove(name);
      else {
        this.#options.remotes.delete(name);
        await remote.retire();
      }
    });
  }

  /**
   * Takes on the live model changes of a shared document another replica wrote, as a restart
   * would (`applyModelState`): changed models loaded beside their running version, new ones
   * added to load on first use. A file this replica's repository lacks is what a missing file
   * is at start-up (the model answers 503 until it appears); a new version that does not load
   * here leaves the running one serving, logged. What the document dropped is freed by
   * `retire`, once the router has swapped in the targets this returns.
   */
  async adopt(entries: Readonly<Record<string, ModelStateEntry>>): Promise<AdoptedModels> {
    const { registry, remotes, repository, configured } = this.#options;
    const log = this.#options.log ?? (() => undefined);
    const wanted = applyModelState(configured.models, configured.remotes, entries, repository, log);
    const targets = new Map<string, Target>();
    for (const model of wanted.models) {
      if (!registry.has(model.name)) registry.add(model);
      else if (!sameContent(entryOf(registry.config(model.name)), entryOf(model))) {
        await registry.replace(model).catch((error: unknown) => {
          log('model version from the shared configuration not loaded on this replica: the running one serves on', { model: model.name, reason: (error as Error).message });
        });
      }
      for (const key of model.keys) targets.set(key, this.#options.target(key, model.name));
    }
    const nextRemotes = new Map<string, RemoteModel>();
    for (const config of wanted.remotes) {
      const current = remotes.get(config.name);
      const same = current !== undefined && sameContent(entryOfRemote(current.config), entryOfRemote(config));
      const remote = same ? current : this.#options.remote(config);
      nextRemotes.set(config.name, remote);
      for (const key of config.keys) targets.set(key, this.#options.remoteTarget(key, remote));
    }
    const goneLocal = registry.status().map((model) => model.name).filter((name) => !wanted.models.some((model) => model.name === name));
    const retire = async () => {
      const retired = [...remotes.values()].filter((remote) => nextRemotes.get(remote.name) !== remote);
      remotes.clear();
      for (const [name, remote] of nextRemotes) remotes.set(name, remote);
      await Promise.all([...goneLocal.map((name) => registry.remove(name)), ...retired.map((remote) => remote.retire())]);
    };
    return { targets, kept: wanted.kept, versions: wanted.versions, retire };
  }

  #exists(name: string): boolean {
    return this.#options.remotes.has(name) || this.#options.registry.has(name);
  }

  /** Creates or replaces a remote model: its metadata must answer first (422 if not); the old client closes once its calls finish. */
  async #applyRemote(config: RemoteModelConfig, force: boolean): Promise<{ created: boolean; view: RemoteView }> {
    const { router, remotes } = this.#options;
    if (this.#options.registry.has(config.name)) throw new ModelConflictError(`model '${config.name}' is a local model: delete it first to serve it from a remote server`);
    const previous = remotes.get(config.name);
    const previousKeys = previous?.config.keys ?? [];
    this.#checkKeys(config.name, config.keys, previousKeys);
    const remote = this.#options.remote(config);
    let signature: Signature;
    try {
      signature = await remote.signature();
    } catch (error) {
      await remote.retire();
      throw new ModelNotLoadableError(config.name, `its remote server did not answer its metadata (${(error as Error).message})`);
    }
    try {
      refuseSignatureChange(config.name, previous?.knownSignature(), signature, router.usersOf(previousKeys), force);
    } catch (error) {
      await remote.retire();
      throw error;
    }
    const targets = new Map(router.models());
    for (const key of previousKeys) targets.delete(key);
    for (const key of config.keys) targets.set(key, this.#options.remoteTarget(key, remote));
    try {
      await router.changeModels(targets, config.name, entryOfRemote(config), this.#base(config.name));
    } catch (error) {
      await remote.retire();
      throw error;
    }
    remotes.set(config.name, remote);
    if (previous !== undefined) void previous.retire();
    return { created: previous === undefined, view: this.get(config.name) as RemoteView };
  }

  /** Every key free, or this model's already; no route loses a key it targets. */
  #checkKeys(name: string, keys: readonly string[], previousKeys: readonly string[]): void {
    const { router } = this.#options;
    for (const key of keys) {
      const owner = router.models().get(key) as (Target & { model?: string }) | undefined;
      if (router.hasRoute(key)) throw new ModelConflictError(`key '${key}' is served by route '${key}'`);
      if (owner !== undefined && owner.model !== name) throw new ModelConflictError(`key '${key}' is served by model '${owner.model}'`);
    }
    const dropped = previousKeys.filter((key) => !keys.includes(key));
    const users = router.usersOf(dropped);
    if (users.length > 0) throw new ModelConflictError(`model '${name}': route ${users.map((key) => `'${key}'`).join(', ')} targets key '${dropped.join("', '")}', which the change would drop`);
  }

  /** The configured entry's digest this change is based on, as route changes record theirs. */
  #base(name: string): string | null {
    return this.#options.router.configuredModelDigest(name);
  }

  #checkPrecondition(name: string, ifMatch: string | undefined): void {
    checkIfMatch(`model '${name}'`, this.#exists(name) ? this.#options.router.modelVersion(name) ?? 0 : undefined, ifMatch);
  }

  /** Refuses (409) a new version whose inputs or outputs differ while a route depends on the model, unless forced. */
  async #checkSignature(config: ModelConfig, force: boolean): Promise<void> {
    let signature: Signature;
    try {
      signature = await this.#options.readSignature(config);
    } catch (error) {
      throw new ModelNotLoadableError(config.name, `its file is not an ONNX model V2 can serve (${(error as Error).message})`);
    }
    const { registry, router } = this.#options;
    if (force || !registry.has(config.name)) return;
    const current = await registry.signature(config.name).catch(() => undefined);
    refuseSignatureChange(config.name, current, signature, router.usersOf(registry.config(config.name).keys), force);
  }

  async #apply(model: ModelConfig, force: boolean): Promise<{ created: boolean; view: ModelView }> {
    const { registry, router } = this.#options;
    const created = !registry.has(model.name);
    const previousKeys = created ? [] : registry.config(model.name).keys;
    this.#checkKeys(model.name, model.keys, previousKeys);
    try {
      await stat(model.file);
    } catch {
      throw new InvalidModelError(`path: '${model.path}' is not a file in the model repository`);
    }
    await this.#checkSignature(model, force);
    if (created) registry.add(model);
    try {
      await registry.replace(model);
    } catch (error) {
      if (created) await registry.remove(model.name);
      throw new ModelNotLoadableError(model.name, (error as Error).message);
    }
    const targets = new Map(router.models());
    for (const key of previousKeys) targets.delete(key);
    for (const key of model.keys) targets.set(key, this.#options.target(key, model.name));
    await router.changeModels(targets, model.name, entryOf(model), this.#base(model.name));
    return { created, view: this.get(model.name) as ModelView };
  }
}
