import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import t from 'tap';
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

t.test('the README documents every configuration field', async (t) => {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const reference = readme.slice(readme.indexOf('## Configuration'));
  const all = [...fields(GatewayConfigSchema), ...fields(ModelSchema, 'models[].'), ...fields(RouteSchema, 'routes[].')];
  t.ok(all.length > 30, `${all.length} fields`);
  for (const field of all) {
    const name = field.split('.').at(-1) as string;
    t.match(reference, new RegExp(`\\b${name.replace(/[[\]]/g, '')}:`), `${field} is in the README's configuration section`);
  }
});
