/** `?force=` is read one way by every admin model route, and runIn auto's documented threshold is the one the executor applies. */
import t from 'tap';
import { ModelSchema, RUN_IN_AUTO } from '../../src/config/schema.ts';
import { ADAPTIVE } from '../../src/executor/workers.ts';
import { identityModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, scaleModel } from '../helpers/gateway.ts';

t.test('force: true and false work, anything else is a 400 naming force, on put, upload and reload alike', async (t) => {
  const { app } = await buildGateway(t, { 'one.onnx': scaleModel(1), 'other.onnx': identityModel('int32', ['n']) }, {
    models: [{ name: 'one', path: 'one.onnx' }],
    routes: [{ key: 'chain', sequence: { steps: [{ target: 'one' }] } }],
  });
  const json = { ...AUTH, 'content-type': 'application/json' };
  const bytes = { ...AUTH, 'content-type': 'application/octet-stream' };
  for (const value of ['yes', '1', 'TRUE']) {
    const put = await app.inject({ method: 'PUT', url: `/admin/models/one?force=${value}`, headers: json, payload: { path: 'one.onnx' } });
    const upload = await app.inject({ method: 'PUT', url: `/admin/models/one/file?force=${value}`, headers: bytes, payload: Buffer.from(scaleModel(2)) });
    const reload = await app.inject({ method: 'POST', url: `/admin/models/one/reload?force=${value}`, headers: AUTH });
    for (const [what, response] of [['put', put], ['upload', upload], ['reload', reload]] as const) {
      t.equal(response.statusCode, 400, `${what} ?force=${value}`);
      t.match(response.json().error, /force/, `${what}: the error names force`);
    }
  }
  // A new version whose signature differs while 'chain' depends on the model: refused without force, applied with it.
  const refused = await app.inject({ method: 'PUT', url: '/admin/models/one?force=false', headers: json, payload: { path: 'other.onnx' } });
  t.equal(refused.statusCode, 409);
  const applied = await app.inject({ method: 'PUT', url: '/admin/models/one?force=true', headers: json, payload: { path: 'other.onnx' } });
  t.equal(applied.statusCode, 200, applied.body);
  const back = await app.inject({ method: 'PUT', url: '/admin/models/one/file?force=true', headers: bytes, payload: Buffer.from(scaleModel(3)) });
  t.equal(back.statusCode, 200, back.body);
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/one/reload?force=true', headers: AUTH })).statusCode, 200);
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/one/reload', headers: AUTH })).statusCode, 200);
});

t.test("runIn auto: the schema documents the executor's threshold", async (t) => {
  t.equal(ADAPTIVE, RUN_IN_AUTO);
  const description = (ModelSchema.properties.runIn as { description: string }).description;
  t.match(description, `under ${ADAPTIVE.MAX_RUN_MICROS} µs`);
  t.match(description, 'under 1 MiB');
  t.notMatch(description, /50 µs/);
});
