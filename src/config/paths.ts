/**
 * Model files come only from the local model repository: nothing in a config
 * or a request can make the gateway open a file outside it (Triton's
 * CVE-2023-31036, MLflow's encoded traversals).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

/**
 * Resolves `relative` inside the repository whose real path is `repository`.
 * Returns the absolute path, or throws an Error whose message is safe to show
 * (it repeats only `relative`). A file that does not exist yet is allowed, so a
 * missing model fails at load time (503) rather than at start-up; one that
 * exists must resolve, through any symlinks, inside the repository.
 */
export function resolveInRepository(repository: string, relative: string): string {
  if (relative.includes('\0') || relative.includes('\\')) {
    throw new Error(`path '${printable(relative)}' contains a forbidden character`);
  }
  if (path.isAbsolute(relative)) {
    // Not repeated: an absolute path may say where things are on this machine.
    throw new Error('path must be relative to modelRepository, not absolute');
  }
  if (relative.split('/').some((segment) => segment === '..')) {
    throw new Error(`path '${relative}' must not contain '..'`);
  }
  const file = path.resolve(repository, relative);
  let real: string;
  try {
    real = realpathSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return file;
    throw new Error(`path '${relative}' cannot be resolved`);
  }
  if (!isInside(repository, real)) {
    throw new Error(`path '${relative}' resolves outside modelRepository`);
  }
  return real;
}

function isInside(directory: string, file: string): boolean {
  const relative = path.relative(directory, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}
