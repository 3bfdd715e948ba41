/**
 * The client's gRPC transport, for `grpc://` and `grpcs://` URLs: the same
 * calls over the Open Inference Protocol's GRPCInferenceService
 * (proto/grpc_service.proto of this package), inputs in raw_input_contents,
 * outputs read from raw_output_contents with the codec REST answers are read
 * with. @grpc/grpc-js and @grpc/proto-loader are optional peer dependencies,
 * loaded on the first call: an application that only speaks REST installs
 * neither.
 */
import type { Client, Metadata, ServiceError } from '@grpc/grpc-js';
import { fromBytes } from './codec/binary.ts';
import { fromInferParameter, GRPC_LOADER_OPTIONS, GRPC_PROTO, toInferParameter, type InferParameter } from './codec/grpc.ts';
import { ModelgateError } from './error.ts';
import type { ModelMetadata, ModelStatistics, ServerMetadata } from './codec/types.ts';
import { inputTensor, type InferResponse, type InputTensor, type OutputTensor, type RequestedOutput } from './tensors.ts';
import type { Datatype } from './codec/types.ts';

// gRPC codes to the HTTP statuses the gateway maps them from (the inverse of its table).
const HTTP_STATUS: Readonly<Record<number, number>> = { 1: 499, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 409, 12: 501, 13: 500, 14: 503, 16: 401 };

type Unary = (request: unknown, metadata: Metadata, options: { deadline: number }, callback: (error: ServiceError | null, response: unknown) => void) => { cancel(): void };

interface Loaded {
  readonly client: Client;
  readonly Metadata: typeof Metadata;
}

export interface GrpcCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly headers?: Readonly<Record<string, string>>;
}

export class GrpcChannel {
  readonly #address: string;
  readonly #secure: boolean;
  readonly #timeoutMs: number;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #tls: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer } | undefined;
  #loaded: Promise<Loaded> | undefined;

  constructor(url: URL, timeoutMs: number, headers: Readonly<Record<string, string>>, tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer }) {
    this.#tls = tls;
    this.#secure = url.protocol === 'grpcs:';
    this.#address = `${url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname}:${url.port === '' ? (this.#secure ? 443 : 80) : url.port}`;
    this.#timeoutMs = timeoutMs;
    this.#headers = headers;
  }

  async infer(key: string, inputs: readonly InputTensor[], options: { outputs?: readonly RequestedOutput[] | undefined; id?: string | undefined; parameters?: Readonly<Record<string, unknown>> | undefined } & GrpcCallOptions): Promise<InferResponse> {
    const encoded = inputs.map(inputTensor);
    const request = {
      model_name: key,
      id: options.id ?? '',
      parameters: Object.fromEntries(Object.entries(options.parameters ?? {}).map(([name, value]) => [name, toInferParameter(value)])),
      inputs: encoded.map(({ tensor }, index) => ({ name: inputs[index]?.name, datatype: tensor.datatype, shape: tensor.shape })),
      outputs: (options.outputs ?? []).map((output) => (typeof output === 'string' ? { name: output } : { name: output.name, parameters: output.classification === undefined ? {} : { classification: { int64_param: String(output.classification) } } })),
      raw_input_contents: encoded.map(({ bytes }) => bytes),
    };
    const answer = await this.#unary('ModelInfer', request, options) as { model_name: string; model_version: string; id: string; parameters: Record<string, InferParameter>; outputs: Array<{ name: string; datatype: string; shape: string[] }>; raw_output_contents: Buffer[] };
    const outputs: OutputTensor[] = answer.outputs.map((output, index) => {
      const shape = output.shape.map(Number);
      const datatype = output.datatype as Datatype;
      const count = shape.reduce((product, dim) => product * dim, 1);
      return { name: output.name, datatype, shape, data: fromBytes(answer.raw_output_contents[index] ?? Buffer.alloc(0), datatype, count, `output '${output.name}'`, false) };
    });
    const parameters = Object.fromEntries(Object.entries(answer.parameters).map(([name, parameter]) => [name, fromInferParameter(parameter)]));
    return {
      modelName: answer.model_name,
      ...(answer.model_version === '' ? {} : { modelVersion: answer.model_version }),
      ...(answer.id === '' ? {} : { id: answer.id }),
      ...(Object.keys(parameters).length === 0 ? {} : { parameters }),
      outputs,
    };
  }

  async metadata(key: string, options: GrpcCallOptions): Promise<ModelMetadata> {
    const answer = await this.#unary('ModelMetadata', { name: key }, options) as { name: string; versions: string[]; platform: string; inputs: Array<{ name: string; datatype: string; shape: string[] }>; outputs: Array<{ name: string; datatype: string; shape: string[] }> };
    const specs = (tensors: typeof answer.inputs) => tensors.map((tensor) => ({ name: tensor.name, datatype: tensor.datatype as Datatype, shape: tensor.shape.map(Number) }));
    return { name: answer.name, versions: answer.versions, platform: answer.platform, inputs: specs(answer.inputs), outputs: specs(answer.outputs) };
  }

  async ready(key: string, options: GrpcCallOptions): Promise<boolean> {
    return ((await this.#unary('ModelReady', { name: key }, options)) as { ready: boolean }).ready;
  }

  async live(options: GrpcCallOptions): Promise<boolean> {
    return ((await this.#unary('ServerLive', {}, options)) as { live: boolean }).live;
  }

  async serverReady(options: GrpcCallOptions): Promise<boolean> {
    return ((await this.#unary('ServerReady', {}, options)) as { ready: boolean }).ready;
  }

  async serverMetadata(options: GrpcCallOptions): Promise<ServerMetadata> {
    return await this.#unary('ServerMetadata', {}, options) as ServerMetadata;
  }

  async stats(key: string | undefined, options: GrpcCallOptions): Promise<ModelStatistics[]> {
    const answer = await this.#unary('ModelStatistics', { name: key ?? '' }, options) as { model_stats: ModelStatistics[] };
    // uint64 counts arrive as decimal text: numbers, as REST's statistics are.
    return JSON.parse(JSON.stringify(answer.model_stats), (_name, value: unknown) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value)) as ModelStatistics[];
  }

  async close(): Promise<void> {
    if (this.#loaded === undefined) return;
    (await this.#loaded.catch(() => undefined))?.client.close();
  }

  async #unary(method: string, request: unknown, options: GrpcCallOptions): Promise<unknown> {
    const { client, Metadata: MetadataClass } = await this.#load();
    const metadata = new MetadataClass();
    for (const [name, value] of Object.entries({ ...this.#headers, ...options.headers })) metadata.set(name.toLowerCase(), value);
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted === true) return reject(failure('the call was aborted', 0));
      const call = ((client as unknown as Record<string, Unary>)[method] as Unary).call(client, request, metadata, { deadline: Date.now() + this.#timeoutMs }, (error, response) => {
        options.signal?.removeEventListener('abort', abort);
        if (error === null) return resolve(response);
        const retry = error.metadata?.get('retry-after')[0];
        reject(failure(error.details || error.message, error.code === 2 ? 0 : HTTP_STATUS[error.code] ?? 500, retry === undefined ? undefined : Number(retry)));
      });
      const abort = () => call.cancel();
      options.signal?.addEventListener('abort', abort, { once: true });
    });
  }

  #load(): Promise<Loaded> {
    this.#loaded ??= (async () => {
      let grpc: typeof import('@grpc/grpc-js');
      let loader: typeof import('@grpc/proto-loader');
      try {
        [grpc, loader] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')]);
      } catch (error) {
        throw failure(`grpc:// URLs need @grpc/grpc-js and @grpc/proto-loader installed beside @modelgate/client: ${(error as Error).message}`, 0);
      }
      const definition = loader.loadSync(GRPC_PROTO, GRPC_LOADER_OPTIONS);
      const Service = (grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: new (address: string, credentials: unknown, options: Record<string, unknown>) => Client } }).inference.GRPCInferenceService;
      const bytes = (value: string | Buffer | undefined) => (value === undefined ? null : Buffer.from(value));
      const credentials = this.#secure ? grpc.credentials.createSsl(bytes(this.#tls?.ca), bytes(this.#tls?.key), bytes(this.#tls?.cert)) : grpc.credentials.createInsecure();
      return { client: new Service(this.#address, credentials, { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 }), Metadata: grpc.Metadata };
    })();
    this.#loaded.catch(() => { this.#loaded = undefined; });
    return this.#loaded;
  }
}

/** A failed call as REST's are reported: the HTTP status the gRPC code stands for, the server's message, its retry delay. */
function failure(message: string, status: number, retryAfter?: number): ModelgateError {
  return new ModelgateError(message, status, retryAfter);
}
