/**
 * The tracing section, with OpenTelemetry's standard environment variables filling what the
 * file leaves out (as the SDKs take them: what the program sets wins over the environment).
 */
import type { Static } from '@sinclair/typebox';
import { TRACING_PROTOCOLS, type TracingConfig, type TracingSchema } from './schema.ts';

const DEFAULT_RATIO = 0.01;
const DEFAULT_EXPORT_DELAY_MS = 5000;
const DEFAULT_EXPORT_TIMEOUT_MS = 10_000;
const TRACES_PATH = '/v1/traces';

/** Tracing as the file and the environment set it; undefined when neither names a collector (or OTEL_SDK_DISABLED is true). */
export function resolveTracing(section: Static<typeof TracingSchema> | undefined, env: NodeJS.ProcessEnv, issues: string[]): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const fromEnv = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? withTracesPath(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const endpoint = section?.otlpEndpoint === undefined ? fromEnv : withTracesPath(section.otlpEndpoint);
  if (endpoint === undefined || endpoint === '') {
    if (section !== undefined) issues.push('tracing.otlpEndpoint: the collector\'s URL is needed (or OTEL_EXPORTER_OTLP_ENDPOINT)');
    return undefined;
  }
  const where = section?.otlpEndpoint === undefined ? 'OTEL_EXPORTER_OTLP_ENDPOINT' : 'tracing.otlpEndpoint';
  if (!/^https?:\/\/[^\s]+$/.test(endpoint)) {
    issues.push(`${where}: must be an http:// or https:// URL`);
    return undefined;
  }
  const protocol = section?.protocol ?? env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (!(TRACING_PROTOCOLS as readonly string[]).includes(protocol)) {
    issues.push(`OTEL_EXPORTER_OTLP_PROTOCOL: must be ${TRACING_PROTOCOLS.join(' or ')} (gRPC export is not built in), not '${protocol}'`);
    return undefined;
  }
  const sampleRatio = section?.sampleRatio ?? numberFrom(env.OTEL_TRACES_SAMPLER_ARG, 'OTEL_TRACES_SAMPLER_ARG', 0, 1, issues) ?? DEFAULT_RATIO;
  const exportDelayMs = numberFrom(env.OTEL_BSP_SCHEDULE_DELAY, 'OTEL_BSP_SCHEDULE_DELAY', 0, 600_000, issues) ?? DEFAULT_EXPORT_DELAY_MS;
  const exportTimeoutMs = numberFrom(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? env.OTEL_EXPORTER_OTLP_TIMEOUT, 'OTEL_EXPORTER_OTLP_TIMEOUT', 1, 600_000, issues) ?? DEFAULT_EXPORT_TIMEOUT_MS;
  return {
    url: endpoint,
    protocol: protocol as TracingConfig['protocol'],
    sampleRatio,
    serviceName: section?.serviceName ?? (env.OTEL_SERVICE_NAME?.trim() || 'modelgate'),
    headers: section?.headers ?? headersFrom(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS),
    exportDelayMs,
    exportTimeoutMs,
  };
}

/** A base endpoint gets the traces path (as OTEL_EXPORTER_OTLP_ENDPOINT does); one that ends in it stays. */
function withTracesPath(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined || endpoint.trim() === '') return undefined;
  const trimmed = endpoint.trim().replace(/\/+$/, '');
  return trimmed.endsWith(TRACES_PATH) ? trimmed : `${trimmed}${TRACES_PATH}`;
}

function numberFrom(text: string | undefined, name: string, min: number, max: number, issues: string[]): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) {
    issues.push(`${name}: must be a number from ${min} to ${max}, not '${text}'`);
    return undefined;
  }
  return value;
}

/** OTEL_EXPORTER_OTLP_HEADERS: name=value pairs, comma-separated, values URL-encoded. */
function headersFrom(text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of (text ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const name = pair.slice(0, at).trim();
    try {
      headers[name] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      headers[name] = pair.slice(at + 1).trim();
    }
  }
  return headers;
}
