/**
 * The typed client over gRPC (`grpc://` URLs), and remote targets that call
 * another gateway's gRPC service: the same API and the same exact values as
 * over REST, on real sockets.
 */
import t, { type Test } from 'tap';
import { ModelgateClient, ModelgateError } from '@modelgate/client';
import { addMulModel, identityModel } from '../../src/onnx/builder.ts';
import { buildGateway, scaleModel } from '../helpers/gateway.ts';

const FILES = { 'int64.onnx': addMulModel('int64'), 'bytes.onnx': identityModel('string', ['n']), 'two.onnx': scaleModel(2) };

async function served(t: Test) {
  const gateway = await buildGateway(t, FILES, {
    models: [{ name: 'int64', path: 'int64.onnx' }, { name: 'bytes', path: 'bytes.onnx' }, { name: 'two', path: 'two.onnx' }],
    routes: [{ key: 'ab', split: { variants: [{ target: 'two', weight: 1 }] } }],
  });
  const port = await gateway.app.grpc.listen('127.0.0.1', 0);
  return { ...gateway, port };
}

t.test('the client over grpc://: infer with exact INT64 and BYTES, metadata, readiness, statistics', async (t) => {
  const { port } = await served(t);
  const client = new ModelgateClient({ url: `grpc://127.0.0.1:${port}` });
  t.teardown(() => client.close());
  const big = 2n ** 62n + 5n;
  const answer = await client.infer('int64', [
    { name: 'a', datatype: 'INT64', shape: [2], data: new BigInt64Array([big, -1n]) },
    { name: 'b', datatype: 'INT64', shape: [2], data: [1, 2] },
  ], { outputs: ['sum'], id: 'c1' });
  t.equal(answer.modelName, 'int64');
  t.equal(answer.id, 'c1');
  t.same(answer.outputs.map((output) => [output.name, output.datatype, output.shape]), [['sum', 'INT64', [2]]]);
  t.same(Array.from(answer.outputs[0]?.data as BigInt64Array), [big + 1n, 1n]);
  const words = await client.infer('bytes', [{ name: 'x', datatype: 'BYTES', shape: [3], data: ['', 'héllo', 'x'] }]);
  t.same(words.outputs[0]?.data, ['', 'héllo', 'x']);
  t.match(await client.metadata('ab'), { name: 'ab', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }] });
  t.equal(await client.ready('two'), true);
  t.equal(await client.ready('nope'), false, 'an unknown key is not ready');
  t.equal(await client.live(), true);
  t.equal(await client.serverReady(), true);
  t.match(await client.serverMetadata(), { name: 'modelgate' });
  t.match(await client.stats('int64'), [{ name: 'int64', inference_count: 2, execution_count: 1 }]);
  const missing = await client.infer('nope', []).catch((error: unknown) => error);
  t.ok(missing instanceof ModelgateError);
  t.match(missing, { status: 404, message: "Key 'nope' is not served by this gateway" });
  const admin = await client.admin.models.list().catch((error: unknown) => error);
  t.match(admin, { status: 0, message: /REST only/ }, 'the admin API is REST only');
});

t.test('a remote model on another gateway\'s gRPC service: exact values, its errors, its metadata', async (t) => {
  const { port } = await served(t);
  // The same files: both gateways of this test share its directory.
  const { app } = await buildGateway(t, FILES, { models: [{ name: 'far', remote: { url: `grpc://127.0.0.1:${port}`, model: 'int64' } }, { name: 'farsplit', remote: { url: `grpc://127.0.0.1:${port}`, model: 'ab' } }] });
  // The JSON text with 2^60's exact digits (JavaScript would print the number rounded).
  const response = await app.inject({
    method: 'POST', url: '/v2/models/far/infer', headers: { 'content-type': 'application/json' },
    payload: `{"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [${2n ** 60n}]}, {"name": "b", "datatype": "INT64", "shape": [1], "data": [3]}], "outputs": [{"name": "product"}]}`,
  });
  t.equal(response.statusCode, 200, response.body);
  t.match(response.body, `"data":[${3n * 2n ** 60n}]`, 'INT64 exact through the hop');
  t.same((await app.inject({ url: '/v2/models/farsplit' })).json().inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }]);
  const wrong = await app.inject({ method: 'POST', url: '/v2/models/farsplit/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] } });
  t.equal(wrong.statusCode, 400, 'the request is checked against the remote\'s metadata here');
});
