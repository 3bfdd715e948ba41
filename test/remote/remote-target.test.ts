/**
 * The remote model against a hand-written V2 server on a loopback port (node:http), whose
 * answers each test chooses: what the client makes of a server that leaves optional fields
 * out, and what it says of one whose metadata is malformed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { RemoteModelConfig } from '../../src/config/schema.ts';
import { RemoteFailedError } from '../../src/errors.ts';
import { RemoteModel, RemoteTarget } from '../../src/remote/remote-target.ts';

const METADATA = { name: 'double', versions: ['1'], platform: 'x', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] };

/** A V2 server: `server` is its GET /v2 answer, `model` its model metadata; infer answers y = 2x in JSON. */
async function fakeRemote(t: Test, server: unknown, model: unknown = METADATA): Promise<{ url: string; asked: string[] }> {
  const asked: string[] = [];
  const http = createServer((request: IncomingMessage, response: ServerResponse) => {
    asked.push(`${request.method} ${request.url} ${request.headers['content-type'] ?? ''}`.trim());
    const send = (value: unknown) => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(value));
    };
    if (request.url === '/v2') return send(server);
    if (request.url === '/v2/models/double') return send(model);
    let body = '';
    request.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    request.on('end', () => {
      const input = (JSON.parse(body) as { inputs: Array<{ data: number[] }> }).inputs[0] as { data: number[] };
      send({ model_name: 'double', outputs: [{ name: 'y', datatype: 'FP32', shape: [input.data.length], data: input.data.map((x) => 2 * x) }] });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => http.close(() => resolve())));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, asked };
}

function remote(t: Test, url: string): RemoteModel {
  const config: RemoteModelConfig = { name: 'r', keys: ['r'], remote: { url, model: 'double', timeoutMs: 2000, connections: 2 } };
  const model = new RemoteModel(config);
  t.teardown(() => model.close());
  return model;
}

const request = { inputs: new Map([['x', { datatype: 'FP32' as const, shape: [3], data: new Float32Array([1, 2.5, -4]) }]]) };
const context = { decisions: [], header: () => undefined };

t.test('a server metadata without extensions is a server without the binary extension: calls go as JSON', async (t) => {
  const { url, asked } = await fakeRemote(t, { name: 'tiny-v2', version: '0.1' });
  const target = new RemoteTarget('r', remote(t, url));
  t.same(await target.signature(), { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }] });
  const result = await target.infer(request, context);
  t.same([...(result.outputs.get('y')?.data as Float32Array)], [2, 5, -8]);
  t.ok(asked.includes('POST /v2/models/double/infer application/json'), 'the request went as JSON');
});

t.test('malformed metadata is said as what is wrong with it, as a 502', async (t) => {
  const cases: Array<[string, unknown, unknown, RegExp]> = [
    ['extensions not a list', { name: 'v2', version: '1', extensions: 'binary_tensor_data' }, METADATA, /server metadata \(GET \/v2\) has 'extensions' that is not a list of strings/],
    ['server metadata not an object', ['v2'], METADATA, /server metadata \(GET \/v2\) is not a JSON object/],
    ['no outputs', { name: 'v2', version: '1', extensions: [] }, { ...METADATA, outputs: undefined }, /metadata of model 'double' has no 'outputs' list/],
    ['a shape of strings', { name: 'v2', version: '1' }, { ...METADATA, inputs: [{ name: 'x', datatype: 'FP32', shape: ['n'] }] }, /inputs\[0\] \('x'\) has a shape that is not a list of integers/],
    ['a datatype it cannot carry', { name: 'v2', version: '1' }, { ...METADATA, outputs: [{ name: 'y', datatype: 'COMPLEX64', shape: [1] }] }, /outputs\[0\]: tensor 'y' has datatype COMPLEX64, which the gateway does not carry/],
  ];
  for (const [what, server, model, message] of cases) {
    const { url } = await fakeRemote(t, server, model);
    const target = new RemoteTarget('r', remote(t, url));
    const failure = await target.infer(request, context).catch((error: unknown) => error);
    t.ok(failure instanceof RemoteFailedError, `${what}: a RemoteFailedError`);
    t.equal((failure as { statusCode?: number }).statusCode, 502, what);
    t.match((failure as Error).message, message, what);
    t.notMatch((failure as Error).message, /127\.0\.0\.1/, `${what}: the address is not shown`);
  }
});
