/**
 * Defects the fuzzing found, each pinned: `"outputs": []` answered 500 for
 * every target kind; a key past fastify's parameter limit answered in
 * fastify's own error shape; an object with a `length` where a list with a
 * default belongs (TypeBox's defaults threw on it) answered 500.
 */
import t from 'tap';
import { validateConfig } from '../../src/config/load.ts';
import { AUTH, buildGateway } from '../helpers/gateway.ts';
import { fuzzGateway } from './arbitraries.ts';

t.test('"outputs": [] asks for every output, on a model, a split and a sequence', async (t) => {
  const { files, config } = fuzzGateway();
  const { app } = await buildGateway(t, files, config);
  const cases: Array<[string, unknown[], Array<[string, number[]]>]> = [
    ['addmul', [{ name: 'a', datatype: 'FP32', shape: [2], data: [1.5, 2] }, { name: 'b', datatype: 'FP32', shape: [2], data: [2, -3] }], [['sum', [3.5, -1]], ['product', [3, -6]]]],
    ['split', [{ name: 'x', datatype: 'FP32', shape: [2], data: [1.5, 2] }], [['y', [1.5, 2]]]],
    ['chain', [{ name: 'x', datatype: 'FP32', shape: [2], data: [1.5, 2] }], [['y', [1.5, 2]]]],
  ];
  for (const [key, inputs, outputs] of cases) {
    const response = await app.inject({ method: 'POST', url: `/v2/models/${key}/infer`, payload: { inputs, outputs: [] } });
    t.equal(response.statusCode, 200, key);
    t.same(response.json().outputs.map((output: { name: string; data: number[] }) => [output.name, output.data]), outputs, key);
  }
});

t.test('a key longer than any name: 414 with a V2 error body', async (t) => {
  const { files, config } = fuzzGateway();
  const { app } = await buildGateway(t, files, config);
  const response = await app.inject({ method: 'POST', url: `/v2/models/${'a'.repeat(101)}/infer`, payload: {} });
  t.equal(response.statusCode, 414);
  t.same(response.json(), { error: 'A path parameter is longer than 100 characters: keys and model names have at most 64' });
  t.equal((await app.inject({ url: `/v2/models/${'a'.repeat(100)}` })).statusCode, 404);
});

t.test('an object with a length where a list with a default belongs: 400 naming the field, not 500', async (t) => {
  const { files, config } = fuzzGateway();
  const { app, repository } = await buildGateway(t, files, { ...config, tenants: [] });
  const before = (await app.inject({ url: '/admin/tenants', headers: AUTH })).json();
  const tenant = await app.inject({ method: 'PUT', url: '/admin/tenants/odd', headers: AUTH, payload: { apiKeys: { length: 5e-324 }, allow: ['*'] } });
  t.equal(tenant.statusCode, 400, tenant.body);
  t.match(tenant.json(), { error: /apiKeys: Expected array/ });
  t.same((await app.inject({ url: '/admin/tenants', headers: AUTH })).json(), before, 'nothing changed');
  const model = await app.inject({ method: 'PUT', url: '/admin/models/odd', headers: AUTH, payload: { path: 'addmul.onnx', warmup: { batchSizes: { length: 1.5 } } } });
  t.equal(model.statusCode, 400, model.body);
  t.match(model.json(), { error: /warmup/ });
  // Only models: the sections it left without their defaults are not reported missing.
  t.throws(() => validateConfig({ modelRepository: repository, models: { length: -1 } }, repository, {}), { name: 'ConfigError', code: 'MG_CONFIG_INVALID', message: 'Invalid configuration:\n  models: Expected array' }, 'a configuration file: a ConfigError naming models, and only it');
});
