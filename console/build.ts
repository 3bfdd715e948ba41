/**
 * Builds the operator console into dist/console: the TypeScript under console/src bundled
 * (Preact and htm included) into one ES module, with the page and its style sheet. Run by
 * `npm run build`; nothing here is fetched from anywhere at run time.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const here = import.meta.dirname;
const out = path.resolve(here, '../dist/console');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [path.join(here, 'src/main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  outfile: path.join(out, 'app.js'),
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) copyFileSync(path.join(here, file), path.join(out, file));
