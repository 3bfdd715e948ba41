/**
 * A key served by a model on another V2 server (Triton, KServe, another
 * modelgate), through the typed client: a bounded keep-alive pool, the binary
 * tensor extension where the remote has it, the request's deadline bounding
 * the whole call, and a breaker so a dead remote fails fast instead of piling
 * requests up. Remote models hold no slot under the resident caps.
 */
import { ModelgateClient, ModelgateError, type InputTensor } from '@modelgate/client';
import type { InferRequest, InferResult, Signature, TensorMap } from '@modelgate/client/codec';
import type { RemoteModelConfig } from '../config/schema.ts';
import { DeadlineExceededError, NoSpareCapacityError, RemoteFailedError, RemoteRejectedError, RemoteUnavailableError, RequestAbortedError, withRetryAfter } from '../errors.ts';
import type { RunObserver } from '../routing/model-target.ts';
import type { InferContext, Target } from '../routing/target.ts';
import type { SpanAttributes } from '../trace.ts';
import { hasBinaryExtension, MalformedMetadata, signatureOf } from './metadata.ts';

/** Consecutive failures that open the breaker. */
const FAILURES_TO_OPEN = 5;
/** How long an open breaker fails calls fast before a probe, and how often the health poll asks meanwhile. */
const OPEN_MS = 2000;
/** Shadow copies in flight to one remote; past it they are dropped. */
const MAX_SHADOWS = 8;

/** One remote model's client, breaker and cached metadata; shared by every key that names the model. */
export class RemoteModel {
  readonly name: string;
  readonly config: RemoteModelConfig;
  /** Its client spans' attributes, worked out once: the configuration does not change. */
  readonly #spanAttributes: SpanAttributes;
  readonly #client: ModelgateClient;
  readonly #observe: RunObserver | undefined;
  #signature: Promise<{ signature: Signature; binary: boolean }> | undefined;
  #known: Signature | undefined;
  #failures = 0;
  #openUntil = 0;
  #poll: NodeJS.Timeout | undefined;
  #shadows = 0;

  constructor(config: RemoteModelConfig, observe?: RunObserver) {
    this.name = config.name;
    this.config = config;
    this.#spanAttributes = this.#attributesOf();
    this.#observe = observe;
    this.#client = new ModelgateClient({
      url: config.remote.url,
      connections: config.remote.connections,
      timeoutMs: config.remote.timeoutMs,
      maxRetries: 0,
      ...(config.remote.headers === undefined ? {} : { headers: config.remote.headers }),
    });
  }

  /** Whether the breaker fails calls fast now. */
  get open(): boolean {
    return Date.now() < this.#openUntil;
  }

  knownSignature(): Signature | undefined {
    return this.#known;
  }

  /** The remote's inputs and outputs, fetched once (again after a failure) and cached. */
  async signature(): Promise<Signature> {
    return (await this.#metadata()).signature;
  }

  #metadata(): Promise<{ signature: Signature; binary: boolean }> {
    this.#signature ??= (async () => {
      const [metadata, server] = await Promise.all([this.#client.metadata(this.#path()), this.#client.serverMetadata()]);
      const signature = signatureOf(metadata, this.#path());
      const binary = hasBinaryExtension(server);
      this.#known = signature;
      return { signature, binary };
    })();
    this.#signature.catch(() => { this.#signature = undefined; });
    return this.#signature.catch((error: unknown) => {
      throw this.#failure(error);
    });
  }

  /** The model's name on the remote. */
  #path(): string {
    return this.config.remote.model;
  }

  assertReady(): void {
    if (this.open) throw withRetryAfter(new RemoteUnavailableError(this.name), (this.#openUntil - Date.now()) / 1000);
  }

  async infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    this.assertReady();
    if (context.shadow === true && this.#shadows >= MAX_SHADOWS) throw new NoSpareCapacityError(this.name);
    const { binary } = await this.#metadata();
    const remaining = context.deadline === undefined ? undefined : context.deadline - performance.now();
    if (remaining !== undefined && remaining <= 0) throw new DeadlineExceededError(this.name);
    const signals = [context.signal, remaining === undefined ? undefined : AbortSignal.timeout(Math.max(1, Math.floor(remaining)))].filter((signal): signal is AbortSignal => signal !== undefined);
    const inputs: InputTensor[] = [...request.inputs].map(([name, tensor]) => ({ name, datatype: tensor.datatype, shape: tensor.shape, data: tensor.data }));
    const started = performance.now();
    if (context.shadow === true) this.#shadows += 1;
    const span = context.trace?.recording === true ? context.trace.child('modelgate.remote', this.#spanAttributes, { kind: 'client' }) : undefined;
    // An unrecorded trace goes on too, so the remote knows not to record it either.
    const headers: Record<string, string> = {};
    (span ?? context.trace)?.inject(headers);
    const call = () => this.#client.infer(this.#path(), inputs, {
      binary,
      headers,
      ...(request.outputs === undefined ? {} : { outputs: [...request.outputs] }),
      ...(signals.length === 0 ? {} : { signal: AbortSignal.any(signals) }),
      // The remote's own deadline, so it drops work nobody waits for.
      ...(remaining === undefined ? {} : { timeoutMicros: Math.max(1, Math.floor(remaining * 1000)) }),
    });
    try {
      // Retried once only when the connection was refused: nothing was sent, so nothing can have run twice.
      const answer = await call().catch((error: unknown) => {
        if (refused(error)) return call();
        throw error;
      });
      this.#succeeded();
      const ran = performance.now() - started;
      this.#observe?.(this.name, 0, ran / 1000, false);
      if (context.timing !== undefined) {
        context.timing.inferMs += ran;
        context.timing.executions += 1;
      }
      const outputs: TensorMap = new Map(answer.outputs.map((output) => [output.name, { datatype: output.datatype, shape: output.shape, data: output.data }]));
      return { modelName: this.name, outputs };
    } catch (error) {
      const failure = context.signal?.aborted === true ? new RequestAbortedError(this.name)
        : remaining !== undefined && performance.now() - started >= remaining - 1 ? new DeadlineExceededError(this.name)
          : this.#failure(error);
      this.#observe?.(this.name, 0, (performance.now() - started) / 1000, true);
      if (span !== undefined) {
        if (error instanceof ModelgateError && error.status > 0) span.set({ 'http.response.status_code': error.status });
        span.fail(failure.message);
      }
      throw failure;
    } finally {
      span?.end();
      if (context.shadow === true) this.#shadows -= 1;
    }
  }

  /** The client span's attributes: the remote's address and the model it serves there. */
  #attributesOf(): SpanAttributes {
    const url = new URL(this.config.remote.url);
    const grpc = url.protocol.startsWith('grpc');
    const port = url.port === '' ? (url.protocol === 'https:' || url.protocol === 'grpcs:' ? 443 : 80) : Number(url.port);
    return {
      'modelgate.model': this.name,
      'modelgate.remote.model': this.#path(),
      'server.address': url.hostname,
      'server.port': port,
      ...(grpc ? { 'rpc.system': 'grpc', 'rpc.service': 'inference.GRPCInferenceService', 'rpc.method': 'ModelInfer' } : { 'http.request.method': 'POST' }),
    };
  }

  /** A remote 4xx passes through with the remote's message; a 5xx or no answer counts towards the breaker and is 502. */
  #failure(error: unknown): Error {
    if (error instanceof ModelgateError && error.status >= 400 && error.status < 500) {
      return new RemoteRejectedError(error.message, error.status);
    }
    this.#failures += 1;
    if (this.#failures >= FAILURES_TO_OPEN) this.#trip();
    if (error instanceof MalformedMetadata) return new RemoteFailedError(this.name, error.message);
    const what = error instanceof ModelgateError && error.status > 0 ? `it answered ${error.status}` : 'no answer';
    return new RemoteFailedError(this.name, what);
  }

  #succeeded(): void {
    this.#failures = 0;
    this.#openUntil = 0;
    clearInterval(this.#poll);
    this.#poll = undefined;
  }

  /** Opens the breaker and polls the remote's readiness until it answers, so it closes without waiting for traffic. */
  #trip(): void {
    this.#openUntil = Date.now() + OPEN_MS;
    this.#poll ??= setInterval(() => {
      void this.#client.ready(this.#path()).then((ready) => {
        if (ready) this.#succeeded();
        else this.#openUntil = Date.now() + OPEN_MS;
      }, () => {
        this.#openUntil = Date.now() + OPEN_MS;
      });
    }, OPEN_MS / 4);
    this.#poll.unref();
  }

  /** Replaced or removed live: calls in flight finish, then the connections close. */
  async retire(): Promise<void> {
    clearInterval(this.#poll);
    await this.#client.close();
  }

  /** At shutdown the gateway's own requests have drained: what is still in flight here (a metadata fetch to a stuck remote) is abandoned. */
  async close(): Promise<void> {
    clearInterval(this.#poll);
    await this.#client.destroy();
  }
}

function refused(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string; cause?: { code?: string } } }).cause;
  return error instanceof ModelgateError && error.status === 0 && (cause?.code === 'ECONNREFUSED' || cause?.cause?.code === 'ECONNREFUSED');
}

/** A key served by a remote model. */
export class RemoteTarget implements Target {
  readonly kind = 'model';
  readonly key: string;
  readonly model: string;
  readonly #remote: RemoteModel;

  constructor(key: string, remote: RemoteModel) {
    this.key = key;
    this.model = remote.name;
    this.#remote = remote;
  }

  signature(): Promise<Signature> {
    return this.#remote.signature();
  }

  knownSignature(): Signature | undefined {
    return this.#remote.knownSignature();
  }

  async prepare(): Promise<void> {
    await this.#remote.signature();
  }

  infer(request: InferRequest, context: InferContext): Promise<InferResult> {
    return this.#remote.infer(request, context);
  }

  assertReady(): void {
    this.#remote.assertReady();
  }
}
