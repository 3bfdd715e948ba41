/**
 * The OpenAPI document as the code generates it, with no keys configured (the
 * per-key entries belong to a running gateway). `npm run openapi` writes it
 * to openapi/openapi.json; a test fails when the committed file drifts.
 *
 *   node dist/openapi-document.js [file]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from './app.ts';
import { validateConfig } from './config/load.ts';

export async function generateOpenApi(): Promise<Record<string, unknown>> {
  const repository = await mkdtemp(path.join(tmpdir(), 'modelgate-openapi-'));
  try {
    const app = await buildApp(validateConfig({ modelRepository: repository, admin: { token: 'openapi-document-only' } }, repository, {}));
    await app.ready();
    const document = app.swagger() as unknown as Record<string, unknown>;
    await app.close();
    return document;
  } finally {
    await rm(repository, { recursive: true, force: true });
  }
}

export function formatOpenApi(document: Record<string, unknown>): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

if (import.meta.main) {
  const file = path.resolve(process.argv[2] ?? 'openapi/openapi.json');
  await writeFile(file, formatOpenApi(await generateOpenApi()));
  process.stdout.write(`wrote ${file}\n`);
}
