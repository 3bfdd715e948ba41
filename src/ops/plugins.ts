/**
 * Post-processing plugins: JavaScript modules in the configured plugins
 * directory, loaded once at start-up. Nothing a request or the admin API
 * sends can add code: routes only name modules that are already loaded.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { NAME_PATTERN } from '../config/schema.ts';
import type { Plugin } from './postprocess.ts';

const MODULE = /\.(m?js)$/;

/** Loads every `.js`/`.mjs` module of `directory`; each exports `transform` (or a default function) and optionally `describe`. */
export async function loadPlugins(directory: string | undefined): Promise<Map<string, Plugin>> {
  const plugins = new Map<string, Plugin>();
  if (directory === undefined) return plugins;
  for (const file of (await readdir(directory)).filter((name) => MODULE.test(name)).sort()) {
    const name = file.replace(MODULE, '');
    if (!new RegExp(NAME_PATTERN).test(name)) throw new Error(`plugin '${file}': its name must match ${NAME_PATTERN}`);
    const module = await import(pathToFileURL(path.join(directory, file)).href) as Record<string, unknown>;
    const transform = module.transform ?? module.default;
    if (typeof transform !== 'function') throw new Error(`plugin '${file}' exports no transform function`);
    const describe = module.describe;
    plugins.set(name, {
      transform: transform as Plugin['transform'],
      ...(typeof describe === 'function' ? { describe: describe as NonNullable<Plugin['describe']> } : {}),
    });
  }
  return plugins;
}
