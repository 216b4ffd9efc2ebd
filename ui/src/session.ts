// The client key, for this tab only: kept in sessionStorage and sent as a bearer header by the
// TypeScript client. No cookie is ever set, so another site cannot make the browser act with it.

import { ClaudeProxy, ProxyError } from "claude-proxy-client";

const KEY_ITEM = "claude-proxy.key";

/** Where the API is: the directory the page was served from (`/ui` → `/`), so a proxy mounted
 * under a path prefix works too. */
function apiBase(): string {
  return new URL(".", window.location.href).href;
}

export function savedKey(): string | undefined {
  return sessionStorage.getItem(KEY_ITEM) ?? undefined;
}

/** Sets the tab's key, forgetting whatever the page kept under the one before. */
export function saveKey(key: string | undefined): void {
  sessionStorage.clear();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  current = undefined;
}

let current: ClaudeProxy | undefined;

/** The client, with the key of this tab. */
export function api(): ClaudeProxy {
  current ??= new ClaudeProxy({ baseUrl: apiBase(), apiKey: savedKey() });
  return current;
}

/** Whether an error says the key is missing or wrong. */
export function needsKey(error: unknown): boolean {
  return error instanceof ProxyError && error.status === 401;
}

/** What to show a person for a failed call. */
export function describe(error: unknown): string {
  if (error instanceof ProxyError) return `${error.status}: ${error.detail}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
