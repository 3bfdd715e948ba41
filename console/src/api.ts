/**
 * The console's only way to the gateway: same-origin fetches. The admin token lives in
 * sessionStorage (gone when the tab closes) and travels only as the Authorization header
 * of /admin calls: never in a URL, never in localStorage.
 */
const TOKEN = 'modelgate.adminToken';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN);
}

export function signIn(value: string): void {
  sessionStorage.setItem(TOKEN, value);
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN);
}

/** An answer other than 2xx: the status and the gateway's own message. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface Answer<T> {
  readonly body: T;
  readonly etag: string | null;
  readonly status: number;
}

async function call<T>(method: string, url: string, body: unknown, headers: Record<string, string>): Promise<Answer<T>> {
  const response = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const message = (parsed as { error?: unknown } | undefined)?.error;
    throw new ApiError(response.status, typeof message === 'string' ? message : `${response.status} ${response.statusText}`);
  }
  return { body: parsed as T, etag: response.headers.get('etag'), status: response.status };
}

/** An /admin call with the token. */
export function admin<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> {
  return call<T>(method, url, body, { authorization: `Bearer ${token() ?? ''}`, ...headers });
}

/** A V2 call: no token. */
export function v2<T>(method: string, url: string, body?: unknown): Promise<Answer<T>> {
  return call<T>(method, url, body, {});
}

export interface ModelStatus {
  name: string;
  keys: string[];
  state: 'unloaded' | 'loading' | 'resident' | 'failed' | 'remote';
  inFlight: number;
  loads: number;
  evictions: number;
  lastUsedAt: string | null;
  reason?: string;
}

export interface Capacity {
  maxResidentModels: number | null;
  residentModels: number;
  maxResidentBytes: number | null;
  residentBytes: number;
}

export interface Variant { target: string; weight: number }
export interface Rollout {
  candidate: string;
  steps: number[];
  status?: { state: string; step: number; weight: number; reason?: string; since?: string };
  [field: string]: unknown;
}
export interface Split {
  variants: Variant[];
  stickyHeader?: string;
  shadow?: { target: string; percent?: number };
  rollout?: Rollout;
}
export interface Step {
  name?: string;
  target: string;
  inputs?: Record<string, string>;
  outputs?: Record<string, string>;
  postprocess?: Array<Record<string, unknown>>;
}
export interface RouteView {
  key: string;
  kind: 'split' | 'sequence';
  version: number;
  split?: Split;
  sequence?: { steps: Step[] };
}

export interface Interval { value: number; low95: number; high95: number }
export interface VariantStats {
  target: string;
  requests: number;
  errors: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  errorRate: Interval | null;
  errorRateDifference?: Interval | null;
}
export interface Window {
  since: string;
  variants: VariantStats[];
  shadow?: { target: string; sent: number; dropped: number; errors: number; compared: number; agreement: number | null; agreementInterval: Interval | null; latencyMs: VariantStats['latencyMs'] };
}
export interface RouteStats { key: string; version: number; sinceChange: Window; sinceStart: Window }

export interface TensorMetadata { name: string; datatype: string; shape: number[] }
export interface ModelMetadata { name: string; platform?: string; inputs: TensorMetadata[]; outputs: TensorMetadata[] }
