/**
 * The protocol edge as properties (fast-check), bounded to seconds: the
 * decoder round-trips every valid request exactly; no request, however
 * mangled, gets a 5xx, a malformed error or disturbs another key; no admin
 * body half-applies a change. `npm run fuzz` runs the long campaign.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { encodeInferResponse, jsonText, parseJsonExact, type Signature, splitBody, type Tensor } from '@modelgate/client/codec';
import { decodeInferRequest } from '../../src/protocol/decode.ts';
import { AUTH, buildGateway } from '../helpers/gateway.ts';
import { bytesOf, checkAnswer, CONTROL, encodeWire, fuzzGateway, fuzzedRequest, KEYS, toWire, validRequest, type Datatype } from './arbitraries.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

function signature(key: string): Signature {
  const spec = KEYS.get(key);
  if (spec === undefined) throw new Error(key);
  const datatype = spec.inputs[0]?.datatype as Datatype;
  return { inputs: spec.inputs.map((input) => ({ ...input, shape: [-1] })), outputs: spec.outputs.map((name) => ({ name, datatype, shape: [-1] })) };
}

function tensorBytes(tensor: Tensor): Buffer {
  if (Array.isArray(tensor.data)) return bytesOf('BYTES', tensor.data);
  const data = tensor.data as Uint8Array;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

t.test('the decoder alone: every valid request decodes to exactly its values, and encodes back to them', async (t) => {
  fc.assert(fc.property(validRequest(), (request) => {
    const sent = encodeWire(request.key, toWire(request));
    const split = splitBody(sent.body, sent.headers['inference-header-content-length'], parseJsonExact);
    const decoded = split === undefined ? decodeInferRequest(parseJsonExact(sent.body.toString('utf8')), signature(request.key)) : decodeInferRequest(split.header, signature(request.key), split.reader);
    for (const { name, datatype } of KEYS.get(request.key)?.inputs ?? []) {
      const tensor = decoded.inputs.get(name) as Tensor;
      const values = request.data.get(name) as unknown[];
      if (tensor.datatype !== datatype || tensor.shape.join() !== String(values.length)) throw new Error(`${name}: ${tensor.datatype} ${jsonText(tensor.shape)}`);
      if (!tensorBytes(tensor).equals(bytesOf(datatype, values))) throw new Error(`${name}: decoded data differs from ${jsonText(values)}`);
    }
    const { json } = encodeInferResponse({ modelName: request.key, outputs: decoded.inputs }, request.id);
    const answer = parseJsonExact(json) as { model_name: string; id?: string; outputs: Array<{ name: string; data: unknown[] }> };
    if (answer.id !== request.id) throw new Error(`id ${answer.id}`);
    for (const output of answer.outputs) {
      if (jsonText(output.data) !== jsonText(request.data.get(output.name))) throw new Error(`${output.name}: encoded ${jsonText(output.data)} for ${jsonText(request.data.get(output.name))}`);
    }
  }), { numRuns: RUNS * 5 });
  t.pass(`${RUNS * 5} valid requests round-tripped exactly`);
});

t.test('no request gets a 5xx or a malformed error, and the control key never changes', async (t) => {
  const { files, config } = fuzzGateway();
  const { app } = await buildGateway(t, files, config);
  const control = async () => (await app.inject({ method: 'POST', url: `/v2/models/${CONTROL.key}/infer`, headers: { 'content-type': 'application/json' }, payload: CONTROL.body })).json().outputs[0].data;
  t.same(await control(), CONTROL.answer);
  const statuses = new Map<number, number>();
  await fc.assert(fc.asyncProperty(fuzzedRequest(), async ({ request, sent, mutated }) => {
    const response = await app.inject({ method: 'POST', url: `/v2/models/${encodeURIComponent(sent.key)}/infer`, headers: sent.headers, payload: sent.body });
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
    const problem = checkAnswer(response.statusCode, response.headers, response.rawPayload, request, mutated);
    if (problem !== undefined) throw new Error(`${problem}\n  key ${sent.key}, headers ${JSON.stringify(sent.headers)}, body ${sent.body.toString('latin1').slice(0, 300)}`);
  }), { numRuns: RUNS });
  t.comment(`statuses: ${jsonText(Object.fromEntries([...statuses].sort()))}`);
  t.ok((statuses.get(200) ?? 0) > RUNS / 10, 'a good share of the requests were valid and answered');
  t.same(await control(), CONTROL.answer, 'the control key answers as before');
});

t.test('admin route bodies: any value in any field gives a 2xx or a V2 4xx, and a refused change leaves the route as it was', async (t) => {
  const { files, config } = fuzzGateway();
  const { app } = await buildGateway(t, files, config);
  const route = async () => (await app.inject({ url: '/admin/routes/split', headers: AUTH })).json();
  const valid = { split: { variants: [{ target: 'fp32', weight: 3 }, { target: 'f32b', weight: 1 }], stickyHeader: 'x-user', shadow: { target: 'f32b', percent: 10 } } };
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, 0, 1e308, '', 'nope', 'split', 'chain', [], {}, true));
  const field = fc.constantFrom('split', 'split.variants', 'split.variants.0', 'split.variants.0.target', 'split.variants.0.weight', 'split.variants.1.weight', 'split.stickyHeader', 'split.shadow', 'split.shadow.target', 'split.shadow.percent', 'split.extra', 'sequence');
  await fc.assert(fc.asyncProperty(fc.constantFrom('PUT', 'PATCH'), field, anyValue, async (method, path, value) => {
    const body = structuredClone(valid) as Record<string, unknown>;
    const steps = path.split('.');
    let node = body as Record<string, unknown>;
    for (const step of steps.slice(0, -1)) node = node[step] as Record<string, unknown>;
    node[steps[steps.length - 1] as string] = value;
    const before = await route();
    const response = await app.inject({ method: method as 'PUT' | 'PATCH', url: '/admin/routes/split', headers: AUTH, payload: body });
    const problem = checkAnswer(response.statusCode, response.headers, response.rawPayload, { key: 'split', rows: 0, data: new Map(), binaryInputs: false, binaryOutputAll: false }, true);
    if (problem !== undefined) throw new Error(`${method} ${JSON.stringify(body)}: ${problem}`);
    const after = await route();
    if (response.statusCode >= 400 && jsonText(after) !== jsonText(before)) throw new Error(`a refused ${method} changed the route: ${jsonText(after)}`);
    // Versions come from one counter for every route: an accepted change moves this route's forward.
    if (response.statusCode < 300 && !(after.version > before.version)) throw new Error(`an accepted ${method} left the version at ${after.version}`);
    // Put the route back for the next case.
    if (response.statusCode < 300) await app.inject({ method: 'PUT', url: '/admin/routes/split', headers: AUTH, payload: valid });
  }), { numRuns: Math.ceil(RUNS / 2) });
  t.pass('admin bodies held');
});

t.test('admin model bodies: any value in any field gives a 2xx or a V2 4xx, and a refused change leaves the models as they were', async (t) => {
  const { files, config } = fuzzGateway();
  const { app } = await buildGateway(t, files, config);
  const models = async () => jsonText((await app.inject({ url: '/admin/models', headers: AUTH })).json().models.map((model: { name: string; keys: string[] }) => [model.name, model.keys]));
  const valid = { path: 'f32b.onnx', keys: ['extra'], pinned: false, maxQueueSize: 16, batching: { maxBatchSize: 4, maxQueueDelayMicros: 0 }, session: { intraOpThreads: 1 } };
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, 0, 1e308, '', '../x', '/etc/passwd', 'garbage.onnx', 'BOOL.onnx', 'fp32', 'split', [], {}, true));
  const field = fc.constantFrom('path', 'keys', 'keys.0', 'pinned', 'maxQueueSize', 'batching', 'batching.maxBatchSize', 'session', 'session.intraOpThreads', 'name', 'extra');
  await fc.assert(fc.asyncProperty(field, anyValue, fc.constantFrom('extra', 'fp32', 'addmul'), async (path, value, name) => {
    const body = structuredClone(valid) as Record<string, unknown>;
    const steps = path.split('.');
    let node = body;
    for (const step of steps.slice(0, -1)) node = node[step] as Record<string, unknown>;
    node[steps[steps.length - 1] as string] = value;
    const before = await models();
    const response = await app.inject({ method: 'PUT', url: `/admin/models/${name}`, headers: AUTH, payload: body });
    const problem = checkAnswer(response.statusCode, response.headers, response.rawPayload, { key: 'fp32', rows: 0, data: new Map(), binaryInputs: false, binaryOutputAll: false }, true);
    if (problem !== undefined) throw new Error(`PUT ${name} ${jsonText(body)}: ${problem}`);
    if (response.statusCode >= 400 && (await models()) !== before) throw new Error(`a refused PUT changed the models: ${await models()}`);
    // Put things back for the next case.
    if (response.statusCode < 300 && name === 'extra') await app.inject({ method: 'DELETE', url: '/admin/models/extra', headers: AUTH });
    if (response.statusCode < 300 && name !== 'extra') {
      const original = (config.models as Array<{ name: string; path: string }>).find((model) => model.name === name);
      await app.inject({ method: 'PUT', url: `/admin/models/${name}?force=true`, headers: AUTH, payload: { path: original?.path } });
    }
  }), { numRuns: Math.ceil(RUNS / 4) });
  t.pass('admin model bodies held');
});

t.test('with tenants: any authorization header gets 200, 401, 403 or 429 in V2 shape, never a 5xx, and only the real key passes', async (t) => {
  const { files, config } = fuzzGateway();
  const key = 'fuzz-tenant-key';
  const digest = `sha256:${createHash('sha256').update(key).digest('hex')}`;
  const { app } = await buildGateway(t, files, { ...config, tenants: [{ name: 'fuzz', apiKeys: [digest], allow: [CONTROL.key] }] });
  const header = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ maxLength: 80 }).map((text) => `Bearer ${text}`),
    fc.constantFrom('', 'Bearer', 'Bearer ', `Bearer ${key} extra`, `bearer ${key}`, `Bearer  ${key}`, `Basic ${Buffer.from(key).toString('base64')}`, `Bearer ${key}\t`, `Bearer ${key.toUpperCase()}`),
  ).filter((value) => !/[\r\n\0]/.test(value) && /^[\t\x20-\x7e]*$/.test(value));
  await fc.assert(fc.asyncProperty(header, fc.constantFrom(CONTROL.key, 'fp32'), async (authorization, target) => {
    const response = await app.inject({ method: 'POST', url: `/v2/models/${target}/infer`, headers: { authorization, 'content-type': 'application/json' }, payload: CONTROL.body });
    // The scheme is case-insensitive (RFC 9110), the key is not.
    const passes = /^bearer[ \t]+(\S+)\s*$/i.exec(authorization)?.[1] === key;
    const expected = !passes ? 401 : target === CONTROL.key ? 200 : 403;
    if (response.statusCode !== expected) throw new Error(`authorization ${JSON.stringify(authorization)} on ${target}: ${response.statusCode} ${response.payload}, expected ${expected}`);
    if (expected !== 200 && typeof (response.json() as { error?: unknown }).error !== 'string') throw new Error(`not a V2 error: ${response.payload}`);
    if (response.payload.includes(key) || response.payload.includes(digest.slice(7))) throw new Error('the answer shows the key');
  }), { numRuns: Math.ceil(RUNS / 2) });
  t.pass('the auth header held');
});

t.test('tenant bodies: any value in any field gives a 2xx or a V2 4xx, a refused change changes nothing, and no key is shown', async (t) => {
  const { files, config } = fuzzGateway();
  const digest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
  const { app } = await buildGateway(t, files, { ...config, tenants: [{ name: 'other', apiKeys: [digest('other')], allow: ['*'] }] });
  const tenants = async () => jsonText((await app.inject({ url: '/admin/tenants', headers: AUTH })).json());
  const valid = { apiKeys: [digest('a')], allow: ['fp32', 'f*'], rateLimit: { requestsPerSecond: 10, burst: 20 }, maxInFlight: 4, share: 2 };
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, 0, 1e308, '', 'plain-key', digest('other'), 'sha256:00', '*', '../x', [], {}, true));
  const field = fc.constantFrom('apiKeys', 'apiKeys.0', 'allow', 'allow.0', 'rateLimit', 'rateLimit.requestsPerSecond', 'rateLimit.burst', 'maxInFlight', 'share', 'certSubject', 'name', 'extra');
  await fc.assert(fc.asyncProperty(field, anyValue, async (path, value) => {
    const body = structuredClone(valid) as Record<string, unknown>;
    const steps = path.split('.');
    let node = body;
    for (const step of steps.slice(0, -1)) node = node[step] as Record<string, unknown>;
    node[steps[steps.length - 1] as string] = value;
    const before = await tenants();
    const response = await app.inject({ method: 'PUT', url: '/admin/tenants/fuzzed', headers: AUTH, payload: body });
    const problem = checkAnswer(response.statusCode, response.headers, response.rawPayload, { key: 'fp32', rows: 0, data: new Map(), binaryInputs: false, binaryOutputAll: false }, true);
    if (problem !== undefined) throw new Error(`PUT ${jsonText(body)}: ${problem}`);
    if (response.statusCode >= 400 && (await tenants()) !== before) throw new Error(`a refused PUT changed the tenants: ${await tenants()}`);
    if (path.startsWith('apiKeys') && response.payload.includes('plain-key')) throw new Error(`a plain key was echoed: ${response.payload}`);
    if (response.statusCode < 300) await app.inject({ method: 'DELETE', url: '/admin/tenants/fuzzed', headers: AUTH });
  }), { numRuns: Math.ceil(RUNS / 4) });
  t.pass('tenant bodies held');
});
