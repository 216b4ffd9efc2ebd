//! The doors every tool already knows: an OpenAI-compatible `/v1/chat/completions` and
//! `/v1/responses`, an Anthropic-compatible `/v1/messages`, and `/v1/models`. Each request is an agent like any
//! other (kind `openai` or `anthropic`), run by the core as a chat model
//! (`Agents::check_chat`); this module only translates: the request in, the CLI's lines out in
//! the API's shapes, and errors in the API's own format.

pub mod anthropic;
mod bodies;
pub mod openai;
pub mod responses;
pub mod sessions;
pub mod tool_server;

use std::collections::VecDeque;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use bodies::{
    AnthropicError, AnthropicErrorFields, CompatErrorBody, ErrorType, OpenAiError,
    OpenAiErrorFields, ProxyExtension,
};

use crate::agent::{
    Agents, ChatTurn, Client, ClientTool, Continuation, Event, EventReader, Paused, ResponseRecord,
    ResponseTurn, RunGuard, TOOL_PREFIX, ToolCall, ToolResult, ToolsGuard, TurnEnd, TurnFailure,
};
pub use crate::cli::stdout::ApiEvent;
use crate::cli::stdout::unescape;
use crate::http::ApiError;
use crate::http::ApiState;

/// Which API's formats an answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    /// The API a request to the compatible routes speaks: Anthropic's for `/v1/messages`, or
    /// when it says `anthropic-version`.
    pub fn of(path: &str, headers: &axum::http::HeaderMap) -> Self {
        if path == "/v1/messages" || headers.contains_key("anthropic-version") {
            Api::Anthropic
        } else {
            Api::OpenAi
        }
    }
}

/// An error answer in the API's own format, with the status its SDKs map to their error
/// classes.
#[derive(Debug)]
pub struct CompatError {
    pub api: Api,
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault.
    pub param: Option<String>,
    /// OpenAI's `code`: `invalid_api_key`, `model_not_found`, or none.
    pub code: Option<&'static str>,
    pub retry_after: Option<u32>,
}

impl CompatError {
    pub fn invalid(api: Api, param: impl Into<String>, message: impl Into<String>) -> Self {
        let param = param.into();
        Self {
            api,
            status: StatusCode::BAD_REQUEST,
            message: format!("{param}: {}", message.into()),
            param: Some(param),
            code: None,
            retry_after: None,
        }
    }

    /// A body that could not be read (over PROXY_MAX_BODY_BYTES: 413).
    pub fn rejected(api: Api, rejection: &axum::extract::rejection::BytesRejection) -> Self {
        Self {
            api,
            status: rejection.status(),
            message: rejection.body_text(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// The proxy's own refusal (a key, a limit, the CLI missing, ...), in the API's format; a
    /// field at fault is its `param`.
    pub fn from_api(api: Api, error: ApiError) -> Self {
        let status = match error.status() {
            // The APIs answer 400 for what this proxy calls 422.
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            status => status,
        };
        let (param, code) = match &error {
            ApiError::Unauthorized => (None, Some("invalid_api_key")),
            ApiError::Agent(crate::agent::Error::UnknownModel(_)) => {
                (Some("model".to_owned()), Some("model_not_found"))
            }
            ApiError::Agent(crate::agent::Error::ResponseNotFound(_)) => {
                (Some("previous_response_id".to_owned()), None)
            }
            ApiError::InvalidField { field, .. }
            | ApiError::Agent(crate::agent::Error::InvalidField { field, .. }) => {
                (Some((*field).to_owned()), None)
            }
            _ => (None, None),
        };
        Self {
            api,
            status,
            message: error.to_string(),
            param,
            code,
            retry_after: error.retry_after(),
        }
    }

    /// A CLI that failed before it said anything: 429 when the API refused it so, else 502.
    pub fn cli_failed(api: Api, turn: &TurnEnd) -> Self {
        let (status, retry_after) = match turn.failure() {
            Some(TurnFailure::RateLimited) => (StatusCode::TOO_MANY_REQUESTS, Some(60)),
            _ => (StatusCode::BAD_GATEWAY, None),
        };
        Self {
            api,
            status,
            message: turn.failure_message(),
            param: None,
            code: None,
            retry_after,
        }
    }

    /// The OpenAI `type` for this status.
    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 413 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }

    /// The Anthropic `type` for this status.
    fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The error object, as it also appears inside a stream.
    pub fn body(&self) -> CompatErrorBody {
        match self.api {
            Api::Anthropic => CompatErrorBody::Anthropic(AnthropicError {
                kind: ErrorType,
                error: AnthropicErrorFields {
                    kind: self.anthropic_type(),
                    message: self.message.clone(),
                },
            }),
            Api::OpenAi => CompatErrorBody::OpenAi(OpenAiError {
                error: OpenAiErrorFields {
                    message: self.message.clone(),
                    kind: self.openai_type(),
                    param: self.param.clone(),
                    code: self.code,
                },
            }),
        }
    }
}

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A whole (not streamed) answer: its JSON, with the run's session in `x-claude-session-id`.
pub fn whole_response(body: impl serde::Serialize, end: &TurnEnd) -> Response {
    let mut response = Json(body).into_response();
    if let Some(session) = end.session_id().and_then(|s| HeaderValue::from_str(s).ok()) {
        response.headers_mut().insert(
            header::HeaderName::from_static("x-claude-session-id"),
            session,
        );
    }
    response
}

/// What one step of a chat agent's run says, taken from its events.
#[derive(Debug)]
pub enum Step {
    /// A Messages API streaming event, as the CLI passed it on (`message_start`,
    /// `content_block_delta`, ...).
    Api(ApiEvent),
    /// Another line; nothing to pass on.
    Other,
    /// The run is over.
    End(TurnEnd),
}

/// A chat agent's events as steps, as they come. Dropping it stops the agent (a client that
/// goes away). A reply given whole is remembered with its session, so that the conversation
/// carrying it resumes that session.
pub struct Turn {
    reader: EventReader,
    pending: VecDeque<Event>,
    finished: bool,
    end: TurnEnd,
    /// The reply's text so far, JSON-escaped: it is unescaped once, at the end, into `text`.
    escaped_text: Vec<u8>,
    text: String,
    remember: Option<(Agents, Continuation)>,
    /// The reply follows a JSON Schema: it is the result's JSON text, and the model's own text
    /// and its call of the CLI's `StructuredOutput` tool are not passed on.
    structured: bool,
    agents: Agents,
    owner: Client,
    agent_id: uuid::Uuid,
    /// The last event read: a run that waits for its client's tool results goes on from here.
    cursor: u64,
    /// The model's message called the client's tools and has ended: the turn ends with it.
    paused: bool,
    /// Stops the run when the client goes away; handed on while it waits for tool results.
    stop: Option<RunGuard>,
    /// The run's client tool server.
    tools: Option<ToolsGuard>,
}

/// What a compatible request asks: a new turn, or the results of the client's tools that a run
/// waits for.
pub enum Ask {
    Turn(Box<ChatTurn>),
    /// With a Responses API request's own choices, to keep the response it gives.
    ToolResults(Vec<ToolResult>, Option<ResponseTurn>),
}

/// A conversation's turns, each `(role, text, images)`, as a turn for the core: the last must
/// be the user's, and say something.
pub fn chat_turn(
    api: Api,
    model: &str,
    system: Option<String>,
    mut turns: Vec<(&str, String, Vec<Value>)>,
    migration: Migration,
) -> Result<ChatTurn, CompatError> {
    let Some(("user", last, images)) = turns.pop() else {
        return Err(CompatError::invalid(
            api,
            "messages",
            "the last message must be the user's",
        ));
    };
    if last.trim().is_empty() && images.is_empty() {
        return Err(CompatError::invalid(
            api,
            "messages",
            "the last user message is empty",
        ));
    }
    Ok(ChatTurn {
        kind: match api {
            Api::OpenAi => crate::agent::AgentKind::OpenAi,
            Api::Anthropic => crate::agent::AgentKind::Anthropic,
        },
        model: model.to_owned(),
        system: system.filter(|s| !s.trim().is_empty()),
        // An earlier image reaches the CLI only from a resumed session.
        earlier: turns
            .into_iter()
            .map(|(role, text, _)| (role.to_owned(), text))
            .collect(),
        last,
        images,
        session: migration.session,
        enable_tools: migration.enable_tools,
        json_schema: None,
        effort: None,
        client_tools: Vec::new(),
        response: None,
    })
}

/// What a client migrating from another wrapper of Claude Code adds to a request.
#[derive(Debug, Default)]
pub struct Migration {
    /// The conversation it continues, from the body's `session_id` or `X-Claude-Session-Id`.
    pub session: Option<String>,
    pub enable_tools: Option<bool>,
}

impl Migration {
    /// The body's fields and the header; the two must agree when both are given.
    pub fn of(
        api: Api,
        headers: &axum::http::HeaderMap,
        session_id: Option<String>,
        enable_tools: Option<bool>,
    ) -> Result<Self, CompatError> {
        let header = match headers.get("x-claude-session-id") {
            None => None,
            Some(value) => Some(value.to_str().map(str::to_owned).map_err(|_| {
                CompatError::invalid(api, "x-claude-session-id", "must be printable ASCII")
            })?),
        };
        let session = match (session_id, header) {
            (Some(body), Some(header)) if body != header => {
                return Err(CompatError::invalid(
                    api,
                    "session_id",
                    "differs from the X-Claude-Session-Id header: give one, or the same in both",
                ));
            }
            (body, header) => body.or(header),
        };
        Ok(Self {
            session,
            enable_tools,
        })
    }
}

/// Checks and launches a chat turn, or gives a waiting run its tool results: the agent's id,
/// and its events as steps.
pub async fn start_turn(
    state: &ApiState,
    client: Client,
    api: Api,
    ask: Ask,
) -> Result<(uuid::Uuid, Turn), CompatError> {
    let refused = |err: crate::agent::Error| CompatError::from_api(api, ApiError::from(err));
    let agents = state.agents.clone();
    let turn = match ask {
        Ask::Turn(turn) => {
            let turn = *turn;
            let structured = turn.json_schema.is_some();
            let (run, mut continuation) = agents.check_chat(client, turn).await.map_err(refused)?;
            let tools = continuation.tools.take();
            let launched = agents.launch(run).await.map_err(refused)?;
            let mut turn = Turn::new(
                EventReader::Live(launched.reader),
                Box::new(
                    launched
                        .client_leaving
                        .expect("a chat turn is its client's"),
                ),
                agents.clone(),
                (client, launched.agent_id),
            );
            turn.remember = Some((agents, continuation));
            turn.tools = tools;
            turn.structured = structured;
            turn
        }
        Ask::ToolResults(results, response) => {
            let field = match response {
                Some(_) => "input",
                None => "messages",
            };
            let paused = agents
                .resume_chat(client, &results, field)
                .map_err(refused)?;
            let reader = agents
                .events(client, paused.agent_id, paused.cursor)
                .await
                .map_err(refused)?;
            let mut turn = Turn::new(
                reader,
                paused.stop,
                agents.clone(),
                (client, paused.agent_id),
            );
            turn.cursor = paused.cursor;
            turn.tools = Some(paused.tools);
            if let (Some(response), Some(cwd)) = (response, paused.cwd) {
                let continuation = Continuation::of_answered_response(client, cwd, response);
                turn.remember = Some((agents, continuation));
            }
            turn
        }
    };
    Ok((turn.agent_id, turn))
}

/// The reply a client was given: its streamed text, or the result's when none streamed.
fn reply_text<'a>(streamed: &'a str, end: &'a TurnEnd) -> &'a str {
    match streamed.is_empty() {
        true => end.result_text(),
        false => streamed,
    }
}

/// A whole reply, read to its end: its text, how the model ended it, and how the run ended.
pub struct WholeReply {
    pub text: String,
    pub stop_reason: Option<String>,
    pub end: TurnEnd,
}

/// What one read of the log takes at most.
const READ_BYTES: usize = 64 * 1024;

impl Turn {
    pub fn new(
        reader: EventReader,
        stop: RunGuard,
        agents: Agents,
        (owner, agent_id): (Client, uuid::Uuid),
    ) -> Self {
        Self {
            reader,
            pending: VecDeque::new(),
            finished: false,
            end: TurnEnd::default(),
            escaped_text: Vec::new(),
            text: String::new(),
            remember: None,
            structured: false,
            agents,
            owner,
            agent_id,
            cursor: 0,
            paused: false,
            stop: Some(stop),
            tools: None,
        }
    }

    /// The run is over, or waits for its client's tool results: a chat reply is remembered
    /// with its session (a response is kept by `keep_response`, which knows the whole
    /// response); a run that waits is handed to the request that brings the results.
    async fn ended(&mut self) -> TurnEnd {
        let end = std::mem::take(&mut self.end);
        self.text = unescape(&self.escaped_text);
        if self.paused {
            if let (Some(stop), Some(tools)) = (self.stop.take(), self.tools.take()) {
                let paused = Paused {
                    owner: self.owner,
                    agent_id: self.agent_id,
                    cursor: self.cursor,
                    stop,
                    tools,
                    cwd: self
                        .remember
                        .as_ref()
                        .filter(|(_, c)| c.is_response())
                        .map(|(_, c)| c.cwd()),
                };
                self.agents.pause_chat(&end.tool_calls, paused);
            }
            return end;
        }
        let chat = self.remember.take_if(|(_, c)| !c.is_response());
        if let (false, Some((agents, continuation))) = (end.failed(), chat) {
            if let Some(session) = end.session_id() {
                agents
                    .remember_reply(continuation, reply_text(&self.text, &end), session)
                    .await;
            }
        }
        end
    }

    /// Keeps a Responses API turn's answer, once its run has ended: only one that answered,
    /// and was not asked with `store: false`.
    pub async fn keep_response(&mut self, record: ResponseRecord, end: &TurnEnd) {
        let Some(session) = end.session_id() else {
            return;
        };
        if let Some((agents, continuation)) = self.remember.take() {
            agents
                .keep_response(continuation, record, session, !end.failed())
                .await;
        }
    }

    /// The reply's text so far, unescaped: whole once the run has ended.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The next step; `End` once, last.
    pub async fn next(&mut self) -> Step {
        loop {
            if self.paused {
                return Step::End(self.ended().await);
            }
            if let Some(event) = self.pending.pop_front() {
                if let Some(step) = self.step(&event) {
                    return step;
                }
                continue;
            }
            if self.finished {
                return Step::End(self.ended().await);
            }
            let read = self.reader.read(READ_BYTES).await;
            self.finished = read.finished;
            let empty = read.events.is_empty();
            self.pending.extend(read.events);
            if empty && !self.finished {
                self.reader.changed().await;
            }
        }
    }

    /// The whole reply, for an answer that is not streamed.
    pub async fn whole(mut self) -> WholeReply {
        let mut stop_reason = None;
        let end = loop {
            match self.next().await {
                Step::Api(event) => stop_reason = event.stop_reason.or(stop_reason),
                Step::Other => {}
                Step::End(end) => break end,
            }
        };
        // The text the steps gave, which the turn kept as they passed.
        WholeReply {
            text: reply_text(&self.text, &end).to_owned(),
            stop_reason,
            end,
        }
    }

    /// Every step the log holds now, waiting only when it holds none; `End` last.
    pub async fn next_batch(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        loop {
            while let Some(event) = self.pending.pop_front().filter(|_| !self.paused) {
                steps.extend(self.step(&event));
            }
            if self.finished || self.paused {
                steps.push(Step::End(self.ended().await));
                return steps;
            }
            let read = self.reader.read(READ_BYTES).await;
            self.finished = read.finished;
            if read.events.is_empty() && !self.finished {
                if !steps.is_empty() {
                    return steps;
                }
                self.reader.changed().await;
            }
            self.pending.extend(read.events);
        }
    }

    fn step(&mut self, event: &Event) -> Option<Step> {
        self.cursor = event.id;
        if let Some(api_event) = ApiEvent::of_line(&event.data) {
            if api_event.kind == "message_stop" && !self.end.tool_calls.is_empty() {
                // The message that called the client's tools is whole: the run now waits on
                // the calls, and the turn ends here.
                self.paused = true;
            }
            if self.structured {
                return Some(Step::Other);
            }
            if let Some(text) = api_event.escaped_text() {
                self.escaped_text.extend_from_slice(text);
            }
            return Some(Step::Api(api_event));
        }
        let mut line: Value = serde_json::from_slice(&event.data).ok()?;
        match line["type"].as_str()? {
            "result" => {
                // A structured reply is the object the CLI checked against the schema, whatever
                // text the model wrote beside it.
                let object = line.get("structured_output").filter(|o| !o.is_null());
                if let (true, Some(object)) = (self.structured, object) {
                    line["result"] = Value::String(object.to_string());
                }
                self.end.result = Some(line);
                Some(Step::Other)
            }
            "error" => {
                self.end.errors.push(line);
                Some(Step::Other)
            }
            "complete" => {
                self.end.status = line["status"].as_str().map(str::to_owned);
                Some(Step::Other)
            }
            "assistant" => {
                let blocks = line["message"]["content"].as_array().into_iter().flatten();
                for block in blocks.filter(|block| block["type"] == "tool_use") {
                    let Some(name) = block["name"]
                        .as_str()
                        .and_then(|n| n.strip_prefix(TOOL_PREFIX))
                    else {
                        continue;
                    };
                    self.end.tool_calls.push(ToolCall {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: name.to_owned(),
                        input: block["input"].clone(),
                    });
                }
                Some(Step::Other)
            }
            _ => Some(Step::Other),
        }
    }
}

/// A tool of the client's as a request offers it, before it is checked.
pub struct OfferedTool {
    /// Where its fields are: `tools[0]`, or `tools[0].function`.
    pub at: String,
    /// Whether it is of a kind the proxy takes: the refusal of `tools[n].type` if not.
    pub refused_kind: Option<&'static str>,
    pub name: String,
    pub description: Option<String>,
    /// Its schema, and the field it came in (`parameters`, `input_schema`).
    pub schema: (Option<Value>, &'static str),
}

/// The client's tools, checked: at most 64, of kinds the proxy takes, names the model can call,
/// schemas of objects.
pub fn client_tools(
    api: Api,
    offered: impl ExactSizeIterator<Item = OfferedTool>,
) -> Result<Vec<ClientTool>, CompatError> {
    if offered.len() > 64 {
        return Err(CompatError::invalid(api, "tools", "at most 64 tools"));
    }
    offered
        .enumerate()
        .map(|(n, tool)| {
            if let Some(why) = tool.refused_kind {
                return Err(CompatError::invalid(api, format!("tools[{n}].type"), why));
            }
            check_tool_name(api, &format!("{}.name", tool.at), &tool.name)?;
            let (schema, schema_field) = tool.schema;
            let schema =
                schema.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
            if !schema.is_object() {
                return Err(CompatError::invalid(
                    api,
                    format!("{}.{schema_field}", tool.at),
                    "must be a JSON Schema object",
                ));
            }
            Ok(ClientTool {
                name: tool.name,
                description: tool.description.unwrap_or_default(),
                input_schema: schema,
            })
        })
        .collect()
}

/// A client tool's name: what the model can call, and the CLI can name as an MCP tool.
pub fn check_tool_name(api: Api, field: &str, name: &str) -> Result<(), CompatError> {
    let fits = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match fits {
        true => Ok(()),
        false => Err(CompatError::invalid(
            api,
            field,
            "a tool's name is 1 to 64 of a-z A-Z 0-9 _ -",
        )),
    }
}

/// A request body, read into its type: JSON, an object, and each field of the type it must
/// have, else the API's 400 naming the field.
pub fn read_body<T: serde::de::DeserializeOwned>(
    api: Api,
    request: Value,
) -> Result<T, CompatError> {
    if !request.is_object() {
        return Err(CompatError::invalid(api, "body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(request).map_err(|err| {
        let field = err.path().to_string();
        CompatError::invalid(api, field, err.into_inner().to_string())
    })
}

/// The raw JSON of a body, for the refusals a type does not say.
pub fn json_of(api: Api, body: &[u8]) -> Result<Value, CompatError> {
    serde_json::from_slice(body)
        .map_err(|err| CompatError::invalid(api, "body", format!("not JSON: {err}")))
}

/// The extension field on responses: the run's cost and session.
pub fn extension(end: &TurnEnd) -> ProxyExtension {
    ProxyExtension {
        total_cost_usd: end.total_cost_usd(),
        session_id: end.session_id().map(str::to_owned),
    }
}
