/**
 * The live-state document: every live route and model change, one versioned whole (its
 * `counter` the version), as the state file and Redis keep it.
 *
 * Each entry remembers the configuration's version of what it replaced (`base`, a digest; null
 * if the configuration had no such route or model). An entry applies only while the
 * configuration file still has that version: one edited by hand since wins over the live
 * change, which is dropped (and logged). Digests and comparisons read a canonical form (keys
 * sorted at every level), so a file rewritten with the same content in another key order is
 * the same configuration.
 */
import { createHash } from 'node:crypto';
import type { RouteSpec, TenantSpec } from '../config/schema.ts';

export interface StateEntry {
  /** Digest of the configured route this change replaced; null if the file had no such route. */
  readonly base: string | null;
  /** The route now, or null if it was deleted live. */
  readonly route: RouteSpec | null;
  readonly version: number;
}

/** A model as the admin API set it: a configuration file entry. */
export type ModelEntry = Readonly<Record<string, unknown>> & { readonly name: string };

/** A live model change: `base` as for routes, the entry now (null: deleted live), its version. */
export interface ModelStateEntry {
  readonly base: string | null;
  readonly model: ModelEntry | null;
  readonly version: number;
}

/** A live tenant change: `base` as for routes, the tenant now (keys as digests; null: deleted live), its version. */
export interface TenantStateEntry {
  readonly base: string | null;
  readonly tenant: TenantSpec | null;
  readonly version: number;
}

export interface RouteState {
  readonly format: 1;
  /** Last version handed out, so versions (and ETags) never repeat across restarts. */
  readonly counter: number;
  readonly routes: Readonly<Record<string, StateEntry>>;
  /** Live model changes, by model name. */
  readonly models?: Readonly<Record<string, ModelStateEntry>>;
  /** Live tenant changes, by tenant name. */
  readonly tenants?: Readonly<Record<string, TenantStateEntry>>;
  /** When this version was written (ISO 8601); absent in files from before it was recorded. */
  readonly savedAt?: string;
}

/** JSON text with every object's keys sorted: equal for values equal in content, whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
    const sorted: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(item).sort()) sorted[key] = (item as Record<string, unknown>)[key];
    return sorted;
  });
}

/** Whether two JSON values have the same content (key order aside). */
export function sameContent(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

const digestOf = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

/** Digest of a configured route or model entry: what a live change records as its `base`. */
export function entryDigest(entry: RouteSpec | ModelEntry | TenantSpec | undefined): string | null {
  return entry === undefined ? null : digestOf(canonicalJson(entry));
}

/**
 * Whether a live change's `base` is the configured entry's version: its canonical digest, or
 * the digest of its text in the file's key order, which state files written before digests
 * were canonical hold.
 */
export function baseHolds(base: string | null, entry: RouteSpec | ModelEntry | TenantSpec | undefined): boolean {
  if (entry === undefined) return base === null;
  return base === entryDigest(entry) || base === digestOf(JSON.stringify(entry));
}

/** The document holding `routes`, `models` and `tenants` at version `counter`. */
export function documentOf(routes: ReadonlyMap<string, StateEntry>, models: ReadonlyMap<string, ModelStateEntry>, counter: number, savedAt?: number, tenants: ReadonlyMap<string, TenantStateEntry> = new Map()): RouteState {
  return {
    format: 1, counter, savedAt: new Date(savedAt ?? Date.now()).toISOString(),
    routes: Object.fromEntries(routes), ...(models.size === 0 ? {} : { models: Object.fromEntries(models) }),
    ...(tenants.size === 0 ? {} : { tenants: Object.fromEntries(tenants) }),
  };
}

/** When the document was written, ms since the epoch; undefined when it does not say. */
export function savedAtOf(document: RouteState | undefined): number | undefined {
  const time = document?.savedAt === undefined ? Number.NaN : Date.parse(document.savedAt);
  return Number.isNaN(time) ? undefined : time;
}

export interface AppliedState {
  readonly routes: RouteSpec[];
  readonly versions: Map<string, number>;
  readonly counter: number;
  /** Entries kept (still applying to the configuration). */
  readonly kept: Map<string, StateEntry>;
  /** Keys whose live change was dropped because the configuration changed that route. */
  readonly dropped: string[];
}

/** Applies the document's route changes over the configured routes, as the module comment says. */
export function applyState(configured: readonly RouteSpec[], state: RouteState | undefined): AppliedState {
  const byKey = new Map(configured.map((route) => [route.key, route]));
  const versions = new Map<string, number>();
  let counter = 0;
  for (const route of configured) versions.set(route.key, ++counter);
  const kept = new Map<string, StateEntry>();
  const dropped: string[] = [];
  if (state !== undefined) {
    counter = Math.max(counter, state.counter);
    for (const [key, entry] of Object.entries(state.routes)) {
      if (!baseHolds(entry.base, byKey.get(key))) {
        dropped.push(key);
        continue;
      }
      kept.set(key, entry);
      if (entry.route === null) {
        byKey.delete(key);
        versions.delete(key);
      } else {
        byKey.set(key, { ...entry.route, key });
        versions.set(key, entry.version);
      }
    }
  }
  return { routes: [...byKey.values()], versions, counter, kept, dropped };
}
