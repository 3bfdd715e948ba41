/**
 * Who calls the data plane: tenants identified by an API key (its SHA-256 digest) or a TLS
 * client certificate's subject, each allowed some keys, held to a token bucket and a cap on
 * requests in progress, and weighted by its share where models are contended (the fair
 * queues of executor/fair-queue.ts and the registry's slot scheduling read the share).
 *
 * Keys are looked up by digest, and compared as digests in constant time: the time a lookup
 * takes depends on the digest of what was sent, which tells an attacker nothing of a real key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { TenantSpec } from '../config/schema.ts';
import { ForbiddenError, RateLimitedError, TooManyInFlightError, UnauthorizedError, withRetryAfter } from '../errors.ts';
import type { Flow } from '../waiting.ts';

/** What one tenant's requests did on this replica, since start (or since the tenant was created). */
export interface TenantCounters {
  /** Requests admitted. */
  requests: number;
  /** 403: a key outside its allow list. */
  forbidden: number;
  /** 429 from the token bucket. */
  rateLimited: number;
  /** 429 from maxInFlight. */
  overInFlight: number;
  /** Admitted requests that waited for a model (a load, a slot, a place in a batch or run queue), and the sum of their waits. */
  waited: number;
  waitMs: number;
  maxWaitMs: number;
}

/** A tenant's request let in: its flow for the fair queues; `done` exactly once when it is answered. */
export interface Admission {
  readonly tenant: string;
  readonly flow: Flow;
  /** Told what the request waited for its models, in ms, when it completes. */
  waited(milliseconds: number): void;
  done(): void;
}

const BEARER = /^Bearer[ \t]+([^\s]+)\s*$/i;

/** Why a call was refused, for metrics. */
export type Refusal = 'unauthorized' | 'forbidden' | 'rate_limited' | 'over_in_flight';

/** A certificate's subject as tenants[].certSubject names it: its fields as key=value, joined by commas, in the certificate's order. */
export function subjectOf(certificate: Pick<PeerCertificate, 'subject'> | undefined): string | undefined {
  const subject = certificate?.subject as Record<string, string | string[]> | undefined;
  if (subject === undefined || Object.keys(subject).length === 0) return undefined;
  return Object.entries(subject).flatMap(([field, value]) => (Array.isArray(value) ? value : [value]).map((each) => `${field}=${each}`)).join(',');
}

const subjects = new WeakMap<TLSSocket, string | null>();

/** The subject of the verified client certificate of a TLS connection (read once per connection); undefined without one. */
export function socketSubject(socket: unknown): string | undefined {
  const tls = socket as TLSSocket;
  if (typeof tls.getPeerCertificate !== 'function' || !tls.authorized) return undefined;
  let subject = subjects.get(tls);
  if (subject === undefined) {
    subject = subjectOf(tls.getPeerCertificate()) ?? null;
    subjects.set(tls, subject);
  }
  return subject ?? undefined;
}

/**
 * What a tenant has used: one object for the tenant's life, handed on to each new version of
 * it, so the requests admitted before a live change are counted out of the same in-flight
 * figure when they finish, and a new limit is not a fresh burst.
 */
class Usage {
  readonly counters: TenantCounters = { requests: 0, forbidden: 0, rateLimited: 0, overInFlight: 0, waited: 0, waitMs: 0, maxWaitMs: 0 };
  inFlight = 0;
  /** The token bucket: tokens in it as of `filledAt` (ms). */
  tokens = Number.POSITIVE_INFINITY;
  filledAt: number;

  constructor(now: number) {
    this.filledAt = now;
  }
}

class Tenant {
  readonly spec: TenantSpec;
  readonly flow: Flow;
  readonly usage: Usage;
  readonly #allow: RegExp;

  constructor(spec: TenantSpec, usage: Usage) {
    this.spec = spec;
    this.flow = { name: spec.name, share: spec.share };
    this.#allow = globs(spec.allow);
    this.usage = usage;
    usage.tokens = Math.min(usage.tokens, this.#burst);
  }

  get #burst(): number {
    const limit = this.spec.rateLimit;
    return limit === undefined ? Number.POSITIVE_INFINITY : limit.burst ?? Math.max(1, limit.requestsPerSecond);
  }

  allows(key: string): boolean {
    return this.#allow.test(key);
  }

  /** Takes a token; undefined when there is one, else the seconds until the next. */
  take(now: number): number | undefined {
    const limit = this.spec.rateLimit;
    if (limit === undefined) return undefined;
    const usage = this.usage;
    usage.tokens = Math.min(this.#burst, usage.tokens + ((now - usage.filledAt) / 1000) * limit.requestsPerSecond);
    usage.filledAt = now;
    if (usage.tokens >= 1) {
      usage.tokens -= 1;
      return undefined;
    }
    return (1 - usage.tokens) / limit.requestsPerSecond;
  }
}

/** Exact names, or globs whose * matches any run of characters: one anchored expression (keys hold no regex characters but '.'). */
function globs(patterns: readonly string[]): RegExp {
  const alternatives = patterns.map((pattern) => pattern.split('*').map((part) => part.replaceAll('.', '\\.')).join('.*'));
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}

function digestBytes(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export class Tenants {
  #byName = new Map<string, Tenant>();
  #byKey = new Map<string, { tenant: Tenant; digest: Buffer }>();
  #bySubject = new Map<string, Tenant>();
  /** 401s: not anyone's, so counted here. */
  unauthorized = 0;
  readonly #now: () => number;
  readonly #refused: (tenant: string, why: Refusal) => void;

  /**
   * @param refused told of every call refused (tenant '' for a 401), for metrics.
   * @param now a clock in ms (performance.now() by default; tests pass their own).
   */
  constructor(specs: readonly TenantSpec[], refused: (tenant: string, why: Refusal) => void = () => undefined, now: () => number = () => performance.now()) {
    this.#now = now;
    this.#refused = refused;
    this.replace(specs);
  }

  /** Identifies the caller and lets its call of `key` in (no key: a call of no one key, e.g. every key's statistics). */
  call(authorization: string | undefined, certSubject: string | undefined, key: string | undefined): Admission {
    return this.admit(this.identify(authorization, certSubject), key);
  }

  /** Whether the named tenant may call `key`. */
  allows(tenant: string, key: string): boolean {
    return this.#byName.get(tenant)?.allows(key) === true;
  }

  /** Puts a new set of tenants in force at once; a tenant that stays keeps its counters, bucket and requests in progress. */
  replace(specs: readonly TenantSpec[]): void {
    const now = this.#now();
    const byName = new Map<string, Tenant>();
    const byKey = new Map<string, { tenant: Tenant; digest: Buffer }>();
    const bySubject = new Map<string, Tenant>();
    for (const spec of specs) {
      const tenant = new Tenant(spec, this.#byName.get(spec.name)?.usage ?? new Usage(now));
      byName.set(spec.name, tenant);
      for (const digest of spec.apiKeys) byKey.set(digest, { tenant, digest: Buffer.from(digest.slice('sha256:'.length), 'hex') });
      if (spec.certSubject !== undefined) bySubject.set(spec.certSubject, tenant);
    }
    this.#byName = byName;
    this.#byKey = byKey;
    this.#bySubject = bySubject;
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  spec(name: string): TenantSpec | undefined {
    return this.#byName.get(name)?.spec;
  }

  /** A tenant's counters and requests in progress; undefined if there is no such tenant. */
  stats(name: string): (TenantCounters & { inFlight: number }) | undefined {
    const usage = this.#byName.get(name)?.usage;
    return usage === undefined ? undefined : { ...usage.counters, inFlight: usage.inFlight };
  }

  /**
   * The tenant a call comes from, by its `authorization` header (Bearer <API key>), else its
   * verified client certificate's subject; 401 when neither names one.
   */
  identify(authorization: string | undefined, certSubject: string | undefined): Tenant {
    if (authorization !== undefined) {
      const match = BEARER.exec(authorization);
      const given = match === null ? undefined : digestBytes(match[1] as string);
      const found = given === undefined ? undefined : this.#byKey.get(`sha256:${given.toString('hex')}`);
      if (found !== undefined && timingSafeEqual(found.digest, given as Buffer)) return found.tenant;
      this.#unauthorized();
      throw new UnauthorizedError(match === null ? 'authorization: expected Bearer <API key>' : 'authorization: the API key is not valid');
    }
    const bySubject = certSubject === undefined ? undefined : this.#bySubject.get(certSubject);
    if (bySubject !== undefined) return bySubject;
    this.#unauthorized();
    throw new UnauthorizedError(certSubject === undefined
      ? 'This gateway needs an API key: send authorization: Bearer <API key>'
      : 'authorization: no API key sent, and the client certificate names no tenant');
  }

  /**
   * Lets a call of `key` in: 403 outside the tenant's allow list (naming only the key), 429
   * with Retry-After past its rate or its requests in progress. Nothing is counted in progress
   * for a call refused.
   */
  admit(tenant: Tenant, key: string | undefined): Admission {
    const usage = tenant.usage;
    const counters = usage.counters;
    const name = tenant.spec.name;
    if (key !== undefined && !tenant.allows(key)) {
      counters.forbidden += 1;
      this.#refused(name, 'forbidden');
      throw Object.assign(new ForbiddenError(`This API key may not call key '${key}'`), { tenant: name });
    }
    const limit = tenant.spec.maxInFlight;
    if (limit !== undefined && usage.inFlight >= limit) {
      counters.overInFlight += 1;
      this.#refused(name, 'over_in_flight');
      throw Object.assign(withRetryAfter(new TooManyInFlightError(String(limit)), 1), { tenant: name });
    }
    const wait = tenant.take(this.#now());
    if (wait !== undefined) {
      counters.rateLimited += 1;
      this.#refused(name, 'rate_limited');
      throw Object.assign(withRetryAfter(new RateLimitedError(String(tenant.spec.rateLimit?.requestsPerSecond)), wait), { tenant: name });
    }
    counters.requests += 1;
    usage.inFlight += 1;
    let done = false;
    return {
      tenant: tenant.spec.name,
      flow: tenant.flow,
      waited(milliseconds) {
        if (milliseconds <= 0) return;
        counters.waited += 1;
        counters.waitMs += milliseconds;
        counters.maxWaitMs = Math.max(counters.maxWaitMs, milliseconds);
      },
      done() {
        if (done) return;
        done = true;
        usage.inFlight -= 1;
      },
    };
  }

  #unauthorized(): void {
    this.unauthorized += 1;
    this.#refused('', 'unauthorized');
  }
}
