import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { GatewayConfigSchema, ModelSchema, RouteSchema } from '../../src/config/schema.ts';

/** Every field path of an object schema, into nested objects (not into arrays' items). */
function fields(schema: TSchema, prefix = ''): string[] {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  return Object.entries(properties).flatMap(([name, child]) => {
    const at = `${prefix}${name}`;
    const nested = (child as { type?: string }).type === 'object' && (child as { properties?: unknown }).properties !== undefined;
    return [at, ...(nested ? fields(child, `${at}.`) : [])];
  });
}

/** Every path a YAML value spells out, with `[]` for an array's items. */
function paths(value: unknown, at: string, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) paths(item, `${at}[]`, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [name, child] of Object.entries(value)) {
      const here = at === '' ? name : `${at}.${name}`;
      into.add(here);
      paths(child, here, into);
    }
  }
}

/**
 * The field paths the README's configuration examples show: every YAML block from the
 * Configuration section on, read as YAML. A block that is one route or model (or a list of
 * them), as the sections on routes and models write their examples, counts at `routes[]` or
 * `models[]`.
 */
function documented(readme: string): { paths: Set<string>; blocks: number } {
  const found = new Set<string>();
  let blocks = 0;
  for (const [, text] of readme.slice(readme.indexOf('## Configuration')).matchAll(/```yaml\n([\s\S]*?)```/g)) {
    for (const document of parseAllDocuments(text as string)) {
      if (!('toJS' in document) || document.errors.length > 0) continue;
      blocks += 1;
      const value: unknown = document.toJS();
      const first = Array.isArray(value) ? value[0] : value;
      const entry = first !== null && typeof first === 'object' ? first as Record<string, unknown> : {};
      const prefix = 'key' in entry && !('name' in entry) ? 'routes' : 'name' in entry && ('path' in entry || 'remote' in entry) ? 'models' : '';
      paths(Array.isArray(value) || prefix === '' ? value : [value], prefix, found);
    }
  }
  return { paths: found, blocks };
}

t.test('the README\'s configuration examples show every configuration field at its place', async (t) => {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const { paths: shown, blocks } = documented(readme);
  t.ok(blocks > 5, `${blocks} YAML examples read`);
  const all = [...fields(GatewayConfigSchema), ...fields(ModelSchema, 'models[].'), ...fields(RouteSchema, 'routes[].')];
  t.ok(all.length > 30, `${all.length} fields`);
  for (const field of all) t.ok(shown.has(field), `${field} is in one of the README's YAML examples, at that path`);
});

t.test('a field named only in prose, or at another path, is not counted as shown', async (t) => {
  const { paths: shown } = documented('## Configuration\n`url:` somewhere\n```yaml\nserver:\n  port: 1\nmodels:\n  - name: a\n    session: { intraOpThreads: 1 }\n```\n```yaml\n- key: k\n  split: { variants: [] }\n```\n');
  t.same([...shown].sort(), ['models', 'models[].name', 'models[].session', 'models[].session.intraOpThreads', 'routes[].key', 'routes[].split', 'routes[].split.variants', 'server', 'server.port']);
});
