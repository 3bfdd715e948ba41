/**
 * Applications that install fresh `npm pack`s: one installs only the client
 * package (`npm pack -w packages/client`) and gets a small node_modules with
 * no native binary; one installs the server's package too and imports the
 * client through its `modelgate/client` export. Each type-checks against the
 * packed declarations and runs an inference. Needs the npm registry for the
 * packages' dependencies (from npm's cache when they are there); skipped,
 * saying so, without it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { addMulModel } from '../../src/onnx/builder.ts';
import { buildGateway } from '../helpers/gateway.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// The applications run as applications do: without the condition that selects the workspace's TypeScript sources.
const APP_ENV = { ...process.env, NODE_OPTIONS: '' };

const consumer = (from: string): string => `import { ModelgateClient, ModelgateError, type InferResponse } from '${from}';
const [url] = process.argv.slice(2);
const client = new ModelgateClient({ url: url as string });
try {
  const inputs = [
    { name: 'a', datatype: 'INT64', shape: [2], data: new BigInt64Array([2n ** 62n, 3n]) },
    { name: 'b', datatype: 'INT64', shape: [2], data: new BigInt64Array([1n, 4n]) },
  ] as const;
  const answer: InferResponse = await client.infer('addmul', inputs, { outputs: ['sum'] });
  const json = await client.infer('addmul', inputs, { outputs: ['sum'], binary: false });
  const sum = (response: InferResponse) => Array.from(response.outputs[0]?.data as BigInt64Array, String);
  const metadata = await client.metadata('addmul');
  console.log(JSON.stringify({ model: answer.modelName, sum: sum(answer), json: sum(json), inputs: metadata.inputs.map((input) => input.name) }));
  await client.infer('nope', []).catch((error: unknown) => console.log(JSON.stringify({ status: error instanceof ModelgateError ? error.status : -1 })));
} finally {
  await client.close();
}
`;

/** Bytes of every file under a folder, and the native binaries (.node) among them. */
function measure(folder: string): { bytes: number; native: string[] } {
  let bytes = 0;
  const native: string[] = [];
  for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    bytes += statSync(file).size;
    if (entry.name.endsWith('.node')) native.push(path.relative(folder, file));
  }
  return { bytes, native };
}

function application(directory: string, from: string): string {
  mkdirSync(directory, { recursive: true });
  writeFileSync(path.join(directory, '.npmrc'), 'onnxruntime-node-install=skip\n');
  writeFileSync(path.join(directory, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  writeFileSync(path.join(directory, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', target: 'es2023', strict: true, noEmit: true, types: ['node'] }, files: ['app.mts'] }));
  writeFileSync(path.join(directory, 'app.mts'), consumer(from));
  return directory;
}

async function npmInstall(directory: string, specs: readonly string[]): Promise<string | undefined> {
  try {
    await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', ...specs], { cwd: directory, timeout: 180_000, env: APP_ENV });
    return undefined;
  } catch (error) {
    return `npm install of the packed project failed (is the npm registry reachable?): ${(error as Error).message.split('\n')[0]}`;
  }
}

const work = t.testdir({ tarballs: {} });
const tarballs = path.join(work, 'tarballs');
const typesNode = `@types/node@${(JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version}`;
const built = existsSync(path.join(ROOT, 'dist/client/index.js')) && existsSync(path.join(ROOT, 'packages/client/dist/index.js'));
// dist/ is built already; --ignore-scripts keeps prepack from building it again.
if (built) {
  await run(NPM, ['pack', '--ignore-scripts', '--pack-destination', tarballs, '--workspaces', '--include-workspace-root'], { cwd: ROOT, env: APP_ENV });
}
const tarball = (prefix: string): string => path.join(tarballs, readdirSync(tarballs).find((file) => file.startsWith(prefix) && file.endsWith('.tgz')) as string);
const clientOnly = application(path.join(work, 'client-only'), '@modelgate/client');
const withServer = application(path.join(work, 'with-server'), 'modelgate/client');
const [clientFailure, serverFailure] = built
  ? await Promise.all([
    // The size is measured before @types/node, which only the type check needs, joins it.
    npmInstall(clientOnly, [tarball('modelgate-client-')]),
    npmInstall(withServer, [tarball('modelgate-0'), tarball('modelgate-client-'), typesNode]),
  ])
  : ['dist/ is not built: npm test builds it before running tap', 'dist/ is not built: npm test builds it before running tap'];

async function inferWith(t: Test, directory: string): Promise<void> {
  const checked = await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', directory]).then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error));
  t.equal(checked, '', 'the application type-checks against the packed declarations');
  const { app } = await buildGateway(t, { 'addmul.onnx': addMulModel('int64') }, { models: [{ name: 'addmul', path: 'addmul.onnx' }] });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const { stdout } = await run(process.execPath, [path.join(directory, 'app.mts'), url], { cwd: directory, env: APP_ENV });
  const [answer, failure] = stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.same(answer, { model: 'addmul', sum: [String(2n ** 62n + 1n), '7'], json: [String(2n ** 62n + 1n), '7'], inputs: ['a', 'b'] }, 'binary and JSON answers, exact, and metadata');
  t.same(failure, { status: 404 });
}

t.test('the client package alone: a small install, no native binary, and the same API', { skip: clientFailure ?? false }, async (t) => {
  const installed = measure(path.join(clientOnly, 'node_modules'));
  t.ok(installed.bytes < 10 * 1024 * 1024, `node_modules holds ${(installed.bytes / 1024 / 1024).toFixed(2)} MB`);
  t.same(installed.native, [], 'no native binary');
  const shipped = readdirSync(path.join(clientOnly, 'node_modules/@modelgate/client'), { recursive: true }).map(String);
  t.notOk(shipped.some((file) => file.startsWith('src')), 'the package ships its build, not its sources');
  t.ok(shipped.includes(path.join('dist', 'codec', 'index.d.ts')), 'and the codec\'s declarations');
  t.ok(shipped.includes(path.join('proto', 'grpc_service.proto')), 'and the gRPC definition');
  t.same(readdirSync(path.join(clientOnly, 'node_modules')).sort(), ['.package-lock.json', '@modelgate', 'undici'], 'its one dependency is undici');
  const typed = await npmInstall(clientOnly, [typesNode]);
  t.equal(typed, undefined, 'installs @types/node for the type check');
  await inferWith(t, clientOnly);
});

t.test('the server\'s package: modelgate/client re-exports the client package', { skip: serverFailure ?? false }, async (t) => {
  await inferWith(t, withServer);
});
