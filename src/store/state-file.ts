/**
 * Live route changes survive a restart: they are kept in a JSON state file
 * beside the configuration, written atomically (temporary file, fsync, rename).
 *
 * Each entry remembers the configuration's version of the route it replaced
 * (`base`, a digest; null if the route was not in the file). At start-up an
 * entry is applied only while the configuration file still has that version
 * of the route: a route edited by hand since wins over the live change, which
 * is dropped (and logged).
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import type { RouteSpec } from '../config/schema.ts';

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

export interface RouteState {
  readonly format: 1;
  /** Last version handed out, so versions (and ETags) never repeat across restarts. */
  readonly counter: number;
  readonly routes: Readonly<Record<string, StateEntry>>;
  /** Live model changes, by model name. */
  readonly models?: Readonly<Record<string, ModelStateEntry>>;
  /** When this version was written (ISO 8601); absent in files from before it was recorded. */
  readonly savedAt?: string;
}

/**
 * Whether an `If-Match` header holds for something at `version` (undefined:
 * it does not exist): one of its tags is that version, quoted (weak or not),
 * or `*` for anything that exists.
 */
export function ifMatchHolds(ifMatch: string, version: number | undefined): boolean {
  return ifMatch.split(',').map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => version !== undefined && (tag === '*' || tag === `"${version}"`));
}

/** Digest of a configured model entry, as for routes. */
export function modelDigest(model: ModelEntry | undefined): string | null {
  return model === undefined ? null : createHash('sha256').update(JSON.stringify(model)).digest('hex').slice(0, 32);
}

export function routeDigest(route: RouteSpec | undefined): string | null {
  return route === undefined ? null : createHash('sha256').update(JSON.stringify(route)).digest('hex').slice(0, 32);
}

/** Reads the state file; undefined if there is none. Throws if it is unreadable or malformed. */
export async function readState(file: string): Promise<RouteState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const state = JSON.parse(text) as RouteState;
  if (state.format !== 1 || typeof state.counter !== 'number' || typeof state.routes !== 'object' || state.routes === null) {
    throw new Error('not a modelgate route state file (format 1)');
  }
  return state;
}

export async function writeState(file: string, state: RouteState): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
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

/** Applies `state` over the configured routes, as the module comment says. */
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
      if (routeDigest(byKey.get(key)) !== entry.base) {
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
