/**
 * The console's only way to the gateway: same-origin fetches. The admin token lives in
 * sessionStorage (gone when the tab closes) and travels only as the Authorization header
 * of /admin calls: never in a URL, never in localStorage. A tenant's API key, asked for when
 * the data plane answers 401 or 403, is kept the same way and sent only on /v2 calls. The shapes of the answers are
 * the client package's (`@modelgate/client/wire`, types only); the calls are the browser's
 * fetch, because the client's transport is undici's connection pool, which runs on Node only.
 */
export type {
  Capacity, HistoryBucket, Interval, ModelList, ModelMetadata, ModelStatus, NodeHistory, RouteHistory, RouteStats, RouteView, Split, Step, TensorSpec,
} from '@modelgate/client/wire';

const TOKEN = 'modelgate.adminToken';
/** A tenant's API key for the data plane, when the gateway has tenants: kept like the admin token. */
const API_KEY = 'modelgate.apiKey';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN);
}

export function signIn(value: string): void {
  sessionStorage.setItem(TOKEN, value);
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(API_KEY);
}

export function rememberApiKey(value: string): void {
  sessionStorage.setItem(API_KEY, value);
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

/** A V2 call: never the admin token; a tenant's API key once one was given. */
export function v2<T>(method: string, url: string, body?: unknown): Promise<Answer<T>> {
  const key = sessionStorage.getItem(API_KEY);
  return call<T>(method, url, body, key === null ? {} : { authorization: `Bearer ${key}` });
}

/** The role of the signed-in token (GET /admin/whoami): with read, the console shows and never changes. */
export type Role = 'read' | 'operate' | 'admin';
const RANK: Record<Role, number> = { read: 0, operate: 1, admin: 2 };
let signedInRole: Role = 'read';

export async function learnRole(): Promise<Role> {
  signedInRole = (await admin<{ role: Role }>('GET', '/admin/whoami')).body.role;
  return signedInRole;
}

/** Whether the signed-in token may do what needs `role`. */
export function may(role: Role): boolean {
  return RANK[signedInRole] >= RANK[role];
}

/** A control's tooltip when the token's role does not allow it. */
export const READ_ONLY = 'Read-only: this token has the read role';
