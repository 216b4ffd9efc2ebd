// ../clients/typescript/dist/index.js
var KNOWN_TYPES = /* @__PURE__ */ new Set([
  "agent",
  "system",
  "assistant",
  "user",
  "result",
  "stream_event",
  "error",
  "gap",
  "proxy_raw",
  "permission_request",
  "permission_decision",
  "permission_cancelled",
  "complete"
]);
function toEventData(value) {
  const object = typeof value === "object" && value !== null ? value : { value };
  if (typeof object.type === "string" && KNOWN_TYPES.has(object.type)) {
    return object;
  }
  return { type: "unknown", data: object };
}
var ProxyError = class extends Error {
  status;
  detail;
  /** On a 500: the request's id, as in the proxy's logs. */
  requestId;
  constructor(status, detail, requestId) {
    super(`claude-proxy answered ${status}: ${detail}`);
    this.name = "ProxyError";
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
};
var SseParser = class {
  onEvent;
  buffer = "";
  id = "";
  event = "";
  data = [];
  constructor(onEvent) {
    this.onEvent = onEvent;
  }
  feed(text) {
    this.buffer += text;
    let match;
    while ((match = /\r\n|\n|\r(?!$)/.exec(this.buffer)) !== null) {
      this.line(this.buffer.slice(0, match.index));
      this.buffer = this.buffer.slice(match.index + match[0].length);
    }
  }
  end() {
    if (this.buffer !== "")
      this.line(this.buffer.replace(/\r$/, ""));
    this.buffer = "";
  }
  line(text) {
    if (text === "") {
      if (this.data.length > 0) {
        this.onEvent({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (text.startsWith(":"))
      return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" "))
      value = value.slice(1);
    if (field === "data")
      this.data.push(value);
    else if (field === "event")
      this.event = value;
    else if (field === "id")
      this.id = value;
  }
};
var ClaudeProxy = class {
  baseUrl;
  apiKey;
  fetch;
  constructor(options) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }
  /** `GET /health`; a 503 (the CLI missing or not logged in) answers too, with `status`
   * `unavailable`. */
  async health(options = {}) {
    const response = await this.send("GET", "/health", void 0, options, [503]);
    return await response.json();
  }
  /** `GET /metrics`: every metric, in the Prometheus text format. */
  async metrics(options = {}) {
    const response = await this.send("GET", "/metrics", void 0, options);
    return response.text();
  }
  /** Starts an agent in the background. */
  async start(request, options = {}) {
    return this.json("POST", "/agent/start", request, options);
  }
  /** Runs an agent and yields its events as they come, `complete` last. Leaving the loop
   * early, or aborting `signal`, closes the stream, which stops the agent (unless
   * `detach_on_disconnect`). */
  async *stream(request, options = {}) {
    const response = await this.send("POST", "/agent/stream", request, options);
    yield* readEvents(response);
  }
  /** Follows an agent's events (streamed or started, running or recently ended): from the
   * start, or after `lastEventId`, then live until `complete`. A dropped connection is picked up
   * again after the last event seen, so none comes twice; events no longer kept come as one
   * `gap`. A `lastEventId` past the last event of an agent that has ended throws a
   * `ProxyError` with status 416, whose `detail` names its last event (while the agent runs,
   * the proxy waits for the events after it). */
  async *events(agentId, options = {}) {
    let lastId = options.lastEventId;
    const retries = options.retries ?? 5;
    for (let attempt = 0; ; attempt += 1) {
      const headers = lastId === void 0 ? {} : { "last-event-id": String(lastId) };
      const response = await this.send("GET", `/agent/${encodeURIComponent(agentId)}/events`, void 0, options, [], headers);
      let failure;
      try {
        for await (const event of readEvents(response)) {
          lastId = event.id;
          yield event;
          if (event.data.type === "complete")
            return;
        }
      } catch (error) {
        failure = error;
      }
      if (attempt >= retries || options.signal?.aborted) {
        throw failure ?? new Error("the event stream ended without a complete event");
      }
    }
  }
  /** Stops a running agent; resolves once it has ended. */
  async stop(agentId, options = {}) {
    return this.json("POST", `/agent/stop/${encodeURIComponent(agentId)}`, void 0, options);
  }
  /** `GET /usage`: the key's own use of the API through the gateway, added up `by` day (the
   * default), agent or model, from `from` to `to` (RFC 3339 times or `YYYY-MM-DD` days), with
   * the subscription's windows. */
  async usage(query = {}, options = {}) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query))
      if (value !== void 0)
        params.set(name, value);
    const search = params.toString();
    return this.json("GET", search ? `/usage?${search}` : "/usage", void 0, options);
  }
  /** The client's agents, running and recently ended. */
  async agents(options = {}) {
    return this.json("GET", "/agents", void 0, options);
  }
  /** One agent: status, pid, session, result, cost, event counts, pending approvals. */
  async agent(agentId, options = {}) {
    return this.json("GET", `/agent/${encodeURIComponent(agentId)}`, void 0, options);
  }
  /** Stops the agent if it runs, and forgets it. */
  async delete(agentId, options = {}) {
    await this.send("DELETE", `/agent/${encodeURIComponent(agentId)}`, void 0, options);
  }
  /** A message to an interactive agent: text, or blocks of text and images. */
  async sendMessage(agentId, content, options = {}) {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/messages`, { content }, options);
  }
  /** Ends an interactive agent's running turn. */
  async interrupt(agentId, options = {}) {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/interrupt`, void 0, options);
  }
  /** Closes an interactive agent's input: it ends once its turns are done. */
  async close(agentId, options = {}) {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/close`, void 0, options);
  }
  /** Changes an interactive agent's model or permission mode. */
  async update(agentId, changes, options = {}) {
    return this.json("PATCH", `/agent/${encodeURIComponent(agentId)}`, changes, options);
  }
  /** The tool approvals an agent waits for. */
  async permissions(agentId, options = {}) {
    return this.json("GET", `/agent/${encodeURIComponent(agentId)}/permissions`, void 0, options);
  }
  /** Answers a tool approval (a `permission_request` event). */
  async answerPermission(agentId, requestId, answer, options = {}) {
    const path = `/agent/${encodeURIComponent(agentId)}/permissions/${encodeURIComponent(requestId)}`;
    return this.json("POST", path, answer, options);
  }
  /** `POST /v1/chat/completions`, not streamed (for streams, point the official `openai`
   * package at `${baseUrl}/v1`). */
  async chatCompletion(request, options = {}) {
    return this.json("POST", "/v1/chat/completions", { ...request, stream: false }, options);
  }
  /** `POST /v1/messages`, not streamed (for streams, point `@anthropic-ai/sdk` at `baseUrl`). */
  async message(request, options = {}) {
    return this.json("POST", "/v1/messages", { ...request, stream: false }, options);
  }
  /** `GET /v1/models`: the model names the compatible APIs take. */
  async models(options = {}) {
    return this.json("GET", "/v1/models", void 0, options);
  }
  /** `GET /v1/sessions`: the conversations this key's compatible requests made, newest first. */
  async chatSessions(options = {}) {
    return this.json("GET", "/v1/sessions", void 0, options);
  }
  /** `GET /v1/sessions/{id}`: one of them, by its name or its CLI session's id. */
  async chatSession(id, options = {}) {
    return this.json("GET", `/v1/sessions/${encodeURIComponent(id)}`, void 0, options);
  }
  /** `DELETE /v1/sessions/{id}`: forgets it; a request naming it again starts anew. */
  async forgetChatSession(id, options = {}) {
    return this.json("DELETE", `/v1/sessions/${encodeURIComponent(id)}`, void 0, options);
  }
  async json(method, path, body2, options) {
    const response = await this.send(method, path, body2, options);
    return await response.json();
  }
  async send(method, path, body2, options, alsoOk = [], extraHeaders = {}) {
    const headers = { ...extraHeaders };
    if (body2 !== void 0)
      headers["content-type"] = "application/json";
    if (this.apiKey)
      headers.authorization = `Bearer ${this.apiKey}`;
    const init = { method, headers };
    if (body2 !== void 0)
      init.body = JSON.stringify(body2);
    if (options.signal)
      init.signal = options.signal;
    const response = await this.fetch(`${this.baseUrl}${path}`, init);
    if (!response.ok && !alsoOk.includes(response.status)) {
      const error = await response.json().catch(() => ({}));
      const detail = error.detail ?? error.error?.message;
      throw new ProxyError(response.status, typeof detail === "string" ? detail : response.statusText, typeof error.request_id === "string" ? error.request_id : void 0);
    }
    return response;
  }
};
async function* readEvents(response) {
  if (!response.body)
    throw new Error("the answer has no body");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const ready = [];
  const parser = new SseParser(({ id, event, data }) => {
    ready.push({ id: Number(id), event, data: toEventData(JSON.parse(data)) });
  });
  try {
    for (; ; ) {
      const { done, value } = await reader.read();
      if (done) {
        parser.feed(decoder.decode());
        parser.end();
      } else {
        parser.feed(decoder.decode(value, { stream: true }));
      }
      while (ready.length > 0)
        yield ready.shift();
      if (done)
        return;
    }
  } finally {
    await reader.cancel().catch(() => {
    });
  }
}

// src/dom.ts
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false && value !== void 0) {
      element.setAttribute(name, String(value));
    }
  }
  append(element, ...children);
  return element;
}
function append(parent, ...children) {
  for (const child of children) {
    if (child === null || child === void 0 || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}
function fill(parent, ...children) {
  parent.replaceChildren();
  append(parent, ...children);
}
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}
function dollars(value) {
  return typeof value === "number" ? `$${value.toFixed(4)}` : "–";
}
function duration(from, to) {
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const seconds = Math.round(ms / 1e3);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
function time(instant) {
  if (!instant) return "–";
  const date = new Date(instant);
  return Number.isNaN(date.getTime()) ? instant : date.toLocaleTimeString();
}

// src/events.ts
var FOLD_CHARS = 600;
var FOLD_LINES = 12;
function renderEvent(event) {
  const element = h("div", { class: `event event-${event.data.type}`, "data-event-id": event.id });
  let shown;
  try {
    shown = body(event.data);
  } catch {
    shown = h("pre", {}, JSON.stringify(event.data, null, 2));
  }
  element.append(h("span", { class: "event-id", title: "event number" }, `#${event.id}`), shown);
  return element;
}
function body(data) {
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
        data.total_cost_usd !== void 0 && data.total_cost_usd !== null ? dollars(data.total_cost_usd) : "",
        data.num_turns ? `${data.num_turns} ${data.num_turns === 1 ? "turn" : "turns"}` : "",
        data.duration_ms ? `${(data.duration_ms / 1e3).toFixed(1)} s` : ""
      ].filter(Boolean);
      return h(
        "div",
        { class: data.is_error ? "result is-error" : "result" },
        h("strong", {}, "Result "),
        h("span", { class: "muted" }, figures.join(" · ")),
        data.result ? h("div", { class: "text" }, data.result) : null
      );
    }
    case "stream_event": {
      const delta = data.event.delta;
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
        data.stderr ? folded("stderr", data.stderr, false) : null
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
        h("pre", {}, JSON.stringify(data.input, null, 2))
      );
    case "permission_decision":
      return line(
        data.behavior === "allow" ? `Allowed ${data.tool_name}` : `Denied ${data.tool_name}`,
        [data.decided_by === "timeout" ? "(no answer in time)" : "", data.message ?? ""].filter(Boolean).join(" ")
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
            data.exit_code !== void 0 && data.exit_code !== null ? `exit ${data.exit_code}` : "",
            data.signal ?? "",
            `${(data.duration_ms / 1e3).toFixed(1)} s`
          ].filter(Boolean).join(" · ")
        )
      );
    case "unknown":
      return h("pre", {}, JSON.stringify(data.data, null, 2));
  }
}
function line(title, text) {
  return h("div", {}, h("strong", {}, title), " ", h("span", { class: "muted" }, text));
}
function blocks(role, content) {
  const element = h("div", { class: `message ${role}` });
  const list = typeof content === "string" ? [{ type: "text", text: content }] : content;
  for (const block of list) element.append(contentBlock(role, block));
  return element;
}
function contentBlock(role, block) {
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
        h("pre", {}, JSON.stringify(block.input ?? {}, null, 2))
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
function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map(
      (part) => part.type === "text" && typeof part.text === "string" ? part.text : JSON.stringify(part)
    ).join("\n");
  }
  return content === void 0 || content === null ? "" : JSON.stringify(content);
}
function isLong(text) {
  return text.length > FOLD_CHARS || text.split("\n").length > FOLD_LINES;
}
function folded(title, text, fold) {
  const lines = text.split("\n").length;
  return h(
    "details",
    { open: !fold },
    h("summary", {}, `${title} (${lines} ${lines === 1 ? "line" : "lines"})`),
    h("pre", {}, text)
  );
}

// src/page.ts
function every(ms, tick) {
  let timer;
  let stopped = false;
  let busy = false;
  const run = async () => {
    clearTimeout(timer);
    busy = true;
    try {
      await tick();
    } finally {
      busy = false;
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  void run();
  return {
    now() {
      if (!busy && !stopped) void run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    }
  };
}

// src/session.ts
var KEY_ITEM = "claude-proxy.key";
function apiBase() {
  return new URL(".", window.location.href).href;
}
function savedKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? void 0;
}
function saveKey(key) {
  sessionStorage.clear();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  current = void 0;
}
var current;
function api() {
  current ??= new ClaudeProxy({ baseUrl: apiBase(), apiKey: savedKey() });
  return current;
}
function needsKey(error) {
  return error instanceof ProxyError && error.status === 401;
}
function describe(error) {
  if (error instanceof ProxyError) return `${error.status}: ${error.detail}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

// src/agent.ts
var DETAIL_MS = 2e3;
var RECONNECT_MS = 2e3;
var CACHE_PREFIX = "claude-proxy.events.";
var CACHE_MAX_CHARS = 4e6;
var MAX_SHOWN = 5e3;
var ENDED = /* @__PURE__ */ new Set(["completed", "failed", "stopped", "timed_out"]);
function agentPage(main2, agentId, frame2) {
  const controller = new AbortController();
  const { signal } = controller;
  const fail = (what) => (error) => frame2.failed(what, error);
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
    h("button", { type: "submit", id: "send" }, "Send")
  );
  const button = (id, label, action, done) => h("button", {
    id,
    type: "button",
    onclick: () => {
      action().then(() => frame2.notify(done)).catch(fail(label));
    }
  }, label);
  const interactiveActions = h(
    "span",
    { hidden: true },
    button("interrupt", "Interrupt", () => api().interrupt(agentId), "Interrupted the turn."),
    button("close", "Close", () => api().close(agentId), "Closed: the agent ends after its turn.")
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
      "Deleted."
    )
  );
  followForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = followUp.value;
    if (!text.trim()) return;
    api().sendMessage(agentId, text).then(() => {
      followUp.value = "";
      frame2.notify("Sent.");
    }).catch(fail("Could not send"));
  });
  fill(
    main2,
    h("p", {}, h("a", { href: "#/" }, "← All agents")),
    h("section", { class: "card" }, h("h2", {}, "Agent ", h("span", { class: "mono" }, agentId)), info, actions, followForm, result),
    approvals,
    webhooks,
    h("section", { class: "card" }, h("h2", {}, "Events ", eventCount), eventList)
  );
  const shown = loadCache(agentId);
  let cacheable = true;
  const trimmed = h("p", { id: "events-trimmed", class: "muted", hidden: true });
  eventList.before(trimmed);
  const show = (event) => {
    eventList.append(renderEvent(event));
    while (shown.length > MAX_SHOWN) {
      shown.shift();
      eventList.firstElementChild?.remove();
    }
    const first = shown[0]?.id ?? event.id;
    trimmed.hidden = first <= 1 || shown[0]?.data.type === "gap";
    trimmed.textContent = `Events before #${first} are not shown here.`;
    eventCount.textContent = `(${shown.length}, last #${event.id})`;
  };
  shown.forEach(show);
  let saveTimer;
  const save = () => {
    clearTimeout(saveTimer);
    saveTimer = void 0;
    if (cacheable) cacheable = saveCache(agentId, shown);
  };
  const saveSoon = () => {
    saveTimer ??= setTimeout(save, 500);
  };
  window.addEventListener("pagehide", save, { signal });
  let ended = false;
  const follow = async () => {
    for (; ; ) {
      try {
        const lastEventId = shown.at(-1)?.id;
        for await (const event of api().events(agentId, { lastEventId, signal })) {
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
        if (needsKey(error)) return frame2.askForKey();
        if (error instanceof ProxyError && error.status === 404) {
          forget(agentId);
          return frame2.notify("No such agent for this key (it may have been deleted or forgotten).", "error");
        }
        if (error instanceof ProxyError && error.status === 416) {
          ended = true;
          return frame2.notify(`No more events: ${error.detail}`, "error");
        }
        frame2.notify(`The event stream dropped (${describe(error)}); following again…`, "error");
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
  };
  const cards = /* @__PURE__ */ new Map();
  let detail;
  let gone = false;
  const refresh = async () => {
    try {
      detail = await api().agent(agentId, { signal });
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ProxyError && error.status === 404) gone = true;
      else frame2.failed("Could not read the agent", error);
      return;
    }
    showDetail(detail);
  };
  const showDetail = (agent) => {
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
      ...agent.mcp_servers.length === 0 ? [] : entry("MCP servers", h("span", { id: "agent-mcp-servers", class: "mono" }, agent.mcp_servers.join(", ")))
    );
    interactiveActions.hidden = !(agent.interactive && running);
    followForm.hidden = !(agent.interactive && running);
    stopButton.disabled = !running;
    const text = typeof agent.result?.result === "string" ? agent.result.result : void 0;
    fill(result, text === void 0 ? null : h("div", { class: "result" }, h("strong", {}, "Last result: "), h("span", { class: "text" }, text)));
    webhooks.hidden = agent.webhooks.length === 0;
    fill(
      webhooks,
      h("h2", {}, "Webhook deliveries"),
      h("ul", {}, ...agent.webhooks.map((w) => h("li", { class: `webhook webhook-${w.state}`, "data-id": w.id }, h("span", { class: "mono" }, w.event), `: ${delivery(w)}`)))
    );
    const pending = new Set(agent.pending_permissions.map((p) => p.request_id));
    for (const [id, card] of cards) {
      if (!pending.has(id)) {
        card.remove();
        cards.delete(id);
      }
    }
    for (const request of agent.pending_permissions) {
      if (!cards.has(request.request_id)) {
        const card = approvalCard(agentId, request, frame2, () => void refresh());
        cards.set(request.request_id, card);
        approvals.append(card);
      }
    }
  };
  void follow();
  const detailPoll = every(DETAIL_MS, async () => {
    const delivering = detail?.webhooks.some((w) => w.state === "pending") ?? false;
    if (gone || ended && detail && ENDED.has(detail.status) && !delivering) return;
    await refresh();
  });
  return {
    stop() {
      save();
      controller.abort();
      detailPoll.stop();
    }
  };
}
function delivery(w) {
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
function entry(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}
function approvalCard(agentId, request, frame2, answered) {
  const original = JSON.stringify(request.input, null, 2);
  const input = h("textarea", { class: "approval-input", rows: Math.min(12, original.split("\n").length + 1) });
  input.value = original;
  const message = h("input", { class: "deny-message", placeholder: "Why not (the model is told)" });
  const answer = (body2, done) => {
    api().answerPermission(agentId, request.request_id, body2).then(() => {
      frame2.notify(done);
      answered();
    }).catch((error) => frame2.failed("Could not answer", error));
  };
  const allow = () => {
    if (input.value === original) return answer({ behavior: "allow" }, `Allowed ${request.tool_name}.`);
    let edited;
    try {
      edited = JSON.parse(input.value);
    } catch {
      return frame2.notify("The edited input is not JSON.", "error");
    }
    if (typeof edited !== "object" || edited === null || Array.isArray(edited)) {
      return frame2.notify("The edited input must be a JSON object.", "error");
    }
    answer({ behavior: "allow", updated_input: edited }, `Allowed ${request.tool_name} with the edited input.`);
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
            const body2 = message.value.trim() ? { behavior: "deny", message: message.value.trim() } : { behavior: "deny" };
            answer(body2, `Denied ${request.tool_name}.`);
          }
        },
        "Deny"
      )
    )
  );
}
function loadCache(agentId) {
  for (let i = sessionStorage.length - 1; i >= 0; i -= 1) {
    const key = sessionStorage.key(i);
    if (key?.startsWith(CACHE_PREFIX) && key !== CACHE_PREFIX + agentId) sessionStorage.removeItem(key);
  }
  try {
    const events = JSON.parse(sessionStorage.getItem(CACHE_PREFIX + agentId) ?? "[]");
    return Array.isArray(events) ? events : [];
  } catch {
    return [];
  }
}
function saveCache(agentId, events) {
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
function forget(agentId) {
  sessionStorage.removeItem(CACHE_PREFIX + agentId);
}

// src/agents.ts
var REFRESH_MS = 1500;
function agentsPage(main2, frame2) {
  const prompt = h("textarea", { id: "prompt", name: "prompt", rows: 3, required: true, placeholder: "What should the agent do?" });
  const model = h("input", { id: "model", name: "model", placeholder: "model (default if empty)" });
  const interactive = h("input", { id: "interactive", type: "checkbox" });
  const approvals = h("input", { id: "approvals", type: "checkbox" });
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
      h("button", { type: "submit", id: "start" }, "Start")
    )
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = { prompt: prompt.value, interactive: interactive.checked, approvals: approvals.checked };
    if (model.value.trim()) request.model = model.value.trim();
    api().start(request).then((started) => {
      window.location.hash = `#/agent/${started.agent_id}`;
    }).catch((error) => frame2.failed("Could not start", error));
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
        ...["Agent", "Status", "Kind", "Model", "Session", "Started", "Duration", "Turns", "Cost", "Approvals"].map(
          (title) => h("th", {}, title)
        )
      )
    ),
    rows
  );
  const empty = h("p", { id: "no-agents", class: "muted", hidden: true }, "No agents yet for this key.");
  fill(main2, form, h("section", { class: "card" }, h("h2", {}, "Agents"), table, empty));
  const poll = every(REFRESH_MS, async () => {
    try {
      const { agents } = await api().agents();
      fill(rows, ...agents.slice().reverse().map(row));
      empty.hidden = agents.length > 0;
    } catch (error) {
      frame2.failed("Could not list the agents", error);
    }
  });
  return { stop: poll.stop };
}
function row(agent) {
  const link = h("a", { href: `#/agent/${agent.agent_id}` }, agent.agent_id.slice(0, 8));
  return h(
    "tr",
    { "data-agent-id": agent.agent_id, class: agent.pending_permissions > 0 ? "waiting-approval" : void 0 },
    h("td", {}, link),
    h("td", {}, h("span", { class: `status status-${agent.status}` }, agent.status)),
    h("td", {}, agent.kind),
    h("td", {}, agent.model ?? "–"),
    h("td", { class: "mono" }, agent.session_id ? agent.session_id.slice(0, 8) : "–"),
    h("td", {}, time(agent.started_at)),
    h("td", {}, duration(agent.started_at, agent.ended_at)),
    h("td", {}, agent.turns),
    h("td", {}, dollars(agent.total_cost_usd)),
    h("td", { class: "approvals" }, agent.pending_permissions > 0 ? String(agent.pending_permissions) : "")
  );
}

// src/server.ts
var REFRESH_MS2 = 2e3;
function serverPanel(panel2, pending, frame2) {
  return every(REFRESH_MS2, async () => {
    const client = api();
    const [health, agents, metrics, usage] = await Promise.allSettled([
      client.health(),
      client.agents(),
      client.metrics(),
      client.usage({ by: "model" })
    ]);
    if (agents.status === "rejected" && needsKey(agents.reason)) frame2.askForKey();
    const waiting = agents.status === "fulfilled" ? agents.value.agents.reduce((sum, agent) => sum + agent.pending_permissions, 0) : void 0;
    pending.textContent = waiting === void 0 ? "" : `${waiting} waiting for approval`;
    pending.classList.toggle("alert", (waiting ?? 0) > 0);
    fill(
      panel2,
      ...health.status === "fulfilled" ? healthFigures(health.value) : [figure("Server", "unreachable", "server-status", true)],
      ...health.status === "fulfilled" && health.value.cli ? subscriptionFigures(health.value.subscription ?? null) : [],
      ...usage.status === "fulfilled" ? usageFigures(usage.value) : [],
      ...metrics.status === "fulfilled" ? metricFigures(metrics.value) : []
    );
  });
}
function healthFigures(health) {
  const status = figure("Server", health.status, "server-status", health.status !== "ok");
  const { cli, storage, watchdog } = health;
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
    ...watchdog ? [figure("Watchdog", watchdog.status === "down" ? `down: ${watchdog.error ?? "?"}` : watchdog.status, "server-watchdog", watchdog.status === "down")] : [],
    ...warmPoolFigures(health.warm_pool)
  ];
}
function subscriptionFigures(limits) {
  if (!limits) return [figure("Subscription", "not told yet", "server-subscription", false)];
  const window2 = (label, id, w) => {
    const used = w.utilization === void 0 || w.utilization === null ? "?" : `${Math.round(w.utilization * 100)}% used`;
    const reset = w.resets_at ? `, resets ${time(w.resets_at)}` : "";
    return figure(label, `${w.status ?? "?"}, ${used}${reset}`, id, w.status === "rejected");
  };
  return [
    figure("Subscription", limits.status ?? "?", "server-subscription", limits.status === "rejected"),
    window2("5-hour window", "server-window-5h", limits.five_hour),
    window2("7-day window", "server-window-7d", limits.seven_day)
  ];
}
function usageFigures(report) {
  const counts = (u) => `${u.requests} requests, ${u.input_tokens} in / ${u.output_tokens} out tokens` + (u.errors > 0 ? `, ${u.errors} errors` : "");
  return [
    figure("Usage (this key)", counts(report.total), "server-usage", false),
    ...report.rows.map((row2) => figure(`Usage: ${row2.model ?? "?"}`, counts(row2), `server-usage-${(row2.model ?? "unknown").replace(/[^a-z0-9-]/gi, "-")}`, false))
  ];
}
function warmPoolFigures(pool) {
  if (!pool || pool.size === 0) return [];
  const shapes = pool.shapes.filter((shape) => shape.waiting > 0).length;
  const runs = pool.hits + pool.misses;
  const rate = runs === 0 ? "no runs yet" : `${pool.hits} of ${runs} runs served warm, ${pool.saved_seconds.toFixed(1)} s saved`;
  return [
    figure("Warm pool", `${pool.waiting} / ${pool.size} waiting (${shapes} ${shapes === 1 ? "shape" : "shapes"})`, "server-warm-pool", false),
    figure("Warm hits", rate, "server-warm-hits", false)
  ];
}
function metricFigures(text) {
  const sums = /* @__PURE__ */ new Map();
  for (const line2 of text.split("\n")) {
    if (line2.startsWith("#") || !line2.trim()) continue;
    const match = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)/.exec(line2);
    if (!match) continue;
    const [, name = "", labels = "", value = ""] = match;
    const number = Number(value);
    if (!Number.isFinite(number)) continue;
    sums.set(name, (sums.get(name) ?? 0) + number);
    const status = /status="([a-z_]+)"/.exec(labels)?.[1];
    if (status) sums.set(`${name}:${status}`, (sums.get(`${name}:${status}`) ?? 0) + number);
  }
  const get = (name) => String(sums.get(name) ?? 0);
  return [
    figure("Started", get("claude_proxy_agents_started_total"), "metric-started", false),
    figure("Completed", get("claude_proxy_agents_finished_total:completed"), "metric-completed", false),
    figure("Failed", get("claude_proxy_agents_finished_total:failed"), "metric-failed", false),
    figure("Killed", get("claude_proxy_kills_total"), "metric-kills", false),
    figure("Refused connections", get("claude_proxy_connections_refused_total"), "metric-refused", false),
    figure("Store errors", get("claude_proxy_store_errors_total"), "metric-store-errors", (sums.get("claude_proxy_store_errors_total") ?? 0) > 0)
  ];
}
function figure(label, value, id, alert) {
  return h("div", { class: alert ? "figure alert" : "figure" }, h("span", { class: "label" }, label), h("span", { id, class: "value" }, value));
}

// src/main.ts
var main = byId("main");
var keyForm = byId("key-form");
var keyInput = byId("key-input");
var keyReason = byId("key-reason");
var notice = byId("notice");
var page;
var panel;
var frame = {
  askForKey() {
    if (!keyForm.hidden) return;
    keyReason.textContent = savedKey() ? "The proxy refused that key. Enter another one." : "This proxy needs a client key.";
    keyForm.hidden = false;
    page?.stop();
    page = void 0;
    main.replaceChildren();
    keyInput.focus();
  },
  notify(text, kind = "info") {
    notice.textContent = text;
    notice.className = kind;
  },
  failed(what, error) {
    if (needsKey(error)) frame.askForKey();
    else frame.notify(`${what}: ${describe(error)}`, "error");
  }
};
function showPage() {
  page?.stop();
  notice.textContent = "";
  const agent = /^#\/agent\/([0-9a-fA-F-]{36})$/.exec(window.location.hash)?.[1];
  page = agent ? agentPage(main, agent, frame) : agentsPage(main, frame);
  panel?.now();
}
function restart() {
  panel?.stop();
  panel = serverPanel(byId("server"), byId("pending-count"), frame);
  showPage();
}
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveKey(keyInput.value.trim() || void 0);
  keyInput.value = "";
  keyForm.hidden = true;
  restart();
});
byId("forget-key").addEventListener("click", () => {
  saveKey(void 0);
  keyForm.hidden = true;
  frame.askForKey();
});
window.addEventListener("hashchange", () => {
  if (keyForm.hidden) showPage();
});
restart();
