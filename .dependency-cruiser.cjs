/**
 * `npm test` runs dependency-cruiser over src/ with these rules: no import circles, and
 * imports only point down the layers below (the README's "Source layout" says what each holds).
 * A layer may import the layers after it, never those before it; folders in one layer may
 * import each other only where a rule below does not forbid it.
 */
const LAYERS = [
  ['src/(app|cli|openapi-document)\\.ts$', 'src/demo/'],
  ['src/http/'],
  ['src/telemetry/'],
  ['src/inference/'],
  ['src/live/'],
  ['src/remote/'],
  ['src/routing/'],
  ['src/ops/', 'src/experiments/'],
  ['src/store/'],
  ['src/registry/'],
  ['src/executor/'],
  ['src/config/', 'src/onnx/'],
  ['src/protocol/'],
  ['src/(errors|waiting)\\.ts$'],
];

const layerRules = LAYERS.flatMap((layer, index) => {
  const above = LAYERS.slice(0, index).flat();
  if (above.length === 0) return [];
  return [{
    name: `layer-${index}-points-down`,
    comment: `${layer.join(', ')} may not import a layer above it (${above.join(', ')})`,
    severity: 'error',
    from: { path: layer.map((pattern) => `^${pattern}`) },
    to: { path: above.map((pattern) => `^${pattern}`) },
  }];
});

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'an import circle', severity: 'error', from: {}, to: { circular: true } },
    { name: 'ops-experiments-apart', severity: 'error', from: { path: '^src/(ops|experiments)/' }, to: { path: '^src/(ops|experiments)/', pathNot: '^src/$1/' } },
    { name: 'config-onnx-apart', comment: 'configuration is validated without reading models', severity: 'error', from: { path: '^src/config/' }, to: { path: '^src/onnx/' } },
    { name: 'demo-only-onnx', comment: 'the demo builds models from code and nothing else', severity: 'error', from: { path: '^src/demo/' }, to: { path: '^src/', pathNot: '^src/(demo|onnx|protocol)/|^src/errors\\.ts$' } },
    ...layerRules,
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
  },
};
