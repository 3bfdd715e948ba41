/**
 * gRPC clients for the tests, made as any client makes them: stubs from the package's
 * grpc_service.proto (and the health and reflection services' own definitions).
 */
import path from 'node:path';
import { credentials, loadPackageDefinition, type Client } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { GRPC_LOADER_OPTIONS, GRPC_PROTO } from '@modelgate/client/codec';

const ROOT = path.resolve(import.meta.dirname, '../..');
type Stub = new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: Record<string, unknown>) => Client;

// Read as the server and the client read it: 64-bit integers as decimal text.
export const InferenceService = (loadPackageDefinition(loadSync(GRPC_PROTO, GRPC_LOADER_OPTIONS)) as unknown as { inference: { GRPCInferenceService: Stub } }).inference.GRPCInferenceService;

export const HealthService = (loadPackageDefinition(loadSync(path.join(ROOT, 'node_modules/grpc-health-check/proto/health/v1/health.proto'), { keepCase: true, enums: String })) as unknown as { grpc: { health: { v1: { Health: Stub } } } }).grpc.health.v1.Health;

export const ReflectionService = (loadPackageDefinition(loadSync(path.join(ROOT, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'), { keepCase: true })) as unknown as { grpc: { reflection: { v1: { ServerReflection: Stub } } } }).grpc.reflection.v1.ServerReflection;

/** An insecure client of `Service` at `address`. */
export function clientOf(Service: Stub, address: string, options?: Record<string, unknown>): Client {
  return new Service(address, credentials.createInsecure(), options);
}
