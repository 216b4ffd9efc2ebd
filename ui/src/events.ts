// One agent's events, rendered for a person. Every event becomes one element carrying its
// number (`data-event-id`), and every string in it is text.

import type { ContentBlock, EventData, ProxyEvent } from "claude-proxy-client";
import { dollars, h } from "./dom.js";

/** Tool results longer than this are folded. */
const FOLD_CHARS = 600;
const FOLD_LINES = 12;

export function renderEvent(event: ProxyEvent): HTMLElement {
  const element = h("div", { class: `event event-${event.data.type}`, "data-event-id": event.id });
  let shown: HTMLElement;
  try {
    shown = body(event.data);
  } catch {
    // A line without the fields its type has (another CLI version): shown as it came.
    shown = h("pre", {}, JSON.stringify(event.data, null, 2));
  }
  element.append(h("span", { class: "event-id", title: "event number" }, `#${event.id}`), shown);
  return element;
}

function body(data: EventData): HTMLElement {
  switch (data.type) {
    case "agent":
      return line("Agent started", `process ${data.pid}`);
    case "system":
      if (data.subtype === "init" && "model" in data) {
        const tools = Array.isArray(data.tools) ? `${data.tools.length} tools` : "";
        return line("Session", [data.session_id, data.model, tools, data.cwd].filter(Boolean).join(" · "));
      }
      return line(`System: ${data.subtype}`, "");
    case "assistant":
      return blocks("assistant", data.message.content);
    case "user":
      return blocks("user", data.message.content);
    case "result": {
      const figures = [
        data.subtype,
        data.total_cost_usd !== undefined && data.total_cost_usd !== null ? dollars(data.total_cost_usd) : "",
        data.num_turns ? `${data.num_turns} ${data.num_turns === 1 ? "turn" : "turns"}` : "",
        data.duration_ms ? `${(data.duration_ms / 1000).toFixed(1)} s` : "",
      ].filter(Boolean);
      return h(
        "div",
        { class: data.is_error ? "result is-error" : "result" },
        h("strong", {}, "Result "),
        h("span", { class: "muted" }, figures.join(" · ")),
        data.result ? h("div", { class: "text" }, data.result) : null,
      );
    }
    case "stream_event": {
      const delta = (data.event as { delta?: { type?: unknown; text?: unknown } }).delta;
      if (delta?.type === "text_delta" && typeof delta.text === "string") {
        return h("span", { class: "delta" }, delta.text);
      }
      return h("span", { class: "muted" }, String(data.event.type ?? "stream event"));
    }
    case "error":
      return h(
        "div",
        { class: "error" },
        h("strong", {}, `Error (${data.code}) `),
        data.message,
        data.stderr ? folded("stderr", data.stderr, false) : null,
      );
    case "gap":
      return line("Gap", `events ${data.from} to ${data.to} are no longer kept`);
    case "proxy_raw":
      return line("Raw output", data.line);
    case "permission_request":
      return h(
        "div",
        { class: "permission" },
        h("strong", {}, `Asks to use ${data.tool_name}`),
        data.description ? h("div", { class: "muted" }, data.description) : null,
        h("pre", {}, JSON.stringify(data.input, null, 2)),
      );
    case "permission_decision":
      return line(
        data.behavior === "allow" ? `Allowed ${data.tool_name}` : `Denied ${data.tool_name}`,
        [data.decided_by === "timeout" ? "(no answer in time)" : "", data.message ?? ""].filter(Boolean).join(" "),
      );
    case "permission_cancelled":
      return line("Approval withdrawn", data.request_id);
    case "complete":
      return h(
        "div",
        { class: `complete status-${data.status}` },
        h("strong", {}, `Ended: ${data.status}`),
        " ",
        h(
          "span",
          { class: "muted" },
          [
            data.exit_code !== undefined && data.exit_code !== null ? `exit ${data.exit_code}` : "",
            data.signal ?? "",
            `${(data.duration_ms / 1000).toFixed(1)} s`,
          ]
            .filter(Boolean)
            .join(" · "),
        ),
      );
    case "unknown":
      return h("pre", {}, JSON.stringify(data.data, null, 2));
  }
}

function line(title: string, text: string): HTMLElement {
  return h("div", {}, h("strong", {}, title), " ", h("span", { class: "muted" }, text));
}

function blocks(role: "assistant" | "user", content: string | ContentBlock[]): HTMLElement {
  const element = h("div", { class: `message ${role}` });
  const list: ContentBlock[] = typeof content === "string" ? [{ type: "text", text: content }] : content;
  for (const block of list) element.append(contentBlock(role, block));
  return element;
}

function contentBlock(role: "assistant" | "user", block: ContentBlock): HTMLElement {
  switch (block.type) {
    case "text":
      return h("div", { class: "text" }, h("span", { class: "role" }, role === "user" ? "User: " : ""), block.text ?? "");
    case "thinking":
      return folded("Thinking", block.thinking ?? "", true);
    case "tool_use":
      return h(
        "div",
        { class: "tool-use" },
        h("strong", { class: "tool-name" }, `Tool: ${block.name ?? "?"}`),
        h("pre", {}, JSON.stringify(block.input ?? {}, null, 2)),
      );
    case "tool_result": {
      const text = resultText(block.content);
      const title = block.is_error ? "Tool error" : "Tool result";
      const element = folded(title, text, isLong(text));
      if (block.is_error) element.classList.add("is-error");
      element.classList.add("tool-result");
      return element;
    }
    case "image":
      return h("div", { class: "muted" }, "[image]");
    default:
      return h("pre", {}, JSON.stringify(block, null, 2));
  }
}

function resultText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part: { type?: unknown; text?: unknown }) =>
        part.type === "text" && typeof part.text === "string" ? part.text : JSON.stringify(part),
      )
      .join("\n");
  }
  return content === undefined || content === null ? "" : JSON.stringify(content);
}

function isLong(text: string): boolean {
  return text.length > FOLD_CHARS || text.split("\n").length > FOLD_LINES;
}

/** A `<details>`: open unless `fold`. */
function folded(title: string, text: string, fold: boolean): HTMLElement {
  const lines = text.split("\n").length;
  return h(
    "details",
    { open: !fold },
    h("summary", {}, `${title} (${lines} ${lines === 1 ? "line" : "lines"})`),
    h("pre", {}, text),
  );
}
