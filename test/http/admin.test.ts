import t from 'tap';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { tokenMatches } from '../../src/http/admin.ts';
import { affineModel } from '../../src/onnx/builder.ts';
import { AUTH, buildGateway, TOKEN } from '../helpers/gateway.ts';

const files = { 'a.onnx': affineModel({ inFeatures: 1, outFeatures: 1, weights: [1], bias: [0] }) };

t.test('every admin route and method needs the token', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'a', path: 'a.onnx' }] });
  const routes: Array<['GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', string]> = [
    ['GET', '/admin/models'], ['HEAD', '/admin/models'],
    ['POST', '/admin/models/a/load'], ['POST', '/admin/models/a/unload'],
    ['POST', '/admin/models/nope/load'],
    ['GET', '/admin/routes'], ['HEAD', '/admin/routes'], ['GET', '/admin/routes/r'],
    ['PUT', '/admin/routes/r'], ['PATCH', '/admin/routes/r'], ['DELETE', '/admin/routes/r'],
    ['GET', '/admin/routes/r/stats'], ['POST', '/admin/routes/r/stats/reset'],
  ];
  const wrong: Array<[string, Record<string, string>]> = [
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer not-the-token' }],
    ['token prefix', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['token plus more', { authorization: `Bearer ${TOKEN}x` }],
    ['basic scheme', { authorization: `Basic ${TOKEN}` }],
    ['bare token', { authorization: TOKEN }],
    ['empty bearer', { authorization: 'Bearer ' }],
  ];
  const body = { split: { variants: [{ target: 'a', weight: 1 }] } };
  for (const [method, url] of routes) {
    for (const [what, headers] of wrong) {
      const response = await app.inject({ method, url, headers, ...(method === 'PUT' || method === 'PATCH' ? { payload: body } : {}) });
      t.equal(response.statusCode, 401, `${method} ${url}: ${what}`);
      t.equal(response.headers['www-authenticate'], 'Bearer realm="modelgate"');
      if (method !== 'HEAD') t.match(response.json(), { error: /token/ });
    }
  }
  t.equal(app.registry.status()[0]?.loads, 0, 'nothing was loaded by unauthorised calls');
  t.same(app.router.list(), [], 'no route was created by unauthorised calls');
  t.equal((await app.inject({ url: '/admin/models', headers: AUTH })).statusCode, 200);
  t.equal((await app.inject({ url: '/admin/models', headers: { authorization: `bearer ${TOKEN}` } })).statusCode, 200, 'scheme is case-insensitive');
  t.equal((await app.inject({ method: 'POST', url: '/admin/models/nope/load', headers: AUTH })).statusCode, 404);
});

t.test('load and unload through the API', async (t) => {
  const { app } = await buildGateway(t, files, { models: [{ name: 'a', path: 'a.onnx', keys: ['a', 'b'] }] });
  const load = await app.inject({ method: 'POST', url: '/admin/models/a/load', headers: AUTH });
  t.match(load.json(), { name: 'a', keys: ['a', 'b'], state: 'resident', inFlight: 0, loads: 1, evictions: 0, lastUsedAt: String });
  const unload = await app.inject({ method: 'POST', url: '/admin/models/a/unload', headers: AUTH });
  t.match(unload.json(), { state: 'unloaded', loads: 1, evictions: 1 });
  const again = await app.inject({ method: 'POST', url: '/admin/models/a/unload', headers: AUTH });
  t.match(again.json(), { state: 'unloaded', evictions: 1 }, 'unloading an unloaded model changes nothing');
  const missing = await app.inject({ method: 'POST', url: '/admin/models/zzz/unload', headers: AUTH });
  t.same(missing.json(), { error: "Model 'zzz' is not configured" });
});

t.test('without a configured token one is generated, logged once, and required', async (t) => {
  const repository = t.testdir();
  const lines: string[] = [];
  const stream = { write: (line: string) => { lines.push(line); } };
  const app = await buildApp(validateConfig({ modelRepository: repository }, repository, {}), { logger: { stream, level: 'info' } });
  t.teardown(() => app.close());
  t.match(app.adminToken, /^[A-Za-z0-9_-]{32}$/);
  t.equal(lines.filter((line) => line.includes(app.adminToken)).length, 1);
  t.equal((await app.inject({ url: '/admin/models' })).statusCode, 401);
  t.equal((await app.inject({ url: '/admin/models', headers: { authorization: `Bearer ${app.adminToken}` } })).statusCode, 200);
});

t.test('token comparison', async (t) => {
  t.ok(tokenMatches('abc', 'Bearer abc'));
  t.notOk(tokenMatches('abc', 'Bearer abd'));
  t.notOk(tokenMatches('abc', undefined));
  t.notOk(tokenMatches('', 'Bearer '), 'an empty token never matches');
});
