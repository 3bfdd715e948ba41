/** The checks that span tenants, for the configuration file and live changes alike. */
import type { TenantSpec } from './schema.ts';

export interface TenantIssue {
  readonly index: number;
  readonly path: string;
  readonly message: string;
}

/** Names unique; every key digest and certificate subject identifies one tenant; each tenant reachable by one of them. */
export function checkTenants(tenants: readonly TenantSpec[]): TenantIssue[] {
  const issues: TenantIssue[] = [];
  const names = new Map<string, number>();
  const keys = new Map<string, number>();
  const subjects = new Map<string, number>();
  tenants.forEach((tenant, index) => {
    const first = names.get(tenant.name);
    if (first !== undefined) issues.push({ index, path: 'name', message: `'${tenant.name}' is already the name of tenants[${first}]` });
    else names.set(tenant.name, index);
    tenant.apiKeys.forEach((digest, keyIndex) => {
      const owner = keys.get(digest);
      // The message names the place, never the other tenant's key.
      if (owner !== undefined) issues.push({ index, path: `apiKeys[${keyIndex}]`, message: owner === index ? 'the same key twice' : `this key is already one of tenants[${owner}]'s` });
      else keys.set(digest, index);
    });
    if (tenant.certSubject !== undefined) {
      const owner = subjects.get(tenant.certSubject);
      if (owner !== undefined) issues.push({ index, path: 'certSubject', message: `tenants[${owner}] has this subject already` });
      else subjects.set(tenant.certSubject, index);
    }
    if (tenant.apiKeys.length === 0 && tenant.certSubject === undefined) {
      issues.push({ index, path: 'apiKeys', message: 'a tenant needs an API key or a certSubject, or nobody can call as it' });
    }
  });
  return issues;
}
