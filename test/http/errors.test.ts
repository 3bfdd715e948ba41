import t from 'tap';
import { affineModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, infer } from '../helpers/gateway.ts';

const files = {
  'a.onnx': affineModel({ inFeatures: 2, outFeatures: 1, weights: [1, 1], bias: [0] }),
  'b.onnx': affineModel({ inFeatures: 1, outFeatures: 1, weights: [2], bias: [0] }),
};
const good = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };

t.test('bad input gets a V2 error naming the tensor, and harms nothing', async (t) => {
  const { app, repository } = await buildGateway(t, files, {
    server: { bodyLimitBytes: 4096 },
    models: [{ name: 'a', path: 'a.onnx' }, { name: 'b', path: 'b.onnx' }],
  });
  const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
    ['malformed JSON', { payload: '{"inputs": [', headers: { 'content-type': 'application/json' } }, 400, /^Request body is not valid JSON/],
    ['empty JSON body', { payload: '', headers: { 'content-type': 'application/json' } }, 400, /empty/],
    ['a JSON array', { payload: '[]', headers: { 'content-type': 'application/json' } }, 400, /^request body must be a JSON object$/],
    ['a JSON string', { payload: '"x"', headers: { 'content-type': 'application/json' } }, 400, /^request body must be a JSON object$/],
    ['multipart', { payload: 'hello', headers: { 'content-type': 'multipart/form-data; boundary=x' } }, 415, /^Content-Type 'multipart\/form-data' is not supported for inference: send application\/json, application\/octet-stream/],
    ['an unknown encoding', { payload: '{}', headers: { 'content-encoding': 'br' } }, 415, /^Content-Encoding 'br' is not supported: send gzip, deflate or identity$/],
    ['not gzip', { payload: '{}', headers: { 'content-encoding': 'gzip' } }, 400, /^the request body is not valid gzip data/],
    ['no content type, not JSON', { payload: Buffer.from('hello') }, 400, /^Request body is not valid JSON/],
    ['no body at all', {}, 400, /^request body is empty: send a V2 inference request$/],
    ['no content type, not a request', { payload: Buffer.from('{}') }, 400, /^request: 'inputs' must be an array of tensors$/],
    ['too large', { payload: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1000, 2], data: new Array(2000).fill(1.5) }] }), headers: { 'content-type': 'application/json' } }, 413, /larger than the limit/],
    ['unknown input', { payload: { inputs: [{ name: 'z', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] } }, 400, /^input 'z' is not an input of this model/],
    ['wrong datatype', { payload: { inputs: [{ name: 'x', datatype: 'INT32', shape: [1, 2], data: [1, 2] }] } }, 400, /^input 'x': datatype INT32 does not match the model's FP32/],
    ['wrong fixed dimension', { payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] } }, 400, /^input 'x': shape \[1,3\] does not match the model's \[-1,2\]/],
    ['data length', { payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2] }] } }, 400, /^input 'x': data has 2 elements but shape \[2,2\] needs 4/],
    ['huge dimension', { payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [9007199254740993, 2], data: [1, 2] }] } }, 400, /^input 'x': shape .* has more than/],
    ['NaN string', { payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: ['nan', 2] }] } }, 400, /^input 'x': element 0: "nan" is not a number/],
  ];
  for (const [what, request, status, message] of cases) {
    const response = await app.inject({ method: 'POST', url: '/v2/models/a/infer', ...request });
    t.equal(response.statusCode, status, what);
    t.match(response.headers['content-type'], /^application\/json/, what);
    const body = response.json();
    t.same(Object.keys(body), ['error'], `${what}: a V2 error body`);
    t.match(body.error, message, what);
    t.notMatch(body.error, repository, `${what}: no path`);
  }
  // The server and both models still serve, and b was never disturbed.
  t.same((await infer(app, 'a', good)).json().outputs[0].data, [3]);
  t.same((await infer(app, 'b', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [4] }] })).json().outputs[0].data, [8]);
  const status = (await app.inject({ url: '/admin/models', headers: AUTH })).json().models;
  t.same(status.map((model: { loads: number }) => model.loads), [1, 1]);
});

t.test('unknown keys and paths: 404 with a V2 error body', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'a', path: 'a.onnx' }] });
  const cases: Array<[string, string, RegExp]> = [
    ['POST', '/v2/models/nope/infer', /^Key 'nope' is not served by this gateway$/],
    ['GET', '/v2/models/nope', /^Key 'nope' is not served/],
    ['GET', '/v2/models/nope/ready', /^Key 'nope' is not served/],
    ['GET', '/v2/models/..%2F..%2Fetc%2Fpasswd', /is not served/],
    ['GET', '/v1/models/a', /^No route GET \/v1\/models\/a$/],
    ['DELETE', '/v2/models/a', /^No route DELETE/],
  ];
  for (const [method, url, message] of cases) {
    const response = await app.inject({ method: method as 'GET', url, ...(method === 'POST' ? { payload: good } : {}) });
    t.equal(response.statusCode, 404, url);
    t.match(response.json(), { error: message }, url);
  }
});

t.test('health and server metadata', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'a', path: 'a.onnx' }] });
  t.same((await app.inject({ url: '/v2/health/live' })).json(), { live: true });
  t.same((await app.inject({ url: '/v2/health/ready' })).json(), { ready: true });
  t.same((await app.inject({ url: '/v2/models/a/ready' })).json(), { name: 'a', ready: true });
  const metadata = (await app.inject({ url: '/v2' })).json();
  t.match(metadata, { name: 'modelgate', version: /^\d+\.\d+\.\d+/ });
  t.same(metadata.extensions, ['binary_tensor_data', 'classification', 'model_repository', 'statistics']);
});
