/**
 * A request's place in a distributed trace, as the layers below the transports see it: each
 * opens spans of its own under the one it is handed and hands those on. The OpenTelemetry SDK
 * behind it is telemetry/tracing.ts's; without tracing a request carries none, and every layer
 * skips its spans on one `undefined` check.
 */

/** Span attribute values, as OpenTelemetry takes them. */
export type SpanAttributes = Record<string, string | number | boolean | string[] | undefined>;

export interface SpanOptions {
  /** A performance.now() time: for spans reported after the fact (a wait measured by the layer that waited). */
  readonly startTime?: number | undefined;
  /** `client` for a call to another server; default internal. */
  readonly kind?: 'internal' | 'client' | undefined;
  /** Spans this one is linked to, not part of (the requests a batch serves). */
  readonly links?: readonly Trace[] | undefined;
}

export interface Trace {
  /** Whether this span is recorded (sampled). One that is not still carries the trace on to remote calls, and opens nothing under it. */
  readonly recording: boolean;
  /** The trace's id, as 32 hex digits (for log lines). */
  readonly traceId: string;
  /** Opens a span under this one; an unrecorded trace answers itself. */
  child(name: string, attributes?: SpanAttributes, options?: SpanOptions): Trace;
  /** Opens the first span of a new trace for work done on this one's behalf outside its answer (a shadow copy), linked to it; recorded when this one is. */
  detached(name: string, attributes?: SpanAttributes): Trace;
  set(attributes: SpanAttributes): void;
  /** Links this span to another (a request's run to the batch it ran in). */
  link(other: Trace): void;
  /** Marks the span failed with `message` (the V2 error's text). */
  fail(message: string): void;
  /** Ends the span (at `endTime`, a performance.now() time, if given). */
  end(endTime?: number): void;
  /** Adds this span's `traceparent` (and `tracestate`) to the headers of a call it makes. */
  inject(headers: Record<string, string>): void;
}

/** The text a failure carries into a span's status: its own message (the V2 error's). */
export function failureText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `work` in a span of its own under `parent` (when there is one and it is recorded); `work`
 * gets the span to hand on. The span ends when the work settles, failed if it throws.
 */
export async function traced<T>(parent: Trace | undefined, name: string, attributes: SpanAttributes, work: (trace: Trace | undefined) => Promise<T>): Promise<T> {
  if (parent === undefined || !parent.recording) return work(parent);
  const span = parent.child(name, attributes);
  try {
    return await work(span);
  } catch (error) {
    span.fail(failureText(error));
    throw error;
  } finally {
    span.end();
  }
}
