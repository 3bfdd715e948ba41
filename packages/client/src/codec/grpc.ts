/**
 * What the client's gRPC transport and the server's gRPC service share: where the definition
 * is, how proto-loader reads it, and V2 parameters to and from their InferParameter form.
 */
import { fileURLToPath } from 'node:url';

/** packages/client/proto/grpc_service.proto: two levels above this file, from src/ and dist/ alike. */
export const GRPC_PROTO = fileURLToPath(new URL('../../proto/grpc_service.proto', import.meta.url));

/** keepCase: the fields as the .proto spells them; longs as strings, so 64-bit integers stay exact. */
export const GRPC_LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** An InferParameter as proto-loader gives it (oneofs: true, longs as strings). */
export interface InferParameter {
  readonly parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  readonly bool_param?: boolean;
  readonly int64_param?: string;
  readonly string_param?: string;
  readonly double_param?: number;
  readonly uint64_param?: string;
}

/** A parameter's value; 64-bit integers as numbers where they are safe, else as the decimal text. */
export function fromInferParameter(parameter: InferParameter): unknown {
  const choice = parameter.parameter_choice;
  if (choice === undefined) return undefined;
  const value = parameter[choice];
  if (choice === 'int64_param' || choice === 'uint64_param') {
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value;
  }
  return value;
}

/** A value as an InferParameter: booleans, whole numbers (and bigints) as int64, other numbers as doubles, the rest as text (objects as JSON). */
export function toInferParameter(value: unknown): InferParameter {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value))) return { int64_param: String(value) };
  if (typeof value === 'number') return { double_param: value };
  return { string_param: typeof value === 'string' ? value : JSON.stringify(value) };
}
