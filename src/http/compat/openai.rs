//! `POST /v1/chat/completions` and `GET /v1/models`, as the OpenAI API answers them.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use bytes::BytesMut;
use serde_json::{Value, json};

use super::schema::{
    ModelList, OpenAiChatCompletion, OpenAiChatCompletionChunk, OpenAiChatRequest, OpenAiError,
};
use super::{Api, CompatError, Step, Turn, TurnEnd, WholeReply, text_of};
use crate::agent::{ChatTurn, Client};
use crate::http::ApiState;

const API: Api = Api::OpenAi;

/// The fields the proxy cannot honour: refused, never silently ignored.
fn refuse_unsupported(request: &Value) -> Result<(), CompatError> {
    let unsupported = |field: &str, why: &str| Err(CompatError::invalid(API, field, why));
    if request["tools"].as_array().is_some_and(|t| !t.is_empty()) {
        return unsupported("tools", "client-defined tools are not supported");
    }
    if !request["functions"].is_null() {
        return unsupported("functions", "client-defined functions are not supported");
    }
    if !request["tool_choice"].is_null() && request["tool_choice"] != "none" {
        return unsupported("tool_choice", "only \"none\" is supported");
    }
    if request["n"].as_u64().is_some_and(|n| n > 1) {
        return unsupported("n", "only one choice is supported");
    }
    if request["logprobs"] == true || !request["top_logprobs"].is_null() {
        return unsupported("logprobs", "log probabilities are not supported");
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

/// The checked request: the turn for the core, and how to answer.
struct Asked {
    turn: ChatTurn,
    stream: bool,
    include_usage: bool,
}

fn read_request(body: &[u8]) -> Result<Asked, CompatError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|err| CompatError::invalid(API, "body", format!("not JSON: {err}")))?;
    if !request.is_object() {
        return Err(CompatError::invalid(API, "body", "must be a JSON object"));
    }
    refuse_unsupported(&request)?;
    let model = request["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| CompatError::invalid(API, "model", "a model name is required"))?;
    let messages = request["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            CompatError::invalid(API, "messages", "a non-empty list of messages is required")
        })?;
    let mut system = Vec::new();
    let mut turns: Vec<(&str, String, Vec<Value>)> = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let field = format!("messages[{n}]");
        let role = message["role"].as_str().unwrap_or_default();
        let (text, images) = content_of(&message["content"], &format!("{field}.content"))?;
        match role {
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
            "tool" | "function" => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.role"),
                    "tool messages are not supported (no client-defined tools)",
                ));
            }
            _ => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.role"),
                    "must be system, developer, user or assistant",
                ));
            }
        }
    }
    let mut turn = super::chat_turn(
        API,
        model,
        (!system.is_empty()).then(|| system.join("\n\n")),
        turns,
    )?;
    turn.json_schema = json_schema_of(&request["response_format"])?;
    Ok(Asked {
        turn,
        stream: super::stream_of(API, &request)?,
        include_usage: request["stream_options"]["include_usage"] == true,
    })
}

/// The schema `response_format` asks the reply to follow: none for `text`, any object for
/// `json_object`; the core checks it as a request's `json_schema`.
fn json_schema_of(format: &Value) -> Result<Option<Value>, CompatError> {
    match format["type"].as_str() {
        _ if format.is_null() => Ok(None),
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => match &format["json_schema"]["schema"] {
            Value::Null => Err(CompatError::invalid(
                API,
                "response_format.json_schema.schema",
                "a JSON Schema is required",
            )),
            schema => Ok(Some(schema.clone())),
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
fn content_of(content: &Value, field: &str) -> Result<(String, Vec<Value>), CompatError> {
    let Some(parts) = content.as_array() else {
        return text_of(content)
            .map(|text| (text, Vec::new()))
            .ok_or_else(|| CompatError::invalid(API, field, "must be text or a list of parts"));
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        let at = || format!("{field}[{n}]");
        match part["type"].as_str() {
            Some("text") => texts.push(part["text"].as_str().unwrap_or_default()),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().unwrap_or_default();
                let Some((media_type, data)) = url
                    .strip_prefix("data:")
                    .and_then(|rest| rest.split_once(";base64,"))
                else {
                    return Err(CompatError::invalid(
                        API,
                        at(),
                        "only data URLs (data:image/png;base64,...) are taken: the proxy fetches nothing",
                    ));
                };
                crate::agent::check_image_magic(media_type, data)
                    .map_err(|reason| CompatError::invalid(API, at(), reason))?;
                images.push(json!({
                    "type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data},
                }));
            }
            kind => {
                return Err(CompatError::invalid(
                    API,
                    at(),
                    format!("{} parts are not supported", kind.unwrap_or("untyped")),
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

/// OpenAI's usage, from the CLI's result line.
fn usage(end: &TurnEnd) -> Value {
    let usage = end.result.as_ref().map(|r| &r["usage"]);
    let tokens = |name: &str| usage.and_then(|u| u[name].as_u64()).unwrap_or(0);
    let cached = tokens("cache_read_input_tokens");
    let prompt = tokens("input_tokens") + cached + tokens("cache_creation_input_tokens");
    let completion = tokens("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// OpenAI's finish reason for the model's stop reason.
fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") => "length",
        _ => "stop",
    }
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CompatError> {
    let body = body.map_err(|rejection| CompatError::rejected(API, &rejection))?;
    let asked = read_request(&body)?;
    let model = asked.turn.model.clone();
    let (agent_id, turn) = super::start_turn(&state, client, API, asked.turn).await?;
    let reply = Reply {
        id: format!("chatcmpl-{}", agent_id.simple()),
        created: chrono::Utc::now().timestamp(),
        model,
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
            json!({
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": finish_reason(stop.as_deref()),
            }],
            "usage": usage(&end),
            "x_claude_proxy": end.extension(),
            }),
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
    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
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
        let role = reply.chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]));
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
        chunks.push(data(&reply.chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": null}]))));
    }
    let mut last = reply.chunk(json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason(stop.as_deref())}]));
    last["x_claude_proxy"] = end.extension();
    chunks.push(data(&last));
    if include_usage {
        let mut usage_chunk = reply.chunk(json!([]));
        usage_chunk["usage"] = usage(end);
        usage_chunk["x_claude_proxy"] = end.extension();
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
pub async fn models(State(state): State<ApiState>, headers: HeaderMap) -> Json<Value> {
    let names = state.agents.compat_models();
    if headers.contains_key("anthropic-version") {
        let data: Vec<Value> = names
            .iter()
            .map(|name| {
                json!({"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"})
            })
            .collect();
        return Json(json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        }));
    }
    let data: Vec<Value> = names
        .iter()
        .map(
            |name| json!({"id": name, "object": "model", "created": 0, "owned_by": "claude-proxy"}),
        )
        .collect();
    Json(json!({"object": "list", "data": data}))
}
