/**
 * An application that installs a fresh `npm pack` of the project can import
 * `modelgate/client`, type-check against its declarations and run an
 * inference with it. Needs the npm registry for the package's dependencies
 * (from npm's cache when they are there); skipped, saying so, without it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { addMulModel } from '../../src/onnx/builder.ts';
import { buildGateway } from '../helpers/gateway.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const consumer = `import { ModelgateClient, ModelgateError, type InferResponse } from 'modelgate/client';
const [url] = process.argv.slice(2);
const client = new ModelgateClient({ url: url as string });
try {
  const answer: InferResponse = await client.infer('addmul', [
    { name: 'a', datatype: 'INT64', shape: [2], data: new BigInt64Array([2n ** 62n, 3n]) },
    { name: 'b', datatype: 'INT64', shape: [2], data: new BigInt64Array([1n, 4n]) },
  ], { outputs: ['sum'] });
  const sum = answer.outputs[0]?.data as BigInt64Array;
  console.log(JSON.stringify({ model: answer.modelName, sum: Array.from(sum, String) }));
  await client.infer('nope', []).catch((error: unknown) => console.log(JSON.stringify({ status: error instanceof ModelgateError ? error.status : -1 })));
} finally {
  await client.close();
}
`;

/** Packs the project and installs it into a fresh application; says why not when it cannot. */
async function install(work: string): Promise<string | undefined> {
  if (!existsSync(path.join(ROOT, 'dist/client/index.js'))) return 'dist/ is not built: npm test builds it before running tap';
  // dist/ is built already; --ignore-scripts keeps prepack from building it again.
  await run(NPM, ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT });
  const tarball = readdirSync(work).find((file) => file.endsWith('.tgz')) as string;
  const typesVersion = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
  try {
    await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball}`, `@types/node@${typesVersion}`], { cwd: work, timeout: 180_000 });
    return undefined;
  } catch (error) {
    return `npm install of the packed project failed (is the npm registry reachable?): ${(error as Error).message.split('\n')[0]}`;
  }
}

const work = t.testdir({
  '.npmrc': 'onnxruntime-node-install=skip\n',
  'package.json': JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'nodenext', target: 'es2023', strict: true, noEmit: true, types: ['node'] }, files: ['app.mts'] }),
  'app.mts': consumer,
});
const notInstalled = await install(work);

t.test('a packed install: import, type-check and infer with modelgate/client', { skip: notInstalled ?? false }, async (t) => {
  const checked = await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', work]).then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error));
  t.equal(checked, '', 'the application type-checks against the packed declarations');
  const { app } = await buildGateway(t, { 'addmul.onnx': addMulModel('int64') }, { models: [{ name: 'addmul', path: 'addmul.onnx' }] });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const { stdout } = await run(process.execPath, [path.join(work, 'app.mts'), url], { cwd: work });
  const [answer, failure] = stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.same(answer, { model: 'addmul', sum: [String(2n ** 62n + 1n), '7'] });
  t.same(failure, { status: 404 });
});
