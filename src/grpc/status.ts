/**
 * The gateway's errors as gRPC statuses: the HTTP status each error carries
 * maps to its gRPC code, the message is the text REST answers with, and a
 * 503's retry delay travels in a `retry-after` trailer.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

const CODES = new Map<number, status>([
  [400, status.INVALID_ARGUMENT],
  [401, status.UNAUTHENTICATED],
  [403, status.PERMISSION_DENIED],
  [404, status.NOT_FOUND],
  [409, status.FAILED_PRECONDITION],
  [412, status.FAILED_PRECONDITION],
  [413, status.RESOURCE_EXHAUSTED],
  [415, status.INVALID_ARGUMENT],
  [422, status.FAILED_PRECONDITION],
  [429, status.RESOURCE_EXHAUSTED],
  [499, status.CANCELLED],
  [500, status.INTERNAL],
  [502, status.UNAVAILABLE],
  [503, status.UNAVAILABLE],
  [504, status.DEADLINE_EXCEEDED],
]);

/** The gRPC status of a gateway error; `log` hears of the ones that are not the gateway's own (their details stay in the log). */
export function grpcError(error: unknown, log: (error: unknown) => void): Partial<ServiceError> & { metadata: Metadata } {
  const failure = error as Error & { statusCode?: number; code?: unknown; retryAfterSeconds?: number };
  const ours = typeof failure.code === 'string' && failure.code.startsWith('MG_');
  const httpStatus = failure.statusCode !== undefined && failure.statusCode >= 400 && failure.statusCode < 600 ? failure.statusCode : 500;
  if (!ours && httpStatus >= 500) {
    log(error);
    return { code: status.INTERNAL, details: 'Internal server error', metadata: new Metadata() };
  }
  const metadata = new Metadata();
  if (failure.retryAfterSeconds !== undefined) metadata.set('retry-after', String(failure.retryAfterSeconds));
  return { code: CODES.get(httpStatus) ?? (httpStatus >= 500 ? status.INTERNAL : status.INVALID_ARGUMENT), details: failure.message, metadata };
}
