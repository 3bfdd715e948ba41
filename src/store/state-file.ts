/**
 * Live changes survive a restart: the document is kept in a JSON state file beside the
 * configuration, written atomically (temporary file, fsync, rename).
 */
import { open, readFile, rename } from 'node:fs/promises';
import type { RouteState } from './document.ts';

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
  await writeAtomically(file, `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * Writes `file` whole or not at all: a temporary file beside it (owner-only), synced, then
 * renamed over it. A reader sees the old content or the new. Its folder must exist.
 */
export async function writeAtomically(file: string, content: string | Uint8Array): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}
