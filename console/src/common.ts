/**
 * What the console's pages share: navigation inside the single page, polling while a
 * page is mounted, and how problems are shown.
 */
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';

export const REFRESH_MS = 3000;

// ---- navigation -------------------------------------------------------------

export function currentKey(): string | undefined {
  const match = /^\/console\/keys\/([^/]+)\/?$/.exec(location.pathname);
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1]);
}

export function go(path: string): void {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function Link({ href, children }: { href: string; children: unknown }) {
  return html`<a href=${href} onClick=${(event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    go(href);
  }}>${children}</a>`;
}

export const keyHref = (key: string) => `/console/keys/${encodeURIComponent(key)}`;

/** Calls `work` now and every `ms` while mounted; `deps` restart it. */
export function usePolling(work: () => Promise<void>, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const tick = async () => {
      await work().catch(() => undefined);
      if (!stopped) timer = window.setTimeout(tick, ms);
    };
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, deps);
}

export function Problem({ error }: { error: string | undefined }) {
  return error === undefined ? null : html`<p class="problem" role="alert">${error}</p>`;
}

export const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
