/**
 * Secrets the configuration names (tenants' API keys, admin tokens) are kept as SHA-256
 * digests only: written as `sha256:<hex>`, or as `${VAR}` whose value is the secret itself,
 * hashed as it is read. A secret written out in the file is refused, so none sits in a
 * config repository or reaches a log, the state file or an admin answer.
 */
import { createHash } from 'node:crypto';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const WHOLE_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** `sha256:<hex>` of a secret. */
export function secretDigest(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex')}`;
}

export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/**
 * The digest a configured secret stands for: `written` is the file's text, `value` the same
 * after ${VAR} substitution. Undefined, with an issue, when it is neither a digest nor a
 * reference to a variable (a secret in clear).
 */
export function configuredDigest(written: unknown, value: string, at: string, issues: string[]): string | undefined {
  if (typeof written === 'string' && WHOLE_REFERENCE.test(written)) {
    if (value === '') {
      issues.push(`${at}: the variable ${written} is empty`);
      return undefined;
    }
    return secretDigest(value);
  }
  if (isDigest(value)) return value;
  issues.push(`${at}: write the secret's digest (sha256:<64 hex digits>, e.g. from \`printf %s "$KEY" | sha256sum\`) or \${VAR} naming a variable that holds it, never the secret itself`);
  return undefined;
}

/** A short, stable fingerprint of a digest for logs and the audit trail: enough to tell tokens apart, useless to guess them. */
export function fingerprint(digest: string): string {
  return digest.slice('sha256:'.length, 'sha256:'.length + 12);
}
