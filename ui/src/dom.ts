// Builds elements from text only: nothing the CLI, a model or a client wrote is ever parsed as
// HTML (no innerHTML anywhere), so a `<script>` in a tool's output shows as text.

type Child = Node | string | number | null | undefined | false;

export interface Attributes {
  [name: string]: string | number | boolean | undefined | ((event: Event) => void);
}

/** `h("div", {class: "x", onclick: ...}, "text", child)`: an element with these attributes
 * (`on*` ones become listeners; `true` sets an empty attribute, `false`/`undefined` none) and
 * children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Money as the CLI counts it. */
export function dollars(value: number | null | undefined): string {
  return typeof value === "number" ? `$${value.toFixed(4)}` : "–";
}

/** A duration between two instants, or from one until now. */
export function duration(from: string, to?: string | null): string {
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function time(instant: string | null | undefined): string {
  if (!instant) return "–";
  const date = new Date(instant);
  return Number.isNaN(date.getTime()) ? instant : date.toLocaleTimeString();
}
