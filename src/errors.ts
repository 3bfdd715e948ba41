/**
 * Every error the gateway raises on purpose, in one place: each has a stable
 * `MG_` code and the HTTP status the error handler answers with. Messages never
 * carry file system paths: they name models, keys and tensors only.
 */
import createError from '@fastify/error';

// The codec's own (400, 413, 415): plain classes, so the client package raises them without fastify.
export { BodyTooLargeError, InvalidInputError, UnsupportedMediaTypeError } from '@modelgate/client/codec';

/** 404: no model or route is served under this key. */
export const KeyNotFoundError = createError<'MG_KEY_NOT_FOUND', 404, [string]>(
  'MG_KEY_NOT_FOUND', "Key '%s' is not served by this gateway", 404);

/** 404: the admin API named a model that is not configured. */
export const ModelNotFoundError = createError<'MG_MODEL_NOT_FOUND', 404, [string]>(
  'MG_MODEL_NOT_FOUND', "Model '%s' is not configured", 404);

/** 503: the model's last load failed and the registry is backing off; carries Retry-After. */
export const ModelLoadFailedError = createError<'MG_MODEL_LOAD_FAILED', 503, [string, string]>(
  'MG_MODEL_LOAD_FAILED', "Model '%s' failed to load: %s", 503);

/** 409: a pinned model cannot be unloaded. */
export const ModelPinnedError = createError<'MG_MODEL_PINNED', 409, [string]>(
  'MG_MODEL_PINNED', "Model '%s' is pinned and cannot be unloaded", 409);

/** 500: onnxruntime rejected a run on input that passed validation. */
export const InferenceFailedError = createError<'MG_INFERENCE_FAILED', 500, [string, string]>(
  'MG_INFERENCE_FAILED', "Inference failed in model '%s': %s", 500);

/** 403: the caller is known, and may not do this (a key outside its tenant's allow list, an admin token without the role). */
export const ForbiddenError = createError<'MG_FORBIDDEN', 403, [string]>(
  'MG_FORBIDDEN', '%s', 403);

/** 429: the tenant is past its rate limit; carries Retry-After. */
export const RateLimitedError = createError<'MG_RATE_LIMITED', 429, [string]>(
  'MG_RATE_LIMITED', 'Rate limit exceeded: this API key may make %s requests per second; try again after Retry-After seconds', 429);

/** 429: the tenant has its maxInFlight requests in progress; carries Retry-After. */
export const TooManyInFlightError = createError<'MG_TOO_MANY_IN_FLIGHT', 429, [string]>(
  'MG_TOO_MANY_IN_FLIGHT', 'Too many requests in progress: this API key may have %s at once; try again when one has been answered', 429);

/** 404: the admin API named a tenant that does not exist. */
export const TenantNotFoundError = createError<'MG_TENANT_NOT_FOUND', 404, [string]>(
  'MG_TENANT_NOT_FOUND', "Tenant '%s' does not exist", 404);

/** 400: a tenant definition that is invalid; nothing changed. */
export const InvalidTenantError = createError<'MG_INVALID_TENANT', 400, [string]>(
  'MG_INVALID_TENANT', '%s', 400);

/** 409: a tenant change that conflicts with the other tenants (a key or subject another holds) or with the configuration; nothing changed. */
export const TenantConflictError = createError<'MG_TENANT_CONFLICT', 409, [string]>(
  'MG_TENANT_CONFLICT', '%s', 409);

/** 401: the admin API (or, with tenants, the data plane) needs a valid bearer token. */
export const UnauthorizedError = createError<'MG_UNAUTHORIZED', 401, [string]>(
  'MG_UNAUTHORIZED', '%s', 401);

/** 503: the gateway is shutting down and takes no new work. */
export const ShuttingDownError = createError<'MG_SHUTTING_DOWN', 503, []>(
  'MG_SHUTTING_DOWN', 'The gateway is shutting down', 503);

/** Not an HTTP error: the configuration is invalid; `issues` lists every problem with its path. */
export class ConfigError extends Error {
  readonly code = 'MG_CONFIG_INVALID';
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(`Invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Seconds a client should wait before retrying, attached to 503 and 429 errors. */
export function withRetryAfter<E extends Error>(error: E, seconds: number): E & { retryAfterSeconds: number } {
  return Object.assign(error, { retryAfterSeconds: Math.max(1, Math.ceil(seconds)) });
}

/** Removes absolute paths from messages that come from native code (onnxruntime), so none reach a client. */
export function scrubPaths(message: string): string {
  return message.replace(/(?:[A-Za-z]:)?(?:[\\/][^\s'"\\/:]+){2,}/g, '<path>');
}

/** 404: no route under this key (admin API). */
export const RouteNotFoundError = createError<'MG_ROUTE_NOT_FOUND', 404, [string]>(
  'MG_ROUTE_NOT_FOUND', "Route '%s' does not exist", 404);

/** 400: a route definition or change that is invalid; nothing changed. */
export const InvalidRouteError = createError<'MG_INVALID_ROUTE', 400, [string]>(
  'MG_INVALID_ROUTE', '%s', 400);

/** 409: a live change that conflicts with the gateway's state (a target that cannot load, a route still in use); nothing changed. */
export const RouteConflictError = createError<'MG_ROUTE_CONFLICT', 409, [string]>(
  'MG_ROUTE_CONFLICT', '%s', 409);

/** 412: If-Match named a version that is no longer current; nothing changed. */
export const PreconditionFailedError = createError<'MG_PRECONDITION_FAILED', 412, [string]>(
  'MG_PRECONDITION_FAILED', '%s', 412);

/** 503: too many requests wait for this model (its maxQueueSize); carries Retry-After. */
export const QueueFullError = createError<'MG_QUEUE_FULL', 503, [string, string]>(
  'MG_QUEUE_FULL', "Model '%s' has %s requests waiting or running, its maxQueueSize: try again shortly", 503);

/** 504: the request's deadline (its timeout parameter, or the default) passed before it ran. */
export const DeadlineExceededError = createError<'MG_DEADLINE_EXCEEDED', 504, [string]>(
  'MG_DEADLINE_EXCEEDED', "The request's deadline passed while it waited for model '%s'; it did not run", 504);

/** No answer is sent: the client went away, so its queued work was dropped. */
export const RequestAbortedError = createError<'MG_REQUEST_ABORTED', 499, [string]>(
  'MG_REQUEST_ABORTED', "The client went away; its request for model '%s' was dropped", 499);

/** 503: the worker thread running the model stopped mid-request; the model loads again on the next one. */
export const WorkerLostError = createError<'MG_WORKER_LOST', 503, [string]>(
  'MG_WORKER_LOST', "Model '%s' was lost with the worker thread running it; try again", 503);

/** 500: a live change could not be written to the state file; it did not take effect. */
export const StateNotSavedError = createError<'MG_STATE_NOT_SAVED', 500, [string]>(
  'MG_STATE_NOT_SAVED', 'The change was not applied: the state file cannot be written (%s); check that stateFile is writable', 500);

/** 404: a `/versions/{v}/` path named a version the key does not serve. */
export const VersionNotFoundError = createError<'MG_VERSION_NOT_FOUND', 404, [string, string]>(
  'MG_VERSION_NOT_FOUND', "Key '%s' has no version '%s': every key serves version 1", 404);

/** 400: a live model definition that is invalid (unknown fields, a path outside the repository, a missing file); nothing changed. */
export const InvalidModelError = createError<'MG_INVALID_MODEL', 400, [string]>(
  'MG_INVALID_MODEL', '%s', 400);

/** 409: a live model change that conflicts with a key, a route or the model set; nothing changed. */
export const ModelConflictError = createError<'MG_MODEL_CONFLICT', 409, [string]>(
  'MG_MODEL_CONFLICT', '%s', 409);

/** 422: the model file does not load as ONNX; nothing changed, the current version serves on. */
export const ModelNotLoadableError = createError<'MG_MODEL_NOT_LOADABLE', 422, [string, string]>(
  'MG_MODEL_NOT_LOADABLE', "Model '%s' does not load: %s; nothing changed", 422);

/** 500: an uploaded model file could not be written into the model repository; nothing changed. */
export const RepositoryNotWritableError = createError<'MG_REPOSITORY_NOT_WRITABLE', 500, [string]>(
  'MG_REPOSITORY_NOT_WRITABLE', 'The upload was not applied: the model repository cannot be written (%s); mount it writable to upload models', 500);

/** Shadow copies only: the shadow's model is not resident and no slot is free without evicting one; the copy is dropped. */
export const NoSpareCapacityError = createError<'MG_NO_SPARE_CAPACITY', 503, [string]>(
  'MG_NO_SPARE_CAPACITY', "Model '%s' is not resident and no slot is free: a shadow copy does not evict", 503);

/** 502: the remote V2 server serving a model failed (a 5xx, a broken connection); its address is never shown. */
export const RemoteFailedError = createError<'MG_REMOTE_FAILED', 502, [string, string]>(
  'MG_REMOTE_FAILED', "Model '%s' is served by a remote server, which failed: %s", 502);

/** 503: calls to the remote serving a model are failing; they fail fast until a probe succeeds. Carries Retry-After. */
export const RemoteUnavailableError = createError<'MG_REMOTE_UNAVAILABLE', 503, [string]>(
  'MG_REMOTE_UNAVAILABLE', "Model '%s' is served by a remote server that is not answering: failing fast until it recovers", 503);

/** 503: live changes are shared through a store (Redis) that is not answering; nothing changed. Carries Retry-After. */
export const StoreUnavailableError = createError<'MG_STORE_UNAVAILABLE', 503, [string]>(
  'MG_STORE_UNAVAILABLE', 'The change was not applied: the shared configuration store is unavailable (%s); inference goes on with the last applied configuration, try the change again shortly', 503);

/** 409: another replica kept changing the shared configuration while this change was being made; nothing changed. */
export const ConcurrentChangeError = createError<'MG_CONCURRENT_CHANGE', 409, [string]>(
  'MG_CONCURRENT_CHANGE', '%s', 409);

/** 500: a post-processing plugin threw, or returned something that is not a tensor. */
export const PluginFailedError = createError<'MG_PLUGIN_FAILED', 500, [string]>(
  'MG_PLUGIN_FAILED', '%s', 500);

/** 500: a sequence step's input names an output an earlier step did not produce (its signature promised it). */
export const StepOutputMissingError = createError<'MG_STEP_OUTPUT_MISSING', 500, [string, string]>(
  'MG_STEP_OUTPUT_MISSING', "input '%s': '%s' was not produced", 500);

/**
 * A part of a route failed (a sequence step, an ensemble member): the part's own error with
 * the part named. Its status, Retry-After and `cause` are the part's, so a 503 of a step is a
 * 503 of the chain.
 */
abstract class PartFailedError extends Error {
  readonly statusCode: number;
  readonly retryAfterSeconds: number | undefined;
  constructor(part: string, cause: unknown) {
    const failure = cause as Error & { statusCode?: number; retryAfterSeconds?: number };
    super(`${part}: ${failure.message}`, { cause });
    this.name = new.target.name;
    this.statusCode = failure.statusCode ?? 500;
    this.retryAfterSeconds = failure.retryAfterSeconds;
  }
}

/** A sequence step failed. */
export class StepFailedError extends PartFailedError {
  readonly code = 'MG_STEP_FAILED';
  constructor(step: string, cause: unknown) {
    super(`step '${step}'`, cause);
  }
}

/** A required ensemble member failed: the request fails with the member's status, naming it. */
export class MemberFailedError extends PartFailedError {
  readonly code = 'MG_MEMBER_FAILED';
  constructor(member: string, cause: unknown) {
    super(`ensemble member '${member}'`, cause);
  }
}

/** 502: every member of an ensemble is optional, and none answered. */
export const NoMemberAnsweredError = createError<'MG_NO_MEMBER_ANSWERED', 502, [string, string]>(
  'MG_NO_MEMBER_ANSWERED', "No member of ensemble '%s' answered: %s", 502);

/** 400: no case of a switch holds for the request, and the switch has no default. */
export const NoCaseMatchedError = createError<'MG_NO_CASE_MATCHED', 400, [string, string]>(
  'MG_NO_CASE_MATCHED', "No case of switch '%s' holds for this request, and it has no default: %s", 400);

/** A remote V2 server refused the request (a 4xx): its status and message pass through. */
export class RemoteRejectedError extends Error {
  readonly code = 'MG_REMOTE_REJECTED';
  readonly statusCode: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'RemoteRejectedError';
    this.statusCode = status;
  }
}

/** Whether `error`, or an error it was caused by (a failed step's), is an instance of `kind`. */
export function causedBy(error: unknown, kind: abstract new (...args: never[]) => Error): boolean {
  let current: unknown = error;
  while (current instanceof Error) {
    if (current instanceof kind) return true;
    current = (current as Error).cause;
  }
  return false;
}

/**
 * An error that crossed a thread (a model's worker), rebuilt with the message it had: a run's
 * failure (it has a code) as InferenceFailedError, a load's reason (none) as a plain Error.
 */
export function errorFromWorker(failure: { readonly message: string; readonly code?: string | undefined }): Error {
  if (failure.code === undefined) return new Error(failure.message);
  const error = new InferenceFailedError('', '');
  error.message = failure.message;
  return error;
}
