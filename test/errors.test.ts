import t from 'tap';
import * as errors from '../src/errors.ts';

t.test('every error has an MG_ code and the status its name promises', async (t) => {
  const expected: Record<string, [string, number]> = {
    InvalidInputError: ['MG_INVALID_INPUT', 400],
    KeyNotFoundError: ['MG_KEY_NOT_FOUND', 404],
    ModelNotFoundError: ['MG_MODEL_NOT_FOUND', 404],
    ModelLoadFailedError: ['MG_MODEL_LOAD_FAILED', 503],
    ModelPinnedError: ['MG_MODEL_PINNED', 409],
    InferenceFailedError: ['MG_INFERENCE_FAILED', 500],
    UnauthorizedError: ['MG_UNAUTHORIZED', 401],
    ForbiddenError: ['MG_FORBIDDEN', 403],
    RateLimitedError: ['MG_RATE_LIMITED', 429],
    TooManyInFlightError: ['MG_TOO_MANY_IN_FLIGHT', 429],
    TenantNotFoundError: ['MG_TENANT_NOT_FOUND', 404],
    InvalidTenantError: ['MG_INVALID_TENANT', 400],
    TenantConflictError: ['MG_TENANT_CONFLICT', 409],
    ShuttingDownError: ['MG_SHUTTING_DOWN', 503],
    RouteNotFoundError: ['MG_ROUTE_NOT_FOUND', 404],
    InvalidRouteError: ['MG_INVALID_ROUTE', 400],
    RouteConflictError: ['MG_ROUTE_CONFLICT', 409],
    PreconditionFailedError: ['MG_PRECONDITION_FAILED', 412],
    QueueFullError: ['MG_QUEUE_FULL', 503],
    DeadlineExceededError: ['MG_DEADLINE_EXCEEDED', 504],
    RequestAbortedError: ['MG_REQUEST_ABORTED', 499],
    WorkerLostError: ['MG_WORKER_LOST', 503],
    StateNotSavedError: ['MG_STATE_NOT_SAVED', 500],
    BodyTooLargeError: ['MG_BODY_TOO_LARGE', 413],
    UnsupportedMediaTypeError: ['MG_UNSUPPORTED_MEDIA_TYPE', 415],
    VersionNotFoundError: ['MG_VERSION_NOT_FOUND', 404],
    InvalidModelError: ['MG_INVALID_MODEL', 400],
    ModelConflictError: ['MG_MODEL_CONFLICT', 409],
    ModelNotLoadableError: ['MG_MODEL_NOT_LOADABLE', 422],
    RepositoryNotWritableError: ['MG_REPOSITORY_NOT_WRITABLE', 500],
    NoSpareCapacityError: ['MG_NO_SPARE_CAPACITY', 503],
    RemoteFailedError: ['MG_REMOTE_FAILED', 502],
    RemoteUnavailableError: ['MG_REMOTE_UNAVAILABLE', 503],
    StoreUnavailableError: ['MG_STORE_UNAVAILABLE', 503],
    ConcurrentChangeError: ['MG_CONCURRENT_CHANGE', 409],
    PluginFailedError: ['MG_PLUGIN_FAILED', 500],
    StepOutputMissingError: ['MG_STEP_OUTPUT_MISSING', 500],
    NoMemberAnsweredError: ['MG_NO_MEMBER_ANSWERED', 502],
    NoCaseMatchedError: ['MG_NO_CASE_MATCHED', 400],
    // Their status is the cause's (a step's error, a remote's 4xx): built below with one of 503 and 422.
    StepFailedError: ['MG_STEP_FAILED', 503],
    MemberFailedError: ['MG_MEMBER_FAILED', 503],
    RemoteRejectedError: ['MG_REMOTE_REJECTED', 422],
  };
  const cause = Object.assign(new Error('busy'), { statusCode: 503 });
  const made: Record<string, (make: new (...args: never[]) => Error) => Error> = {
    StepFailedError: (make) => new (make as typeof errors.StepFailedError)('a', cause),
    MemberFailedError: (make) => new (make as typeof errors.MemberFailedError)('a', cause),
    RemoteRejectedError: (make) => new (make as typeof errors.RemoteRejectedError)('refused', 422),
  };
  const constructors = Object.entries(errors).filter(([name]) => name.endsWith('Error') && name !== 'ConfigError');
  t.same(constructors.map(([name]) => name).sort(), Object.keys(expected).sort(), 'every error is listed here');
  for (const [name, make] of constructors) {
    const build = made[name] ?? ((make) => new (make as unknown as new (...args: string[]) => Error)('a', 'b'));
    const error = build(make as new (...args: never[]) => Error) as Error & { code: string; statusCode: number };
    t.same([error.code, error.statusCode], expected[name], name);
    // The code says the name: FooBarError is MG_FOO_BAR.
    t.equal(error.code, `MG_${name.replace(/Error$/, '').replace(/(?<=[a-z])(?=[A-Z])/g, '_').toUpperCase()}`, `${name}: its code spells its name`);
    t.notMatch(error.message, /%s/, `${name}: its message is filled in`);
  }
  const config = new errors.ConfigError(['a: bad', 'b: worse']);
  t.equal(config.code, 'MG_CONFIG_INVALID');
  t.equal(config.message, 'Invalid configuration:\n  a: bad\n  b: worse');
});

t.test('a failed step keeps its cause: status, Retry-After, and the class causedBy finds', async (t) => {
  const cause = errors.withRetryAfter(new errors.NoSpareCapacityError('m'), 2);
  const step = new errors.StepFailedError('first', new errors.StepFailedError('inner', cause));
  t.equal(step.message, "step 'first': step 'inner': Model 'm' is not resident and no slot is free: a shadow copy does not evict");
  t.equal(step.statusCode, 503);
  t.equal(step.retryAfterSeconds, 2);
  t.ok(errors.causedBy(step, errors.NoSpareCapacityError), 'found two causes down');
  t.notOk(errors.causedBy(step, errors.QueueFullError));
  t.notOk(errors.causedBy('not an error', errors.QueueFullError));
});

t.test('an error from a worker thread comes back as its class', async (t) => {
  const run = errors.errorFromWorker({ message: "Inference failed in model 'm': bad shape", code: 'MG_INFERENCE_FAILED' });
  t.ok(run instanceof errors.InferenceFailedError);
  t.equal(run.message, "Inference failed in model 'm': bad shape");
  const load = errors.errorFromWorker({ message: 'its file is not in the model repository' });
  t.notOk(load instanceof errors.InferenceFailedError);
  t.equal(load.message, 'its file is not in the model repository');
});

t.test('Retry-After is whole seconds, at least one', async (t) => {
  t.equal(errors.withRetryAfter(new Error('x'), 0.2).retryAfterSeconds, 1);
  t.equal(errors.withRetryAfter(new Error('x'), 29.1).retryAfterSeconds, 30);
});

t.test('paths from native messages are scrubbed', async (t) => {
  t.equal(errors.scrubPaths("Load model from /srv/models/secret/a.onnx failed: bad"), 'Load model from <path> failed: bad');
  t.equal(errors.scrubPaths('C:\\models\\x\\a.onnx missing'), '<path> missing');
  t.equal(errors.scrubPaths('Could not find an implementation for NoSuchOperator(17)'), 'Could not find an implementation for NoSuchOperator(17)');
});
