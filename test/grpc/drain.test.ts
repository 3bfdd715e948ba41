/**
 * The compiled CLI with `grpc` configured: it serves gRPC beside REST, and on
 * SIGTERM takes no new calls while a stream in progress gets its answer and
 * its end, then exits 0.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import t from 'tap';
import { slowModel, slowRequest, writeFiles } from '../helpers/gateway.ts';
import { clientOf, InferenceService } from '../helpers/grpc.ts';

const BUILT_CLI = path.resolve(import.meta.dirname, '../../dist/cli.js');

t.test('SIGTERM with a gRPC stream open: its answer and end arrive, new calls are refused, exit 0', async (t) => {
  const dir = t.testdir();
  writeFiles(dir, { 'models/slow.onnx': slowModel() });
  writeFileSync(path.join(dir, 'g.yaml'), 'modelRepository: models\ngrpc:\n  port: 0\nmodels:\n  - name: slow\n    path: slow.onnx\n    pinned: true\n');
  const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--config', path.join(dir, 'g.yaml'), '--port', '0', '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  t.teardown(() => { child.kill('SIGKILL'); });
  let stdout = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let port: number | undefined;
  let rest: string | undefined;
  for (let tries = 0; tries < 1000 && (port === undefined || rest === undefined) && child.exitCode === null; tries++) {
    port = Number(/"port":(\d+)[^\n]*"msg":"gRPC listening"/.exec(stdout)?.[1] ?? Number.NaN) || undefined;
    rest = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.ok(port !== undefined, 'gRPC listening is logged with its port');
  const client = clientOf(InferenceService, `127.0.0.1:${port}`);
  t.teardown(() => client.close());
  const rows = slowRequest(64).inputs[0] as { data: number[] };
  const request = { model_name: 'slow', id: 'last', inputs: [{ name: 'x', datatype: 'FP32', shape: [64, 512] }], raw_input_contents: [Buffer.from(new Float32Array(rows.data).buffer)] };
  const stream = (client as unknown as { ModelStreamInfer(): NodeJS.ReadWriteStream & { write(message: unknown): boolean; end(): void } }).ModelStreamInfer();
  const answers: Array<{ error_message: string; infer_response: { id: string } }> = [];
  stream.on('data', (message: { error_message: string; infer_response: { id: string } }) => answers.push(message));
  const ended = new Promise<string>((resolve) => {
    stream.on('end', () => resolve('end'));
    stream.on('error', (error: ServiceError) => resolve(`error ${status[error.code]}`));
  });
  stream.write(request);
  // SIGTERM only once the server runs the request: on a slow machine the message can take longer
  // than any fixed pause to arrive, and one that arrives after SIGTERM is rightly refused.
  const running = async () => /^modelgate_model_in_flight\{model="slow"[^}]*\} 1$/m.test(await (await fetch(`${rest}/metrics`)).text());
  for (let tries = 0; tries < 500 && answers.length === 0 && !(await running()); tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 30));
  const refused = await new Promise<string>((resolve) => {
    (client as unknown as Record<string, (request: unknown, metadata: Metadata, callback: (error: ServiceError | null) => void) => void>).ServerLive?.call(client, {}, new Metadata(), (error) => resolve(error === null ? 'answered' : status[error.code] as string));
  });
  t.equal(refused, 'UNAVAILABLE', 'a new call after SIGTERM is refused');
  stream.end();
  const how = await ended;
  t.equal(how, 'end', `the stream ends cleanly (${how})`);
  t.same(answers.map((answer) => [answer.infer_response.id, answer.error_message]), [['last', '']], 'with the answer of the request in progress');
  t.equal(await exited, 0);
});
