/**
 * Who calls the admin API, with which role, and what they changed. Tokens are compared as
 * SHA-256 digests in constant time, every one of them on every call (no early exit, so the
 * time says nothing of which matched). Roles: read (every GET, the console read-only),
 * operate (also traffic and residency: split weights, rollout moves, model load and unload,
 * statistics resets), admin (everything). Every change is kept in an audit trail of the last
 * 1,000, with the caller's role and a fingerprint of its token, never the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminToken, Role } from '../config/schema.ts';
import { fingerprint } from '../config/secrets.ts';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';

const RANK: Readonly<Record<Role, number>> = { read: 0, operate: 1, admin: 2 };
const BEARER = /^Bearer ([^\s]+)\s*$/i;

/** A caller of the admin API. */
export interface AdminIdentity {
  readonly role: Role;
  /** The first 12 hex digits of its token's SHA-256: tells tokens apart in logs, reveals nothing. */
  readonly fingerprint: string;
}

/** Compares digests, so neither the token's content nor its length shows in the timing. */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const match = BEARER.exec(header ?? '');
  const given = createHash('sha256').update(match?.[1] ?? '').digest();
  const wanted = createHash('sha256').update(expected).digest();
  return timingSafeEqual(given, wanted) && match !== null && expected !== '';
}

export class AdminCredentials {
  readonly #tokens: ReadonlyArray<{ digest: Buffer; identity: AdminIdentity }>;

  /** @param token admin.token (the admin role; '' for none); `tokens` the digests of admin.tokens. */
  constructor(token: string, tokens: readonly AdminToken[]) {
    const all = [...(token === '' ? [] : [{ digest: `sha256:${createHash('sha256').update(token).digest('hex')}`, role: 'admin' as const }]), ...tokens];
    this.#tokens = all.map((entry) => ({
      digest: Buffer.from(entry.digest.slice('sha256:'.length), 'hex'),
      identity: { role: entry.role, fingerprint: fingerprint(entry.digest) },
    }));
  }

  /** The caller a bearer header names; 401 (`missing` when no header came) when it names none. */
  identify(header: string | undefined, missing = 'Admin API needs a bearer token'): AdminIdentity {
    const match = BEARER.exec(header ?? '');
    const given = createHash('sha256').update(match?.[1] ?? '').digest();
    let found: AdminIdentity | undefined;
    for (const entry of this.#tokens) {
      if (timingSafeEqual(entry.digest, given) && match !== null) found = entry.identity;
    }
    if (found !== undefined) return found;
    throw new UnauthorizedError(header === undefined ? missing : 'Admin token is not valid');
  }

  /** 403 naming the role `action` needs, unless the caller has it. */
  static require(identity: AdminIdentity, role: Role, action: string): void {
    if (RANK[identity.role] >= RANK[role]) return;
    throw new ForbiddenError(`${action} needs the ${role} role; this token has ${identity.role}`);
  }
}

/** One admin change, as GET /admin/audit lists it. */
export interface AuditEntry {
  readonly at: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly role: Role;
  readonly fingerprint: string;
  /** The changed thing's ETag before and after (null: it did not exist, or has none). */
  readonly etagBefore: string | null;
  readonly etagAfter: string | null;
}

export const AUDIT_ENTRIES = 1000;

export class AuditLog {
  readonly #entries: AuditEntry[] = [];
  readonly #log: (entry: AuditEntry) => void;

  /** @param log told every entry as it is recorded (the gateway's log). */
  constructor(log: (entry: AuditEntry) => void) {
    this.#log = log;
  }

  record(entry: AuditEntry): void {
    this.#entries.push(entry);
    if (this.#entries.length > AUDIT_ENTRIES) this.#entries.splice(0, this.#entries.length - AUDIT_ENTRIES);
    this.#log(entry);
  }

  /** The newest first. */
  list(): AuditEntry[] {
    return this.#entries.toReversed();
  }
}
