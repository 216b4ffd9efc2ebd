// The server at a glance: its health, agents running against the limit, the CLI's login, the
// rate-limit gate, the subscription's windows, the key's own use of the API, the warm pool, the
// approvals waiting across the key's agents, and the counters from /metrics an operator watches.

import type { Health, SubscriptionLimits, UsageReport, Window } from "claude-proxy-client";
import { fill, h, time } from "./dom.js";
import { every, type Frame, type Poller } from "./page.js";
import { api, needsKey } from "./session.js";

const REFRESH_MS = 2000;

export function serverPanel(panel: HTMLElement, pending: HTMLElement, frame: Frame): Poller {
  return every(REFRESH_MS, async () => {
    const client = api();
    const [health, agents, metrics, usage] = await Promise.allSettled([
      client.health(),
      client.agents(),
      client.metrics(),
      client.usage({ by: "model" }),
    ]);
    if (agents.status === "rejected" && needsKey(agents.reason)) frame.askForKey();
    const waiting =
      agents.status === "fulfilled" ? agents.value.agents.reduce((sum, agent) => sum + agent.pending_permissions, 0) : undefined;
    pending.textContent = waiting === undefined ? "" : `${waiting} waiting for approval`;
    pending.classList.toggle("alert", (waiting ?? 0) > 0);
    fill(
      panel,
      ...(health.status === "fulfilled" ? healthFigures(health.value) : [figure("Server", "unreachable", "server-status", true)]),
      ...(health.status === "fulfilled" && health.value.cli ? subscriptionFigures(health.value.subscription ?? null) : []),
      ...(usage.status === "fulfilled" ? usageFigures(usage.value) : []),
      ...(metrics.status === "fulfilled" ? metricFigures(metrics.value) : []),
    );
  });
}

function healthFigures(health: Health): HTMLElement[] {
  const status = figure("Server", health.status, "server-status", health.status !== "ok");
  const { cli, storage, watchdog } = health;
  // Without a key (when keys are configured) /health says only whether the server is up.
  if (!cli || !storage) return [status];
  const login = !cli.found ? "CLI not found" : cli.logged_in ? `logged in (${cli.auth_method ?? "?"})` : "not logged in";
  const limited = health.rate_limited_until;
  const [running, max] = [health.active_agents ?? 0, health.max_agents ?? 0];
  return [
    status,
    figure("Agents", `${running} / ${max} running`, "server-agents", running >= max),
    figure("CLI", login, "server-login", !cli.logged_in),
    figure("Rate limit", limited ? `limited until ${time(limited)}` : "none", "server-rate-limit", Boolean(limited)),
    figure("Sandbox", health.sandbox ?? "?", "server-sandbox", false),
    figure("Storage", storage.ok ? storage.kind : `${storage.kind}: ${storage.error ?? "failing"}`, "server-storage", !storage.ok),
    ...(watchdog
      ? [figure("Watchdog", watchdog.status === "down" ? `down: ${watchdog.error ?? "?"}` : watchdog.status, "server-watchdog", watchdog.status === "down")]
      : []),
    ...warmPoolFigures(health.warm_pool),
  ];
}

/** The subscription's windows, as the API's last answer through the gateway told them. */
function subscriptionFigures(limits: SubscriptionLimits | null): HTMLElement[] {
  if (!limits) return [figure("Subscription", "not told yet", "server-subscription", false)];
  const window = (label: string, id: string, w: Window) => {
    const used = w.utilization === undefined || w.utilization === null ? "?" : `${Math.round(w.utilization * 100)}% used`;
    const reset = w.resets_at ? `, resets ${time(w.resets_at)}` : "";
    return figure(label, `${w.status ?? "?"}, ${used}${reset}`, id, w.status === "rejected");
  };
  return [
    figure("Subscription", limits.status ?? "?", "server-subscription", limits.status === "rejected"),
    window("5-hour window", "server-window-5h", limits.five_hour),
    window("7-day window", "server-window-7d", limits.seven_day),
  ];
}

/** The key's own use of the API, in total and by model. */
function usageFigures(report: UsageReport): HTMLElement[] {
  const counts = (u: UsageReport["total"]) =>
    `${u.requests} requests, ${u.input_tokens} in / ${u.output_tokens} out tokens` + (u.errors > 0 ? `, ${u.errors} errors` : "");
  return [
    figure("Usage (this key)", counts(report.total), "server-usage", false),
    ...report.rows.map((row) => figure(`Usage: ${row.model ?? "?"}`, counts(row), `server-usage-${(row.model ?? "unknown").replace(/[^a-z0-9-]/gi, "-")}`, false)),
  ];
}

/** The CLIs started ahead (PROXY_WARM_POOL), when there is a pool: how many wait, for how
 * many shapes, and how often a run found one. */
function warmPoolFigures(pool: Health["warm_pool"]): HTMLElement[] {
  if (!pool || pool.size === 0) return [];
  const shapes = pool.shapes.filter((shape) => shape.waiting > 0).length;
  const runs = pool.hits + pool.misses;
  const rate = runs === 0 ? "no runs yet" : `${pool.hits} of ${runs} runs served warm, ${pool.saved_seconds.toFixed(1)} s saved`;
  return [
    figure("Warm pool", `${pool.waiting} / ${pool.size} waiting (${shapes} ${shapes === 1 ? "shape" : "shapes"})`, "server-warm-pool", false),
    figure("Warm hits", rate, "server-warm-hits", false),
  ];
}

/** Sums of the counters by name (and by label, for the finished agents' statuses). */
function metricFigures(text: string): HTMLElement[] {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const match = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name = "", labels = "", value = ""] = match;
    const number = Number(value);
    if (!Number.isFinite(number)) continue;
    sums.set(name, (sums.get(name) ?? 0) + number);
    const status = /status="([a-z_]+)"/.exec(labels)?.[1];
    if (status) sums.set(`${name}:${status}`, (sums.get(`${name}:${status}`) ?? 0) + number);
  }
  const get = (name: string) => String(sums.get(name) ?? 0);
  return [
    figure("Started", get("claude_proxy_agents_started_total"), "metric-started", false),
    figure("Completed", get("claude_proxy_agents_finished_total:completed"), "metric-completed", false),
    figure("Failed", get("claude_proxy_agents_finished_total:failed"), "metric-failed", false),
    figure("Killed", get("claude_proxy_kills_total"), "metric-kills", false),
    figure("Refused connections", get("claude_proxy_connections_refused_total"), "metric-refused", false),
    figure("Store errors", get("claude_proxy_store_errors_total"), "metric-store-errors", (sums.get("claude_proxy_store_errors_total") ?? 0) > 0),
  ];
}

function figure(label: string, value: string, id: string, alert: boolean): HTMLElement {
  return h("div", { class: alert ? "figure alert" : "figure" }, h("span", { class: "label" }, label), h("span", { id, class: "value" }, value));
}
