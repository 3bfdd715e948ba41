/**
 * Field paths in messages: TypeBox reports JSON pointers; people read
 * `models[0].name`. One format for the configuration file and the admin API.
 */

/** JSON pointer `/models/0/name` to `models[0].name`; `prefix` goes before it (`split` + `/variants/0` -> `split.variants[0]`). */
export function displayPath(pointer: string, prefix = ''): string {
  const path = pointer.slice(1).split('/').filter((part) => part !== '')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((out, part) => (/^\d+$/.test(part) ? `${out}[${part}]` : out === '' ? part : `${out}.${part}`), prefix);
  return path === '' ? '(root)' : path;
}
