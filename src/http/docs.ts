/**
 * The OpenAPI document (from the route schemas) and Swagger UI at /docs, with
 * an entry per key: its tensors and a request ready to send. The per-key part
 * follows live route changes: it is rebuilt from the current route table
 * whenever the document is served.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { Signature, TensorSpec } from '@modelgate/client/codec';
import type { TargetTable } from '../routing/target.ts';

type OpenApi = { paths?: Record<string, unknown>; tags?: Array<{ name: string; description?: string }> } & Record<string, unknown>;

const KEYS_TAG = { name: 'keys', description: 'One entry per key served now: its input and output tensors and a request ready to send.' };

/** An example element for a datatype. */
function sample(datatype: TensorSpec['datatype']): unknown {
  if (datatype === 'BOOL') return true;
  if (datatype === 'BYTES') return 'text';
  return datatype.startsWith('FP') ? 0.5 : 1;
}

/** Inputs larger than this get no example: the document would be mostly zeros. */
const MAX_EXAMPLE_ELEMENTS = 4096;

/** A ready-to-send V2 request: dynamic dimensions as 1, every element a sample value; undefined if too large to show. */
export function exampleRequest(signature: Signature): Record<string, unknown> | undefined {
  const inputs = signature.inputs.map((input) => {
    const shape = input.shape.map((dim) => (dim < 0 ? 1 : dim));
    const count = shape.reduce((a, b) => a * b, 1);
    return { name: input.name, datatype: input.datatype, shape, data: count > MAX_EXAMPLE_ELEMENTS ? undefined : new Array(count).fill(sample(input.datatype)) };
  });
  return inputs.some((input) => input.data === undefined) ? undefined : { inputs };
}

function tensorTable(specs: readonly TensorSpec[]): string {
  if (specs.length === 0) return '(known once it runs)';
  return specs.map((spec) => `\`${spec.name}\` ${spec.datatype} ${JSON.stringify(spec.shape)}`).join(', ');
}

function keyPath(key: string, kind: string, signature: Signature | undefined) {
  const example = signature === undefined ? undefined : exampleRequest(signature);
  const description = signature === undefined
    ? `Its tensors are known once its model has loaded (models load lazily): GET /v2/models/${key} loads it and shows them here.`
    : `Inputs: ${tensorTable(signature.inputs)}.\n\nOutputs: ${tensorTable(signature.outputs)}.\n\n(-1: any size.)`;
  return {
    post: {
      tags: ['keys'],
      summary: `${key} (${kind})`,
      description,
      operationId: `infer-${key}`,
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/InferRequest' }, ...(example === undefined ? {} : { example }) } },
      },
      responses: { 200: { description: `Outputs: ${signature === undefined ? 'unknown' : tensorTable(signature.outputs)}` } },
    },
  };
}

/** Registers the document, the UI, and the per-key entries for the table `targets` returns. */
export async function registerDocs(app: FastifyInstance, info: { version: string }, targets: () => TargetTable): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'modelgate', version: info.version, description: 'Open Inference Protocol (KServe V2) endpoints, one per key, and the admin API. The same protocol over gRPC (inference.GRPCInferenceService, the definition in proto/grpc_service.proto of @modelgate/client; with `grpc.port` set, the server answers reflection, so `grpcurl -plaintext <host>:<grpc port> list` needs no .proto) serves the same keys.' },
      tags: [
        { name: 'inference', description: 'V2 inference, for any key' },
        { name: 'metadata', description: 'V2 server and model metadata' },
        { name: 'health', description: 'V2 health' },
        { name: 'admin', description: 'Operator API (bearer token)' },
        { name: 'metrics', description: 'Prometheus metrics' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An admin token (admin.token, or admin.tokens with a role).' },
          tenantKey: { type: 'http', scheme: 'bearer', description: 'A tenant\'s API key; needed only when the configuration has a tenants section.' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Links like /docs#/keys/infer-iris-v2 open that key's entry.
    uiConfig: { deepLinking: true },
    // Built from the table in force when the document is served, so it follows live changes.
    transformSpecification: (document) => {
      const spec = document as OpenApi;
      const perKey = Object.fromEntries([...targets()].map(([key, target]) => [`/v2/models/${key}/infer`, keyPath(key, target.kind, target.knownSignature())]));
      return { ...spec, tags: [...(spec.tags ?? []), KEYS_TAG], paths: { ...spec.paths, ...perKey } };
    },
  });
}
