// claude-proxy-client: a typed client for claude-proxy, for Node.js 18+ and browsers (fetch and
// ReadableStream, no dependencies). The request, answer and event types are generated from the
// proxy's OpenAPI document (src/openapi.ts).

import type {
  AnthropicRequest,
  AnthropicResponse,
  ChatSession,
  SessionDeleted,
  SessionList,
  ModelList,
  OpenAiChatCompletion,
  OpenAiChatRequest,
  AgentDetail,
  AgentEvent,
  AgentList,
  AgentRequest,
  AgentUpdate,
  AssistantEvent,
  Closing,
  CompleteEvent,
  ErrorEvent,
  GapEvent,
  Health,
  Interrupted,
  MessageContent,
  MessageQueued,
  PendingPermissions,
  PermissionAnswer,
  PermissionAnswered,
  PermissionCancelledEvent,
  PermissionDecisionEvent,
  PermissionRequestEvent,
  ProxyRawEvent,
  ResultEvent,
  Started,
  Stopped,
  StreamEventLine,
  SystemEvent,
  SystemInitEvent,
  Updated,
  UsageBy,
  UsageReport,
  UserEvent,
} from "./openapi.js";

export type * from "./openapi.js";

/** A line of the CLI of a type this client does not know (a later CLI may add some), as it
 * came, under `data`. */
export interface UnknownEvent {
  type: "unknown";
  data: { [key: string]: unknown };
}

/** What an event carries, discriminated on `type` (and, for `system`, on `subtype`). */
export type EventData =
  | AgentEvent
  | SystemInitEvent
  | SystemEvent
  | AssistantEvent
  | UserEvent
  | ResultEvent
  | StreamEventLine
  | ErrorEvent
  | GapEvent
  | ProxyRawEvent
  | PermissionRequestEvent
  | PermissionDecisionEvent
  | PermissionCancelledEvent
  | CompleteEvent
  | UnknownEvent;

/** One Server-Sent Event of an agent: its number (from 1), its SSE event name (`message` for
 * the CLI's lines), and its data. */
export interface ProxyEvent {
  id: number;
  event: string;
  data: EventData;
}

const KNOWN_TYPES = new Set([
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
  "complete",
]);

/** Types a parsed `data` field: every payload the proxy sends is a JSON object. */
export function toEventData(value: unknown): EventData {
  const object = (typeof value === "object" && value !== null ? value : { value }) as {
    [key: string]: unknown;
  };
  if (typeof object.type === "string" && KNOWN_TYPES.has(object.type)) {
    return object as unknown as EventData;
  }
  return { type: "unknown", data: object };
}

/** An error answer of the proxy: its HTTP status and `detail`. */
export class ProxyError extends Error {
  readonly status: number;
  readonly detail: string;
  /** On a 500: the request's id, as in the proxy's logs. */
  readonly requestId: string | undefined;

  constructor(status: number, detail: string, requestId?: string) {
    super(`claude-proxy answered ${status}: ${detail}`);
    this.name = "ProxyError";
    this.status = status;
    this.detail = detail;
    this.requestId = requestId;
  }
}

/** A Server-Sent Events parser that works across chunk boundaries: feed it text as it comes,
 * in pieces of any size; it calls `onEvent` once per whole event. Comments (keep-alives) are
 * skipped. */
export class SseParser {
  private buffer = "";
  private id = "";
  private event = "";
  private data: string[] = [];

  constructor(private readonly onEvent: (event: { id: string; event: string; data: string }) => void) {}

  feed(text: string): void {
    this.buffer += text;
    // A line ends at \n, \r\n or \r; a \r at the very end may still be followed by \n.
    let match: RegExpExecArray | null;
    while ((match = /\r\n|\n|\r(?!$)/.exec(this.buffer)) !== null) {
      this.line(this.buffer.slice(0, match.index));
      this.buffer = this.buffer.slice(match.index + match[0].length);
    }
  }

  end(): void {
    if (this.buffer !== "") this.line(this.buffer.replace(/\r$/, ""));
    this.buffer = "";
  }

  private line(text: string): void {
    if (text === "") {
      if (this.data.length > 0) {
        this.onEvent({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}

export interface ClientOptions {
  /** Where the proxy is, such as http://127.0.0.1:8000. */
  baseUrl: string;
  /** A client key (sent as `Authorization: Bearer`), when the proxy has keys. */
  apiKey?: string | undefined;
  /** Another fetch, such as one with a proxy agent. */
  fetch?: typeof fetch | undefined;
}

export interface CallOptions {
  /** Aborting it cancels the request; for a stream, closing it stops the agent. */
  signal?: AbortSignal | undefined;
}

export interface EventsOptions extends CallOptions {
  /** Read the events after this one (as `Last-Event-ID`). */
  lastEventId?: number | undefined;
  /** How many times a dropped connection is picked up again (default 5). */
  retries?: number | undefined;
}

/** A typed client of one claude-proxy. */
export class ClaudeProxy {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** `GET /health`; a 503 (the CLI missing or not logged in) answers too, with `status`
   * `unavailable`. */
  async health(options: CallOptions = {}): Promise<Health> {
    const response = await this.send("GET", "/health", undefined, options, [503]);
    return (await response.json()) as Health;
  }

  /** `GET /metrics`: every metric, in the Prometheus text format. */
  async metrics(options: CallOptions = {}): Promise<string> {
    const response = await this.send("GET", "/metrics", undefined, options);
    return response.text();
  }

  /** Starts an agent in the background. */
  async start(request: AgentRequest, options: CallOptions = {}): Promise<Started> {
    return this.json("POST", "/agent/start", request, options);
  }

  /** Runs an agent and yields its events as they come, `complete` last. Leaving the loop
   * early, or aborting `signal`, closes the stream, which stops the agent (unless
   * `detach_on_disconnect`). */
  async *stream(request: AgentRequest, options: CallOptions = {}): AsyncGenerator<ProxyEvent, void> {
    const response = await this.send("POST", "/agent/stream", request, options);
    yield* readEvents(response);
  }

  /** Follows an agent's events (streamed or started, running or recently ended): from the
   * start, or after `lastEventId`, then live until `complete`. A dropped connection is picked up
   * again after the last event seen, so none comes twice; events no longer kept come as one
   * `gap`. A `lastEventId` past the last event of an agent that has ended throws a
   * `ProxyError` with status 416, whose `detail` names its last event (while the agent runs,
   * the proxy waits for the events after it). */
  async *events(agentId: string, options: EventsOptions = {}): AsyncGenerator<ProxyEvent, void> {
    let lastId = options.lastEventId;
    const retries = options.retries ?? 5;
    for (let attempt = 0; ; attempt += 1) {
      const headers: Record<string, string> = lastId === undefined ? {} : { "last-event-id": String(lastId) };
      const response = await this.send("GET", `/agent/${encodeURIComponent(agentId)}/events`, undefined, options, [], headers);
      let failure: unknown;
      try {
        for await (const event of readEvents(response)) {
          lastId = event.id;
          yield event;
          if (event.data.type === "complete") return;
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
  async stop(agentId: string, options: CallOptions = {}): Promise<Stopped> {
    return this.json("POST", `/agent/stop/${encodeURIComponent(agentId)}`, undefined, options);
  }

  /** `GET /usage`: the key's own use of the API through the gateway, added up `by` day (the
   * default), agent or model, from `from` to `to` (RFC 3339 times or `YYYY-MM-DD` days), with
   * the subscription's windows. */
  async usage(query: { by?: UsageBy; from?: string; to?: string } = {}, options: CallOptions = {}): Promise<UsageReport> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, value);
    const search = params.toString();
    return this.json("GET", search ? `/usage?${search}` : "/usage", undefined, options);
  }

  /** The client's agents, running and recently ended. */
  async agents(options: CallOptions = {}): Promise<AgentList> {
    return this.json("GET", "/agents", undefined, options);
  }

  /** One agent: status, pid, session, result, cost, event counts, pending approvals. */
  async agent(agentId: string, options: CallOptions = {}): Promise<AgentDetail> {
    return this.json("GET", `/agent/${encodeURIComponent(agentId)}`, undefined, options);
  }

  /** Stops the agent if it runs, and forgets it. */
  async delete(agentId: string, options: CallOptions = {}): Promise<void> {
    await this.send("DELETE", `/agent/${encodeURIComponent(agentId)}`, undefined, options);
  }

  /** A message to an interactive agent: text, or blocks of text and images. */
  async sendMessage(agentId: string, content: MessageContent, options: CallOptions = {}): Promise<MessageQueued> {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/messages`, { content }, options);
  }

  /** Ends an interactive agent's running turn. */
  async interrupt(agentId: string, options: CallOptions = {}): Promise<Interrupted> {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/interrupt`, undefined, options);
  }

  /** Closes an interactive agent's input: it ends once its turns are done. */
  async close(agentId: string, options: CallOptions = {}): Promise<Closing> {
    return this.json("POST", `/agent/${encodeURIComponent(agentId)}/close`, undefined, options);
  }

  /** Changes an interactive agent's model or permission mode. */
  async update(agentId: string, changes: AgentUpdate, options: CallOptions = {}): Promise<Updated> {
    return this.json("PATCH", `/agent/${encodeURIComponent(agentId)}`, changes, options);
  }

  /** The tool approvals an agent waits for. */
  async permissions(agentId: string, options: CallOptions = {}): Promise<PendingPermissions> {
    return this.json("GET", `/agent/${encodeURIComponent(agentId)}/permissions`, undefined, options);
  }

  /** Answers a tool approval (a `permission_request` event). */
  async answerPermission(
    agentId: string,
    requestId: string,
    answer: PermissionAnswer,
    options: CallOptions = {},
  ): Promise<PermissionAnswered> {
    const path = `/agent/${encodeURIComponent(agentId)}/permissions/${encodeURIComponent(requestId)}`;
    return this.json("POST", path, answer, options);
  }

  /** `POST /v1/chat/completions`, not streamed (for streams, point the official `openai`
   * package at `${baseUrl}/v1`). */
  async chatCompletion(request: OpenAiChatRequest, options: CallOptions = {}): Promise<OpenAiChatCompletion> {
    return this.json("POST", "/v1/chat/completions", { ...request, stream: false }, options);
  }

  /** `POST /v1/messages`, not streamed (for streams, point `@anthropic-ai/sdk` at `baseUrl`). */
  async message(request: AnthropicRequest, options: CallOptions = {}): Promise<AnthropicResponse> {
    return this.json("POST", "/v1/messages", { ...request, stream: false }, options);
  }

  /** `GET /v1/models`: the model names the compatible APIs take. */
  async models(options: CallOptions = {}): Promise<ModelList> {
    return this.json("GET", "/v1/models", undefined, options);
  }

  /** `GET /v1/sessions`: the conversations this key's compatible requests made, newest first. */
  async chatSessions(options: CallOptions = {}): Promise<SessionList> {
    return this.json("GET", "/v1/sessions", undefined, options);
  }

  /** `GET /v1/sessions/{id}`: one of them, by its name or its CLI session's id. */
  async chatSession(id: string, options: CallOptions = {}): Promise<ChatSession> {
    return this.json("GET", `/v1/sessions/${encodeURIComponent(id)}`, undefined, options);
  }

  /** `DELETE /v1/sessions/{id}`: forgets it; a request naming it again starts anew. */
  async forgetChatSession(id: string, options: CallOptions = {}): Promise<SessionDeleted> {
    return this.json("DELETE", `/v1/sessions/${encodeURIComponent(id)}`, undefined, options);
  }

  private async json<T>(method: string, path: string, body: unknown, options: CallOptions): Promise<T> {
    const response = await this.send(method, path, body, options);
    return (await response.json()) as T;
  }

  private async send(
    method: string,
    path: string,
    body: unknown,
    options: CallOptions,
    alsoOk: number[] = [],
    extraHeaders: Record<string, string> = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (options.signal) init.signal = options.signal;
    const response = await this.fetch(`${this.baseUrl}${path}`, init);
    if (!response.ok && !alsoOk.includes(response.status)) {
      const error = (await response.json().catch(() => ({}))) as {
        detail?: unknown;
        request_id?: unknown;
        error?: { message?: unknown };
      };
      // The compatible APIs answer in their own formats, with `error.message`.
      const detail = error.detail ?? error.error?.message;
      throw new ProxyError(
        response.status,
        typeof detail === "string" ? detail : response.statusText,
        typeof error.request_id === "string" ? error.request_id : undefined,
      );
    }
    return response;
  }
}

/** The events of an SSE answer, as they come. */
async function* readEvents(response: Response): AsyncGenerator<ProxyEvent, void> {
  if (!response.body) throw new Error("the answer has no body");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const ready: ProxyEvent[] = [];
  const parser = new SseParser(({ id, event, data }) => {
    ready.push({ id: Number(id), event, data: toEventData(JSON.parse(data)) });
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        parser.feed(decoder.decode());
        parser.end();
      } else {
        parser.feed(decoder.decode(value, { stream: true }));
      }
      while (ready.length > 0) yield ready.shift() as ProxyEvent;
      if (done) return;
    }
  } finally {
    // Leaving early closes the connection: the proxy then stops a streamed agent.
    await reader.cancel().catch(() => {});
  }
}
