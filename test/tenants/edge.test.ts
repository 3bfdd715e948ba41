/**
 * Tenants over real HTTP requests (inject) and real onnxruntime sessions: who may call what,
 * the limits, fair shares on a contended model, live changes, and where keys never appear.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { OnnxExecutor } from '../../src/executor/onnx.ts';
import { AUTH, buildGateway, eventually, infer, makeRepository, metricsOf, scaleModel, scaleRequest, slowModel, TOKEN } from '../helpers/gateway.ts';

const digest = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const KEY_A = 'team-a-key-4f1c9e2b7d';
const KEY_B = 'team-b-key-8a3d6c0e5f';

const files = { 'a.onnx': scaleModel(2), 'b.onnx': scaleModel(3), 'c.onnx': scaleModel(5) };
const models = [
  { name: 'a', path: 'a.onnx', keys: ['iris-a', 'iris-b'] },
  { name: 'b', path: 'b.onnx', keys: ['tenant-b'] },
  { name: 'c', path: 'c.onnx', keys: ['other'] },
];

t.test('a key is needed (401), and lets its tenant call only the keys it allows (403), by name or glob', async (t) => {
  const { app } = await buildGateway(t, files, {
    models,
    tenants: [
      { name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['iris*'] },
      { name: 'team-b', apiKeys: [digest(KEY_B)], allow: ['tenant-b'] },
    ],
  });
  const missing = await infer(app, 'iris-a', scaleRequest(1));
  t.equal(missing.statusCode, 401);
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="modelgate"');
  t.match(missing.json(), { error: /API key/ });
  const wrong = await infer(app, 'iris-a', scaleRequest(1), bearer('not-a-key'));
  t.equal(wrong.statusCode, 401);
  t.same(wrong.json(), { error: 'authorization: the API key is not valid' });
  t.equal((await infer(app, 'iris-a', scaleRequest(1), { authorization: 'Basic abc' })).statusCode, 401, 'another scheme');
  t.equal(wrong.headers['x-modelgate-tenant'], undefined, 'no tenant on a 401');

  for (const key of ['iris-a', 'iris-b']) {
    const answer = await infer(app, key, scaleRequest(1.5), bearer(KEY_A));
    t.equal(answer.statusCode, 200, `${key} through the glob`);
    t.equal(answer.headers['x-modelgate-tenant'], 'team-a');
    t.same(answer.json().outputs[0].data, [3]);
  }
  const outside = await infer(app, 'tenant-b', scaleRequest(1), bearer(KEY_A));
  t.equal(outside.statusCode, 403);
  t.same(outside.json(), { error: "This API key may not call key 'tenant-b'" }, 'names neither the other tenant nor its key');
  t.notMatch(outside.payload, /team-b|KEY_B/);
  t.equal((await infer(app, 'nope', scaleRequest(1), bearer(KEY_A))).statusCode, 403, 'a key that does not exist, outside allow: 403, not 404');
  t.equal((await infer(app, 'iris-zzz', scaleRequest(1), bearer(KEY_A))).statusCode, 404, 'inside allow, not served: 404');
  t.same((await infer(app, 'tenant-b', scaleRequest(2), bearer(KEY_B))).json().outputs[0].data, [6]);

  // Metadata, readiness and statistics are calls of the data plane too; health and /v2 stay open for probes.
  t.equal((await app.inject({ url: '/v2/models/iris-a' })).statusCode, 401);
  t.equal((await app.inject({ url: '/v2/models/iris-a', headers: bearer(KEY_A) })).statusCode, 200);
  t.equal((await app.inject({ url: '/v2/models/tenant-b/ready', headers: bearer(KEY_A) })).statusCode, 403);
  t.equal((await app.inject({ url: '/v2/models/iris-a/stats', headers: bearer(KEY_B) })).statusCode, 403);
  t.equal((await app.inject({ url: '/v2/models/stats' })).statusCode, 401);
  const stats = (await app.inject({ url: '/v2/models/stats', headers: bearer(KEY_A) })).json() as { model_stats: Array<{ name: string }> };
  t.same(stats.model_stats.map((entry) => entry.name).sort(), ['iris-a', 'iris-b'], "every key's statistics: the tenant's keys only");
  for (const url of ['/v2/health/live', '/v2/health/ready', '/v2']) t.equal((await app.inject({ url })).statusCode, 200, `${url} is open`);

  const metrics = await metricsOf(app);
  t.match(metrics, /modelgate_requests_total\{key="iris-a",code="200",protocol="http",tenant="team-a"/);
  t.match(metrics, /modelgate_tenant_refusals_total\{tenant="",reason="unauthorized"[^}]*\} 5/);
  t.match(metrics, /modelgate_tenant_refusals_total\{tenant="team-a",reason="forbidden"/);
});

t.test("a route's per-variant and per-member statistics, and their metrics, carry each tenant's part", async (t) => {
  const { app } = await buildGateway(t, files, {
    models,
    routes: [
      { key: 'ab', split: { variants: [{ target: 'iris-a', weight: 1 }, { target: 'tenant-b', weight: 1 }] } },
      { key: 'both', ensemble: { members: [{ target: 'iris-a', name: 'a' }, { target: 'tenant-b', name: 'b' }] } },
    ],
    tenants: [
      { name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['ab', 'both'] },
      { name: 'team-b', apiKeys: [digest(KEY_B)], allow: ['ab'] },
    ],
  });
  for (let i = 0; i < 6; i++) t.equal((await infer(app, 'ab', scaleRequest(1), bearer(KEY_A))).statusCode, 200);
  for (let i = 0; i < 4; i++) t.equal((await infer(app, 'ab', scaleRequest(1), bearer(KEY_B))).statusCode, 200);
  for (let i = 0; i < 3; i++) t.equal((await infer(app, 'both', scaleRequest(1), bearer(KEY_A))).statusCode, 200);

  type Entry = { target: string; requests: number; tenants?: Record<string, { requests: number; errors: number }> };
  const split = (await app.inject({ url: '/admin/routes/ab/stats', headers: AUTH })).json().sinceStart.variants as Entry[];
  const part = (entries: Entry[], tenant: string) => entries.reduce((sum, entry) => sum + (entry.tenants?.[tenant]?.requests ?? 0), 0);
  t.equal(part(split, 'team-a'), 6, "team-a's six requests, over the variants they went to");
  t.equal(part(split, 'team-b'), 4);
  for (const entry of split) t.equal(Object.values(entry.tenants ?? {}).reduce((sum, counts) => sum + counts.requests, 0), entry.requests, `${entry.target}: the tenants' parts add up to its requests`);
  const members = (await app.inject({ url: '/admin/routes/both/stats', headers: AUTH })).json().sinceStart.members as Entry[];
  t.same(members.map((member) => member.tenants), [{ 'team-a': { requests: 3, errors: 0 } }, { 'team-a': { requests: 3, errors: 0 } }], 'every member ran each of its requests');

  const metrics = await metricsOf(app);
  t.match(metrics, /modelgate_route_requests_total\{route="ab",variant="(iris-a|tenant-b)",tenant="team-b"/);
  t.match(metrics, /modelgate_graph_node_requests_total\{route="both",node="a",tenant="team-a"[^}]*\} 3/);
});

t.test('past its rate a tenant gets 429 with Retry-After, and never reaches the model; another tenant on the same model is untouched', async (t) => {
  // Batching off: every request that reaches the model is a run of its own, so runs count them.
  const { app, executor } = await buildGateway(t, files, {
    models: models.map((model) => ({ ...model, batching: false })),
    tenants: [
      { name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['iris-a'], rateLimit: { requestsPerSecond: 2, burst: 5 } },
      { name: 'team-b', apiKeys: [digest(KEY_B)], allow: ['iris-b'] },
    ],
  });
  const sent = 50;
  const answers = await Promise.all(Array.from({ length: sent }, (_, i) => Promise.all([
    infer(app, 'iris-a', scaleRequest(i), bearer(KEY_A)),
    infer(app, 'iris-b', scaleRequest(i), bearer(KEY_B)),
  ])));
  const a = answers.map(([first]) => first);
  const b = answers.map(([, second]) => second);
  const limited = a.filter((answer) => answer.statusCode === 429);
  const passed = a.filter((answer) => answer.statusCode === 200).length;
  t.ok(passed >= 5 && passed <= 6, `the burst of 5 (and at most one refilled token) passes: ${passed}`);
  t.equal(limited.length, sent - passed, 'the rest are refused');
  const retry = Number(limited[0]?.headers['retry-after']);
  t.ok(Number.isInteger(retry) && retry >= 1 && retry <= 1, `Retry-After in whole seconds: ${retry}`);
  t.match(limited[0]?.json(), { error: /Rate limit exceeded: this API key may make 2 requests per second/ });
  t.equal(limited[0]?.headers['x-modelgate-tenant'], 'team-a');
  t.same(b.map((answer) => answer.statusCode), new Array(sent).fill(200), "team-b's requests on the same model all succeed");
  b.forEach((answer, i) => t.same(answer.json().outputs[0].data, [2 * i]));
  t.equal(executor.runsStarted.get('a'), passed + sent, 'refused requests never ran');

  const stats = (await app.inject({ url: '/admin/tenants/team-a/stats', headers: AUTH })).json();
  t.match(stats, { name: 'team-a', requests: passed, rateLimited: sent - passed, forbidden: 0, overInFlight: 0, inFlight: 0 });
});

t.test('maxInFlight: past it, 429, and the tenant\'s requests in progress are counted until answered', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models,
    tenants: [{ name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['*'], maxInFlight: 2 }],
  });
  const open = executor.hold();
  const first = [infer(app, 'iris-a', scaleRequest(1), bearer(KEY_A)), infer(app, 'iris-a', scaleRequest(2), bearer(KEY_A))];
  await eventually('the first batch runs', () => (executor.runsStarted.get('a') ?? 0) >= 1);
  const third = await infer(app, 'iris-a', scaleRequest(3), bearer(KEY_A));
  t.equal(third.statusCode, 429);
  t.equal(third.headers['retry-after'], '1');
  t.match(third.json(), { error: /Too many requests in progress: this API key may have 2 at once/ });
  t.equal((await app.inject({ url: '/admin/tenants/team-a/stats', headers: AUTH })).json().inFlight, 2);
  // Changed live while two of its requests are held: they still count, and are counted out when answered.
  const changed = await app.inject({ method: 'PUT', url: '/admin/tenants/team-a', headers: AUTH, payload: { apiKeys: [digest(KEY_A)], allow: ['*'], maxInFlight: 3 } });
  t.equal(changed.statusCode, 200);
  t.equal((await app.inject({ url: '/admin/tenants/team-a/stats', headers: AUTH })).json().inFlight, 2, 'the held requests carried over');
  const fourth = infer(app, 'iris-a', scaleRequest(4), bearer(KEY_A));
  const inFlight = async () => (await app.inject({ url: '/admin/tenants/team-a/stats', headers: AUTH })).json().inFlight;
  await eventually('the fourth is admitted', async () => (await inFlight()) === 3);
  t.equal((await infer(app, 'iris-a', scaleRequest(5), bearer(KEY_A))).statusCode, 429, 'the new limit of 3, counting the two held');
  open();
  t.same((await Promise.all([...first, fourth])).map((answer) => answer.statusCode), [200, 200, 200]);
  t.equal(await inFlight(), 0, 'none left counted after the change');
  const again = await Promise.all([6, 7, 8].map((x) => infer(app, 'iris-a', scaleRequest(x), bearer(KEY_A))));
  t.same(again.map((answer) => answer.statusCode), [200, 200, 200], 'room for three again once answered');
  t.equal((await app.inject({ url: '/admin/tenants/team-a/stats', headers: AUTH })).json().overInFlight, 2);
});

/**
 * Two tenants flood one slow model, each keeping 12 requests in flight: the model serves them
 * 3:1, as their shares say. Both without batching (the fair run queue) and with it (fair
 * batches, in rows).
 */
for (const batching of [false, { maxBatchSize: 4 }] as const) {
  t.test(`under contention, completions follow the shares 3:1 within 10% (batching ${batching === false ? 'off' : 'on'})`, async (t) => {
    const { app } = await buildGateway(t, { 'slow.onnx': slowModel() }, {
      models: [{ name: 'slow', path: 'slow.onnx', batching }],
      tenants: [
        { name: 'heavy', apiKeys: [digest(KEY_A)], allow: ['slow'], share: 3 },
        { name: 'light', apiKeys: [digest(KEY_B)], allow: ['slow'], share: 1 },
      ],
      executor: { workers: 0 },
    });
    const request = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(1) }] };
    t.equal((await infer(app, 'slow', request, bearer(KEY_A))).statusCode, 200, 'loaded');
    const completions: string[] = [];
    const total = 240;
    const client = async (key: string, tenant: string) => {
      while (completions.length < total) {
        const answer = await infer(app, 'slow', request, bearer(key));
        if (answer.statusCode !== 200) throw new Error(`${answer.statusCode} ${answer.payload}`);
        completions.push(tenant);
      }
    };
    await Promise.all(Array.from({ length: 12 }, () => [client(KEY_A, 'heavy'), client(KEY_B, 'light')]).flat());
    // The first completions are the requests sent before both queues filled; count the rest.
    const counted = completions.slice(40, total);
    const heavy = counted.filter((tenant) => tenant === 'heavy').length;
    const light = counted.length - heavy;
    const ratio = heavy / light;
    t.ok(Math.abs(ratio - 3) <= 0.3, `heavy:light = ${heavy}:${light} = ${ratio.toFixed(2)}`);
    const waits = await Promise.all(['heavy', 'light'].map(async (name) => (await app.inject({ url: `/admin/tenants/${name}/stats`, headers: AUTH })).json().queueWait));
    t.ok(waits.every((wait) => wait.requests > 0 && wait.meanMs > 0), 'both waited in the queue, and it says so');
    t.ok(waits[1].meanMs > waits[0].meanMs, `the smaller share waits longer: ${waits[0].meanMs.toFixed(2)} vs ${waits[1].meanMs.toFixed(2)} ms`);
  });
}

t.test('a tenant changed or deleted through the admin API is in force at once, with ETags; keys only as digests', async (t) => {
  const { app } = await buildGateway(t, files, {
    models,
    tenants: [{ name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['iris-a'] }],
  });
  const listed = (await app.inject({ url: '/admin/tenants', headers: AUTH })).json();
  t.same(listed, { enabled: true, tenants: [{ name: 'team-a', version: 0, tenant: { name: 'team-a', apiKeys: [digest(KEY_A)], allow: ['iris-a'], share: 1 } }] });

  const plain = await app.inject({ method: 'PUT', url: '/admin/tenants/team-b', headers: AUTH, payload: { apiKeys: [KEY_B], allow: ['tenant-b'] } });
  t.equal(plain.statusCode, 400);
  t.same(plain.json(), { error: "apiKeys[0]: Expected string to match '^sha256:[0-9a-f]{64}$'" }, 'a plain key is refused, the field named');
  t.notMatch(plain.payload, new RegExp(KEY_B), 'and the key is not echoed');

  const created = await app.inject({ method: 'PUT', url: '/admin/tenants/team-b', headers: AUTH, payload: { apiKeys: [digest(KEY_B)], allow: ['tenant-b'], rateLimit: { requestsPerSecond: 10 } } });
  t.equal(created.statusCode, 201);
  const etag = created.headers.etag as string;
  t.match(etag, /^"\d+"$/);
  t.equal((await infer(app, 'tenant-b', scaleRequest(1), bearer(KEY_B))).statusCode, 200, 'the new key works at once');

  const taken = await app.inject({ method: 'PUT', url: '/admin/tenants/team-c', headers: AUTH, payload: { apiKeys: [digest(KEY_A)], allow: ['*'] } });
  t.equal(taken.statusCode, 409);
  t.same(taken.json(), { error: "apiKeys[0]: this key is already another tenant's" });

  const stale = await app.inject({ method: 'PUT', url: '/admin/tenants/team-b', headers: { ...AUTH, 'if-match': '"999"' }, payload: { apiKeys: [digest(KEY_B)], allow: ['*'] } });
  t.equal(stale.statusCode, 412);
  const widened = await app.inject({ method: 'PUT', url: '/admin/tenants/team-b', headers: { ...AUTH, 'if-match': etag }, payload: { apiKeys: [digest(KEY_B)], allow: ['*'] } });
  t.equal(widened.statusCode, 200);
  t.equal((await infer(app, 'iris-a', scaleRequest(1), bearer(KEY_B))).statusCode, 200, 'the wider allow list is in force');

  const revoked = await app.inject({ method: 'PUT', url: '/admin/tenants/team-a', headers: AUTH, payload: { apiKeys: [], certSubject: undefined, allow: ['iris-a'] } });
  t.equal(revoked.statusCode, 409, 'a tenant nobody can call as is refused');
  const removed = await app.inject({ method: 'DELETE', url: '/admin/tenants/team-a', headers: AUTH });
  t.equal(removed.statusCode, 204);
  t.equal((await infer(app, 'iris-a', scaleRequest(1), bearer(KEY_A))).statusCode, 401, 'its key is refused at once');
  t.equal((await app.inject({ url: '/admin/tenants/team-a', headers: AUTH })).statusCode, 404);
});

t.test('without a tenants section the data plane is open, says so once, and tenants cannot be managed', async (t) => {
  const repository = makeRepository(t, files);
  const lines: string[] = [];
  const app = await buildApp(validateConfig({ admin: { token: TOKEN }, models, modelRepository: repository }, repository, {}), {
    executor: new OnnxExecutor(repository), logger: { level: 'info', stream: { write: (line: string) => { lines.push(line); } } },
  });
  t.teardown(() => app.close());
  await app.ready();
  t.equal(lines.filter((line) => line.includes('the data plane is open')).length, 1);
  const answer = await infer(app, 'iris-a', scaleRequest(1));
  t.equal(answer.statusCode, 200);
  t.equal(answer.headers['x-modelgate-tenant'], undefined);
  t.same((await app.inject({ url: '/admin/tenants', headers: AUTH })).json(), { enabled: false, tenants: [] });
  t.equal((await app.inject({ method: 'PUT', url: '/admin/tenants/x', headers: AUTH, payload: { apiKeys: [digest('k')], allow: ['*'] } })).statusCode, 409);
});

t.test('API keys never appear in logs, the state file or admin answers', async (t) => {
  const repository = makeRepository(t, files);
  const lines: string[] = [];
  const config = validateConfig({
    admin: { token: TOKEN }, models, modelRepository: repository, stateFile: 'state.json',
    tenants: [{ name: 'team-a', apiKeys: ['${TEAM_A_KEY}'], allow: ['*'] }],
  }, repository, { TEAM_A_KEY: KEY_A });
  t.same(config.tenants?.[0]?.apiKeys, [digest(KEY_A)], '${VAR} is hashed at load');
  const app: FastifyInstance = await buildApp(config, {
    executor: new OnnxExecutor(repository), logger: { level: 'debug', stream: { write: (line: string) => { lines.push(line); } } },
  });
  t.teardown(() => app.close());
  await app.ready();
  await infer(app, 'iris-a', scaleRequest(1), bearer(KEY_A));
  await infer(app, 'iris-a', scaleRequest(1), bearer(`${KEY_A}x`));
  const answers = [
    (await app.inject({ url: '/admin/tenants', headers: AUTH })).payload,
    (await app.inject({ method: 'PUT', url: '/admin/tenants/team-b', headers: AUTH, payload: { apiKeys: [digest(KEY_B)], allow: ['*'] } })).payload,
    (await app.inject({ url: '/admin/tenants/team-b', headers: AUTH })).payload,
    (await app.inject({ url: '/admin/audit', headers: AUTH })).payload,
  ];
  await infer(app, 'iris-a', scaleRequest(1), bearer(KEY_B));
  const state = readFileSync(path.join(repository, 'state.json'), 'utf8');
  t.match(state, digest(KEY_B).slice(7), 'the state file holds the digest');
  for (const [where, text] of [['log', lines.join('')], ['state file', state], ['admin answers', answers.join('')]] as const) {
    for (const key of [KEY_A, KEY_B, TOKEN]) t.notOk(text.includes(key), `${where}: no ${key.slice(0, 6)}…`);
  }
  t.match(lines.join(''), /"tenant":"team-a"/, 'the access log names the tenant');
});

t.test('configuration: keys as digests or ${VAR} only; names, keys and subjects unique', async (t) => {
  const repository = makeRepository(t, files);
  const check = (tenants: unknown[], env: Record<string, string> = {}) => {
    try {
      validateConfig({ models, modelRepository: repository, tenants }, repository, env);
      return [];
    } catch (error) {
      return (error as { issues: string[] }).issues;
    }
  };
  t.same(check([{ name: 'a', apiKeys: [digest('k')], allow: ['*'] }]), []);
  t.same(check([{ name: 'a', apiKeys: ['plain-key'], allow: ['*'] }]), ["tenants[0].apiKeys[0]: write the secret's digest (sha256:<64 hex digits>, e.g. from `printf %s \"$KEY\" | sha256sum`) or ${VAR} naming a variable that holds it, never the secret itself"]);
  t.same(check([{ name: 'a', apiKeys: ['x-${K}'], allow: ['*'] }], { K: 'k' }), [check([{ name: 'a', apiKeys: ['plain'], allow: ['*'] }])[0]], 'a variable inside other text is a secret in clear');
  t.same(check([{ name: 'a', apiKeys: ['${K}'], allow: ['*'] }, { name: 'b', apiKeys: [digest('k')], allow: ['*'] }], { K: 'k' }), ["tenants[1].apiKeys[0]: this key is already one of tenants[0]'s"]);
  t.same(check([{ name: 'a', apiKeys: [digest('k')], allow: ['*'] }, { name: 'a', apiKeys: [digest('j')], allow: ['*'] }]), ["tenants[1].name: 'a' is already the name of tenants[0]"]);
  t.same(check([{ name: 'a', allow: ['*'] }]), ['tenants[0].apiKeys: a tenant needs an API key or a certSubject, or nobody can call as it']);
  t.same(check([{ name: 'a', apiKeys: [digest('k')], allow: ['*'], certSubject: 'CN=a' }]), ['tenants: a certSubject needs server.tls with clientCerts (request or require)']);
  t.match(check([{ name: 'a', apiKeys: [digest('k')], allow: ['a/b'] }])[0], /^tenants\[0\]\.allow\[0\]: /);
});
