//! `POST /v1/responses`, `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`, as OpenAI's
//! Responses API answers them. A response is a chat turn like a chat completion's; one that
//! names a `previous_response_id` resumes a fork of the session that gave that response (the
//! core keeps, per key, which session gave each response, unless `store: false`).

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::bodies::{
    ArgumentsDeltaType, ArgumentsDoneType, AssistantRole, ErrorType, FunctionCallType, MessageType,
    OpenAiError, OpenAiResponse, OutputTextType, ResponseDeleted, ResponseDeletedObject,
    ResponseObject, ResponsesArgumentsDeltaEvent, ResponsesArgumentsDoneEvent, ResponsesContent,
    ResponsesContentPartEvent, ResponsesError, ResponsesErrorEvent, ResponsesFunctionCall,
    ResponsesInput, ResponsesInputDetails, ResponsesInputItem, ResponsesLifecycleEvent,
    ResponsesOutputDetails, ResponsesOutputItem, ResponsesOutputItemEvent, ResponsesOutputMessage,
    ResponsesOutputText, ResponsesRequest, ResponsesStreamEvent, ResponsesTextDeltaEvent,
    ResponsesTextDoneEvent, ResponsesTextFormat, ResponsesTextOut, ResponsesTool, ResponsesUsage,
    TextDeltaType, TextDoneType,
};
use super::{Api, Ask, CompatError, Migration, OfferedTool, Step, Turn, TurnEnd};
use crate::agent::{
    Client, ClientTool, Effort, ResponseRecord, ResponseTurn, TokenUsage, ToolCall, ToolResult,
    TurnFailure,
};
use crate::http::{ApiError, ApiState};

const API: Api = Api::OpenAi;

/// The fields the proxy cannot honour: refused, never silently ignored.
fn refuse_unsupported(request: &Value) -> Result<(), CompatError> {
    let unsupported = |field: &str, why: &str| Err(CompatError::invalid(API, field, why));
    let choice = &request["tool_choice"];
    if !choice.is_null() && choice != "none" && choice != "auto" {
        return unsupported(
            "tool_choice",
            "only \"auto\" or \"none\": the model chooses whether to call a function",
        );
    }
    if request["parallel_tool_calls"] == false {
        return unsupported(
            "parallel_tool_calls",
            "only true: the model may call several functions at once",
        );
    }
    // The model's encrypted reasoning, as a stateless client asks to have it: there is none to
    // give (the CLI keeps its thinking in its session), and the answer is the same without it.
    if let Some(include) = request["include"].as_array() {
        if let Some(n) = include
            .iter()
            .position(|what| what != "reasoning.encrypted_content")
        {
            return unsupported(
                &format!("include[{n}]"),
                "only reasoning.encrypted_content, of which there is none to give",
            );
        }
    }
    let reasoning = &request["reasoning"];
    if !reasoning.is_null() {
        let Some(fields) = reasoning.as_object() else {
            return unsupported("reasoning", "must be an object");
        };
        if let Some(field) = fields
            .keys()
            .find(|field| !matches!(field.as_str(), "effort" | "summary"))
        {
            return unsupported(&format!("reasoning.{field}"), "not supported by this proxy");
        }
    }
    if !request["truncation"].is_null() && request["truncation"] != "disabled" {
        return unsupported(
            "truncation",
            "only \"disabled\" is supported: the CLI's session keeps the whole conversation",
        );
    }
    if request["background"] == true {
        return unsupported(
            "background",
            "background responses are not supported: use /agent/start for a run in the background",
        );
    }
    for field in ["max_tool_calls", "conversation", "prompt"] {
        if !request[field].is_null() {
            return unsupported(field, "not supported by this proxy");
        }
    }
    if !request["text"]["verbosity"].is_null() {
        return unsupported("text.verbosity", "not supported by this proxy");
    }
    Ok(())
}

/// The checked request: what its answer repeats (its turn goes to the core).
struct Asked {
    model: String,
    stream: bool,
    store: bool,
    instructions: Option<String>,
    previous: Option<String>,
    format: ResponsesTextFormat,
    tools: Vec<ResponsesTool>,
}

fn read_request(body: &[u8]) -> Result<(Ask, Asked), CompatError> {
    let request = super::json_of(API, body)?;
    refuse_unsupported(&request)?;
    let no_tools = request["tool_choice"] == "none";
    let request: ResponsesRequest = super::read_body(API, request)?;
    if request.model.is_empty() {
        return Err(CompatError::invalid(
            API,
            "model",
            "a model name is required",
        ));
    }
    let items = match request.input {
        Some(ResponsesInput::Text(text)) => {
            vec![ResponsesInputItem {
                kind: None,
                role: "user".into(),
                content: Some(ResponsesContent::Text(text)),
                call_id: None,
                name: None,
                arguments: None,
                output: None,
            }]
        }
        Some(ResponsesInput::Items(items)) => items,
        None => {
            return Err(CompatError::invalid(
                API,
                "input",
                "text or a list of message items is required",
            ));
        }
    };
    let tools = request.tools.unwrap_or_default();
    let client_tools = match no_tools {
        true => Vec::new(),
        false => client_tools_of(&tools)?,
    };
    let store = request.store.unwrap_or(true);
    let response = ResponseTurn {
        previous: request.previous_response_id.clone(),
        store,
    };
    let format = request
        .text
        .and_then(|text| text.format)
        .unwrap_or(ResponsesTextFormat {
            kind: "text".into(),
            name: None,
            schema: None,
        });
    let json_schema = json_schema_of(&format)?;
    let effort = match request.reasoning.and_then(|reasoning| reasoning.effort) {
        None => None,
        Some(effort) => Some(effort_of(&effort)?),
    };
    let asked = Asked {
        model: request.model.clone(),
        stream: request.stream.unwrap_or(false),
        store,
        instructions: request.instructions.clone(),
        previous: request.previous_response_id,
        format: ResponsesTextFormat {
            schema: None,
            ..format
        },
        tools,
    };
    // Outputs of function calls after the input's last other item: they answer a run that
    // waits for them.
    let is_output =
        |item: &ResponsesInputItem| item.kind.as_deref() == Some("function_call_output");
    let trailing = items
        .iter()
        .rev()
        .take_while(|item| is_output(item))
        .count();
    if trailing > 0 {
        let first = items.len() - trailing;
        let results = items
            .into_iter()
            .enumerate()
            .skip(first)
            .map(|(n, item)| tool_result_of(n, item))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((Ask::ToolResults(results, Some(response)), asked));
    }
    let mut system: Vec<String> = request.instructions.iter().cloned().collect();
    let mut turns: Vec<(&str, String, Vec<Value>)> = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        let field = format!("input[{n}]");
        match item.kind.as_deref() {
            None | Some("message") => {}
            // The history, as a transcript: the call in words, its output as a tool's turn.
            Some("function_call") => {
                let (name, arguments) = (item.name.unwrap_or_default(), item.arguments);
                let arguments = arguments.unwrap_or_default();
                turns.push((
                    "assistant",
                    format!("[called {name} with {arguments}]"),
                    Vec::new(),
                ));
                continue;
            }
            Some("function_call_output") => {
                let result = tool_result_of(n, item)?;
                turns.push(("tool", result.text, Vec::new()));
                continue;
            }
            Some(_) => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.type"),
                    "only message, function_call and function_call_output items are supported",
                ));
            }
        }
        let (text, images) = content_of(item.content, &format!("{field}.content"))?;
        match item.role.as_str() {
            "system" | "developer" if images.is_empty() => system.push(text),
            "system" | "developer" => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.content"),
                    "a system message holds text only",
                ));
            }
            "user" => turns.push(("user", text, images)),
            "assistant" => turns.push(("assistant", text, images)),
            _ => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.role"),
                    "must be user, system, developer or assistant",
                ));
            }
        }
    }
    match turns.last() {
        Some(("user", text, images)) if !text.trim().is_empty() || !images.is_empty() => {}
        Some(("user", _, _)) => {
            return Err(CompatError::invalid(
                API,
                "input",
                "the last user message is empty",
            ));
        }
        _ => {
            return Err(CompatError::invalid(
                API,
                "input",
                "the last message must be the user's",
            ));
        }
    }
    let mut turn = super::chat_turn(
        API,
        &asked.model,
        (!system.is_empty()).then(|| system.join("\n\n")),
        turns,
        Migration::default(),
    )?;
    turn.json_schema = json_schema;
    turn.response = Some(response);
    turn.client_tools = client_tools;
    turn.effort = effort;
    Ok((Ask::Turn(Box::new(turn)), asked))
}

/// OpenAI's reasoning effort as the CLI's `--effort`.
fn effort_of(effort: &str) -> Result<Effort, CompatError> {
    match effort {
        "minimal" | "low" => Ok(Effort::Low),
        "medium" => Ok(Effort::Medium),
        "high" => Ok(Effort::High),
        "xhigh" => Ok(Effort::Xhigh),
        _ => Err(CompatError::invalid(
            API,
            "reasoning.effort",
            "must be minimal, low, medium, high or xhigh (the CLI thinks at least a little)",
        )),
    }
}

/// A `function_call_output` item: the result of a call.
fn tool_result_of(n: usize, item: ResponsesInputItem) -> Result<ToolResult, CompatError> {
    let field = format!("input[{n}]");
    let Some(call_id) = item.call_id.filter(|id| !id.is_empty()) else {
        return Err(CompatError::invalid(
            API,
            format!("{field}.call_id"),
            "a function_call_output names the call whose result it is",
        ));
    };
    let (text, images) = content_of(item.output, &format!("{field}.output"))?;
    if !images.is_empty() {
        return Err(CompatError::invalid(
            API,
            format!("{field}.output"),
            "a function's output holds text only",
        ));
    }
    Ok(ToolResult {
        call_id,
        text,
        is_error: false,
    })
}

/// The client's functions, checked.
fn client_tools_of(tools: &[ResponsesTool]) -> Result<Vec<ClientTool>, CompatError> {
    let offered = tools.iter().enumerate().map(|(n, tool)| OfferedTool {
        at: format!("tools[{n}]"),
        refused_kind: (tool.kind != "function").then_some("only function tools are taken"),
        name: tool.name.clone(),
        description: tool.description.clone(),
        schema: (tool.parameters.clone(), "parameters"),
    });
    super::client_tools(API, offered)
}

/// The schema `text.format` asks the reply to follow: none for `text`, any object for
/// `json_object`; the core checks it as a request's `json_schema`.
fn json_schema_of(format: &ResponsesTextFormat) -> Result<Option<Value>, CompatError> {
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "object"}))),
        "json_schema" => match &format.schema {
            None => Err(CompatError::invalid(
                API,
                "text.format.schema",
                "a JSON Schema is required",
            )),
            Some(schema) => Ok(Some(schema.clone())),
        },
        _ => Err(CompatError::invalid(
            API,
            "text.format.type",
            "must be text, json_object or json_schema",
        )),
    }
}

/// An item's text, and its images as Messages API blocks.
fn content_of(
    content: Option<ResponsesContent>,
    field: &str,
) -> Result<(String, Vec<Value>), CompatError> {
    let parts = match content {
        Some(ResponsesContent::Text(text)) => return Ok((text, Vec::new())),
        Some(ResponsesContent::Parts(parts)) => parts,
        None => {
            return Err(CompatError::invalid(
                API,
                field,
                "must be text or a list of parts",
            ));
        }
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (n, part) in parts.into_iter().enumerate() {
        let at = || format!("{field}[{n}]");
        match part.kind.as_str() {
            // An earlier reply, as a response's output gave it, is text too.
            "input_text" | "output_text" => texts.push(part.text.unwrap_or_default()),
            "input_image" => {
                let url = part.image_url.unwrap_or_default();
                images.push(super::openai::image_of_data_url(&url, at())?);
            }
            kind => {
                return Err(CompatError::invalid(
                    API,
                    at(),
                    format!(
                        "{} parts are not supported",
                        if kind.is_empty() { "untyped" } else { kind }
                    ),
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

/// OpenAI's usage, from the tokens the CLI's result counted.
fn usage_of(usage: TokenUsage) -> ResponsesUsage {
    let input =
        usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
    ResponsesUsage {
        input_tokens: input,
        input_tokens_details: ResponsesInputDetails {
            cached_tokens: usage.cache_read_input_tokens,
        },
        output_tokens: usage.output_tokens,
        output_tokens_details: ResponsesOutputDetails {
            reasoning_tokens: 0,
        },
        total_tokens: input + usage.output_tokens,
    }
}

/// What every form of one response repeats.
struct Reply {
    id: String,
    message_id: String,
    created_at: i64,
    model: String,
    instructions: Option<String>,
    previous: Option<String>,
    store: bool,
    format: ResponsesTextFormat,
    tools: Vec<ResponsesTool>,
}

impl Reply {
    /// A response named after `id`: its agent's, or its own when its run gave one before.
    fn of(id: uuid::Uuid, asked: &Asked) -> Self {
        Self {
            id: format!("resp_{}", id.simple()),
            message_id: format!("msg_{}", id.simple()),
            created_at: chrono::Utc::now().timestamp(),
            model: asked.model.clone(),
            instructions: asked.instructions.clone(),
            previous: asked.previous.clone(),
            store: asked.store,
            format: ResponsesTextFormat {
                kind: asked.format.kind.clone(),
                name: asked.format.name.clone(),
                schema: None,
            },
            tools: asked.tools.clone(),
        }
    }

    /// A kept response, as it was answered.
    fn kept(record: ResponseRecord) -> (Self, String, TokenUsage) {
        let message_id = match record.id.strip_prefix("resp_") {
            Some(hex) => format!("msg_{hex}"),
            None => format!("msg_{}", record.id),
        };
        let reply = Self {
            id: record.id,
            message_id,
            created_at: record.created_at,
            model: record.model,
            instructions: record.instructions,
            previous: record.previous_response_id,
            store: true,
            format: ResponsesTextFormat {
                kind: "text".into(),
                name: None,
                schema: None,
            },
            tools: Vec::new(),
        };
        (reply, record.text, record.usage)
    }

    /// What the core keeps of it.
    fn record(&self, text: &str, usage: TokenUsage) -> ResponseRecord {
        ResponseRecord {
            id: self.id.clone(),
            created_at: self.created_at,
            model: self.model.clone(),
            instructions: self.instructions.clone(),
            previous_response_id: self.previous.clone(),
            text: text.to_owned(),
            usage,
        }
    }

    /// The response as a whole, in a state.
    fn response(
        &self,
        status: &'static str,
        output: Vec<ResponsesOutputItem>,
        usage: Option<ResponsesUsage>,
        error: Option<ResponsesError>,
        end: Option<&TurnEnd>,
    ) -> OpenAiResponse {
        OpenAiResponse {
            id: self.id.clone(),
            object: ResponseObject,
            created_at: self.created_at,
            status,
            error,
            incomplete_details: None,
            instructions: self.instructions.clone(),
            model: self.model.clone(),
            output,
            parallel_tool_calls: !self.tools.is_empty(),
            previous_response_id: self.previous.clone(),
            store: self.store,
            temperature: None,
            top_p: None,
            metadata: None,
            text: ResponsesTextOut {
                format: ResponsesTextFormat {
                    kind: self.format.kind.clone(),
                    name: self.format.name.clone(),
                    schema: None,
                },
            },
            tool_choice: match self.tools.is_empty() {
                true => "none",
                false => "auto",
            },
            tools: self.tools.clone(),
            truncation: "disabled",
            usage,
            x_claude_proxy: end.map(super::extension),
        }
    }

    /// The reply's message: in progress and empty, or with its text.
    fn message(&self, status: &'static str, text: Option<&str>) -> ResponsesOutputMessage {
        ResponsesOutputMessage {
            id: self.message_id.clone(),
            kind: MessageType,
            role: AssistantRole,
            status,
            content: text.map(|text| self.part(text)).into_iter().collect(),
        }
    }

    fn part(&self, text: &str) -> ResponsesOutputText {
        ResponsesOutputText {
            kind: OutputTextType,
            text: text.to_owned(),
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }

    /// A call of the client's function, in a state.
    fn call(
        &self,
        call: &ToolCall,
        status: &'static str,
        arguments: String,
    ) -> ResponsesFunctionCall {
        ResponsesFunctionCall {
            id: call_item_id(call),
            kind: FunctionCallType,
            status,
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments,
        }
    }

    /// The whole output: the message, when it said something or called nothing, then the
    /// calls of the client's functions.
    fn output(&self, text: &str, end: &TurnEnd) -> Vec<ResponsesOutputItem> {
        let message = has_message(text, end)
            .then(|| ResponsesOutputItem::Message(self.message("completed", Some(text))));
        message
            .into_iter()
            .chain(end.tool_calls.iter().map(|call| {
                ResponsesOutputItem::FunctionCall(self.call(
                    call,
                    "completed",
                    call.input.to_string(),
                ))
            }))
            .collect()
    }

    /// The completed response, with its whole output and usage.
    fn completed(&self, text: &str, end: &TurnEnd) -> OpenAiResponse {
        self.response(
            "completed",
            self.output(text, end),
            Some(usage_of(end.usage())),
            None,
            Some(end),
        )
    }
}

/// Whether a response's output has a message: when it said something, or called nothing.
fn has_message(text: &str, end: &TurnEnd) -> bool {
    !text.is_empty() || end.tool_calls.is_empty()
}

/// A function call's output item's id, made from the model's id of the call.
fn call_item_id(call: &ToolCall) -> String {
    format!("fc_{}", call.id)
}

/// The error of a response that failed, and its stream's `error` event's code.
fn failure(end: &TurnEnd) -> ResponsesError {
    ResponsesError {
        code: match end.failure() {
            Some(TurnFailure::RateLimited) => "rate_limit_exceeded",
            _ => "server_error",
        },
        message: end.failure_message(),
    }
}

/// A response: the CLI runs its new input as a chat model's turn, resuming the session of the
/// response it continues.
#[utoipa::path(post, path = "/v1/responses", tag = "compatible",
    request_body = ResponsesRequest,
    responses(
        (status = 200, description = "A response; with `stream`, its events as Server-Sent Events (`event: {type}`, `data: {event}`).",
            content((OpenAiResponse = "application/json"), (ResponsesStreamEvent = "text/event-stream")),
            headers(("x-claude-session-id" = String, description = "The CLI's session (not streamed)."))),
        (status = 400, description = "An invalid or unsupported field.", body = OpenAiError),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "An unknown model, or a `previous_response_id` that is not one of the key's kept responses.", body = OpenAiError),
        (status = 413, description = "The body is over PROXY_MAX_BODY_BYTES.", body = OpenAiError),
        (status = 429, description = "Too many agents, or the subscription is rate limited (Retry-After).", body = OpenAiError),
        (status = 502, description = "The CLI failed before it answered.", body = OpenAiError),
        (status = 503, description = "The CLI cannot be found.", body = OpenAiError),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CompatError> {
    let body = body.map_err(|rejection| CompatError::rejected(API, &rejection))?;
    let (ask, asked) = read_request(&body)?;
    // A run that goes on after its client's function outputs gives a response of its own.
    let own_id = matches!(ask, Ask::ToolResults(..)).then(uuid::Uuid::new_v4);
    let (agent_id, turn) = super::start_turn(&state, client, API, ask).await?;
    let reply = Reply::of(own_id.unwrap_or(agent_id), &asked);
    if asked.stream {
        return stream(turn, reply).await;
    }
    let (end, text) = whole(turn, &reply).await;
    if end.failed() {
        return Err(CompatError::cli_failed(API, &end));
    }
    Ok(super::whole_response(reply.completed(&text, &end), &end))
}

/// The whole reply, read to its end, and kept when it answered.
async fn whole(mut turn: Turn, reply: &Reply) -> (TurnEnd, String) {
    let end = loop {
        if let Step::End(end) = turn.next().await {
            break end;
        }
    };
    let text = super::reply_text(turn.text(), &end).to_owned();
    turn.keep_response(reply.record(&text, end.usage()), &end)
        .await;
    (end, text)
}

/// The events of one response, numbered as they are written.
struct Events {
    out: BytesMut,
    sequence: u64,
    /// What a text delta starts with, made once: a reply streams thousands of them.
    delta_prefix: Vec<u8>,
}

impl Events {
    fn new(reply: &Reply) -> Self {
        let mut delta_prefix = br#"event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"#
            .to_vec();
        let _ = serde_json::to_writer(&mut delta_prefix, &reply.message_id);
        delta_prefix
            .extend_from_slice(br#","output_index":0,"content_index":0,"logprobs":[],"delta":""#);
        Self {
            out: BytesMut::new(),
            sequence: 0,
            delta_prefix,
        }
    }

    fn next_number(&mut self) -> u64 {
        let number = self.sequence;
        self.sequence += 1;
        number
    }

    fn write(&mut self, event: ResponsesStreamEvent) {
        let kind = match &event {
            ResponsesStreamEvent::Lifecycle(e) => e.kind,
            ResponsesStreamEvent::OutputItem(e) => e.kind,
            ResponsesStreamEvent::ContentPart(e) => e.kind,
            ResponsesStreamEvent::TextDelta(_) => "response.output_text.delta",
            ResponsesStreamEvent::TextDone(_) => "response.output_text.done",
            ResponsesStreamEvent::ArgumentsDelta(_) => "response.function_call_arguments.delta",
            ResponsesStreamEvent::ArgumentsDone(_) => "response.function_call_arguments.done",
            ResponsesStreamEvent::Error(_) => "error",
        };
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(b"\ndata: ");
        let mut json = Vec::new();
        serde_json::to_writer(&mut json, &event).expect("an event serializes");
        self.out.extend_from_slice(&json);
        self.out.extend_from_slice(b"\n\n");
    }

    fn lifecycle(&mut self, kind: &'static str, response: OpenAiResponse) {
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::Lifecycle(Box::new(
            ResponsesLifecycleEvent {
                kind,
                sequence_number,
                response,
            },
        )));
    }

    fn item(&mut self, kind: &'static str, output_index: u32, item: ResponsesOutputItem) {
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::OutputItem(ResponsesOutputItemEvent {
            kind,
            sequence_number,
            output_index,
            item,
        }));
    }

    fn part(&mut self, kind: &'static str, reply: &Reply, text: &str) {
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::ContentPart(
            ResponsesContentPartEvent {
                kind,
                sequence_number,
                item_id: reply.message_id.clone(),
                output_index: 0,
                content_index: 0,
                part: reply.part(text),
            },
        ));
    }

    /// The events that begin every response.
    fn opening(&mut self, reply: &Reply) {
        for kind in ["response.created", "response.in_progress"] {
            self.lifecycle(
                kind,
                reply.response("in_progress", Vec::new(), None, None, None),
            );
        }
    }

    /// The events before the message's first piece of text.
    fn message_opening(&mut self, reply: &Reply) {
        self.item(
            "response.output_item.added",
            0,
            ResponsesOutputItem::Message(reply.message("in_progress", None)),
        );
        self.part("response.content_part.added", reply, "");
    }

    /// The calls of the client's functions, after the message's items (if any): each whole,
    /// as the model's message gave them when it ended.
    fn calls(&mut self, reply: &Reply, end: &TurnEnd, first_index: u32) {
        for (call, output_index) in end.tool_calls.iter().zip(first_index..) {
            let arguments = call.input.to_string();
            self.item(
                "response.output_item.added",
                output_index,
                ResponsesOutputItem::FunctionCall(reply.call(call, "in_progress", String::new())),
            );
            let item_id = call_item_id(call);
            let sequence_number = self.next_number();
            self.write(ResponsesStreamEvent::ArgumentsDelta(
                ResponsesArgumentsDeltaEvent {
                    kind: ArgumentsDeltaType,
                    sequence_number,
                    item_id: item_id.clone(),
                    output_index,
                    delta: arguments.clone(),
                },
            ));
            let sequence_number = self.next_number();
            self.write(ResponsesStreamEvent::ArgumentsDone(
                ResponsesArgumentsDoneEvent {
                    kind: ArgumentsDoneType,
                    sequence_number,
                    item_id,
                    output_index,
                    name: call.name.clone(),
                    arguments: arguments.clone(),
                },
            ));
            self.item(
                "response.output_item.done",
                output_index,
                ResponsesOutputItem::FunctionCall(reply.call(call, "completed", arguments)),
            );
        }
    }

    /// A piece of text, JSON-escaped as the CLI wrote it.
    fn escaped_delta(&mut self, escaped_text: &[u8]) {
        let sequence_number = self.next_number();
        self.out.extend_from_slice(&self.delta_prefix);
        self.out.extend_from_slice(escaped_text);
        self.out.extend_from_slice(b"\",\"sequence_number\":");
        self.out
            .extend_from_slice(sequence_number.to_string().as_bytes());
        self.out.extend_from_slice(b"}\n\n");
    }

    /// A piece of text the CLI did not stream: the result's.
    fn delta(&mut self, reply: &Reply, text: &str) {
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::TextDelta(ResponsesTextDeltaEvent {
            kind: TextDeltaType,
            sequence_number,
            item_id: reply.message_id.clone(),
            output_index: 0,
            content_index: 0,
            delta: text.to_owned(),
            logprobs: Vec::new(),
        }));
    }

    /// The events after the last piece of text, of a response that answered: the message's
    /// end, when it was begun, then the calls, then the response's.
    fn closing(&mut self, reply: &Reply, text: &str, end: &TurnEnd, message_open: bool) {
        if message_open {
            self.message_closing(reply, text);
        }
        self.calls(reply, end, u32::from(message_open));
        self.lifecycle("response.completed", reply.completed(text, end));
    }

    fn message_closing(&mut self, reply: &Reply, text: &str) {
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::TextDone(ResponsesTextDoneEvent {
            kind: TextDoneType,
            sequence_number,
            item_id: reply.message_id.clone(),
            output_index: 0,
            content_index: 0,
            text: text.to_owned(),
            logprobs: Vec::new(),
        }));
        self.part("response.content_part.done", reply, text);
        self.item(
            "response.output_item.done",
            0,
            ResponsesOutputItem::Message(reply.message("completed", Some(text))),
        );
    }

    /// The events of a response that failed once its text had begun.
    fn failed(&mut self, reply: &Reply, text: &str, end: &TurnEnd) {
        let error = failure(end);
        let message = error.message.clone();
        let code = error.code;
        let output = vec![ResponsesOutputItem::Message(
            reply.message("incomplete", Some(text)),
        )];
        let response = reply.response(
            "failed",
            output,
            Some(usage_of(end.usage())),
            Some(error),
            Some(end),
        );
        self.lifecycle("response.failed", response);
        let sequence_number = self.next_number();
        self.write(ResponsesStreamEvent::Error(ResponsesErrorEvent {
            kind: ErrorType,
            sequence_number,
            code,
            message,
            param: None,
        }));
    }

    fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}

/// Streams the response's events. The answer's status is only given once the CLI has said
/// something: a CLI that fails before that is an error answer, not a stream.
async fn stream(mut turn: Turn, reply: Reply) -> Result<Response, CompatError> {
    let mut events = Events::new(&reply);
    let first = loop {
        match turn.next().await {
            Step::Api(event) if event.escaped_text().is_some() => break event,
            Step::Api(_) | Step::Other => {}
            Step::End(end) => {
                // Done without a piece of text streamed: the whole reply is the result's.
                let text = super::reply_text(turn.text(), &end).to_owned();
                turn.keep_response(reply.record(&text, end.usage()), &end)
                    .await;
                if end.failed() {
                    return Err(CompatError::cli_failed(API, &end));
                }
                events.opening(&reply);
                // A response that only called functions has no message.
                let message = has_message(&text, &end);
                if message {
                    events.message_opening(&reply);
                }
                if !text.is_empty() {
                    events.delta(&reply, &text);
                }
                events.closing(&reply, &text, &end, message);
                let body = futures_util::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(events.take())
                });
                return Ok(crate::http::sse::response(Body::from_stream(body)));
            }
        }
    };
    let body = async_stream::stream! {
        events.opening(&reply);
        events.message_opening(&reply);
        events.escaped_delta(first.escaped_text().unwrap_or_default());
        yield Ok::<_, std::convert::Infallible>(events.take());
        // What the log holds at each read goes out in one write.
        loop {
            let mut over = false;
            for step in turn.next_batch().await {
                match step {
                    Step::Api(event) => {
                        if let Some(text) = event.escaped_text() {
                            events.escaped_delta(text);
                        }
                    }
                    Step::Other => {}
                    Step::End(end) => {
                        let text = super::reply_text(turn.text(), &end).to_owned();
                        turn.keep_response(reply.record(&text, end.usage()), &end).await;
                        if end.failed() {
                            events.failed(&reply, &text, &end);
                        } else {
                            events.closing(&reply, &text, &end, true);
                        }
                        over = true;
                    }
                }
            }
            let out = events.take();
            if !out.is_empty() {
                yield Ok(out);
            }
            if over {
                break;
            }
        }
    };
    Ok(crate::http::sse::response(Body::from_stream(body)))
}

/// A refusal of GET or DELETE: the id at fault is the path's.
fn refused(error: crate::agent::Error) -> CompatError {
    let mut refused = CompatError::from_api(API, ApiError::from(error));
    refused.param = None;
    refused
}

/// A kept response of this key's, as it was answered.
#[utoipa::path(get, path = "/v1/responses/{response_id}", tag = "compatible",
    params(("response_id" = String, Path, description = "The response's id (resp_...).")),
    responses(
        (status = 200, description = "The response.", body = OpenAiResponse),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "No response of this key's is kept by that id (never kept, `store: false`, deleted, or another key's).", body = OpenAiError),
    ))]
pub async fn retrieve(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
) -> Result<Json<OpenAiResponse>, CompatError> {
    let record = state.agents.response(client, &id).await.map_err(refused)?;
    let (reply, text, usage) = Reply::kept(record);
    Ok(Json(reply.response(
        "completed",
        vec![ResponsesOutputItem::Message(
            reply.message("completed", Some(&text)),
        )],
        Some(usage_of(usage)),
        None,
        None,
    )))
}

/// Forgets a kept response: no `previous_response_id` finds it any more, and its session's
/// file is removed (the responses that continued it keep their own).
#[utoipa::path(delete, path = "/v1/responses/{response_id}", tag = "compatible",
    params(("response_id" = String, Path, description = "The response's id (resp_...).")),
    responses(
        (status = 200, description = "Forgotten.", body = ResponseDeleted),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "No response of this key's is kept by that id.", body = OpenAiError),
    ))]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
) -> Result<Json<ResponseDeleted>, CompatError> {
    state
        .agents
        .forget_response(client, &id)
        .await
        .map_err(refused)?;
    Ok(Json(ResponseDeleted {
        id,
        object: ResponseDeletedObject,
        deleted: true,
    }))
}
