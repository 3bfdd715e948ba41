import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfigFile, validateConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';

function issuesOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

t.test('defaults, keys defaulting to the name, and a frozen result', async (t) => {
  const repository = t.testdir({ 'a.onnx': '' });
  const config = validateConfig({ modelRepository: '.', models: [{ name: 'a', path: 'a.onnx' }] }, repository, {});
  t.same(config.server, {
    host: '127.0.0.1', port: 8080, bodyLimitBytes: 64 * 1024 * 1024,
    requestTimeoutMs: 120_000, keepAliveTimeoutMs: 72_000, shutdownGraceMs: 30_000, logLevel: 'info', accessLog: true, livenessStallMs: 10_000,
  });
  t.same(config.registry, { scheduling: 'grouped', loadFailureBackoffMs: 30_000 });
  t.equal(config.admin.token, undefined);
  t.match(config.models[0], { name: 'a', path: 'a.onnx', keys: ['a'], pinned: false, session: { intraOpThreads: 1, interOpThreads: 1, graphOptimizationLevel: 'all' }, instances: 1, runIn: 'auto' });
  t.equal(config.models[0]?.file, path.join(config.modelRepository, 'a.onnx'));
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.models[0]) && Object.isFrozen(config.models[0]?.keys));
});

t.test('every invalid field is reported with its path, in one error', async (t) => {
  const repository = t.testdir();
  const issues = issuesOf(() => validateConfig({
    server: { port: 'http', extra: true },
    registry: { maxResidentModels: 0 },
    models: [{ name: '../x', path: 'a.onnx' }, { name: 'b', path: 'b.onnx', pinned: 'yes', sessoin: {} }],
    routes: [{ key: 'r', splt: {} }],
    surprise: 1,
  }, repository, {}));
  t.same(issues.toSorted(), [
    'models[0].name: Expected string to match \'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$\'',
    'models[1].pinned: Expected boolean',
    'models[1].sessoin: Unexpected property',
    'registry.maxResidentModels: Expected integer to be greater or equal to 1',
    'routes[0].splt: Unexpected property',
    'server.extra: Unexpected property',
    'server.port: Expected integer',
    'surprise: Unexpected property',
  ]);
});

t.test('a field that is false or an object: the object\'s own problem is named, not the union; a value of neither type says so', async (t) => {
  const repository = t.testdir();
  const issues = issuesOf(() => validateConfig({
    models: [
      { name: 'a', path: 'a.onnx', batching: { maxBatchSize: 'x' } },
      { name: 'b', path: 'b.onnx', warmup: { batchSizes: [0] } },
      { name: 'c', path: 'c.onnx', batching: 'yes' },
    ],
  }, repository, {}));
  t.same(issues, [
    'models[0].batching.maxBatchSize: Expected integer',
    'models[1].warmup.batchSizes[0]: Expected integer to be greater or equal to 1',
    'models[2].batching: Expected union value',
  ]);
});

t.test('routes: keys, kinds, weights, targets and cycles', async (t) => {
  const repository = t.testdir();
  const models = [{ name: 'a', path: 'a.onnx' }, { name: 'b', path: 'b.onnx' }];
  const split = (...targets: string[]) => ({ variants: targets.map((target) => ({ target, weight: 1 })) });
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', models, routes: [
    { key: 'a', split: split('b') },
    { key: 'r1', split: split('a', 'nope') },
    { key: 'r1', split: split('a') },
    { key: 'r2' },
    { key: 'r3', split: { variants: [{ target: 'a', weight: 0 }], shadow: { target: 'ghost', percent: 5 } } },
  ] }, repository, {})), [
    "routes[0].key: 'a' is already a model key",
    "routes[2].key: 'r1' is already the key of another route",
    'routes[3]: a route has exactly one of split, sequence, ensemble, switch, cascade',
    'routes[4].split.variants: at least one weight must be positive',
    "routes[1].split.variants[1].target: unknown key 'nope'",
    "routes[4].split.shadow.target: unknown key 'ghost'",
  ]);
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', models, routes: [
    { key: 'x', split: split('a', 'y') }, { key: 'y', split: split('z') }, { key: 'z', split: split('b', 'x') },
  ] }, repository, {})), ['routes[0]: route cycle: x -> y -> z -> x']);
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', models, routes: [{ key: 'self', split: { ...split('a'), shadow: { target: 'self', percent: 1 } } }] }, repository, {})),
    ['routes[0]: route cycle: self -> self']);
  const deep = Array.from({ length: 9 }, (_, i) => ({ key: `d${i}`, split: split(i === 8 ? 'a' : `d${i + 1}`) }));
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', models, routes: deep }, repository, {})), ['routes[0]: routes nest 9 deep; at most 8']);
  t.equal(validateConfig({ modelRepository: '.', models, routes: deep.slice(1) }, repository, {}).routes.length, 8);
});

t.test('environment variables', async (t) => {
  const repository = t.testdir();
  const config = validateConfig({ modelRepository: '.', admin: { token: '${TOKEN}' }, server: { host: '${HOST:-0.0.0.0}' } }, repository, { TOKEN: 's3cret-s3cret' });
  t.equal(config.admin.token, 's3cret-s3cret');
  t.equal(config.server.host, '0.0.0.0');
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', admin: { token: '${MISSING}' } }, repository, {})),
    ['admin.token: environment variable MISSING is not set (write ${MISSING:-} to allow that)']);
  t.equal(validateConfig({ modelRepository: '.', admin: { token: '${MISSING:-}' } }, repository, {}).admin.token, undefined, 'empty means generate one');
});

t.test('a key names one thing: duplicates are errors', async (t) => {
  const repository = t.testdir();
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', models: [
    { name: 'a', path: 'a.onnx', keys: ['shared', 'a'] },
    { name: 'b', path: 'b.onnx', keys: ['b', 'shared'] },
    { name: 'a', path: 'c.onnx', keys: ['c'] },
  ] }, repository, {})), [
    "models[1].keys[1]: key 'shared' is already served by models[0] ('a')",
    "models[2].name: 'a' is already the name of models[0]",
  ]);
});

t.test('model paths stay inside the repository', async (t) => {
  const root = t.testdir({ repo: { 'ok.onnx': '', inner: { 'm.onnx': '' } }, 'secret.onnx': 'outside' });
  const repository = path.join(root, 'repo');
  symlinkSync(path.join(root, 'secret.onnx'), path.join(repository, 'escape.onnx'));
  symlinkSync(path.join(repository, 'inner'), path.join(repository, 'alias'));
  symlinkSync(root, path.join(repository, 'up'));
  const models = [
    { name: 'dotdot', path: '../secret.onnx' },
    { name: 'nested-dotdot', path: 'inner/../../secret.onnx' },
    { name: 'absolute', path: path.join(root, 'secret.onnx') },
    { name: 'symlink-out', path: 'escape.onnx' },
    { name: 'dir-symlink-out', path: 'up/secret.onnx' },
    { name: 'backslash', path: '..\\secret.onnx' },
    { name: 'nul', path: 'ok.onnx\u0000' },
  ];
  const issues = issuesOf(() => validateConfig({ modelRepository: repository, models }, root, {}));
  t.same(issues, [
    "models[0].path: path '../secret.onnx' must not contain '..'",
    "models[1].path: path 'inner/../../secret.onnx' must not contain '..'",
    'models[2].path: path must be relative to modelRepository, not absolute',
    "models[3].path: path 'escape.onnx' resolves outside modelRepository",
    "models[4].path: path 'up/secret.onnx' resolves outside modelRepository",
    "models[5].path: path '..\\\\secret.onnx' contains a forbidden character",
    "models[6].path: path 'ok.onnx\\u0000' contains a forbidden character",
  ]);
  const fine = validateConfig({ modelRepository: repository, models: [
    { name: 'ok', path: 'ok.onnx' }, { name: 'via-link', path: 'alias/m.onnx' }, { name: 'not-yet', path: 'later/m.onnx' },
  ] }, root, {});
  t.same(fine.models.map((model) => path.relative(fine.modelRepository, model.file)), ['ok.onnx', path.join('inner', 'm.onnx'), path.join('later', 'm.onnx')]);
});

t.test('the model repository must be a directory', async (t) => {
  const root = t.testdir({ file: 'x' });
  t.same(issuesOf(() => validateConfig({ modelRepository: 'nope' }, root, {})), ["modelRepository: 'nope' does not exist"]);
  t.same(issuesOf(() => validateConfig({ modelRepository: 'file' }, root, {})), ["modelRepository: 'file' is not a directory"]);
});

t.test('pinned models must leave room under the cap', async (t) => {
  const repository = t.testdir();
  const models = [{ name: 'a', path: 'a', pinned: true }, { name: 'b', path: 'b', pinned: true }, { name: 'c', path: 'c' }];
  t.same(issuesOf(() => validateConfig({ modelRepository: '.', registry: { maxResidentModels: 2 }, models }, repository, {})),
    ['registry.maxResidentModels: 2 leaves no room for unpinned models beside 2 pinned']);
  t.ok(validateConfig({ modelRepository: '.', registry: { maxResidentModels: 3 }, models }, repository, {}));
});

t.test('files: YAML, JSON by extension, and parse errors', async (t) => {
  const root = t.testdir({ models: {} });
  writeFileSync(path.join(root, 'g.yaml'), 'modelRepository: models\nserver:\n  port: 9000\n');
  writeFileSync(path.join(root, 'g.json'), JSON.stringify({ modelRepository: 'models', server: { port: 9001 } }));
  writeFileSync(path.join(root, 'bad.yaml'), 'server: [\n');
  writeFileSync(path.join(root, 'dup.yaml'), 'server: {}\nserver: {}\n');
  mkdirSync(path.join(root, 'sub'));
  t.equal(loadConfigFile(path.join(root, 'g.yaml'), {}).server.port, 9000);
  t.equal(loadConfigFile(path.join(root, 'g.json'), {}).server.port, 9001);
  t.equal(loadConfigFile(path.join(root, 'g.yaml'), {}).modelRepository, path.join(root, 'models'), 'relative to the config file');
  t.match(issuesOf(() => loadConfigFile(path.join(root, 'bad.yaml'), {}))[0], /^cannot parse bad.yaml: /);
  t.match(issuesOf(() => loadConfigFile(path.join(root, 'dup.yaml'), {}))[0], /Map keys must be unique/);
  t.match(issuesOf(() => loadConfigFile(path.join(root, 'none.yaml'), {}))[0], /cannot read .*none.yaml: ENOENT/);
});

t.test('deploy/kubernetes/tls.yaml: its configuration validates, and the Deployment mounts what it names', async (t) => {
  const manifests = parseAllDocuments(readFileSync(path.resolve(import.meta.dirname, '../../deploy/kubernetes/tls.yaml'), 'utf8')).map((document) => document.toJS()) as Array<Record<string, any>>;
  t.same(manifests.map((manifest) => manifest.kind), ['Secret', 'Secret', 'ConfigMap', 'Deployment']);
  const text = manifests[2]?.data['cluster-tls.yaml'] as string;
  const pod = manifests[3]?.spec.template.spec;
  const gateway = pod.containers[0];
  // Laid out as in the container: /app/config-tls/cluster-tls.yaml, /app/models, /app/certs.
  const app = t.testdir({ 'config-tls': {}, models: {}, certs: { 'tls.crt': 'certificate', 'tls.key': 'key' } });
  const document = parseYaml(text.replaceAll('/app/', `${app}/`)) as Record<string, unknown>;
  const env = Object.fromEntries(gateway.env.map((entry: { name: string; value?: string }) => [entry.name, entry.value ?? 'from-a-secret']));
  const config = validateConfig(document, path.join(app, 'config-tls'), env);
  t.equal(config.tls?.cert, path.join(app, 'certs/tls.crt'));
  t.same(config.tenants?.map((tenant) => tenant.name), ['team-a']);
  t.match(config.tenants?.[0]?.apiKeys[0], /^sha256:[0-9a-f]{64}$/, 'TEAM_A_KEY from the Secret, hashed');
  t.ok(gateway.volumeMounts.some((mount: { mountPath: string; name: string }) => mount.mountPath === '/app/certs' && pod.volumes.find((volume: { name: string }) => volume.name === mount.name)?.secret.secretName === 'modelgate-tls'), 'the TLS Secret is mounted where server.tls reads it');
  t.equal(gateway.args[1], 'config-tls/cluster-tls.yaml');
  t.equal(gateway.readinessProbe.httpGet.scheme, 'HTTPS');
  t.equal(pod.shareProcessNamespace, true, 'the reloader can signal the gateway');
  t.match(pod.containers[1].command[2], /pkill -HUP -f 'dist\/cli\.js serve'/);
});
