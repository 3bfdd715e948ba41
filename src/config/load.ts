/**
 * Reads, validates and freezes the configuration, once, at start-up. Every
 * problem is collected with its path and reported in one ConfigError, as
 * fastify validates its own options.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.ts';
import { checkRoutes } from './route-graph.ts';
import { resolveInRepository } from './paths.ts';
import { displayPath, schemaErrors } from './pointer.ts';
import { GatewayConfigSchema, ModelSchema, withDefaults, type AdminToken, type GatewayConfig, type ModelConfig, type RemoteModelConfig, type TenantSpec } from './schema.ts';
import { configuredDigest } from './secrets.ts';
import { checkTenants } from './tenants.ts';
import { resolveTracing } from './tracing.ts';
import type { Static } from '@sinclair/typebox';

type RawConfig = Static<typeof GatewayConfigSchema>;

const checker = TypeCompiler.Compile(GatewayConfigSchema);

/** Reads a YAML (or, for `.json` files, JSON) configuration file. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`]);
  }
  let document: unknown;
  try {
    document = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true });
  } catch (error) {
    throw new ConfigError([`cannot parse ${path.basename(file)}: ${(error as Error).message}`]);
  }
  const absolute = path.resolve(file);
  const stateFile = path.join(path.dirname(absolute), `${path.basename(absolute).replace(/\.(ya?ml|json)$/, '')}.state.json`);
  return validateConfig(document ?? {}, path.dirname(absolute), env, stateFile);
}

/**
 * Validates a parsed configuration document. `baseDir` anchors a relative
 * modelRepository and stateFile; `${VAR}` and `${VAR:-default}` in strings come
 * from `env`. `stateFile` is the default state file (none: live changes are not kept).
 */
export function validateConfig(document: unknown, baseDir: string, env: NodeJS.ProcessEnv = process.env, stateFile?: string): GatewayConfig {
  const issues: string[] = [];
  const substituted = substituteEnv(document, env, '', issues);
  const defaulted = withDefaults(GatewayConfigSchema, substituted);
  for (const error of schemaErrors(checker.Errors(defaulted))) {
    issues.push(`${displayPath(error.path)}: ${error.message}`);
  }
  if (issues.length > 0) throw new ConfigError(dedupe(issues));
  const raw = defaulted as RawConfig;

  const repository = resolveDirectory('modelRepository', raw.modelRepository, baseDir, issues);
  const plugins = raw.plugins === undefined ? undefined : resolveDirectory('plugins', raw.plugins, baseDir, issues);
  const models: ModelConfig[] = [];
  const remotes: RemoteModelConfig[] = [];
  raw.models.forEach((model, index) => {
    const keys = model.keys ?? [model.name];
    if ((model.path === undefined) === (model.remote === undefined)) {
      issues.push(`models[${index}]: exactly one of path (an ONNX file) or remote (another V2 server)`);
      return;
    }
    if (model.remote !== undefined) {
      if (!isRemoteUrl(model.remote.url)) issues.push(`models[${index}].remote.url: must be an http://, https://, grpc:// or grpcs:// URL`);
      remotes.push({ name: model.name, keys, remote: model.remote });
      return;
    }
    const modelPath = model.path as string;
    let file = '';
    if (repository !== undefined) {
      try {
        file = resolveInRepository(repository, modelPath);
      } catch (error) {
        issues.push(`models[${index}].path: ${(error as Error).message}`);
      }
    }
    models.push({ name: model.name, path: modelPath, file, keys, pinned: model.pinned, session: model.session, batching: model.batching, maxQueueSize: model.maxQueueSize, instances: model.instances, runIn: model.runIn, warmup: model.warmup });
  });
  checkNamesAndKeys([...models, ...remotes], issues);
  checkCaps(raw, issues);
  const modelKeys = new Set([...models, ...remotes].flatMap((model) => model.keys));
  const pluginNames = plugins === undefined ? undefined
    : new Set(readdirSync(plugins).filter((file) => /\.m?js$/.test(file)).map((file) => file.replace(/\.m?js$/, '')));
  for (const issue of checkRoutes(raw.routes, modelKeys, pluginNames)) {
    issues.push(`routes[${issue.index}]${issue.path === '' ? '' : `.${issue.path}`}: ${issue.message}`);
  }
  const redisUrl = raw.store.redis?.url;
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) issues.push('store.redis.url: must be a redis:// or rediss:// URL');
  const written = document as { tenants?: Array<{ apiKeys?: unknown[] }>; admin?: { tokens?: Array<{ token?: unknown }> } } | null;
  const unchecked = issues.length;
  const tenants = raw.tenants?.map((tenant, index): TenantSpec => ({
    ...tenant,
    apiKeys: tenant.apiKeys.flatMap((key, keyIndex) => configuredDigest(written?.tenants?.[index]?.apiKeys?.[keyIndex], key, `tenants[${index}].apiKeys[${keyIndex}]`, issues) ?? []),
  }));
  // A key refused above is missing from its tenant: the checks across tenants would only echo it.
  if (issues.length === unchecked) for (const issue of checkTenants(tenants ?? [])) issues.push(`tenants[${issue.index}].${issue.path}: ${issue.message}`);
  const tokens = (raw.admin.tokens ?? []).flatMap((entry, index): AdminToken[] => {
    const digest = configuredDigest(written?.admin?.tokens?.[index]?.token, entry.token, `admin.tokens[${index}].token`, issues);
    return digest === undefined ? [] : [{ digest, role: entry.role }];
  });
  const tls = raw.server.tls === undefined ? undefined : {
    ...raw.server.tls,
    cert: readableFile('server.tls.cert', raw.server.tls.cert, baseDir, issues),
    key: readableFile('server.tls.key', raw.server.tls.key, baseDir, issues),
    ca: raw.server.tls.ca === undefined ? undefined : readableFile('server.tls.ca', raw.server.tls.ca, baseDir, issues),
  };
  if (tls?.clientCerts !== undefined && tls.ca === undefined) issues.push('server.tls.clientCerts: needs server.tls.ca, the authorities that sign client certificates');
  if (tenants?.some((tenant) => tenant.certSubject !== undefined) === true && tls?.clientCerts === undefined) {
    issues.push('tenants: a certSubject needs server.tls with clientCerts (request or require)');
  }
  const tracing = resolveTracing(raw.tracing, env, issues);
  if (issues.length > 0) throw new ConfigError(issues);

  const token = raw.admin.token === undefined || raw.admin.token === '' ? undefined : raw.admin.token;
  return deepFreeze({
    server: raw.server,
    grpc: raw.grpc,
    executor: raw.executor,
    admin: { token, tokens, maxModelBytes: raw.admin.maxModelBytes },
    tenants,
    tls,
    modelRepository: repository as string,
    registry: raw.registry,
    models,
    remotes,
    routes: raw.routes,
    store: raw.store,
    tracing,
    stateFile: raw.stateFile === undefined ? stateFile : path.resolve(baseDir, raw.stateFile),
    plugins,
  });
}

const modelChecker = TypeCompiler.Compile(ModelSchema);

/**
 * Validates one model entry as the configuration file's `models[]` takes it
 * (defaults applied, path resolved inside the repository), for live changes.
 * Returns the model, or every problem with its path.
 */
export function validateModel(document: unknown, repository: string):
  | { model: ModelConfig; remote?: undefined; issues?: undefined }
  | { remote: RemoteModelConfig; model?: undefined; issues?: undefined }
  | { model?: undefined; remote?: undefined; issues: string[] } {
  const defaulted = withDefaults(ModelSchema, document);
  const issues = schemaErrors(modelChecker.Errors(defaulted)).map((error) => `${displayPath(error.path)}: ${error.message}`);
  if (issues.length > 0) return { issues: dedupe(issues) };
  const raw = defaulted as Static<typeof ModelSchema>;
  if ((raw.path === undefined) === (raw.remote === undefined)) return { issues: ['exactly one of path (an ONNX file) or remote (another V2 server)'] };
  if (raw.remote !== undefined) {
    if (!isRemoteUrl(raw.remote.url)) return { issues: ['remote.url: must be an http://, https://, grpc:// or grpcs:// URL'] };
    return { remote: deepFreeze({ name: raw.name, keys: raw.keys ?? [raw.name], remote: raw.remote }) };
  }
  if (raw.path === undefined) return { issues: ['path: required'] };
  let file: string;
  try {
    file = resolveInRepository(repository, raw.path);
  } catch (error) {
    return { issues: [`path: ${(error as Error).message}`] };
  }
  return { model: deepFreeze({ name: raw.name, path: raw.path, file, keys: raw.keys ?? [raw.name], pinned: raw.pinned, session: raw.session, batching: raw.batching, maxQueueSize: raw.maxQueueSize, instances: raw.instances, runIn: raw.runIn, warmup: raw.warmup }) };
}

function isRemoteUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return ['http:', 'https:', 'grpc:', 'grpcs:'].includes(protocol);
  } catch {
    return false;
  }
}

function resolveDirectory(field: string, configured: string, baseDir: string, issues: string[]): string | undefined {
  const directory = path.resolve(baseDir, configured);
  try {
    if (!statSync(directory).isDirectory()) {
      issues.push(`${field}: '${configured}' is not a directory`);
      return undefined;
    }
    return realpathSync(directory);
  } catch {
    issues.push(`${field}: '${configured}' does not exist`);
    return undefined;
  }
}

function checkNamesAndKeys(models: ReadonlyArray<{ name: string; keys: readonly string[] }>, issues: string[]): void {
  const names = new Map<string, number>();
  const keys = new Map<string, string>();
  models.forEach((model, index) => {
    const first = names.get(model.name);
    if (first !== undefined) issues.push(`models[${index}].name: '${model.name}' is already the name of models[${first}]`);
    else names.set(model.name, index);
    model.keys.forEach((key, keyIndex) => {
      const owner = keys.get(key);
      if (owner !== undefined) issues.push(`models[${index}].keys[${keyIndex}]: key '${key}' is already served by ${owner}`);
      else keys.set(key, `models[${index}] ('${model.name}')`);
    });
  });
}

function checkCaps(raw: RawConfig, issues: string[]): void {
  const cap = raw.registry.maxResidentModels;
  if (cap === undefined) return;
  // Remote models hold no slot.
  const local = raw.models.filter((model) => model.remote === undefined);
  const pinned = local.filter((model) => model.pinned).length;
  const unpinned = local.length - pinned;
  if (pinned > cap || (pinned === cap && unpinned > 0)) {
    issues.push(`registry.maxResidentModels: ${cap} leaves no room for unpinned models beside ${pinned} pinned`);
  }
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, at: string, issues: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REFERENCE, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined) return found;
      if (fallback !== undefined) return fallback;
      issues.push(`${displayPath(at)}: environment variable ${name} is not set (write \${${name}:-} to allow that)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substituteEnv(item, env, `${at}/${index}`, issues));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substituteEnv(item, env, `${at}/${key}`, issues)]));
  }
  return value;
}

/** The absolute path of a file the gateway reads (a certificate), checked readable now; the file's name only in messages. */
function readableFile(field: string, configured: string, baseDir: string, issues: string[]): string {
  const absolute = path.resolve(baseDir, configured);
  try {
    readFileSync(absolute);
  } catch (error) {
    issues.push(`${field}: '${configured}' cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return absolute;
}

function dedupe(items: readonly string[]): string[] {
  return [...new Set(items)];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
