//! `POST /v1/chat/completions` and `GET /v1/models`, as the OpenAI API answers them.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::bodies::{
    AnthropicModel, AnthropicModelList, AssistantRole, ChatCompletionChunkObject,
    ChatCompletionObject, ListObject, ModelList, ModelObject, OpenAiChatCompletion,
    OpenAiChatCompletionChunk, OpenAiChatRequest, OpenAiChoice, OpenAiChunkChoice, OpenAiContent,
    OpenAiDelta, OpenAiError, OpenAiFunctionCall, OpenAiMessage, OpenAiModel, OpenAiModelList,
    OpenAiPromptDetails, OpenAiReplyMessage, OpenAiResponseFormat, OpenAiTool, OpenAiToolCall,
    OpenAiToolCallChunk, OpenAiUsage,
};
use super::{Api, Ask, CompatError, Migration, OfferedTool, Step, Turn, TurnEnd, WholeReply};
use crate::agent::{Client, ClientTool, ToolResult};
use crate::http::ApiState;

const API: Api = Api::OpenAi;

/// The fields the proxy cannot honour: refused, never silently ignored.
fn refuse_unsupported(request: &Value) -> Result<(), CompatError> {
    let unsupported = |field: &str, why: &str| Err(CompatError::invalid(API, field, why));
    if !request["functions"].is_null() {
        return unsupported("functions", "the legacy functions field: use tools");
    }
    let choice = &request["tool_choice"];
    if !(choice.is_null() || choice == "auto" || choice == "none") {
        return unsupported(
            "tool_choice",
            "only \"auto\" or \"none\": the model chooses whether to call a tool",
        );
    }
    if request["n"].as_u64().is_some_and(|n| n > 1) {
        return unsupported("n", "only one choice is supported");
    }
    if request["logprobs"] == true || !request["top_logprobs"].is_null() {
        return unsupported("logprobs", "log probabilities are not supported");
    }
    if !request["stop"].is_null() {
        return unsupported(
            "stop",
            "stop sequences are not supported: the CLI ends a reply itself",
        );
    }
    if request["logit_bias"]
        .as_object()
        .is_some_and(|bias| !bias.is_empty())
    {
        return unsupported("logit_bias", "logit bias is not supported");
    }
    for field in ["prediction", "web_search_options", "reasoning_effort"] {
        if !request[field].is_null() {
            return unsupported(field, "not supported by this proxy");
        }
    }
    if !request["audio"].is_null()
        || request["modalities"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "audio"))
    {
        return unsupported("audio", "audio is not supported");
    }
    Ok(())
}

/// The checked request: what it asks of the core, and how to answer.
struct Asked {
    ask: Ask,
    model: String,
    stream: bool,
    include_usage: bool,
}

fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<Asked, CompatError> {
    let request = super::json_of(API, body)?;
    refuse_unsupported(&request)?;
    let no_tools = request["tool_choice"] == "none";
    let request: OpenAiChatRequest = super::read_body(API, request)?;
    if request.model.is_empty() {
        return Err(CompatError::invalid(
            API,
            "model",
            "a model name is required",
        ));
    }
    if request.messages.is_empty() {
        return Err(CompatError::invalid(
            API,
            "messages",
            "a non-empty list of messages is required",
        ));
    }
    let stream = request.stream.unwrap_or(false);
    let include_usage = request
        .stream_options
        .as_ref()
        .and_then(|options| options.include_usage)
        .unwrap_or(false);
    let model = request.model.clone();
    // Messages of tool results after the last of any other kind: they answer a run that waits.
    let trailing = request
        .messages
        .iter()
        .rev()
        .take_while(|message| message.role == "tool")
        .count();
    if trailing > 0 {
        let first = request.messages.len() - trailing;
        let results = request
            .messages
            .into_iter()
            .enumerate()
            .skip(first)
            .map(|(n, message)| tool_result_of(n, message))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Asked {
            ask: Ask::ToolResults(results, None),
            model,
            stream,
            include_usage,
        });
    }
    let client_tools = match no_tools {
        true => Vec::new(),
        false => client_tools_of(request.tools.unwrap_or_default())?,
    };
    let mut system = Vec::new();
    let mut turns: Vec<(&str, String, Vec<Value>)> = Vec::new();
    for (n, message) in request.messages.into_iter().enumerate() {
        let field = format!("messages[{n}]");
        let calls = message.tool_calls.filter(|calls| !calls.is_empty());
        let (text, images) = match (&message.content, &calls) {
            // An assistant's message that only called tools.
            (None, Some(_)) => (String::new(), Vec::new()),
            _ => content_of(message.content, &format!("{field}.content"))?,
        };
        match message.role.as_str() {
            "system" | "developer" if images.is_empty() => system.push(text),
            "system" | "developer" => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.content"),
                    "a system message holds text only",
                ));
            }
            "user" => turns.push(("user", text, images)),
            "assistant" => turns.push(("assistant", with_calls(text, calls.as_deref()), images)),
            // A tool's result within the history: part of the transcript.
            "tool" => turns.push(("tool", text, images)),
            _ => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.role"),
                    "must be system, developer, user, assistant or tool",
                ));
            }
        }
    }
    let migration = Migration::of(API, headers, request.session_id, request.enable_tools)?;
    let mut turn = super::chat_turn(
        API,
        &model,
        (!system.is_empty()).then(|| system.join("\n\n")),
        turns,
        migration,
    )?;
    turn.json_schema = json_schema_of(request.response_format)?;
    turn.client_tools = client_tools;
    Ok(Asked {
        ask: Ask::Turn(Box::new(turn)),
        model,
        stream,
        include_usage,
    })
}

/// An assistant's text, with the calls it made said in words: the history as a transcript.
fn with_calls(text: String, calls: Option<&[OpenAiToolCall]>) -> String {
    let mut text = text;
    for call in calls.into_iter().flatten() {
        text.push_str(&format!(
            "\n[called {} with {}]",
            call.function.name, call.function.arguments
        ));
    }
    text
}

/// A `tool` message: the result of a call.
fn tool_result_of(n: usize, message: OpenAiMessage) -> Result<ToolResult, CompatError> {
    let field = format!("messages[{n}]");
    let Some(call_id) = message.tool_call_id.filter(|id| !id.is_empty()) else {
        return Err(CompatError::invalid(
            API,
            format!("{field}.tool_call_id"),
            "a tool message names the call whose result it is",
        ));
    };
    let (text, images) = content_of(message.content, &format!("{field}.content"))?;
    if !images.is_empty() {
        return Err(CompatError::invalid(
            API,
            format!("{field}.content"),
            "a tool's result holds text only",
        ));
    }
    Ok(ToolResult {
        call_id,
        text,
        is_error: false,
    })
}

/// The client's functions, checked.
fn client_tools_of(tools: Vec<OpenAiTool>) -> Result<Vec<ClientTool>, CompatError> {
    let offered = tools.into_iter().enumerate().map(|(n, tool)| OfferedTool {
        at: format!("tools[{n}].function"),
        refused_kind: (tool.kind != "function").then_some("only function tools are taken"),
        name: tool.function.name,
        description: tool.function.description,
        schema: (tool.function.parameters, "parameters"),
    });
    super::client_tools(API, offered)
}

/// The schema `response_format` asks the reply to follow: none for `text`, any object for
/// `json_object`; the core checks it as a request's `json_schema`.
fn json_schema_of(format: Option<OpenAiResponseFormat>) -> Result<Option<Value>, CompatError> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "object"}))),
        "json_schema" => match format
            .json_schema
            .and_then(|json_schema| json_schema.schema)
        {
            None => Err(CompatError::invalid(
                API,
                "response_format.json_schema.schema",
                "a JSON Schema is required",
            )),
            Some(schema) => Ok(Some(schema)),
        },
        _ => Err(CompatError::invalid(
            API,
            "response_format.type",
            "must be text, json_object or json_schema",
        )),
    }
}

/// A message's text, and its images as Messages API blocks: `image_url` parts with a data URL
/// (the proxy fetches nothing).
fn content_of(
    content: Option<OpenAiContent>,
    field: &str,
) -> Result<(String, Vec<Value>), CompatError> {
    let parts = match content {
        Some(OpenAiContent::Text(text)) => return Ok((text, Vec::new())),
        Some(OpenAiContent::Parts(parts)) => parts,
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
            "text" => texts.push(part.text.unwrap_or_default()),
            "image_url" => {
                let url = part.image_url.map(|image| image.url).unwrap_or_default();
                images.push(image_of_data_url(&url, at())?);
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

/// An image given as a data URL, as a Messages API block; any other URL is refused, naming
/// the part `at`: the proxy fetches nothing.
pub(super) fn image_of_data_url(url: &str, at: String) -> Result<Value, CompatError> {
    let Some((media_type, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return Err(CompatError::invalid(
            API,
            at,
            "only data URLs (data:image/png;base64,...) are taken: the proxy fetches nothing",
        ));
    };
    crate::agent::check_image_magic(media_type, data)
        .map_err(|reason| CompatError::invalid(API, at, reason))?;
    Ok(json!({
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }))
}

/// OpenAI's usage, from the CLI's result line.
fn usage(end: &TurnEnd) -> OpenAiUsage {
    let usage = end.result.as_ref().map(|r| &r["usage"]);
    let tokens = |name: &str| usage.and_then(|u| u[name].as_u64()).unwrap_or(0);
    let cached = tokens("cache_read_input_tokens");
    let prompt = tokens("input_tokens") + cached + tokens("cache_creation_input_tokens");
    let completion = tokens("output_tokens");
    OpenAiUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: OpenAiPromptDetails {
            cached_tokens: cached,
        },
    }
}

/// OpenAI's finish reason for the model's stop reason.
fn finish_reason(stop: Option<&str>, end: &TurnEnd) -> &'static str {
    match stop {
        _ if !end.tool_calls.is_empty() => "tool_calls",
        Some("max_tokens") => "length",
        _ => "stop",
    }
}

/// The calls of the client's functions a turn ended on, as OpenAI gives them.
fn tool_calls_of(end: &TurnEnd) -> Vec<OpenAiToolCall> {
    end.tool_calls
        .iter()
        .map(|call| OpenAiToolCall {
            id: call.id.clone(),
            kind: "function".to_owned(),
            function: OpenAiFunctionCall {
                name: call.name.clone(),
                arguments: call.input.to_string(),
            },
        })
        .collect()
}

/// A chat completion: the CLI runs the conversation's last user turn as a chat model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "compatible",
    request_body = OpenAiChatRequest,
    responses(
        (status = 200, description = "A chat completion; with `stream`, its chunks as Server-Sent Events (`data: {chunk}`), then `data: [DONE]`.",
            content((OpenAiChatCompletion = "application/json"), (OpenAiChatCompletionChunk = "text/event-stream")),
            headers(("x-claude-session-id" = String, description = "The CLI's session (not streamed)."))),
        (status = 400, description = "An invalid or unsupported field.", body = OpenAiError),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
        (status = 404, description = "An unknown model.", body = OpenAiError),
        (status = 413, description = "The body is over PROXY_MAX_BODY_BYTES.", body = OpenAiError),
        (status = 429, description = "Too many agents, or the subscription is rate limited (Retry-After).", body = OpenAiError),
        (status = 502, description = "The CLI failed before it answered.", body = OpenAiError),
        (status = 503, description = "The CLI cannot be found.", body = OpenAiError),
    ))]
pub async fn chat_completions(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CompatError> {
    let body = body.map_err(|rejection| CompatError::rejected(API, &rejection))?;
    let asked = read_request(&headers, &body)?;
    let (agent_id, turn) = super::start_turn(&state, client, API, asked.ask).await?;
    let reply = Reply {
        id: format!("chatcmpl-{}", agent_id.simple()),
        created: chrono::Utc::now().timestamp(),
        model: asked.model,
    };
    if asked.stream {
        stream(turn, reply, asked.include_usage).await
    } else {
        let WholeReply {
            text,
            stop_reason: stop,
            end,
        } = turn.whole().await;
        if end.failed() {
            return Err(CompatError::cli_failed(API, &end));
        }
        Ok(super::whole_response(
            OpenAiChatCompletion {
                id: reply.id,
                object: ChatCompletionObject,
                created: reply.created,
                model: reply.model,
                choices: vec![OpenAiChoice {
                    index: 0,
                    message: OpenAiReplyMessage {
                        role: AssistantRole,
                        content: match (text.is_empty(), end.tool_calls.is_empty()) {
                            (true, false) => None,
                            _ => Some(text),
                        },
                        tool_calls: (!end.tool_calls.is_empty()).then(|| tool_calls_of(&end)),
                        refusal: None,
                    },
                    logprobs: None,
                    finish_reason: finish_reason(stop.as_deref(), &end),
                }],
                usage: usage(&end),
                x_claude_proxy: super::extension(&end),
            },
            &end,
        ))
    }
}

/// What every chunk of one reply repeats.
struct Reply {
    id: String,
    created: i64,
    model: String,
}

/// What a text chunk of one reply starts with, made once: a reply streams thousands of them.
struct TextChunks {
    prefix: Vec<u8>,
}

impl TextChunks {
    fn of(reply: &Reply) -> Self {
        let mut prefix = format!(
            r#"data: {{"id":"{}","object":"chat.completion.chunk","created":{},"model":"#,
            reply.id, reply.created
        )
        .into_bytes();
        let _ = serde_json::to_writer(&mut prefix, &reply.model);
        prefix.extend_from_slice(br#","choices":[{"index":0,"delta":{"content":"#);
        Self { prefix }
    }

    /// `data: ` and the chunk of a text, JSON-escaped as the CLI wrote it.
    fn write(&self, escaped_text: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"\"");
        out.extend_from_slice(escaped_text);
        out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
}

impl Reply {
    /// A chunk of one choice, or of none (the usage's).
    fn chunk(&self, choice: Option<OpenAiChunkChoice>) -> OpenAiChatCompletionChunk {
        OpenAiChatCompletionChunk {
            id: self.id.clone(),
            object: ChatCompletionChunkObject,
            created: self.created,
            model: self.model.clone(),
            choices: choice.into_iter().collect(),
            usage: None,
            x_claude_proxy: None,
        }
    }
}

/// The one choice of a chunk.
fn choice(delta: OpenAiDelta, finish_reason: Option<&'static str>) -> OpenAiChunkChoice {
    OpenAiChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    }
}

/// A delta of the assistant's text.
fn said(content: String) -> OpenAiDelta {
    OpenAiDelta {
        role: Some(AssistantRole),
        content: Some(content),
        tool_calls: None,
    }
}

fn data(value: &impl serde::Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, value).expect("a body serializes");
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Streams the reply as chunks. The answer's status is only given once the CLI has said
/// something: a CLI that fails before that is an error answer, not a stream.
async fn stream(
    mut turn: Turn,
    reply: Reply,
    include_usage: bool,
) -> Result<Response, CompatError> {
    let mut stop = None;
    let first = loop {
        match turn.next().await {
            Step::Api(event) if event.escaped_text().is_some() => break event,
            Step::Api(event) => stop = event.stop_reason.or(stop),
            Step::Other => {}
            Step::End(end) if end.failed() => return Err(CompatError::cli_failed(API, &end)),
            Step::End(end) => {
                // Done without a piece of text: the whole answer is the result's.
                let text = end
                    .result
                    .as_ref()
                    .and_then(|r| r["result"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                return Ok(sse(finished_chunks(
                    &reply,
                    text,
                    stop,
                    &end,
                    include_usage,
                )));
            }
        }
    };
    let body = async_stream::stream! {
        let mut out = BytesMut::new();
        let role = reply.chunk(Some(choice(said(String::new()), None)));
        out.extend_from_slice(&data(&role));
        let chunks = TextChunks::of(&reply);
        chunks.write(first.escaped_text().unwrap_or_default(), &mut out);
        yield Ok::<_, std::convert::Infallible>(out.split().freeze());
        // What the log holds at each read goes out in one write.
        loop {
            let mut over = false;
            for step in turn.next_batch().await {
                match step {
                    Step::Api(event) => {
                        if let Some(text) = event.escaped_text() {
                            chunks.write(text, &mut out);
                        }
                        stop = event.stop_reason.or(stop);
                    }
                    Step::Other => {}
                    Step::End(end) => {
                        if end.failed() {
                            out.extend_from_slice(&data(&CompatError::cli_failed(API, &end).body()));
                            out.extend_from_slice(b"data: [DONE]\n\n");
                        } else {
                            for chunk in finished_chunks(&reply, String::new(), stop.take(), &end, include_usage) {
                                out.extend_from_slice(&chunk);
                            }
                        }
                        over = true;
                    }
                }
            }
            if !out.is_empty() {
                yield Ok(out.split().freeze());
            }
            if over {
                break;
            }
        }
    };
    Ok(crate::http::sse::response(Body::from_stream(body)))
}

/// The last chunks of a reply: any text left, the finish reason, the usage when asked, and
/// `[DONE]`.
fn finished_chunks(
    reply: &Reply,
    text: String,
    stop: Option<String>,
    end: &TurnEnd,
    include_usage: bool,
) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    if !text.is_empty() {
        chunks.push(data(&reply.chunk(Some(choice(said(text), None)))));
    }
    if !end.tool_calls.is_empty() {
        let calls = tool_calls_of(end)
            .into_iter()
            .zip(0..)
            .map(|(call, index)| OpenAiToolCallChunk { index, call })
            .collect();
        let delta = OpenAiDelta {
            role: Some(AssistantRole),
            content: None,
            tool_calls: Some(calls),
        };
        chunks.push(data(&reply.chunk(Some(choice(delta, None)))));
    }
    let nothing = OpenAiDelta {
        role: None,
        content: None,
        tool_calls: None,
    };
    let finish = finish_reason(stop.as_deref(), end);
    let mut last = reply.chunk(Some(choice(nothing, Some(finish))));
    last.x_claude_proxy = Some(super::extension(end));
    chunks.push(data(&last));
    if include_usage {
        let mut usage_chunk = reply.chunk(None);
        usage_chunk.usage = Some(usage(end));
        usage_chunk.x_claude_proxy = Some(super::extension(end));
        chunks.push(data(&usage_chunk));
    }
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    chunks
}

fn sse(chunks: Vec<Bytes>) -> Response {
    let body =
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    crate::http::sse::response(Body::from_stream(body))
}

/// The models a request may name: the aliases, the default model, PROXY_MODEL_MAP's names.
/// OpenAI's list shape; Anthropic's when the request carries `anthropic-version`.
#[utoipa::path(get, path = "/v1/models", tag = "compatible",
    params(("anthropic-version" = Option<String>, Header, description = "Anthropic's list shape when set.")),
    responses(
        (status = 200, description = "The models.", body = ModelList),
        (status = 401, description = "No key, or a wrong one.", body = OpenAiError),
    ))]
pub async fn models(State(state): State<ApiState>, headers: HeaderMap) -> Json<ModelList> {
    let names = state.agents.compat_models();
    if headers.contains_key("anthropic-version") {
        return Json(ModelList::Anthropic(AnthropicModelList {
            first_id: names.first().cloned(),
            last_id: names.last().cloned(),
            has_more: false,
            data: names
                .into_iter()
                .map(|name| AnthropicModel {
                    kind: ModelObject,
                    display_name: name.clone(),
                    id: name,
                    created_at: "1970-01-01T00:00:00Z",
                })
                .collect(),
        }));
    }
    Json(ModelList::OpenAi(OpenAiModelList {
        object: ListObject,
        data: names
            .into_iter()
            .map(|id| OpenAiModel {
                id,
                object: ModelObject,
                created: 0,
                owned_by: "claude-proxy",
            })
            .collect(),
    }))
}
