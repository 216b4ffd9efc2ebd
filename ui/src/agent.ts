// One agent: what it is, its events as they come, its pending tool approvals, and what can be
// done to it. Its events are kept in sessionStorage as they are shown, so that after a reload
// the page shows them again and asks only for the later ones (`Last-Event-ID`).

import { ProxyError, type AgentDetail, type PermissionRequest, type ProxyEvent, type WebhookDelivery } from "claude-proxy-client";
import { dollars, duration, fill, h, time } from "./dom.js";
import { renderEvent } from "./events.js";
import { every, type Frame, type Page } from "./page.js";
import { api, describe, needsKey } from "./session.js";

const DETAIL_MS = 2000;
/** Wait before following the events again after the connection dropped for good. */
const RECONNECT_MS = 2000;
const CACHE_PREFIX = "claude-proxy.events.";
/** Beyond this, the events are not kept for a reload (which then reads them from the start). */
const CACHE_MAX_CHARS = 4_000_000;
/** The most events a page shows and keeps. */
const MAX_SHOWN = 5000;
const ENDED = new Set(["completed", "failed", "stopped", "timed_out"]);

export function agentPage(main: HTMLElement, agentId: string, frame: Frame): Page {
  const controller = new AbortController();
  const { signal } = controller;
  const fail = (what: string) => (error: unknown) => frame.failed(what, error);

  const info = h("dl", { id: "agent-info", class: "info" });
  const result = h("div", { id: "agent-result" });
  const approvals = h("section", { id: "approvals" });
  const webhooks = h("section", { id: "webhooks", class: "card", hidden: true });
  const eventList = h("div", { id: "events", "aria-live": "polite" });
  const eventCount = h("span", { id: "event-count", class: "muted" });
  const followUp = h("textarea", { id: "follow-up", rows: 2, placeholder: "A follow-up message" });
  const followForm = h(
    "form",
    { id: "follow-up-form", class: "row", hidden: true },
    followUp,
    h("button", { type: "submit", id: "send" }, "Send"),
  );
  const button = (id: string, label: string, action: () => Promise<unknown>, done: string) =>
    h("button", {
      id,
      type: "button",
      onclick: () => {
        action()
          .then(() => frame.notify(done))
          .catch(fail(label));
      },
    }, label);
  const interactiveActions = h(
    "span",
    { hidden: true },
    button("interrupt", "Interrupt", () => api().interrupt(agentId), "Interrupted the turn."),
    button("close", "Close", () => api().close(agentId), "Closed: the agent ends after its turn."),
  );
  const stopButton = button("stop", "Stop", () => api().stop(agentId), "Stopped.");
  const actions = h(
    "div",
    { class: "row actions" },
    interactiveActions,
    stopButton,
    button(
      "delete",
      "Delete",
      async () => {
        await api().delete(agentId);
        forget(agentId);
        window.location.hash = "#/";
      },
      "Deleted.",
    ),
  );
  followForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = followUp.value;
    if (!text.trim()) return;
    api()
      .sendMessage(agentId, text)
      .then(() => {
        followUp.value = "";
        frame.notify("Sent.");
      })
      .catch(fail("Could not send"));
  });

  fill(
    main,
    h("p", {}, h("a", { href: "#/" }, "← All agents")),
    h("section", { class: "card" }, h("h2", {}, "Agent ", h("span", { class: "mono" }, agentId)), info, actions, followForm, result),
    approvals,
    webhooks,
    h("section", { class: "card" }, h("h2", {}, "Events ", eventCount), eventList),
  );

  // The events: the kept ones first, then the live ones after the last of them.
  const shown: ProxyEvent[] = loadCache(agentId);
  let cacheable = true;
  const trimmed = h("p", { id: "events-trimmed", class: "muted", hidden: true });
  eventList.before(trimmed);
  const show = (event: ProxyEvent) => {
    eventList.append(renderEvent(event));
    // A long-lived agent's page keeps its newest events only, so the tab's memory stays bounded.
    while (shown.length > MAX_SHOWN) {
      shown.shift();
      eventList.firstElementChild?.remove();
    }
    const first = shown[0]?.id ?? event.id;
    // (A gap says itself which events the proxy no longer keeps.)
    trimmed.hidden = first <= 1 || shown[0]?.data.type === "gap";
    trimmed.textContent = `Events before #${first} are not shown here.`;
    eventCount.textContent = `(${shown.length}, last #${event.id})`;
  };
  shown.forEach(show);
  let saveTimer: ReturnType<typeof setTimeout> | undefined;
  const save = () => {
    clearTimeout(saveTimer);
    saveTimer = undefined;
    if (cacheable) cacheable = saveCache(agentId, shown);
  };
  const saveSoon = () => {
    saveTimer ??= setTimeout(save, 500);
  };
  window.addEventListener("pagehide", save, { signal });

  let ended = false;
  const follow = async () => {
    for (;;) {
      try {
        const lastEventId = shown.at(-1)?.id;
        for await (const event of api().events(agentId, { lastEventId, signal })) {
          // The proxy sends only later ones; this keeps it so whatever a retry does.
          if (event.id <= (shown.at(-1)?.id ?? 0)) continue;
          shown.push(event);
          show(event);
          saveSoon();
          const type = event.data.type;
          if (type === "permission_request" || type === "permission_decision" || type === "permission_cancelled" || type === "result" || type === "complete") {
            void refresh();
          }
        }
        ended = true;
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (needsKey(error)) return frame.askForKey();
        if (error instanceof ProxyError && error.status === 404) {
          forget(agentId);
          return frame.notify("No such agent for this key (it may have been deleted or forgotten).", "error");
        }
        if (error instanceof ProxyError && error.status === 416) {
          // The agent ended before the last event this page shows: none will follow it.
          ended = true;
          return frame.notify(`No more events: ${error.detail}`, "error");
        }
        frame.notify(`The event stream dropped (${describe(error)}); following again…`, "error");
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
  };

  // What it is, and the approvals it waits for.
  const cards = new Map<string, HTMLElement>();
  let detail: AgentDetail | undefined;
  let gone = false;
  const refresh = async () => {
    try {
      detail = await api().agent(agentId, { signal });
    } catch (error) {
      if (signal.aborted) return;
      // Gone (deleted, forgotten, or never this key's): the event stream says so.
      if (error instanceof ProxyError && error.status === 404) gone = true;
      else frame.failed("Could not read the agent", error);
      return;
    }
    showDetail(detail);
  };
  const showDetail = (agent: AgentDetail) => {
    const running = !ENDED.has(agent.status);
    fill(
      info,
      ...entry("Status", h("span", { class: `status status-${agent.status}`, id: "agent-status" }, agent.status)),
      ...entry("Kind", agent.kind),
      ...entry("Model", agent.model ?? "–"),
      ...entry("Session", h("span", { class: "mono" }, agent.session_id ?? "–")),
      ...entry("Process", agent.pid ? String(agent.pid) : "–"),
      ...entry("Started", time(agent.started_at)),
      ...entry("Duration", duration(agent.started_at, agent.ended_at)),
      ...entry("Turns", String(agent.turns)),
      ...entry("Cost", h("span", { id: "agent-cost" }, dollars(agent.total_cost_usd))),
      ...(agent.mcp_servers.length === 0
        ? []
        : entry("MCP servers", h("span", { id: "agent-mcp-servers", class: "mono" }, agent.mcp_servers.join(", ")))),
    );
    interactiveActions.hidden = !(agent.interactive && running);
    followForm.hidden = !(agent.interactive && running);
    stopButton.disabled = !running;
    const text = typeof agent.result?.result === "string" ? agent.result.result : undefined;
    fill(result, text === undefined ? null : h("div", { class: "result" }, h("strong", {}, "Last result: "), h("span", { class: "text" }, text)));
    webhooks.hidden = agent.webhooks.length === 0;
    fill(
      webhooks,
      h("h2", {}, "Webhook deliveries"),
      h("ul", {}, ...agent.webhooks.map((w) => h("li", { class: `webhook webhook-${w.state}`, "data-id": w.id }, h("span", { class: "mono" }, w.event), `: ${delivery(w)}`))),
    );
    // Approval cards stay as they are while pending, so an edit in progress is not lost.
    const pending = new Set(agent.pending_permissions.map((p) => p.request_id));
    for (const [id, card] of cards) {
      if (!pending.has(id)) {
        card.remove();
        cards.delete(id);
      }
    }
    for (const request of agent.pending_permissions) {
      if (!cards.has(request.request_id)) {
        const card = approvalCard(agentId, request, frame, () => void refresh());
        cards.set(request.request_id, card);
        approvals.append(card);
      }
    }
  };

  void follow();
  const detailPoll = every(DETAIL_MS, async () => {
    // An ended agent's page still follows its webhook events until none is pending.
    const delivering = detail?.webhooks.some((w) => w.state === "pending") ?? false;
    if (gone || (ended && detail && ENDED.has(detail.status) && !delivering)) return;
    await refresh();
  });
  return {
    stop() {
      save();
      controller.abort();
      detailPoll.stop();
    },
  };
}

/** Where a webhook event's delivery stands, in words. */
function delivery(w: WebhookDelivery): string {
  const tries = `${w.attempts} attempt${w.attempts === 1 ? "" : "s"}`;
  const last = w.last_error ?? (w.last_status ? `HTTP ${w.last_status}` : "");
  switch (w.state) {
    case "delivered":
      return `delivered at ${time(w.delivered_at)} (${tries})`;
    case "failed":
      return `failed after ${tries}: ${last}`;
    default:
      return w.attempts === 0 ? "pending" : `pending, ${tries} so far (${last}); next at ${time(w.next_attempt_at)}`;
  }
}

function entry(term: string, value: string | HTMLElement): HTMLElement[] {
  return [h("dt", {}, term), h("dd", {}, value)];
}

/** A pending approval: allow (with the input as the model wrote it, or as edited here), or
 * deny with a message the model is told. */
function approvalCard(agentId: string, request: PermissionRequest, frame: Frame, answered: () => void): HTMLElement {
  const original = JSON.stringify(request.input, null, 2);
  const input = h("textarea", { class: "approval-input", rows: Math.min(12, original.split("\n").length + 1) });
  input.value = original;
  const message = h("input", { class: "deny-message", placeholder: "Why not (the model is told)" });
  const answer = (body: Parameters<ReturnType<typeof api>["answerPermission"]>[2], done: string) => {
    api()
      .answerPermission(agentId, request.request_id, body)
      .then(() => {
        frame.notify(done);
        answered();
      })
      .catch((error: unknown) => frame.failed("Could not answer", error));
  };
  const allow = () => {
    if (input.value === original) return answer({ behavior: "allow" }, `Allowed ${request.tool_name}.`);
    let edited: unknown;
    try {
      edited = JSON.parse(input.value);
    } catch {
      return frame.notify("The edited input is not JSON.", "error");
    }
    if (typeof edited !== "object" || edited === null || Array.isArray(edited)) {
      return frame.notify("The edited input must be a JSON object.", "error");
    }
    answer({ behavior: "allow", updated_input: edited as { [key: string]: unknown } }, `Allowed ${request.tool_name} with the edited input.`);
  };
  return h(
    "div",
    { class: "card approval", "data-request-id": request.request_id },
    h("h3", {}, `${request.tool_name} waits for your approval`),
    request.description ? h("p", { class: "muted" }, request.description) : null,
    h("label", {}, "Input (edit it to allow with a change)", input),
    h("p", { class: "muted" }, `Expires at ${time(request.expires_at)}`),
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", class: "allow", onclick: allow }, "Allow"),
      message,
      h(
        "button",
        {
          type: "button",
          class: "deny",
          onclick: () => {
            const body = message.value.trim() ? { behavior: "deny" as const, message: message.value.trim() } : { behavior: "deny" as const };
            answer(body, `Denied ${request.tool_name}.`);
          },
        },
        "Deny",
      ),
    ),
  );
}

function loadCache(agentId: string): ProxyEvent[] {
  // One agent's events at a time, so the tab's storage stays bounded.
  for (let i = sessionStorage.length - 1; i >= 0; i -= 1) {
    const key = sessionStorage.key(i);
    if (key?.startsWith(CACHE_PREFIX) && key !== CACHE_PREFIX + agentId) sessionStorage.removeItem(key);
  }
  try {
    const events = JSON.parse(sessionStorage.getItem(CACHE_PREFIX + agentId) ?? "[]") as unknown;
    return Array.isArray(events) ? (events as ProxyEvent[]) : [];
  } catch {
    return [];
  }
}

/** Keeps the events for a reload; false when they are too many to keep (a reload then reads
 * them from the proxy). */
function saveCache(agentId: string, events: ProxyEvent[]): boolean {
  const text = JSON.stringify(events);
  try {
    if (text.length > CACHE_MAX_CHARS) throw new Error("too large");
    sessionStorage.setItem(CACHE_PREFIX + agentId, text);
    return true;
  } catch {
    forget(agentId);
    return false;
  }
}

function forget(agentId: string): void {
  sessionStorage.removeItem(CACHE_PREFIX + agentId);
}
