/**
 * Shadows never hurt primaries: a shadow copy uses only spare capacity, never
 * evicts a model that primary traffic uses, and is dropped (and counted) when
 * there is none.
 */
import t from 'tap';
import { eventually, AUTH, buildGateway, infer, metricsOf, scaleModel, scaleRequest } from '../helpers/gateway.ts';

const files = { 'p1.onnx': scaleModel(2), 'p2.onnx': scaleModel(3), 's.onnx': scaleModel(2) };
const models = [{ name: 'p1', path: 'p1.onnx' }, { name: 'p2', path: 'p2.onnx' }, { name: 's', path: 's.onnx' }];

t.test('a 100% shadow to a cold model under a full cap: zero reloads of the primaries, its copies dropped and counted', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models, registry: { maxResidentModels: 2 },
    routes: [{ key: 'ab', split: { variants: [{ target: 'p1', weight: 1 }, { target: 'p2', weight: 1 }], shadow: { target: 's', percent: 100 } } }],
  });
  let answered = 0;
  for (let i = 0; i < 200; i++) {
    const response = await infer(app, 'ab', scaleRequest(1), { 'x-request-id': `r${i}` });
    t.equal(response.statusCode, 200);
    answered += 1;
    // Let the copy (sent after the answer) run before the next request.
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.equal(answered, 200);
  await eventually('the last copies to finish', () => app.registry.status().every((model) => model.inFlight === 0));
  const stats = (await app.inject({ url: '/admin/routes/ab/stats', headers: AUTH })).json().sinceStart;
  t.equal(executor.loads.get('p1'), 1, 'p1 loaded once');
  t.equal(executor.loads.get('p2'), 1, 'p2 loaded once');
  t.ok((executor.loads.get('s') ?? 0) <= 1, 'the shadow model loaded at most once, into a slot that was free then');
  t.ok(stats.shadow.dropped >= 190, `${stats.shadow.dropped} copies dropped`);
  t.equal(stats.shadow.errors, 0, 'a dropped copy is not an error');
  const metrics = await metricsOf(app);
  t.match(metrics, new RegExp(`modelgate_shadow_requests_total\\{route="ab",variant="s",outcome="dropped"\\} ${stats.shadow.dropped}`));
  t.same(app.registry.status().filter((model) => model.state === 'resident').map((model) => model.name).sort(), ['p1', 'p2']);
});

t.test('a shadow uses a model that is resident, or a free slot; the model it loaded goes first when primaries need room', async (t) => {
  const { app, executor } = await buildGateway(t, files, {
    models, registry: { maxResidentModels: 2 },
    routes: [{ key: 'ab', split: { variants: [{ target: 'p1', weight: 1 }], shadow: { target: 's', percent: 100, maxInFlight: 2 } } }],
  });
  t.equal((await infer(app, 'ab', scaleRequest(1))).statusCode, 200);
  await eventually('the shadow to load into the free slot', () => executor.loads.get('s') === 1);
  await eventually('the copy to finish', () => (app.registry.status().find((model) => model.name === 's')?.inFlight ?? 1) === 0);
  const copied = (await app.inject({ url: '/admin/routes/ab/stats', headers: AUTH })).json().sinceStart.shadow;
  t.match(copied, { sent: 1, dropped: 0, compared: 1, agreement: 1, agreementInterval: { value: 1 } });
  // Primary traffic for p2 needs a slot: the shadow's model goes, not p1.
  t.equal((await infer(app, 'p2', scaleRequest(1))).statusCode, 200);
  t.same(app.registry.status().filter((model) => model.state === 'resident').map((model) => model.name).sort(), ['p1', 'p2']);
  t.equal(executor.loads.get('p1'), 1);
});
