// The agents page: a form to start one, and the key's agents in a table kept up to date.

import type { AgentListItem, AgentRequest } from "claude-proxy-client";
import { dollars, duration, fill, h, time } from "./dom.js";
import { every, type Frame, type Page } from "./page.js";
import { api } from "./session.js";

const REFRESH_MS = 1500;

export function agentsPage(main: HTMLElement, frame: Frame): Page {
  const prompt = h("textarea", { id: "prompt", name: "prompt", rows: 3, required: true, placeholder: "What should the agent do?" });
  const model = h("input", { id: "model", name: "model", placeholder: "model (default if empty)" });
  const interactive = h("input", { id: "interactive", type: "checkbox" });
  const approvals = h("input", { id: "approvals", type: "checkbox" });
  // Approvals come through the conversation of an interactive agent.
  approvals.addEventListener("change", () => {
    if (approvals.checked) interactive.checked = true;
  });
  const form = h(
    "form",
    { id: "start-form", class: "card" },
    h("h2", {}, "Start an agent"),
    prompt,
    h(
      "div",
      { class: "row" },
      model,
      h("label", {}, interactive, " interactive (takes follow-ups)"),
      h("label", {}, approvals, " ask me before tools run"),
      h("button", { type: "submit", id: "start" }, "Start"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request: AgentRequest = { prompt: prompt.value, interactive: interactive.checked, approvals: approvals.checked };
    if (model.value.trim()) request.model = model.value.trim();
    api()
      .start(request)
      .then((started) => {
        window.location.hash = `#/agent/${started.agent_id}`;
      })
      .catch((error: unknown) => frame.failed("Could not start", error));
  });

  const rows = h("tbody", { id: "agent-rows" });
  const table = h(
    "table",
    { id: "agents" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Agent", "Status", "Kind", "Model", "Session", "Started", "Duration", "Turns", "Cost", "Approvals"].map((title) =>
          h("th", {}, title),
        ),
      ),
    ),
    rows,
  );
  const empty = h("p", { id: "no-agents", class: "muted", hidden: true }, "No agents yet for this key.");
  fill(main, form, h("section", { class: "card" }, h("h2", {}, "Agents"), table, empty));

  const poll = every(REFRESH_MS, async () => {
    try {
      const { agents } = await api().agents();
      fill(rows, ...agents.slice().reverse().map(row));
      empty.hidden = agents.length > 0;
    } catch (error) {
      frame.failed("Could not list the agents", error);
    }
  });
  return { stop: poll.stop };
}

function row(agent: AgentListItem): HTMLTableRowElement {
  const link = h("a", { href: `#/agent/${agent.agent_id}` }, agent.agent_id.slice(0, 8));
  return h(
    "tr",
    { "data-agent-id": agent.agent_id, class: agent.pending_permissions > 0 ? "waiting-approval" : undefined },
    h("td", {}, link),
    h("td", {}, h("span", { class: `status status-${agent.status}` }, agent.status)),
    h("td", {}, agent.kind),
    h("td", {}, agent.model ?? "–"),
    h("td", { class: "mono" }, agent.session_id ? agent.session_id.slice(0, 8) : "–"),
    h("td", {}, time(agent.started_at)),
    h("td", {}, duration(agent.started_at, agent.ended_at)),
    h("td", {}, agent.turns),
    h("td", {}, dollars(agent.total_cost_usd)),
    h("td", { class: "approvals" }, agent.pending_permissions > 0 ? String(agent.pending_permissions) : ""),
  );
}
