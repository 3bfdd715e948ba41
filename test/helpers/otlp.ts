/**
 * An OTLP/HTTP trace receiver for tests: a real HTTP server on a loopback port that decodes
 * what an exporter sends to /v1/traces, protobuf (by a decoder of its own, written from the
 * opentelemetry-proto messages, so the exporter's encoder is not checked against itself) or JSON.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eventually } from './programs.ts';

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined;

export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly links: ReadonlyArray<{ traceId: string; spanId: string }>;
  /** OTLP's StatusCode: 0 unset, 1 ok, 2 error. */
  readonly status: { code: number; message: string };
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received, by content type. */
  readonly requests: string[] = [];
  #server: Server;
  #port = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Starts on a free loopback port (or `port`, to come back on the one a test closed). */
  static async start(port = 0): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(createServer());
    await receiver.#listen(port);
    return receiver;
  }

  get port(): number {
    return this.#port;
  }

  /** The base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Waits until `check` holds of the spans received (at most `timeoutMs`). */
  async waitFor(what: string, check: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<void> {
    await eventually(what, () => check(this.spans), timeoutMs, 10);
  }

  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.traceId === traceId);
  }

  named(name: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.name === name);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }

  /** Listens again on the same port after close (a collector coming back). */
  async restart(): Promise<void> {
    this.#server = createServer();
    await this.#listen(this.#port);
  }

  async #listen(port: number): Promise<void> {
    this.#server.on('request', (request, response) => {
      void body(request).then((bytes) => {
        const type = request.headers['content-type'] ?? '';
        this.requests.push(type);
        if (request.url !== '/v1/traces') {
          response.writeHead(404).end();
          return;
        }
        this.spans.push(...(type.includes('json') ? fromJson(JSON.parse(bytes.toString('utf8'))) : fromProtobuf(bytes)));
        response.writeHead(200, { 'content-type': type.includes('json') ? 'application/json' : 'application/x-protobuf' }).end(type.includes('json') ? '{}' : undefined);
      });
    });
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }
}

function body(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

// OTLP/JSON: ids as hex, 64-bit integers as decimal strings, enums as numbers.
interface JsonValue { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number; arrayValue?: { values?: JsonValue[] } }
interface JsonKeyValue { key: string; value: JsonValue }
interface JsonSpan {
  traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number;
  startTimeUnixNano: string; endTimeUnixNano: string; attributes?: JsonKeyValue[];
  links?: Array<{ traceId: string; spanId: string }>; status?: { code?: number; message?: string };
}
interface JsonRequest { resourceSpans: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans: Array<{ spans: JsonSpan[] }> }> }

function jsonValue(value: JsonValue): AttributeValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key, jsonValue(value)]));
}

function fromJson(request: JsonRequest): ReceivedSpan[] {
  return request.resourceSpans.flatMap((resource) => {
    const service = String(jsonAttributes(resource.resource?.attributes)['service.name'] ?? '');
    return resource.scopeSpans.flatMap((scope) => scope.spans.map((span): ReceivedSpan => ({
      service,
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId ?? '',
      name: span.name,
      kind: span.kind,
      startNs: BigInt(span.startTimeUnixNano),
      endNs: BigInt(span.endTimeUnixNano),
      attributes: jsonAttributes(span.attributes),
      links: (span.links ?? []).map((link) => ({ traceId: link.traceId, spanId: link.spanId })),
      status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
    })));
  });
}

/** One protobuf field: its number and its value (a varint, fixed bits, or bytes). */
interface Field { number: number; varint?: bigint; bytes?: Buffer; fixed?: bigint }

function* fields(buffer: Buffer): Generator<Field> {
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buffer[at++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < buffer.length) {
    const key = Number(varint());
    const number = key >>> 3;
    switch (key & 7) {
      case 0: yield { number, varint: varint() }; break;
      case 1: yield { number, fixed: buffer.readBigUInt64LE(at) }; at += 8; break;
      case 2: {
        const length = Number(varint());
        yield { number, bytes: buffer.subarray(at, at + length) };
        at += length;
        break;
      }
      case 5: yield { number, fixed: BigInt(buffer.readUInt32LE(at)) }; at += 4; break;
      default: throw new Error(`protobuf wire type ${key & 7} at ${at}`);
    }
  }
}

function pbValue(buffer: Buffer): AttributeValue {
  for (const field of fields(buffer)) {
    if (field.number === 1) return (field.bytes as Buffer).toString('utf8');
    if (field.number === 2) return field.varint === 1n;
    if (field.number === 3) return Number(BigInt.asIntN(64, field.varint as bigint));
    if (field.number === 4) return (field.fixed === undefined ? 0 : Buffer.from(new BigUint64Array([field.fixed]).buffer).readDoubleLE(0));
    if (field.number === 5) return [...fields(field.bytes as Buffer)].filter((item) => item.number === 1).map((item) => pbValue(item.bytes as Buffer));
  }
  return undefined;
}

function pbKeyValue(buffer: Buffer): [string, AttributeValue] {
  let key = '';
  let value: AttributeValue;
  for (const field of fields(buffer)) {
    if (field.number === 1) key = (field.bytes as Buffer).toString('utf8');
    if (field.number === 2) value = pbValue(field.bytes as Buffer);
  }
  return [key, value];
}

function pbSpan(buffer: Buffer, service: string): ReceivedSpan {
  const span = { service, traceId: '', spanId: '', parentSpanId: '', name: '', kind: 0, startNs: 0n, endNs: 0n, attributes: {} as Record<string, AttributeValue>, links: [] as Array<{ traceId: string; spanId: string }>, status: { code: 0, message: '' } };
  for (const field of fields(buffer)) {
    switch (field.number) {
      case 1: span.traceId = (field.bytes as Buffer).toString('hex'); break;
      case 2: span.spanId = (field.bytes as Buffer).toString('hex'); break;
      case 4: span.parentSpanId = (field.bytes as Buffer).toString('hex'); break;
      case 5: span.name = (field.bytes as Buffer).toString('utf8'); break;
      case 6: span.kind = Number(field.varint); break;
      case 7: span.startNs = field.fixed as bigint; break;
      case 8: span.endNs = field.fixed as bigint; break;
      case 9: {
        const [key, value] = pbKeyValue(field.bytes as Buffer);
        span.attributes[key] = value;
        break;
      }
      case 13: {
        const link = { traceId: '', spanId: '' };
        for (const part of fields(field.bytes as Buffer)) {
          if (part.number === 1) link.traceId = (part.bytes as Buffer).toString('hex');
          if (part.number === 2) link.spanId = (part.bytes as Buffer).toString('hex');
        }
        span.links.push(link);
        break;
      }
      case 15:
        for (const part of fields(field.bytes as Buffer)) {
          if (part.number === 2) span.status.message = (part.bytes as Buffer).toString('utf8');
          if (part.number === 3) span.status.code = Number(part.varint);
        }
        break;
      default: break;
    }
  }
  return span;
}

/** ExportTraceServiceRequest: resource_spans (1) { resource (1) { attributes (1) }, scope_spans (2) { spans (2) } }. */
function fromProtobuf(buffer: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of fields(buffer)) {
    if (resourceSpans.number !== 1) continue;
    let service = '';
    const scopes: Buffer[] = [];
    for (const part of fields(resourceSpans.bytes as Buffer)) {
      if (part.number === 1) {
        for (const attribute of fields(part.bytes as Buffer)) {
          if (attribute.number !== 1) continue;
          const [key, value] = pbKeyValue(attribute.bytes as Buffer);
          if (key === 'service.name') service = String(value);
        }
      }
      if (part.number === 2) scopes.push(part.bytes as Buffer);
    }
    for (const scope of scopes) {
      for (const part of fields(scope)) if (part.number === 2) spans.push(pbSpan(part.bytes as Buffer, service));
    }
  }
  return spans;
}
