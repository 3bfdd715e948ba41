/**
 * `npm test` runs dependency-cruiser over src/ and packages/client/src/ with these rules: no import circles, and
 * imports only point down the layers below (the README's "Source layout" says what each holds).
 * A layer may import the layers after it, never those before it; folders in one layer may
 * import each other only where a rule below does not forbid it.
 */
const LAYERS = [
  ['src/(app|cli|openapi-document)\\.ts$', 'src/demo/', 'src/client/'],
  // The transports: gRPC reads the admin token and the repository index as REST does.
  ['src/http/', 'src/grpc/'],
  ['src/telemetry/'],
  // Tenants at the edge: who calls, what they may call, at what rate; their live changes go through the router.
  ['src/tenants/'],
  ['src/inference/'],
  ['src/live/'],
  ['src/remote/'],
  ['src/routing/'],
  ['src/ops/', 'src/experiments/'],
  ['src/store/'],
  ['src/registry/'],
  ['src/executor/'],
  ['src/config/', 'src/onnx/'],
  // The client package: the remote target speaks to other V2 servers with it.
  ['packages/client/src/(index|tensors)\\.ts$'],
  ['src/protocol/'],
  ['src/(errors|waiting|trace)\\.ts$'],
  // The codec and the wire shapes, shared with the client package: the server's errors.ts re-exports the codec's errors.
  ['packages/client/src/codec/', 'packages/client/src/wire\\.ts$'],
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
    { name: 'client-stands-alone', comment: 'the client package is installed without the server', severity: 'error', from: { path: '^packages/client/' }, to: { path: '^src/' } },
    { name: 'http-without-grpc', comment: 'REST does not depend on the gRPC transport', severity: 'error', from: { path: '^src/http/' }, to: { path: '^src/grpc/' } },
    { name: 'ops-experiments-apart', severity: 'error', from: { path: '^src/(ops|experiments)/' }, to: { path: '^src/(ops|experiments)/', pathNot: '^src/$1/' } },
    { name: 'config-onnx-apart', comment: 'configuration is validated without reading models', severity: 'error', from: { path: '^src/config/' }, to: { path: '^src/onnx/' } },
    { name: 'demo-only-onnx', comment: 'the demo builds models from code and nothing else', severity: 'error', from: { path: '^src/demo/' }, to: { path: '^src/', pathNot: '^src/(demo|onnx|protocol)/|^src/errors\\.ts$|^packages/client/src/codec/' } },
    ...layerRules,
  ],
  options: {
    tsPreCompilationDeps: true,
    // @modelgate/client resolves to its sources, as the tests and the type checker see it.
    enhancedResolveOptions: { conditionNames: ['modelgate-source', 'import', 'default'], exportsFields: ['exports'] },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
  },
};
