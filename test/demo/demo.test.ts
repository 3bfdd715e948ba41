import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { buildApp } from '../../src/app.ts';
import { validateConfig } from '../../src/config/load.ts';
import { buildDemoModels } from '../../src/demo/build-models.ts';
import { FEATURES, LABELS, SPECIES } from '../../src/demo/iris-data.ts';
import { TOKEN, infer } from '../helpers/gateway.ts';

const CONFIG = path.resolve(import.meta.dirname, '../../config/gateway.yaml');

/** The demo configuration as shipped, over models built into a fresh directory. */
async function demo(t: Test) {
  const repository = t.testdir();
  t.same((await buildDemoModels(repository)).length, 5);
  t.same(await buildDemoModels(repository), [], 'a second build writes nothing');
  const document = { ...parse(readFileSync(CONFIG, 'utf8')), modelRepository: repository, admin: { token: TOKEN } };
  const app = await buildApp(validateConfig(document, repository, {}));
  t.teardown(() => app.close());
  await app.ready();
  return app;
}

function column(j: number): number[] {
  return FEATURES.map((row) => row[j] as number);
}

t.test('the data set is Fisher\'s: 50 of each species, the published means', async (t) => {
  t.same(SPECIES.map((_, k) => LABELS.filter((label) => label === k).length), [50, 50, 50]);
  const means = SPECIES.map((_, k) => [0, 1, 2, 3].map((j) => Math.round(column(j).slice(k * 50, k * 50 + 50).reduce((a, b) => a + b, 0) / 50 * 1000) / 1000));
  t.same(means, [[5.006, 3.428, 1.462, 0.246], [5.936, 2.77, 4.26, 1.326], [6.588, 2.974, 5.552, 2.026]]);
});

t.test('the demo serves trained classifiers: accuracy, probabilities, versions that differ', async (t) => {
  const app = await demo(t);
  const all = { inputs: [{ name: 'input', datatype: 'FP32', shape: [150, 4], data: FEATURES }] };
  const results = new Map<string, { probabilities: number[]; labels: number[] }>();
  for (const key of ['iris-v1', 'iris-v2']) {
    const json = (await infer(app, key, all)).json();
    const probabilities = json.outputs.find((output: { name: string }) => output.name === 'probabilities').data as number[];
    const labels = json.outputs.find((output: { name: string }) => output.name === 'label').data as number[];
    for (let row = 0; row < 150; row++) {
      const p = probabilities.slice(row * 3, row * 3 + 3);
      t.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, `${key} row ${row} sums to 1`);
      t.equal(labels[row], p.indexOf(Math.max(...p)), `${key} row ${row}: label is the likeliest class`);
    }
    results.set(key, { probabilities, labels });
  }
  const accuracy = (labels: number[]) => labels.filter((label, row) => label === LABELS[row]).length / 150;
  t.ok(accuracy(results.get('iris-v2')!.labels) >= 0.95, `v2 accuracy ${accuracy(results.get('iris-v2')!.labels)}`);
  t.ok(accuracy(results.get('iris-v1')!.labels) >= 0.7, `v1 accuracy ${accuracy(results.get('iris-v1')!.labels)}`);
  t.ok(results.get('iris-v1')!.probabilities.some((p, i) => Math.abs(p - results.get('iris-v2')!.probabilities[i]!) > 0.1), 'v1 and v2 differ');

  // The README's example: a setosa and a virginica.
  const example = (await infer(app, 'iris-v2', { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }], outputs: [{ name: 'label' }] })).json();
  t.same(example.outputs, [{ name: 'label', datatype: 'INT64', shape: [2], data: [0, 2] }]);
});

t.test('the scaler standardises with the data set\'s mean and population standard deviation', async (t) => {
  const app = await demo(t);
  const mean = [0, 1, 2, 3].map((j) => column(j).reduce((a, b) => a + b, 0) / 150);
  const std = [0, 1, 2, 3].map((j) => Math.sqrt(column(j).reduce((sum, v) => sum + (v - mean[j]!) ** 2, 0) / 150));
  const rows = [FEATURES[0]!, FEATURES[75]!, FEATURES[149]!];
  const json = (await infer(app, 'iris-scaler', { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4], data: rows }] })).json();
  const expected = rows.flatMap((row) => row.map((v, j) => (Math.fround(v) - mean[j]!) / std[j]!));
  json.outputs[0].data.forEach((v: number, i: number) => t.ok(Math.abs(v - expected[i]!) < 1e-5, `${v} vs ${expected[i]}`));
});

t.test('the demo chain and split answer as the README says', async (t) => {
  const app = await demo(t);
  const flowers = { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4], data: [FEATURES[0], FEATURES[60], FEATURES[120]] }] };
  const chain = (await infer(app, 'iris-pipeline', { ...flowers, parameters: { return_intermediate: true } })).json();
  const outputs = new Map<string, { data: unknown[] }>(chain.outputs.map((output: { name: string; data: unknown[] }) => [output.name, output]));
  t.same(outputs.get('species')?.data, ['setosa', 'versicolor', 'virginica']);
  const v2 = (await infer(app, 'iris-v2', flowers)).json().outputs[0].data as number[];
  (outputs.get('classify.probabilities')?.data as number[]).forEach((p, i) => t.ok(Math.abs(p - v2[i]!) < 1e-5, 'chain probabilities equal v2\'s'));
  const split = await infer(app, 'iris', flowers, { 'x-user-id': 'alice' });
  t.equal(split.statusCode, 200);
  t.match(split.headers['x-modelgate-variant'], /^iris=iris-v[12]$/);
});

t.test('the demo ensemble, switch and cascade answer from the two classifiers as the configuration says', async (t) => {
  const app = await demo(t);
  const all = { inputs: [{ name: 'input', datatype: 'FP32', shape: [150, 4], data: FEATURES }] };
  const probabilities = async (key: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) => {
    const response = await infer(app, key, { ...all, ...extra }, headers);
    t.equal(response.statusCode, 200, `${key}: ${response.body.slice(0, 200)}`);
    return { response, data: response.json().outputs.find((output: { name: string }) => output.name === 'probabilities').data as number[] };
  };
  const { data: v1 } = await probabilities('iris-v1');
  const { data: v2 } = await probabilities('iris-v2');
  const { data: ensemble } = await probabilities('iris-ensemble');
  ensemble.forEach((p, i) => t.ok(Math.abs(p - (v1[i]! + 2 * v2[i]!) / 3) < 1e-5, `ensemble element ${i}: (v1 + 2 v2) / 3`));
  const { response: tiered, data: gold } = await probabilities('iris-by-tier', { 'x-tier': 'gold' });
  t.equal(tiered.headers['x-modelgate-case'], '0');
  t.same(gold, v2, 'gold users get v2');
  const { response: other, data: bronze } = await probabilities('iris-by-tier', { 'x-tier': 'bronze' });
  t.equal(other.headers['x-modelgate-case'], 'default');
  t.same(bronze, v1);
  const { response: cascade, data: cascaded } = await probabilities('iris-cascade', {}, { outputs: [{ name: 'probabilities' }, { name: 'cascade_step' }] });
  const sure = Array.from({ length: 150 }, (_, row) => Math.max(...v1.slice(row * 3, row * 3 + 3)) >= 0.45);
  t.ok(sure.some(Boolean) && !sure.every(Boolean), `v1 is sure of ${sure.filter(Boolean).length} of 150 flowers: both steps answer some`);
  t.same(cascaded, sure.flatMap((yes, row) => (yes ? v1 : v2).slice(row * 3, row * 3 + 3)), 'each flower from the step that was sure of it');
  t.same(cascade.json().outputs.find((output: { name: string }) => output.name === 'cascade_step').data, sure.map((yes) => (yes ? 0 : 1)));
});

t.test('the shipped configuration validates, the model repository aside', async (t) => {
  const config = validateConfig({ ...parse(readFileSync(CONFIG, 'utf8')), modelRepository: t.testdir() }, path.dirname(CONFIG), {});
  t.equal(config.registry.maxResidentModels, 3);
  t.ok(config.models.length > (config.registry.maxResidentModels ?? 0), 'the cap is below the number of models');
  t.same(config.routes.map((route) => route.key), ['iris', 'iris-pipeline', 'iris-ensemble', 'iris-by-tier', 'iris-cascade']);
});
