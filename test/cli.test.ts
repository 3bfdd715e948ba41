import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { affineModel } from '../src/onnx/builder.ts';
import { slowModel, writeFiles } from './helpers/gateway.ts';

const CLI = path.resolve(import.meta.dirname, '../src/cli.ts');
/** What `npm start` and the container run: `npm test` compiles it first. */
const BUILT_CLI = path.resolve(import.meta.dirname, '../dist/cli.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}, cli = CLI) {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

t.test('a config error lists every invalid field and exits non-zero before listening', async (t) => {
  const dir = t.testdir();
  writeFileSync(path.join(dir, 'bad.yaml'), 'server:\n  port: -1\nmodelRepository: .\nmodels:\n  - name: a\n    path: ../a.onnx\n    wat: 1\n');
  const cli = run(['serve', '--config', path.join(dir, 'bad.yaml')]);
  t.equal(await cli.exited, 2);
  t.match(cli.stderr(), /server\.port: Expected integer to be greater or equal to 0/);
  t.match(cli.stderr(), /models\[0\]\.wat: Unexpected property/);
  t.equal(cli.stdout(), '', 'nothing was logged: it never started');
});

t.test('bad command lines', async (t) => {
  const dir = t.testdir({ 'g.yaml': 'modelRepository: .\n' });
  const badPort = run(['serve', '--config', path.join(dir, 'g.yaml'), '--port', 'http']);
  t.equal(await badPort.exited, 2);
  t.match(badPort.stderr(), /--port: 'http' is not a port number/);
  const noCommand = run([]);
  t.equal(await noCommand.exited, 2);
  t.match(noCommand.stderr(), /Usage: modelgate serve/);
  const help = run(['--help']);
  t.equal(await help.exited, 0);
  t.match(help.stdout(), /--config/);
});

t.test('the compiled CLI serves on a real socket, then SIGTERM closes it cleanly with exit 0', async (t) => {
  const dir = t.testdir();
  writeFiles(dir, { 'models/lin.onnx': affineModel({ inFeatures: 2, outFeatures: 1, weights: [2, 3], bias: [1] }) });
  writeFileSync(path.join(dir, 'g.yaml'), [
    'admin:', '  token: ${TEST_TOKEN}', 'modelRepository: models',
    'models:', '  - name: lin', '    path: lin.onnx', '    pinned: true', '',
  ].join('\n'));
  const cli = run(['serve', '--config', path.join(dir, 'g.yaml'), '--port', '0', '--host', '127.0.0.1'], { TEST_TOKEN: 'cli-test-token-1234567890' }, BUILT_CLI);
  t.teardown(() => { cli.child.kill('SIGKILL'); });
  const address = await listening(cli);
  const ready = await request(`${address}/v2/health/ready`);
  t.equal(ready.statusCode, 200);
  await ready.body.dump();
  const response = await request(`${address}/v2/models/lin/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'cli-trace-7' },
    body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 1] }] }),
  });
  t.same((await response.body.json() as { outputs: Array<{ data: number[] }> }).outputs[0]?.data, [6]);
  const admin = await request(`${address}/admin/models`, { headers: { authorization: 'Bearer cli-test-token-1234567890' } });
  t.equal(admin.statusCode, 200);
  await admin.body.dump();
  cli.child.kill('SIGTERM');
  t.equal(await cli.exited, 0);
  t.notMatch(cli.stdout(), /cli-test-token/, 'the configured token is never logged');
  t.match(cli.stdout(), /"msg":"model loaded"/);
  // Written asynchronously, and all there once the process has exited.
  const accessLines = cli.stdout().split('\n').filter((line) => line.includes('"msg":"request"')).map((line) => JSON.parse(line) as Record<string, unknown>);
  t.equal(accessLines.length, 3, 'one access-log line per request');
  t.match(accessLines.find((line) => line.url === '/v2/models/lin/infer'), { requestId: 'cli-trace-7', status: 200, key: 'lin' });
});

t.test('SIGTERM drains: an in-flight request finishes, later ones are turned away, exit 0', async (t) => {
  const dir = t.testdir();
  writeFiles(dir, { 'models/slow.onnx': slowModel() });
  writeFileSync(path.join(dir, 'g.yaml'), 'modelRepository: models\nmodels:\n  - name: slow\n    path: slow.onnx\n    pinned: true\n');
  const cli = run(['serve', '--config', path.join(dir, 'g.yaml'), '--port', '0'], {}, BUILT_CLI);
  t.teardown(() => { cli.child.kill('SIGKILL'); });
  const address = await listening(cli);
  const rows = 64;
  const body = JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 512], data: new Array(rows * 512).fill(1) }] });
  const slow = request(`${address}/v2/models/slow/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  // SIGTERM only once the request is in the model's hands (as the metrics show), however loaded the machine is.
  for (const deadline = Date.now() + 60_000; ;) {
    const metrics = await (await request(`${address}/metrics`)).body.text();
    if (/^modelgate_model_in_flight\{model="slow"[^}]*\} 1$/m.test(metrics)) break;
    if (Date.now() > deadline) throw new Error('the request never reached its model');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // The later request goes on a socket opened now, to this server for sure: once it stops
  // listening, a fresh connection to its port may reach another test's server (a 200 was seen).
  const { hostname, port } = new URL(address);
  const later = connect(Number(port), hostname);
  await new Promise((resolve) => later.once('connect', resolve));
  let laterAnswer = '';
  later.on('data', (chunk: Buffer) => { laterAnswer += chunk.toString(); });
  later.on('error', () => undefined);
  const laterClosed = new Promise((resolve) => later.once('close', resolve));
  cli.child.kill('SIGTERM');
  const response = await slow;
  t.equal(response.statusCode, 200, 'the in-flight request finished');
  const json = await response.body.json() as { outputs: Array<{ data: number[] }> };
  // Each layer averages its input, so every output stays 1.
  t.ok(json.outputs[0]?.data.every((v) => Math.abs(v - 1) < 1e-4));
  if (!later.destroyed) later.write(`GET /v2/health/ready HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`, () => undefined);
  await laterClosed;
  // Turned away: the connection closed with no answer, or answered 503 (never 200).
  const status = /^HTTP\/1\.1 (\d{3})/.exec(laterAnswer)?.[1];
  t.ok(status === undefined || status === '503', `a later request is turned away (${status ?? 'connection closed'})`);
  t.equal(await cli.exited, 0);
  t.match(cli.stdout(), /"msg":"shutting down"/);
});

async function listening(cli: ReturnType<typeof run>): Promise<string> {
  for (;;) {
    const address = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stdout())?.[1];
    if (address !== undefined) return address;
    if (cli.child.exitCode !== null) throw new Error(`exited early: ${cli.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('SIGTERM closes connections with no request in progress at once: a silent client does not hold the exit', async (t) => {
  const dir = t.testdir();
  writeFiles(dir, { 'models/lin.onnx': affineModel({ inFeatures: 2, outFeatures: 1, weights: [2, 3], bias: [1] }) });
  writeFileSync(path.join(dir, 'g.yaml'), 'modelRepository: models\nmodels:\n  - name: lin\n    path: lin.onnx\nserver:\n  shutdownGraceMs: 60000\n');
  const cli = run(['serve', '--config', path.join(dir, 'g.yaml'), '--port', '0'], {}, BUILT_CLI);
  t.teardown(() => { cli.child.kill('SIGKILL'); });
  const address = new URL(await listening(cli));
  // As a proxy's pre-opened socket: connected, nothing sent.
  const silent = connect(Number(address.port), address.hostname);
  await new Promise((resolve) => silent.once('connect', resolve));
  const closed = new Promise((resolve) => silent.once('close', resolve));
  silent.on('error', () => undefined);
  const begin = Date.now();
  cli.child.kill('SIGTERM');
  t.equal(await cli.exited, 0);
  await closed;
  // The grace period is a minute: anything near it means the silent socket held the exit.
  t.ok(Date.now() - begin < 20_000, `exited in ${Date.now() - begin} ms with a silent client connected`);
});
