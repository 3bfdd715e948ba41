/**
 * OpenTelemetry tracing: the SDK's tracer provider, a batch span processor and an OTLP/HTTP
 * exporter (protobuf or JSON), parent-based sampling, W3C trace-context propagation. The
 * exporter works beside requests, never in front of them: spans it cannot send are dropped
 * and counted, and an outage is logged once, when it begins, and once when it ends.
 */
import { randomBytes } from 'node:crypto';
import {
  createNoopMeter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags,
  type Attributes, type Context, type HrTime, type Link, type Meter, type MeterProvider, type Span, type TextMapGetter, type Tracer,
} from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor, ParentBasedSampler, SamplingDecision, TracerProvider,
  type ReadableSpan, type Sampler, type SamplingResult, type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { TracingConfig } from '../config/schema.ts';
import type { SpanAttributes, SpanOptions, Trace } from '../trace.ts';

export type { Trace } from '../trace.ts';

/** What the exporter reports, for the log and the dropped-spans counter. */
export interface TracingEvents {
  /** Spans that will never reach the collector (export failed, the queue was full). */
  dropped(count: number): void;
  /** The first failed export after a good one (or the start). */
  outage(reason: string): void;
  /** The first good export after an outage, with the spans dropped meanwhile. */
  recovered(dropped: number): void;
}

/** Spans kept for export at most; past it, new spans are dropped (and counted), never held in memory. */
export const MAX_QUEUED_SPANS = 4096;

const propagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<(name: string) => string | undefined> = {
  get: (carrier, key) => carrier(key),
  keys: () => ['traceparent', 'tracestate'],
};

export class Tracing {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #ratio: number;

  constructor(config: TracingConfig, events: TracingEvents) {
    const options = { url: config.url, headers: { ...config.headers }, timeoutMillis: config.exportTimeoutMs };
    const inner = config.protocol === 'http/json' ? new JsonExporter(options) : new ProtobufExporter(options);
    this.#ratio = config.sampleRatio;
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      // Requests' roots are sampled before the SDK sees them (request()); the other roots are shadow copies.
      sampler: new ParentBasedSampler({ root: new LinkedSampler() }),
      spanProcessors: [new BatchSpanProcessor({
        exporter: new WatchedExporter(inner, events),
        maxQueueSize: MAX_QUEUED_SPANS,
        scheduledDelayMillis: config.exportDelayMs,
        // The exporter gives up first (its retries stop within its timeout) and says why.
        exportTimeoutMillis: config.exportTimeoutMs + 1000,
        // The processor's own count of spans it could not keep: the queue-full drops.
        selfObsMeterProvider: queueFullMeter(events),
      })],
    });
    this.#tracer = this.#provider.getTracer('modelgate');
  }

  /**
   * Opens a request's server span (`modelgate.infer`), continuing the caller's `traceparent`
   * (read with `header`) when it sends one: the span is its child, and a sampled parent is
   * recorded whatever the ratio says.
   */
  request(header: (name: string) => string | undefined, attributes: () => SpanAttributes, startTime?: number): Trace {
    const parent = header('traceparent') === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, header, headerGetter);
    // A root (no parent, or one that is not valid W3C) left out by the ratio costs no span, no ids, no attributes: most requests, at 1%.
    if (trace.getSpanContext(parent) === undefined && !(Math.random() < this.#ratio)) return new Unsampled();
    return SdkTrace.open(this.#tracer, 'modelgate.infer', parent, SpanKind.SERVER, attributes(), { startTime });
  }

  /** Sends what is queued, within `timeoutMs`; spans still unsent then are lost. */
  async close(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
    await Promise.race([this.#provider.shutdown().catch(() => undefined), late]);
    clearTimeout(timer);
  }
}

/** One span, behind the interface the layers below the transports know. */
class SdkTrace implements Trace {
  readonly #tracer: Tracer;
  readonly #span: Span;
  readonly #context: Context;
  readonly recording: boolean;
  #ended = false;

  private constructor(tracer: Tracer, span: Span, context: Context) {
    this.#tracer = tracer;
    this.#span = span;
    this.#context = context;
    this.recording = span.isRecording();
  }

  static open(tracer: Tracer, name: string, parent: Context, kind: SpanKind, attributes: SpanAttributes | undefined, options: SpanOptions = {}, links?: Link[]): SdkTrace {
    const span = tracer.startSpan(name, {
      kind,
      ...(attributes === undefined ? {} : { attributes: attributes as Attributes }),
      startTime: wallTime(options.startTime ?? performance.now()),
      ...(links === undefined ? {} : { links }),
    }, parent);
    return new SdkTrace(tracer, span, trace.setSpan(parent, span));
  }

  get traceId(): string {
    return this.#span.spanContext().traceId;
  }

  child(name: string, attributes?: SpanAttributes, options: SpanOptions = {}): Trace {
    if (!this.recording) return this;
    const links = options.links?.map(linkTo);
    return SdkTrace.open(this.#tracer, name, this.#context, options.kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes, options, links);
  }

  detached(name: string, attributes?: SpanAttributes): Trace {
    // A root of its own, linked to this span: LinkedOrRatioSampler records it when this one is.
    return SdkTrace.open(this.#tracer, name, ROOT_CONTEXT, SpanKind.INTERNAL, attributes, {}, [{ context: this.#span.spanContext() }]);
  }

  set(attributes: SpanAttributes): void {
    if (this.recording) this.#span.setAttributes(attributes as Attributes);
  }

  link(other: Trace): void {
    if (this.recording) this.#span.addLink(linkTo(other));
  }

  fail(message: string): void {
    this.#span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(endTime?: number): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#span.end(wallTime(endTime ?? performance.now()));
  }

  inject(headers: Record<string, string>): void {
    propagator.inject(this.#context, headers, { set: (carrier, key, value) => { carrier[key] = value; } });
  }

  get spanContext() {
    return this.#span.spanContext();
  }
}

/** performance.now() and Date.now() apart, measured again every ANCHOR_MS so the wall clock's corrections are followed. */
let anchor = { offset: 0, at: -Infinity };
const ANCHOR_MS = 10_000;

/**
 * A performance.now() time as wall-clock time. One offset for every span (the SDK, given
 * numbers, works one out per span from Date.now(), whose milliseconds then skew spans of
 * the same request against each other by up to one).
 */
function wallTime(time: number): HrTime {
  const now = performance.now();
  if (now - anchor.at > ANCHOR_MS) anchor = { offset: Date.now() - (performance.timeOrigin + now), at: now };
  const millis = performance.timeOrigin + time + anchor.offset;
  const seconds = Math.floor(millis / 1000);
  return [seconds, Math.min(999_999_999, Math.round((millis - seconds * 1000) * 1e6))];
}

function linkTo(other: Trace): Link {
  if (!(other instanceof SdkTrace)) throw new TypeError('a link to a span of another tracer');
  return { context: other.spanContext };
}

/**
 * The SDK's choice for roots. A request's root reaches the SDK already chosen (request()), so it is
 * recorded; any other root is a shadow copy's, recorded when the span it is linked to is.
 */
class LinkedSampler implements Sampler {
  shouldSample(_context: Context, _traceId: string, _name: string, _kind: SpanKind, _attributes: Attributes, links: Link[]): SamplingResult {
    const recorded = links.length === 0 || links.some((link) => (link.context.traceFlags & TraceFlags.SAMPLED) !== 0);
    return { decision: recorded ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD };
  }

  toString(): string {
    return 'Linked';
  }
}

/**
 * A request the ratio left out: nothing is recorded under it, and a remote call gets a
 * `traceparent` saying not sampled (made when first asked for), so the next server does not
 * start a trace of its own for it.
 */
class Unsampled implements Trace {
  readonly recording = false;
  #traceparent: string | undefined;

  get traceId(): string {
    return this.#header().slice(3, 35);
  }

  child(): Trace {
    return this;
  }

  detached(): Trace {
    return this;
  }

  set(): void {}

  link(): void {}

  fail(): void {}

  end(): void {}

  inject(headers: Record<string, string>): void {
    headers.traceparent = this.#header();
  }

  #header(): string {
    this.#traceparent ??= `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;
    return this.#traceparent;
  }
}

/** The exporter, watched: failed exports count as dropped spans, and outages are told once each way. */
class WatchedExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #events: TracingEvents;
  #failing = false;
  #droppedSinceFailing = 0;

  constructor(inner: SpanExporter, events: TracingEvents) {
    this.#inner = inner;
    this.#events = events;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#failing) this.#events.recovered(this.#droppedSinceFailing);
        this.#failing = false;
        this.#droppedSinceFailing = 0;
      } else {
        if (!this.#failing) this.#events.outage(result.error?.message ?? 'the export failed');
        this.#failing = true;
        this.#droppedSinceFailing += spans.length;
        this.#events.dropped(spans.length);
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * The batch processor reports the spans it drops through a meter (its self-observability):
 * this one keeps only that count, the spans refused because its queue was full. Failed
 * exports it also reports are counted by WatchedExporter, which sees them first.
 */
function queueFullMeter(events: TracingEvents): MeterProvider {
  const noop = createNoopMeter();
  const meter: Meter = Object.create(noop, {
    createCounter: {
      value: (...args: Parameters<Meter['createCounter']>) => {
        const counter = noop.createCounter(...args);
        return {
          add(count: number, attributes?: Attributes) {
            if (attributes?.['error.type'] === 'queue_full') events.dropped(count);
            counter.add(count, attributes);
          },
        };
      },
    },
  }) as Meter;
  return { getMeter: () => meter };
}
