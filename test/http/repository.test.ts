/**
 * Triton's model repository extension, as Triton's clients call it (no
 * Content-Type, an empty or `{}` body), behind the admin token.
 */
import t from 'tap';
import { unsupportedOpModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, scaleModel } from '../helpers/gateway.ts';

const files = { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3), 'bad.onnx': unsupportedOpModel() };
const config = { registry: { loadFailureBackoffMs: 60_000 }, models: [{ name: 'a', path: 'a.onnx', keys: ['alpha'] }, { name: 'b', path: 'b.onnx', pinned: true }, { name: 'bad', path: 'bad.onnx' }] };

t.test('index, load and unload in Triton\'s shapes', async (t) => {
  const { app, executor } = await buildGateway(t, files, config);
  const post = (url: string, payload?: string) => app.inject({ method: 'POST', url, headers: AUTH, ...(payload === undefined ? {} : { payload }) });
  const index = async (payload?: string) => (await post('/v2/repository/index', payload)).json();
  t.same(await index(), [
    { name: 'a', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
    { name: 'b', version: '1', state: 'READY', reason: '' },
    { name: 'bad', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
  ]);
  const load = await post('/v2/repository/models/a/load', '{}');
  t.equal(load.statusCode, 200);
  t.same(load.json(), {});
  t.equal(executor.loads.get('a'), 1);
  t.same(await index('{"ready":true}'), [{ name: 'a', version: '1', state: 'READY', reason: '' }, { name: 'b', version: '1', state: 'READY', reason: '' }]);
  const failed = await post('/v2/repository/models/bad/load');
  t.equal(failed.statusCode, 503);
  t.match(failed.json(), { error: /^Model 'bad' failed to load: .*NoSuchOperator/ });
  t.match((await index()).find((entry: { name: string }) => entry.name === 'bad'), { state: 'UNAVAILABLE', reason: /^load failed: .*NoSuchOperator/ });
  t.equal((await post('/v2/repository/models/a/unload', '{"parameters":{"unload_dependents":false}}')).statusCode, 200);
  t.equal(executor.releases.get('a'), 1);
  t.match((await index()).find((entry: { name: string }) => entry.name === 'a'), { state: 'UNAVAILABLE', reason: 'unloaded' });
  t.same((await post('/v2/repository/models/b/unload')).json(), { error: "Model 'b' is pinned and cannot be unloaded" });
  t.same((await post('/v2/repository/models/alpha/load')).json(), { error: "Model 'alpha' is not configured" }, 'names are model names, not keys');
  const cases: Array<[string, string, RegExp]> = [
    ['/v2/repository/models/a/load', '{"parameters":{"config":"{}"}}', /load parameters \(a config or files\) are not supported/],
    ['/v2/repository/models/a/load', '{"parameters":{"file:1/model.onnx":"AAAA"}}', /not supported: models come from the model repository/],
    ['/v2/repository/models/a/unload', '{"parameters":{"unload_dependents":"yes"}}', /the only parameter is 'unload_dependents', a boolean/],
    ['/v2/repository/index', '{"ready":1}', /'ready' must be a boolean/],
    ['/v2/repository/index', '[1]', /must be a JSON object/],
    ['/v2/repository/index', '{"x":1}', /unknown field 'x'/],
    ['/v2/repository/index', '{', /not valid JSON/],
  ];
  for (const [url, payload, message] of cases) {
    const response = await post(url, payload);
    t.equal(response.statusCode, 400, payload);
    t.match(response.json(), { error: message }, payload);
  }
  t.equal(executor.loads.get('a'), 1, 'refused loads loaded nothing');
});

t.test('every repository call needs the admin token', async (t) => {
  const { app, executor } = await buildGateway(t, files, config);
  for (const url of ['/v2/repository/index', '/v2/repository/models/a/load', '/v2/repository/models/b/unload']) {
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      const response = await app.inject({ method: 'POST', url, headers });
      t.equal(response.statusCode, 401, url);
      t.equal(response.headers['www-authenticate'], 'Bearer realm="modelgate"');
      t.same(Object.keys(response.json()), ['error']);
    }
  }
  t.equal(executor.loads.get('a'), undefined);
  t.equal(executor.releases.get('b'), undefined);
});
