// Generated from claude-proxy's OpenAPI document by scripts/generate.mjs: do not edit.
// claude-proxy 0.1.0

/** One agent in full. */
export type AgentDetail = AgentInfo & {
  /** The CLI's result line, once there is one. */
  result?: { [key: string]: unknown } | null;
  total_cost_usd?: number | null;
  num_turns?: number | null;
  is_error?: boolean | null;
  /** The events a reader of `/agent/{id}/events` gets from the start (`gap`s not counted). */
  events: number;
  /** The ids up to its newest event that a reader gets no event for: the `gap`s it is told
   * of, added up. They are the oldest events, past PROXY_AGENT_LOG_BYTES; events the store
   * could not write; and after a crash, the ids its closing events skip, past the last
   * event written (up to 1,000,000 of them: what the dead proxy had not written yet, at most
   * its last PROXY_STORE_FLUSH_MS of events, is among them, how much of it is not known). */
  dropped_events: number;
  /** The tool approvals it waits for. */
  pending_permissions: Array<PermissionRequest>;
  /** The instance that runs it (or ran it), among those sharing a database. */
  instance_id?: string | null;
  /** What the API counted for its requests, by model, as the proxy's gateway relayed them. */
  usage: Array<ModelUsage>;
  /** Its webhook events (`webhook`, or the operator's PROXY_WEBHOOK_URL), oldest first, and
   * how the delivery of each goes. */
  webhooks: Array<WebhookDelivery>;
};

/** `event: agent`, first: the agent's id and the CLI's pid. */
export type AgentEvent = {
  type: "agent";
  agent_id: string;
  pid: number;
};

/** One agent, in the list. */
export type AgentInfo = {
  agent_id: string;
  kind: AgentKind;
  status: AgentStatus;
  pid?: number | null;
  /** The model the CLI reported, else the one asked for. */
  model?: string | null;
  session_id?: string | null;
  started_at: string;
  ended_at?: string | null;
  exit_code?: number | null;
  /** It takes messages while it runs (`"interactive": true`). */
  interactive: boolean;
  /** Results so far: an interactive agent has one per turn. */
  turns: number;
  /** The operator's MCP servers its run named (`mcp_servers`), by name; their settings and
   * secrets are never shown. */
  mcp_servers: Array<string>;
};

/** How the agent was started: stream (POST /agent/stream), start (POST /agent/start), openai (POST /v1/chat/completions) or anthropic (POST /v1/messages). */
export type AgentKind = "stream" | "start" | "openai" | "anthropic";

/** The answer to `GET /agents`: the client's own agents. */
export type AgentList = {
  agents: Array<AgentListItem>;
};

/** One agent in the list, with what it cost so far and how many tool approvals it waits for. */
export type AgentListItem = AgentInfo & {
  /** As its last result line said. */
  total_cost_usd?: number | null;
  pending_permissions: number;
};

/** The body of /agent/start and /agent/stream. Unknown fields are refused, so a typo such as
 * `sesion_id` never silently starts a new session. */
export type AgentRequest = {
  prompt: string;
  session_id?: string | null;
  model?: string | null;
  /** For /agent/stream: keep the agent running when the client goes away, so it can come
   * back through /agent/{id}/events. */
  detach_on_disconnect?: boolean;
  /** Narrowing of the operator's tool policy (never widening: that is 403). */
  tools?: Array<string> | null;
  allowed_tools?: Array<string> | null;
  disallowed_tools?: Array<string>;
  permission_mode?: null | PermissionMode;
  max_turns?: number | null;
  append_system_prompt?: string | null;
  /** A directory below CLAUDE_WORKDIR to run in. */
  cwd?: string | null;
  /** The agent takes messages while it runs, and waits for more after each turn. */
  interactive?: boolean;
  /** Tool approvals go to the client (interactive agents, when the operator allows it). */
  approvals?: boolean;
  /** With `session_id`: the run goes on from that session as a new one (a new session_id),
   * and the old session stays as it was. */
  fork_session?: boolean;
  /** A JSON Schema (of an object) the answer must follow: the result line's
   * `structured_output` holds the answer, parsed. */
  json_schema?: { [key: string]: unknown } | null;
  /** The most the run may cost, in US dollars: it ends with an `error_max_budget_usd` result
   * once it has spent that. At most PROXY_MAX_BUDGET_USD, which applies when absent. */
  max_budget_usd?: number | null;
  effort?: null | Effort;
  /** The model to use when `model` is overloaded. */
  fallback_model?: string | null;
  /** Custom subagents by name, which the run's agent may hand work to. A subagent's tools
   * must be tools the run itself has (403 otherwise). */
  agents?: { [key: string]: Subagent } | null;
  /** MCP servers of the operator's (PROXY_MCP_SERVERS) that the run may use, by name: 403 for
   * a name this key may not use. Their tools are allowed as any tool is, by the policy
   * (`mcp__<server>__*` in CLAUDE_ALLOWED_TOOLS, narrowed by `allowed_tools`). */
  mcp_servers?: Array<string>;
  /** A URL the proxy POSTs this agent's events to (`agent.completed`, `agent.failed`,
   * `permission.requested`), signed: one of the operator's PROXY_WEBHOOK_URLS (an exact
   * URL, or below a prefix that ends with `/`), else 403. Absent: PROXY_WEBHOOK_URL, if set. */
  webhook?: string | null;
};

/** Where the agent is in its life; the last four are how it ended. */
export type AgentStatus = "starting" | "running" | "waiting" | "stopping" | "completed" | "failed" | "stopped" | "timed_out";

/** The body of `PATCH /agent/{id}`: what to change in a running interactive agent. */
export type AgentUpdate = {
  /** A model name, or null for the default. */
  model?: string | null;
  permission_mode?: null | PermissionMode;
};

/** A block of a reply: its text, or a call of one of the client's tools. */
export type AnthropicBlock = {
  text: string;
  type: "text";
} | {
  id: string;
  name: string;
  input: { [key: string]: unknown };
  type: "tool_use";
};

/** A string, or `text` and base64 `image` blocks. */
export type AnthropicContent = string | Array<MessageBlock>;

/** Anthropic's error body; in a stream, the data of `event: error`. */
export type AnthropicError = {
  type: "error";
  error: {
    /** invalid_request_error, authentication_error, permission_error, not_found_error,
     * request_too_large, rate_limit_error, api_error. */
    type: string;
    message: string;
  };
};

/** One message: user or assistant. */
export type AnthropicMessage = {
  role: string;
  content: AnthropicContent;
};

export type AnthropicModel = {
  type: "model";
  id: string;
  display_name: string;
  created_at: string;
};

export type AnthropicModelList = {
  data: Array<AnthropicModel>;
  has_more: boolean;
  first_id?: string | null;
  last_id?: string | null;
};

/** An Anthropic Messages API request. Refused with 400, naming the field: `tools`,
 * `tool_choice` other than none, content other than text and base64 images,
 * `stop_sequences`, `thinking`, `mcp_servers`, `container`. Accepted and ignored, as tuning:
 * `max_tokens` (not enforced), `temperature`, `top_p`, `top_k`, `metadata`, `service_tier`. */
export type AnthropicRequest = {
  model: string;
  messages: Array<AnthropicMessage>;
  system?: null | AnthropicContent;
  stream?: boolean | null;
  /** The beta API's name for `output_config.format`. */
  output_format?: null | {
    /** `json_schema`. */
    type?: string;
    schema?: { [key: string]: unknown };
  };
  output_config?: null | {
    format?: null | {
      /** `json_schema`. */
      type?: string;
      schema?: { [key: string]: unknown };
    };
  };
  /** Tools the model may use, for the client to run: the reply then ends with `tool_use`
   * blocks (`stop_reason: "tool_use"`), and the request that brings their `tool_result`
   * blocks goes on with the same run. `tool_choice` is `auto` or `none`. */
  tools?: Array<AnthropicTool> | null;
  /** Continues the conversation of this name for the key: the request carries only its new
   * messages, and the CLI resumes the session that gave the conversation's last reply. A CLI
   * session id of the key's (as `x-claude-session-id` gave it) continues that session. The
   * header `X-Claude-Session-Id` says the same. */
  session_id?: string | null;
  /** true: the tools the operator gives the compatible APIs (PROXY_COMPAT_TOOLS; 400 when it
   * gives none); false: none; absent: PROXY_COMPAT_TOOLS's. */
  enable_tools?: boolean | null;
};

/** A message, not streamed. Streamed, the answer is the Messages API's own events
 * (`message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
 * `message_delta`, `message_stop`, or `error`), as the CLI received them. */
export type AnthropicResponse = {
  /** msg_ and the agent's id. */
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: Array<AnthropicBlock>;
  /** end_turn, max_tokens, stop_sequence, or tool_use. */
  stop_reason: string;
  stop_sequence?: string | null;
  usage: {
    input_tokens: number;
    output_tokens: number;
    cache_creation_input_tokens: number;
    cache_read_input_tokens: number;
  };
  x_claude_proxy: ProxyExtension;
};

/** A tool the client offers the model. */
export type AnthropicTool = {
  /** 1 to 64 of a-z A-Z 0-9 _ -. */
  name: string;
  description?: string | null;
  /** A JSON Schema of its input (an object's). */
  input_schema?: { [key: string]: unknown };
  /** Absent (a custom tool): the API's own tools (`bash_...`, `web_search_...`) are not
   * taken. */
  type?: string | null;
};

/** A message's content: a string, or blocks. */
export type ApiContent = string | Array<ContentBlock>;

/** A message of the model, whole, as the Messages API gives it (`content` blocks of `text`,
 * `thinking`, `tool_use`, ...). */
export type AssistantEvent = {
  type: "assistant";
  /** A message in the Messages API's form. */
  message: {
    /** assistant or user. */
    role: string;
    content: ApiContent;
    id?: string | null;
    model?: string | null;
    stop_reason?: string | null;
    usage?: { [key: string]: unknown } | null;
  };
  session_id: string;
  /** Set when a subagent's tool use made this message. */
  parent_tool_use_id?: string | null;
};

/** A conversation a key's requests made, as `GET /v1/sessions` lists it. */
export type ChatSession = {
  /** The name the client gave it (`session_id`), or else its CLI session's id. */
  id: string;
  /** The CLI session that gave its last reply. */
  session_id: string;
  /** Whether the client named it. */
  named: boolean;
  created_at: string;
  last_used_at: string;
  replies: number;
};

/** The answer to `POST /agent/{agent_id}/close`. */
export type Closing = {
  agent_id: string;
  /** Always "closing". */
  status: string;
};

/** `event: complete`, always last. */
export type CompleteEvent = {
  type: "complete";
  agent_id: string;
  status: FinalStatus;
  /** Null when a signal ended the CLI, or its end could not be learned. */
  exit_code?: number | null;
  /** From its start to its end; for an agent a crash ended, to the last time the dead proxy
   * wrote of it. */
  duration_ms: number;
  /** The signal that ended the CLI, such as SIGKILL. */
  signal?: string | null;
};

/** A block of a message, as the Messages API has them: `text`, `thinking`, `tool_use`,
 * `tool_result`, `image`, ..., each with the fields of its type. */
export type ContentBlock = {
  type: string;
  /** Of a `text` block. */
  text?: string | null;
  /** Of a `thinking` block. */
  thinking?: string | null;
  /** Of a `tool_use` block: its id, the tool and its input. */
  id?: string | null;
  name?: string | null;
  input?: { [key: string]: unknown } | null;
  /** Of a `tool_result` block: the `tool_use` it answers, and what the tool gave. */
  tool_use_id?: string | null;
  /** A string, or blocks. */
  content?: unknown;
  is_error?: boolean | null;
};

/** How hard the model thinks (`--effort`), as the CLI names its levels. */
export type Effort = "low" | "medium" | "high" | "xhigh" | "max";

/** The body of every 4xx and 5xx answer. */
export type ErrorBody = {
  /** What was wrong, naming the field when a field was. */
  detail: string;
  /** On a 500: the request's id, as in the logs. */
  request_id?: string | null;
};

/** `event: error`: a fault, as `code` says (exit_nonzero, no_result, line_too_long, timeout,
 * idle_timeout, stopped, shutdown, wait_failed, rate_limited, budget_exceeded, interrupted,
 * ...). */
export type ErrorEvent = {
  type: "error";
  code: string;
  message: string;
  /** Of `exit_nonzero`: the CLI's exit code (null when a signal ended it). */
  exit_code?: number | null;
  /** Of `exit_nonzero`: the signal that ended the CLI, such as SIGKILL. */
  signal?: string | null;
  /** Of `exit_nonzero`: the last 4 KiB the CLI wrote on stderr. */
  stderr?: string | null;
  /** Of `line_too_long`: the line's size. */
  bytes?: number | null;
  /** Of `line_too_long`: PROXY_MAX_LINE_BYTES. */
  limit?: number | null;
  /** Of `rate_limited`: when the subscription takes requests again (null: unknown); of
   * `budget_exceeded`: when the key's budget resets. */
  resets_at?: string | null;
};

/** How the run ended. */
export type FinalStatus = "completed" | "failed" | "stopped" | "timed_out";

/** `event: gap`: the events `from` to `to` are no longer kept. */
export type GapEvent = {
  type: "gap";
  from: number;
  to: number;
};

/** The answer to `GET /health`. A request without a key (when keys are configured) gets only
 * `status` and `timestamp`; the other fields are for a client with a key. */
export type Health = {
  /** ok; degraded (200: a database write failed in the last minute, the database file is
   * gone, or no watchdog process runs); unavailable (503: the CLI is missing or not logged
   * in). */
  status: string;
  /** RFC 3339, in milliseconds. */
  timestamp: string;
  active_agents?: number | null;
  /** How many agents may run at once (PROXY_MAX_AGENTS). */
  max_agents?: number | null;
  /** While the subscription is rate limited: until when new agents are refused (null: it is
   * not). */
  rate_limited_until?: string | null;
  subscription?: null | SubscriptionLimits;
  version?: string | null;
  instance_id?: string | null;
  /** bwrap or off. */
  sandbox?: string | null;
  cli?: null | {
    path: string;
    found: boolean;
    logged_in: boolean;
    /** As `claude auth status` says: api_key, oauth_token, claude.ai, none, ... */
    auth_method?: string | null;
    login_expires_at?: string | null;
  };
  storage?: null | {
    /** memory, sqlite or postgres. */
    kind: string;
    ok: boolean;
    error?: string | null;
  };
  watchdog?: null | {
    /** running; down (no agent is started until one runs again); off (none was asked for). */
    status: string;
    pid?: number | null;
    /** How many times it died and another was started. */
    restarts: number;
    /** Why none runs, while down. */
    error?: string | null;
  };
  warm_pool?: null | {
    /** Most CLIs that wait at once (PROXY_WARM_POOL); 0: no pool. */
    size: number;
    /** CLIs waiting now. */
    waiting: number;
    /** Runs served by a waiting CLI. */
    hits: number;
    /** Runs of no waiting CLI's shape. */
    misses: number;
    /** Time to first line saved: for each hit, the cold runs' average less the hit's. */
    saved_seconds: number;
    /** The shapes kept warm, the operator's (PROXY_WARM_SHAPES) first, then those learned from
     * requests, the most recent first. */
    shapes: Array<{
      /** A name for the shape that tells nothing of it (its key, directory, tools, prompt). */
      shape: string;
      /** operator or learned. */
      source: string;
      /** Its CLIs waiting now. */
      waiting: number;
    }>;
  };
};

/** A base64 image, its data checked to decode within the limit. */
export type ImageSource = {
  /** The proxy fetches nothing. */
  type: "base64";
  /** image/png, image/jpeg, image/gif or image/webp. */
  media_type: string;
  data: string;
};

/** The answer to `POST /agent/{agent_id}/interrupt`. */
export type Interrupted = {
  agent_id: string;
  /** Messages still waiting, which become the next turns. */
  still_queued: number;
};

/** One block of a message: text, or a base64 image. */
export type MessageBlock = {
  text: string;
  type: "text";
} | {
  source: ImageSource;
  type: "image";
};

/** A string, or 1 to 100 blocks of text and images: a user message, checked. It is written to
 * the CLI as it serializes, which is the Messages API's shape the document describes. */
export type MessageContent = string | Array<MessageBlock>;

/** The answer to `POST /agent/{agent_id}/messages`. */
export type MessageQueued = {
  agent_id: string;
  /** Messages waiting for the CLI, this one included. */
  queued: number;
};

/** The body of `POST /agent/{id}/messages`. */
export type MessageRequest = {
  /** A string, or 1 to 100 blocks: `{"type":"text","text":...}` or
   * `{"type":"image","source":{"type":"base64","media_type":"image/png","data":...}}`
   * (png, jpeg, gif or webp, at most PROXY_MAX_IMAGE_BYTES decoded). */
  content: MessageContent;
};

/** The models: OpenAI's list shape, or Anthropic's when the request carries
 * `anthropic-version`. */
export type ModelList = OpenAiModelList | AnthropicModelList;

/** One model's usage. */
export type ModelUsage = Usage & {
  /** As the API named it (`unknown` for a request refused before it said). */
  model: string;
};

/** A chat completion, not streamed. */
export type OpenAiChatCompletion = {
  /** chatcmpl- and the agent's id. */
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<OpenAiChoice>;
  usage: OpenAiUsage;
  x_claude_proxy: ProxyExtension;
};

/** One chunk of a streamed completion: `data: {chunk}`, and `data: [DONE]` last. The first
 * chunk's delta has the role; the last with choices has the finish reason; with
 * `include_usage`, a chunk with no choices has the usage. */
export type OpenAiChatCompletionChunk = {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<OpenAiChunkChoice>;
  usage?: null | OpenAiUsage;
  x_claude_proxy?: null | ProxyExtension;
};

/** An OpenAI chat completion request. Refused with 400, naming the field, since they would change
 * what the model does and the proxy cannot honour them: `tools`, `functions`, `tool_choice`
 * other than `none`, `n` > 1, `logprobs`, audio, `stop`, `logit_bias`, a `response_format` type
 * other than text, json_object and json_schema, `prediction`, `web_search_options`,
 * `reasoning_effort`. Accepted and ignored, as
 * tuning: `temperature`, `top_p`, `seed`, the penalties, `user`, `max_tokens` and
 * `max_completion_tokens` (not enforced), `metadata`, `store`, `service_tier`. */
export type OpenAiChatRequest = {
  /** sonnet, opus, haiku, a claude-* name, or a name of PROXY_MODEL_MAP. */
  model: string;
  /** The conversation; the last message is the user's. */
  messages: Array<OpenAiMessage>;
  stream?: boolean | null;
  stream_options?: null | {
    /** A last chunk with the usage, and no choices. */
    include_usage?: boolean | null;
  };
  response_format?: null | {
    type?: string;
    json_schema?: null | {
      schema?: { [key: string]: unknown };
    };
  };
  /** Functions the model may call, for the client to run: the reply then ends with
   * `tool_calls` (`finish_reason: "tool_calls"`), and the request that brings their results
   * (`tool` messages) goes on with the same run. `tool_choice` is `auto` or `none`. */
  tools?: Array<OpenAiTool> | null;
  /** Continues the conversation of this name for the key: the request carries only its new
   * messages, and the CLI resumes the session that gave the conversation's last reply. A CLI
   * session id of the key's (as `x-claude-session-id` gave it) continues that session. The
   * header `X-Claude-Session-Id` says the same. */
  session_id?: string | null;
  /** true: the tools the operator gives the compatible APIs (PROXY_COMPAT_TOOLS; 400 when it
   * gives none); false: none; absent: PROXY_COMPAT_TOOLS's. */
  enable_tools?: boolean | null;
};

export type OpenAiChoice = {
  index: number;
  message: {
    role: "assistant";
    /** The reply's text; null when it only calls functions. */
    content?: string | null;
    tool_calls?: Array<OpenAiToolCall> | null;
    /** Always null. */
    refusal?: string | null;
  };
  /** Always null: the proxy gives none. */
  logprobs?: { [key: string]: unknown } | null;
  /** stop, length when the model ran out of tokens, or tool_calls. */
  finish_reason: string;
};

export type OpenAiChunkChoice = {
  index: number;
  delta: {
    role?: null | "assistant";
    content?: string | null;
    /** The calls of the client's functions, each whole in one chunk. */
    tool_calls?: Array<OpenAiToolCallChunk> | null;
  };
  /** Always null. */
  logprobs?: { [key: string]: unknown } | null;
  finish_reason?: string | null;
};

/** Text, or parts of text and images. */
export type OpenAiContent = string | Array<OpenAiContentPart>;

/** A `text` part, or an `image_url` part whose URL is a `data:` URL (the proxy fetches
 * nothing). */
export type OpenAiContentPart = {
  type?: string;
  text?: string | null;
  image_url?: null | {
    /** data:image/png;base64,... */
    url?: string;
  };
};

/** OpenAI's error body. */
export type OpenAiError = {
  error: {
    message: string;
    /** invalid_request_error, authentication_error, permission_error, rate_limit_error,
     * api_error. */
    type: string;
    /** The request field at fault. */
    param?: string | null;
    /** invalid_api_key, model_not_found, or null. */
    code?: string | null;
  };
};

/** One message: system, developer, user, assistant, or tool (a function's result). */
export type OpenAiMessage = {
  role: string;
  content?: null | OpenAiContent;
  /** An assistant's calls of the client's functions. */
  tool_calls?: Array<OpenAiToolCall> | null;
  /** A tool message's: the call whose result it is. */
  tool_call_id?: string | null;
};

export type OpenAiModel = {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
};

export type OpenAiModelList = {
  object: "list";
  data: Array<OpenAiModel>;
};

/** A response: the reply as one output message of one `output_text` part. */
export type OpenAiResponse = {
  /** resp_ and the agent's id. */
  id: string;
  object: "response";
  /** Seconds since the epoch. */
  created_at: number;
  /** in_progress, completed or failed. */
  status: string;
  error?: null | ResponsesError;
  /** Always null. */
  incomplete_details?: { [key: string]: unknown } | null;
  instructions?: string | null;
  model: string;
  /** The reply's message (when it said something), then the client's functions it called. */
  output: Array<ResponsesOutputItem>;
  /** True with tools: the model may call several at once. */
  parallel_tool_calls: boolean;
  previous_response_id?: string | null;
  /** Whether it is kept. */
  store: boolean;
  /** Always null: not honoured. */
  temperature?: number | null;
  top_p?: number | null;
  metadata?: { [key: string]: unknown } | null;
  text: {
    /** `text`; `json_object` (any JSON object); or `json_schema`: the reply is JSON text that
     * follows `schema` (an object's schema), through the CLI's `--json-schema`. `name` and
     * `strict` are accepted: the CLI checks every answer against the schema. */
    format: {
      type?: string;
      name?: string | null;
      schema?: { [key: string]: unknown };
    };
  };
  /** `auto` with tools, else `none`. */
  tool_choice: string;
  /** The request's functions. */
  tools: Array<ResponsesTool>;
  /** Always `disabled`. */
  truncation: string;
  usage?: null | ResponsesUsage;
  x_claude_proxy?: null | ProxyExtension;
};

/** A function the client offers the model. */
export type OpenAiTool = {
  /** `function`. */
  type?: string;
  function: {
    /** 1 to 64 of a-z A-Z 0-9 _ -. */
    name: string;
    description?: string | null;
    /** A JSON Schema of its arguments (an object's). */
    parameters?: { [key: string]: unknown } | null;
  };
};

/** A call of a function by the model, as a reply gives it and the next request repeats it. */
export type OpenAiToolCall = {
  /** The call's id, which the `tool` message with its result names. */
  id: string;
  /** `function`. */
  type?: string;
  function: {
    name: string;
    /** Its arguments, as JSON text. */
    arguments: string;
  };
};

export type OpenAiToolCallChunk = OpenAiToolCall & {
  index: number;
};

/** The usage, from the CLI's result: prompt tokens count input, cache-read and
 * cache-creation tokens. */
export type OpenAiUsage = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: {
    cached_tokens: number;
  };
};

/** A line of the CLI of another type (such as `rate_limit_event`), passed as it wrote it. */
export type OtherCliLine = {
  /** Any but the types of the other shapes. */
  type: string;
};

/** The answer to `GET /agent/{agent_id}/permissions`. */
export type PendingPermissions = {
  agent_id: string;
  pending_permissions: Array<PermissionRequest>;
};

/** A client's answer to a tool approval. It never carries permission updates (rules,
 * directories, modes): they would widen the operator's policy or outlive the agent. */
export type PermissionAnswer = {
  /** The tool runs with this input instead of the model's. */
  updated_input?: { [key: string]: unknown } | null;
  behavior: "allow";
} | {
  /** What the model is told. */
  message?: string | null;
  /** Ends the turn as an interrupt does. */
  interrupt?: boolean;
  behavior: "deny";
};

/** The answer to `POST /agent/{agent_id}/permissions/{request_id}`. */
export type PermissionAnswered = {
  agent_id: string;
  request_id: string;
  /** allow or deny. */
  behavior: string;
};

/** `event: permission_cancelled`: the CLI no longer waits for this approval. */
export type PermissionCancelledEvent = {
  type: "permission_cancelled";
  request_id: string;
};

/** `event: permission_decision`: how a tool approval was answered. */
export type PermissionDecisionEvent = {
  type: "permission_decision";
  request_id: string;
  tool_name: string;
  /** allow or deny. */
  behavior: string;
  /** client or timeout. */
  decided_by: string;
  /** Of an allow: the input the tool runs with when the answer changed it (null: the
   * model's). */
  updated_input?: { [key: string]: unknown } | null;
  /** Of a deny: what the model is told. */
  message?: string | null;
  /** Of a deny: whether the turn was ended with it. */
  interrupt?: boolean | null;
};

/** The CLI's permission modes, from the most restricted to the least. */
export type PermissionMode = "plan" | "dontAsk" | "default" | "manual" | "acceptEdits" | "auto" | "bypassPermissions";

/** A tool approval the CLI waits for, as clients see it. */
export type PermissionRequest = {
  request_id: string;
  tool_name: string;
  /** The tool's input, as the model wrote it. */
  input: { [key: string]: unknown };
  tool_use_id?: string | null;
  description?: string | null;
  /** The CLI's suggested permission updates (shown, never applied by an answer). */
  suggestions: Array<{ [key: string]: unknown }>;
  expires_at: string;
};

/** `event: permission_request`: a tool approval the CLI waits for (agents with approvals);
 * answer it with `POST /agent/{agent_id}/permissions/{request_id}`. */
export type PermissionRequestEvent = PermissionRequest & {
  type: "permission_request";
};

/** The run's cost and session, beside the API's own fields. */
export type ProxyExtension = {
  total_cost_usd?: number | null;
  session_id?: string | null;
};

/** A line of the CLI that is not JSON (or nests too deep), wrapped. */
export type ProxyRawEvent = {
  type: "proxy_raw";
  line: string;
};

/** `event: queued`, before the agent exists (PROXY_QUEUE): the run waits for a place, this
 * far from the front (1: next); sent again each time its position changes. It has no `id`:
 * it is not one of the agent's events, which follow from `agent` once it has a place. */
export type QueuedEvent = {
  type: "queued";
  position: number;
};

/** A response forgotten. */
export type ResponseDeleted = {
  id: string;
  object: "response.deleted";
  deleted: boolean;
};

/** A piece of a function call's arguments. */
export type ResponsesArgumentsDeltaEvent = {
  type: "response.function_call_arguments.delta";
  sequence_number: number;
  item_id: string;
  output_index: number;
  delta: string;
};

/** A function call's whole arguments. */
export type ResponsesArgumentsDoneEvent = {
  type: "response.function_call_arguments.done";
  sequence_number: number;
  item_id: string;
  output_index: number;
  name: string;
  arguments: string;
};

/** Text, or parts: `input_text`, `input_image` (a `data:` URL: the proxy fetches nothing),
 * and in an assistant's message `output_text`. */
export type ResponsesContent = string | Array<ResponsesInputPart>;

/** `response.content_part.added` or `response.content_part.done`. */
export type ResponsesContentPartEvent = {
  type: string;
  sequence_number: number;
  item_id: string;
  output_index: number;
  content_index: number;
  part: ResponsesOutputText;
};

/** A failed response's error. */
export type ResponsesError = {
  /** server_error, or rate_limit_exceeded. */
  code: string;
  message: string;
};

/** The stream's error, after `response.failed`. */
export type ResponsesErrorEvent = {
  type: "error";
  sequence_number: number;
  /** server_error, or rate_limit_exceeded. */
  code: string;
  message: string;
  param?: string | null;
};

/** A call of one of the client's functions: the client runs it, and answers with a
 * `function_call_output` item of the same `call_id`. */
export type ResponsesFunctionCall = {
  /** fc_ and the call's id. */
  id: string;
  type: "function_call";
  /** in_progress while its arguments stream, then completed. */
  status: string;
  /** The model's id of the call. */
  call_id: string;
  name: string;
  /** Its arguments as JSON text. */
  arguments: string;
};

/** Text, or input items. */
export type ResponsesInput = string | Array<ResponsesInputItem>;

/** An input item. A `message` (the default): `role` user, system, developer or assistant (an
 * earlier reply, as the response's output gave it), its content text, or parts. A
 * `function_call` (an earlier call of the model's, as the response's output gave it: `call_id`,
 * `name`, `arguments`), or a `function_call_output`: the result (`output`) of the call
 * `call_id`; those after the input's last other item answer the run that waits for them. */
export type ResponsesInputItem = {
  /** `message` (the default), `function_call` or `function_call_output`; other items are
   * refused. */
  type?: string | null;
  /** A message's. */
  role?: string;
  content?: null | ResponsesContent;
  /** A function call's, or its output's: the model's id of the call. */
  call_id?: string | null;
  /** A function call's. */
  name?: string | null;
  /** A function call's: its arguments as JSON text. */
  arguments?: string | null;
  output?: null | ResponsesContent;
};

export type ResponsesInputPart = {
  type?: string;
  text?: string | null;
  /** data:image/png;base64,... */
  image_url?: string | null;
};

/** `response.created`, `response.in_progress`, `response.completed` or `response.failed`. */
export type ResponsesLifecycleEvent = {
  type: string;
  sequence_number: number;
  response: OpenAiResponse;
};

/** An item of a response's output. */
export type ResponsesOutputItem = ResponsesOutputMessage | ResponsesFunctionCall;

/** `response.output_item.added` or `response.output_item.done`. */
export type ResponsesOutputItemEvent = {
  type: string;
  sequence_number: number;
  output_index: number;
  item: ResponsesOutputItem;
};

/** The reply: an assistant message. */
export type ResponsesOutputMessage = {
  /** msg_ and the agent's id. */
  id: string;
  type: "message";
  role: "assistant";
  /** in_progress or completed. */
  status: string;
  content: Array<ResponsesOutputText>;
};

export type ResponsesOutputText = {
  type: "output_text";
  text: string;
  /** Always empty. */
  annotations: Array<{ [key: string]: unknown }>;
  /** Always empty. */
  logprobs: Array<{ [key: string]: unknown }>;
};

/** An OpenAI Responses API request (`POST /v1/responses`). Refused with 400, naming the field,
 * since they would change what the model does and the proxy cannot honour them: tools other
 * than functions, `tool_choice` other than `auto` and `none`, `text.format` other
 * than `text`, `json_object` and `json_schema`, `text.verbosity`, `truncation` other than
 * `disabled`, `include` other than `reasoning.encrypted_content` (there is none to give),
 * `reasoning` fields other than `effort` and `summary`, `reasoning.effort: none`,
 * `max_tool_calls`, `parallel_tool_calls: false`, `background: true`,
 * `conversation`, `prompt`, input items other than messages, function calls and their
 * outputs, and `input_file` parts. Accepted
 * and ignored, as tuning: `temperature`, `top_p`, `top_logprobs`, `max_output_tokens` (not
 * enforced), `metadata`, `user`, `safety_identifier`, `prompt_cache_key`, `service_tier`,
 * `stream_options`. */
export type ResponsesRequest = {
  /** sonnet, opus, haiku, a claude-* name, or a name of PROXY_MODEL_MAP. */
  model: string;
  /** The new input: text (the user's message), or message items. */
  input: ResponsesInput;
  /** The system prompt, before any system or developer message of the input. */
  instructions?: string | null;
  /** The response this one continues: a fork of the session that gave it is resumed, and
   * only the new input is sent to the CLI. It must be one of the key's kept responses. */
  previous_response_id?: string | null;
  /** false: the response is not kept (no `previous_response_id` or GET finds it, and its
   * session's file is removed). Default true. */
  store?: boolean | null;
  /** The events of the response as Server-Sent Events. */
  stream?: boolean | null;
  text?: null | {
    format?: null | {
      type?: string;
      name?: string | null;
      schema?: { [key: string]: unknown };
    };
  };
  reasoning?: null | {
    /** minimal or low (the CLI's `--effort=low`), medium, high, xhigh. */
    effort?: string | null;
  };
  /** The client's functions: the model may call them, and the response then ends with its
   * `function_call` items; the next request brings each call's `function_call_output`
   * (with `previous_response_id`, or the whole input again) and the same run goes on. */
  tools?: Array<ResponsesTool> | null;
};

/** One event of a streamed response: `event: {type}`, then `data: {event}`. In order:
 * `response.created`, `response.in_progress`, `response.output_item.added`,
 * `response.content_part.added`, `response.output_text.delta` (many),
 * `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
 * `response.completed`; a CLI that fails once the reply has begun ends it with
 * `response.failed` and `error`. Each call of a client's function, before
 * `response.completed`: `response.output_item.added`,
 * `response.function_call_arguments.delta`, `response.function_call_arguments.done`,
 * `response.output_item.done`. */
export type ResponsesStreamEvent = ResponsesLifecycleEvent | ResponsesOutputItemEvent | ResponsesContentPartEvent | ResponsesTextDeltaEvent | ResponsesTextDoneEvent | ResponsesArgumentsDeltaEvent | ResponsesArgumentsDoneEvent | ResponsesErrorEvent;

/** A piece of the reply's text. */
export type ResponsesTextDeltaEvent = {
  type: "response.output_text.delta";
  sequence_number: number;
  item_id: string;
  output_index: number;
  content_index: number;
  delta: string;
  /** Always empty. */
  logprobs: Array<{ [key: string]: unknown }>;
};

/** The reply's whole text. */
export type ResponsesTextDoneEvent = {
  type: "response.output_text.done";
  sequence_number: number;
  item_id: string;
  output_index: number;
  content_index: number;
  text: string;
  /** Always empty. */
  logprobs: Array<{ [key: string]: unknown }>;
};

/** A function of the client's, as the Responses API defines one (flat, not nested in
 * `function`). `strict` is accepted: the CLI checks every call's input against `parameters`. */
export type ResponsesTool = {
  /** `function`. */
  type?: string;
  /** 1 to 64 of a-z A-Z 0-9 _ -. */
  name?: string;
  description?: string | null;
  /** A JSON Schema of its arguments (an object's). */
  parameters?: { [key: string]: unknown } | null;
  strict?: boolean | null;
};

/** The usage, from the CLI's result: input tokens count input, cache-read and cache-creation
 * tokens. */
export type ResponsesUsage = {
  input_tokens: number;
  input_tokens_details: {
    cached_tokens: number;
  };
  output_tokens: number;
  output_tokens_details: {
    /** Always 0: the CLI counts thinking as output. */
    reasoning_tokens: number;
  };
  total_tokens: number;
};

/** The end of a turn: what the agent answered (`result`), whether it failed, its session and
 * its cost. `subtype` is `success`, or names the error (`error_max_turns`,
 * `error_during_execution`, ...). */
export type ResultEvent = {
  type: "result";
  subtype: string;
  is_error: boolean;
  /** The answer's text (absent on some errors). */
  result?: string | null;
  session_id: string;
  total_cost_usd?: number | null;
  num_turns?: number | null;
  duration_ms?: number | null;
  duration_api_ms?: number | null;
  usage?: { [key: string]: unknown } | null;
  /** The status the API answered when it failed the turn (429: rate limited). */
  api_error_status?: number | null;
};

/** A conversation forgotten: the proxy no longer continues it, and its session's file is
 * removed. */
export type SessionDeleted = {
  id: string;
  object: "session.deleted";
  deleted: boolean;
};

/** The conversations a key's compatible requests made, newest first. */
export type SessionList = {
  object: "list";
  data: Array<ChatSession>;
};

/** The answer to `POST /agent/start`. */
export type Started = {
  agent_id: string;
  pid: number;
  /** Always "started". */
  status: string;
};

/** The answer to `POST /agent/stop/{agent_id}`, once the agent has ended. */
export type Stopped = {
  /** Always "stopped". */
  status: string;
  agent_id: string;
};

/** One event of an agent's stream: the `data` of a Server-Sent Event, whose `id` is the
 * event's number (from 1) and whose `event` field names the proxy's own events (`queued`,
 * `agent`, `error`, `gap`, `permission_*`, `complete`; the CLI's lines have none, so
 * `message`). `queued` (PROXY_QUEUE), before the agent exists, has no `id`. The
 * CLI's lines pass as it wrote them; each has more fields than these, and a later CLI may
 * write lines of other types. */
export type StreamEvent = QueuedEvent | AgentEvent | SystemInitEvent | SystemEvent | AssistantEvent | UserEvent | ResultEvent | StreamEventLine | ErrorEvent | GapEvent | ProxyRawEvent | PermissionRequestEvent | PermissionDecisionEvent | PermissionCancelledEvent | CompleteEvent | OtherCliLine;

/** A piece of a message as the API streams it (with `--include-partial-messages`): `event`
 * is one Messages API streaming event (`message_start`, `content_block_delta`, ...). */
export type StreamEventLine = {
  type: "stream_event";
  event: { [key: string]: unknown };
  session_id: string;
  parent_tool_use_id?: string | null;
};

/** A custom subagent the run's main agent may hand work to (the CLI's `--agents`). */
export type Subagent = {
  /** When to use it: the main agent reads this to choose it. */
  description: string;
  /** Its system prompt. */
  prompt: string;
  /** Its tools, each one the run itself has; absent: the run's own. */
  tools?: Array<string> | null;
  /** Tools it does without. */
  disallowed_tools?: Array<string>;
  /** A model name, or `inherit`; absent: the CLI's choice for subagents. */
  model?: string | null;
};

/** The subscription's rate limits, from the `anthropic-ratelimit-unified-*` headers of the
 * last answer of the API's that had them (the gateway reads them as it relays). */
export type SubscriptionLimits = {
  /** `allowed`, `allowed_warning` or `rejected`: whether the API takes requests now. */
  status?: string | null;
  /** When the limit that binds resets. */
  resets_at?: string | null;
  /** Which window binds (`five_hour`, `seven_day`, ...). */
  representative_claim?: string | null;
  /** Whether paid extra usage covers what is over the limit (`allowed`, `rejected`, ...). */
  overage_status?: string | null;
  five_hour: Window;
  seven_day: Window;
  /** When the answer that said so came. */
  observed_at: string;
};

/** Another `system` line of the CLI (such as `compact_boundary` or `status`). */
export type SystemEvent = {
  type: "system";
  subtype: string;
  session_id?: string | null;
};

/** The CLI's first line: its session, model, tools and working directory. */
export type SystemInitEvent = {
  type: "system";
  subtype: "init";
  session_id: string;
  model: string;
  cwd: string;
  tools: Array<string>;
  permissionMode: string;
  claude_code_version?: string | null;
};

/** The answer to `PATCH /agent/{agent_id}`: what the CLI confirmed, of what was asked. */
export type Updated = {
  agent_id: string;
  /** The model now (null: the default). */
  model?: string | null;
  permission_mode?: null | PermissionMode;
};

/** Counts of requests to the Messages API and the tokens the API counted for them. */
export type Usage = {
  /** Requests relayed (`POST /v1/messages`). */
  requests: number;
  /** Of them, those the API refused or ended with an error. */
  errors: number;
  input_tokens: number;
  output_tokens: number;
  /** Tokens read from the prompt cache. */
  cache_read_input_tokens: number;
  /** Tokens written to the prompt cache. */
  cache_creation_input_tokens: number;
};

/** How `GET /usage` adds its rows up. */
export type UsageBy = "day" | "agent" | "model";

/** `GET /usage`: a key's own usage. */
export type UsageReport = {
  /** The key's id (`anonymous` without keys): the one its agents are stored under. */
  key_id: string;
  by: UsageBy;
  from?: string | null;
  to?: string | null;
  rows: Array<UsageRow>;
  /** The rows added up. */
  total: Usage;
  subscription?: null | SubscriptionLimits;
};

/** One row of a usage report: the day, agent or model it adds up, and its counts. */
export type UsageRow = Usage & {
  /** With `by=day`: the UTC day, `YYYY-MM-DD`. */
  day?: string | null;
  /** With `by=agent`. */
  agent_id?: string | null;
  /** With `by=model`. */
  model?: string | null;
};

/** A user turn the CLI sent: the prompt, or tool results (`tool_result` blocks). */
export type UserEvent = {
  type: "user";
  /** A message in the Messages API's form. */
  message: {
    /** assistant or user. */
    role: string;
    content: ApiContent;
    id?: string | null;
    model?: string | null;
    stop_reason?: string | null;
    usage?: { [key: string]: unknown } | null;
  };
  session_id: string;
  parent_tool_use_id?: string | null;
};

/** One webhook event of an agent's, and its delivery. */
export type WebhookDelivery = {
  /** The event's id: its `X-Claude-Proxy-Delivery` header, the same on every attempt. */
  id: string;
  /** `agent.completed`, `agent.failed` or `permission.requested`. */
  event: string;
  state: WebhookState;
  /** Attempts made so far. */
  attempts: number;
  /** The receiver's HTTP status at the last attempt, if it answered. */
  last_status?: number | null;
  /** Why the last attempt failed, if it did. */
  last_error?: string | null;
  created_at: string;
  /** When it is tried next, while it is pending. */
  next_attempt_at?: string | null;
  delivered_at?: string | null;
};

/** Where a webhook event's delivery stands. */
export type WebhookState = "pending" | "delivered" | "failed";

/** One of the subscription's windows (5 hours, 7 days), as the API's last answer said it. */
export type Window = {
  /** `allowed`, `allowed_warning` or `rejected`. */
  status?: string | null;
  /** How much of the window is used, from 0 to 1. */
  utilization?: number | null;
  resets_at?: string | null;
};
