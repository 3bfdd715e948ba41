/**
 * Route schemas: the source of the OpenAPI document and of response
 * serialization. Inference bodies are validated by the protocol decoder,
 * which names tensors in its messages; these schemas describe them.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { DATATYPES } from '@modelgate/client/codec';

/**
 * For routes whose bodies the gateway checks itself, with messages that name
 * tensors and route fields: the schema still documents the body.
 */
export const validatedInHandler = () => () => true;

export const ErrorBody = Type.Object({
  error: Type.String({ description: 'What went wrong, naming the field, tensor, key or model at fault.' }),
}, { $id: 'ErrorBody', description: 'Every error the gateway answers has this body.', examples: [{ error: "input 'input': shape [1,5] does not match the model's [-1,4] (-1: any size)" }] });

const ErrorRef = Type.Ref('ErrorBody');

/** Responses for the given error statuses, all with the V2 error body. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorRef]));
}

const Datatype = Type.Union(DATATYPES.map((datatype) => Type.Literal(datatype)), { description: 'V2 tensor datatype.' });
const Shape = Type.Array(Type.Integer(), { description: 'Dimensions; -1 in metadata marks a dynamic one.' });
const Parameters = Type.Record(Type.String(), Type.Unknown(), { description: 'Free-form parameters.' });
const Data = Type.Unknown({ description: 'Elements, row-major, flat or nested to match the shape. INT64/UINT64 beyond 2^53 as decimal strings; non-finite floats as "NaN", "Infinity", "-Infinity".' });

const TensorMetadata = Type.Object({ name: Type.String(), datatype: Datatype, shape: Shape });

export const Key = Type.Object({
  key: Type.String({ description: 'A key: a model, a split route or a sequence route.' }),
});

export const KeyVersion = Type.Object({
  key: Key.properties.key,
  version: Type.String({ description: 'A model version, as Triton clients name one: every key serves version 1.' }),
});

export const LiveResponse = Type.Object({ live: Type.Boolean() });
export const ReadyResponse = Type.Object({ ready: Type.Boolean() });
export const ModelReadyResponse = Type.Object({ name: Type.String(), ready: Type.Boolean() });

export const ServerMetadataResponse = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String()),
});

export const ModelMetadataResponse = Type.Object({
  name: Type.String({ description: 'The key asked for.' }),
  versions: Type.Array(Type.String()),
  platform: Type.String({ examples: ['onnx_onnxv1'] }),
  inputs: Type.Array(TensorMetadata),
  outputs: Type.Array(TensorMetadata),
}, { examples: [{ name: 'iris-v1', versions: ['1'], platform: 'onnx_onnxv1', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }, { name: 'label', datatype: 'INT64', shape: [-1] }] }] });

export const InferRequestBody = Type.Object({
  id: Type.Optional(Type.String({ description: 'Echoed in the response.' })),
  parameters: Type.Optional(Parameters),
  inputs: Type.Array(Type.Object({
    name: Type.String(),
    shape: Shape,
    datatype: Datatype,
    parameters: Type.Optional(Parameters),
    data: Data,
  }, { additionalProperties: false })),
  outputs: Type.Optional(Type.Array(Type.Object({
    name: Type.String(),
    parameters: Type.Optional(Parameters),
  }, { additionalProperties: false }), { description: 'Outputs to return; all when absent.' })),
}, { $id: 'InferRequest', additionalProperties: false, examples: [{ id: 'req-1', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }] });

export const InferResponseBody = Type.Object({
  model_name: Type.String({ description: 'The model that produced the outputs.' }),
  model_version: Type.Optional(Type.String({ description: 'Present when the request named a version.' })),
  id: Type.Optional(Type.String()),
  outputs: Type.Array(Type.Object({
    name: Type.String(), datatype: Datatype, shape: Shape,
    data: Type.Optional(Type.Array(Type.Unknown(), { description: 'Absent for binary outputs, whose parameters.binary_data_size bytes follow the JSON.' })),
    parameters: Type.Optional(Parameters),
  })),
}, { examples: [{ model_name: 'iris-v1', id: 'req-1', outputs: [{ name: 'label', datatype: 'INT64', shape: [1], data: [0] }] }] });

const Duration = Type.Object({ count: Type.Integer(), ns: Type.Integer({ description: 'Nanoseconds, summed.' }) });

const ModelStatistics = Type.Object({
  name: Type.String({ description: 'The key.' }),
  version: Type.String(),
  last_inference: Type.Integer({ description: 'Milliseconds since the epoch of the last request; 0 for none.' }),
  inference_count: Type.Integer({ description: 'Successful inferences; each row of a request along a dynamic batch dimension counts.' }),
  execution_count: Type.Integer({ description: 'Model executions; requests batched together share one.' }),
  inference_stats: Type.Object({
    success: Duration, fail: Duration,
    queue: Type.Object(Duration.properties, { description: 'Waiting for a model: loads and slots under the caps.' }),
    compute_input: Type.Object(Duration.properties, { description: 'Decoding the request into tensors.' }),
    compute_infer: Type.Object(Duration.properties, { description: 'Model runs, the wait to join a batch included.' }),
    compute_output: Type.Object(Duration.properties, { description: 'Encoding the answer.' }),
    cache_hit: Duration, cache_miss: Duration,
  }),
  batch_stats: Type.Array(Type.Object({ batch_size: Type.Integer(), compute_input: Duration, compute_infer: Duration, compute_output: Duration })),
});

export const StatisticsResponse = Type.Object({ model_stats: Type.Array(ModelStatistics) });

const ModelStatus = Type.Object({
  name: Type.String(),
  keys: Type.Array(Type.String()),
  state: Type.Union([Type.Literal('unloaded'), Type.Literal('loading'), Type.Literal('resident'), Type.Literal('failed'), Type.Literal('remote')], { description: 'remote: served by another V2 server (failed while its breaker is open).' }),
  inFlight: Type.Integer({ description: 'Requests using the model now.' }),
  loads: Type.Integer({ description: 'Successful loads since start.' }),
  evictions: Type.Integer({ description: 'Times it was taken out of the resident set.' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  reason: Type.Optional(Type.String({ description: 'Why the last load failed, while the model is failed.' })),
});

export const ModelStatusResponse = ModelStatus;
export const ModelListResponse = Type.Object({
  models: Type.Array(ModelStatus),
  capacity: Type.Object({
    maxResidentModels: Type.Union([Type.Integer(), Type.Null()], { description: 'registry.maxResidentModels; null: no cap.' }),
    residentModels: Type.Integer({ description: 'Models holding a place under the caps now (resident or loading).' }),
    maxResidentBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'registry.maxResidentBytes; null: no cap.' }),
    residentBytes: Type.Integer({ description: 'Bytes those models count for (file size times instances).' }),
  }, { description: "The resident set's caps and their use." }),
});
export const ModelName = Type.Object({ name: Type.String({ description: 'A model name from the configuration.' }) });
