/**
 * Tenants changed through the admin API: each change checked like the configuration (keys as
 * digests only, no key or subject held by two tenants), persisted in the live-state document
 * with routes and models (the state file, or Redis for a fleet), and in force at once; the
 * changes other replicas write arrive with their documents. A key revoked on one replica is
 * refused by every replica once its document arrives.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { bodyProblems } from '../config/pointer.ts';
import { TenantBodySchema, withDefaults, type TenantSpec } from '../config/schema.ts';
import { checkTenants } from '../config/tenants.ts';
import { InvalidTenantError, TenantConflictError, TenantNotFoundError } from '../errors.ts';
import { checkIfMatch } from '../live/precondition.ts';
import type { Router } from '../live/router.ts';
import { baseHolds, entryDigest, type RouteState, type TenantStateEntry } from '../store/document.ts';
import type { Tenants } from './tenants.ts';

const body = TypeCompiler.Compile(TenantBodySchema);

/** A tenant as the admin API shows it: keys as digests, and its version (0: as configured, never changed live). */
export interface TenantView {
  readonly name: string;
  readonly version: number;
  readonly tenant: TenantSpec;
}

export class LiveTenants {
  readonly #tenants: Tenants;
  readonly #router: Router;
  readonly #configured: ReadonlyMap<string, TenantSpec>;
  #current = new Map<string, TenantView>();

  constructor(tenants: Tenants, configured: readonly TenantSpec[], router: Router, state: RouteState | undefined, log: (message: string, details: Record<string, unknown>) => void) {
    this.#tenants = tenants;
    this.#router = router;
    this.#configured = new Map(configured.map((tenant) => [tenant.name, tenant]));
    const kept = new Map<string, TenantStateEntry>();
    for (const [name, entry] of Object.entries(state?.tenants ?? {})) {
      if (baseHolds(entry.base, this.#configured.get(name))) kept.set(name, entry);
      else log('live change dropped: the configuration file changed this tenant since', { tenant: name });
    }
    if (!this.#apply(kept)) {
      log('live tenant changes ignored: they no longer fit the configuration', {});
      kept.clear();
      this.#apply(kept);
    }
    router.adoptTenantsWith(kept, (entries) => {
      if (!this.#apply(new Map(Object.entries(entries)))) log('shared tenants not applied: a key or subject is held twice', {});
    });
  }

  list(): TenantView[] {
    return [...this.#current.values()];
  }

  get(name: string): TenantView {
    const view = this.#current.get(name);
    if (view === undefined) throw new TenantNotFoundError(name);
    return view;
  }

  /** Creates or replaces a tenant; 400 naming each problem of the body, 409 for a key another tenant holds, 412 for a stale If-Match. */
  put(name: string, document: unknown, ifMatch: string | undefined): Promise<{ created: boolean; view: TenantView }> {
    return this.#router.serialized(async () => {
      checkIfMatch(`tenant '${name}'`, this.#current.get(name)?.version, ifMatch);
      const given = withDefaults(TenantBodySchema, document) as Omit<TenantSpec, 'name'> & { name?: string };
      const problems = bodyProblems(body.Errors(given));
      if (problems.length > 0) throw new InvalidTenantError(problems.join('; '));
      if (given.name !== undefined && given.name !== name) throw new InvalidTenantError(`name: '${given.name}' is not the path's tenant '${name}'`);
      const tenant: TenantSpec = { ...given, name };
      const others = [...this.#current.values()].filter((view) => view.name !== name).map((view) => view.tenant);
      const issues = checkTenants([...others, tenant]).filter((issue) => issue.index === others.length);
      if (issues.length > 0) throw new TenantConflictError(issues.map((issue) => `${issue.path}: ${issue.message.replace(/one of tenants\[\d+\]'s/, "another tenant's").replace(/tenants\[\d+\]/, 'another tenant')}`).join('; '));
      const created = !this.#current.has(name);
      const version = await this.#router.changeTenant(name, tenant, entryDigest(this.#configured.get(name)));
      this.#set(name, { name, version, tenant });
      return { created, view: this.get(name) };
    });
  }

  /** Deletes a tenant: its keys are refused from now on, its requests in progress finish. */
  remove(name: string, ifMatch: string | undefined): Promise<void> {
    return this.#router.serialized(async () => {
      const version = this.get(name).version;
      checkIfMatch(`tenant '${name}'`, version, ifMatch);
      await this.#router.changeTenant(name, null, entryDigest(this.#configured.get(name)));
      this.#set(name, undefined);
    });
  }

  #set(name: string, view: TenantView | undefined): void {
    const next = new Map(this.#current);
    if (view === undefined) next.delete(name);
    else next.set(name, view);
    this.#current = next;
    this.#tenants.replace([...next.values()].map((each) => each.tenant));
  }

  /** The configured tenants with `kept` over them, in force; false (nothing changed) if two would share a key or subject. */
  #apply(kept: ReadonlyMap<string, TenantStateEntry>): boolean {
    const next = new Map<string, TenantView>();
    for (const [name, tenant] of this.#configured) next.set(name, { name, version: 0, tenant });
    for (const [name, entry] of kept) {
      if (!baseHolds(entry.base, this.#configured.get(name))) continue;
      if (entry.tenant === null) next.delete(name);
      else next.set(name, { name, version: entry.version, tenant: entry.tenant });
    }
    if (checkTenants([...next.values()].map((view) => view.tenant)).length > 0) return false;
    this.#current = next;
    this.#tenants.replace([...next.values()].map((view) => view.tenant));
    return true;
  }
}
