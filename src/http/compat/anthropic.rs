//! `POST /v1/messages`, as the Anthropic Messages API answers it. A stream passes on the
//! Messages API's own events, as the CLI received them.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::BytesMut;
use serde_json::{Value, json};

use super::bodies::{
    AnthropicBlock, AnthropicContent, AnthropicError, AnthropicOutputFormat, AnthropicRequest,
    AnthropicResponse, AnthropicTool, AnthropicUsage, AssistantRole, MessageType,
};
use super::{
    Api, ApiEvent, Ask, CompatError, Migration, OfferedTool, Step, Turn, TurnEnd, WholeReply,
};
use crate::agent::{Client, ClientTool, TOOL_PREFIX, ToolResult};
use crate::http::ApiState;

const API: Api = Api::Anthropic;

/// A content's text, and its images (base64 blocks, as the CLI takes them); anything else is
/// refused, naming it.
fn content_of(
    content: Option<AnthropicContent>,
    field: &str,
) -> Result<(String, Vec<Value>), CompatError> {
    let blocks = match content {
        Some(AnthropicContent::Text(text)) => return Ok((text, Vec::new())),
        Some(AnthropicContent::Blocks(blocks)) => blocks,
        None => {
            return Err(CompatError::invalid(
                API,
                field,
                "must be a string or blocks",
            ));
        }
    };
    let mut texts: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    let mut images = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => texts.push(block["text"].as_str().unwrap_or_default().into()),
            Some("image") if block["source"]["type"] == "base64" => {
                let source = &block["source"];
                crate::agent::check_image_magic(
                    source["media_type"].as_str().unwrap_or_default(),
                    source["data"].as_str().unwrap_or_default(),
                )
                .map_err(|reason| CompatError::invalid(API, format!("{field}[{n}]"), reason))?;
                images.push(block.clone());
            }
            Some("image") => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}[{n}].source"),
                    "only base64 images are taken: the proxy fetches nothing",
                ));
            }
            // The history, as a transcript: a call the model made, and a tool's result.
            Some("tool_use") => texts.push(std::borrow::Cow::Owned(format!(
                "[called {} with {}]",
                block["name"].as_str().unwrap_or_default(),
                block["input"]
            ))),
            Some("tool_result") => texts.push(std::borrow::Cow::Owned(format!(
                "[result of a tool: {}]",
                tool_result_text(&block["content"])
            ))),
            kind => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}[{n}]"),
                    format!("{} blocks are not supported", kind.unwrap_or("untyped")),
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

/// The text of a system prompt: a string, or text blocks.
fn system_text(content: AnthropicContent, field: &str) -> Result<String, CompatError> {
    match content_of(Some(content), field)? {
        (text, images) if images.is_empty() => Ok(text),
        _ => Err(CompatError::invalid(API, field, "holds text only")),
    }
}

struct Asked {
    ask: Ask,
    model: String,
    stream: bool,
}

/// A `tool_result` block's content: a string, or text blocks.
fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The last user message's `tool_result` blocks, when it holds nothing else: the results a run
/// waits for.
fn tool_results_of(content: &Option<AnthropicContent>) -> Option<Vec<ToolResult>> {
    let Some(AnthropicContent::Blocks(blocks)) = content else {
        return None;
    };
    let all_results = !blocks.is_empty() && blocks.iter().all(|b| b["type"] == "tool_result");
    all_results.then(|| {
        blocks
            .iter()
            .map(|block| ToolResult {
                call_id: block["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                text: tool_result_text(&block["content"]),
                is_error: block["is_error"] == true,
            })
            .collect()
    })
}

/// The client's tools, checked: custom tools only.
fn client_tools_of(tools: Vec<AnthropicTool>) -> Result<Vec<ClientTool>, CompatError> {
    let offered = tools.into_iter().enumerate().map(|(n, tool)| OfferedTool {
        at: format!("tools[{n}]"),
        refused_kind: tool
            .kind
            .as_deref()
            .is_some_and(|kind| kind != "custom")
            .then_some("only custom tools are taken (the API's own tools are not)"),
        name: tool.name,
        description: tool.description,
        schema: (tool.input_schema, "input_schema"),
    });
    super::client_tools(API, offered)
}

fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<Asked, CompatError> {
    let request = super::json_of(API, body)?;
    let choice = &request["tool_choice"]["type"];
    if !(request["tool_choice"].is_null() || choice == "auto" || choice == "none") {
        return Err(CompatError::invalid(
            API,
            "tool_choice",
            "only {\"type\": \"auto\"} or {\"type\": \"none\"}: the model chooses whether to use a tool",
        ));
    }
    let no_tools = choice == "none";
    if request["stop_sequences"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(CompatError::invalid(
            API,
            "stop_sequences",
            "stop sequences are not supported: the CLI ends a reply itself",
        ));
    }
    if !request["thinking"].is_null() && request["thinking"]["type"] != "disabled" {
        return Err(CompatError::invalid(
            API,
            "thinking",
            "extended thinking is not supported through this API",
        ));
    }
    for field in ["mcp_servers", "container"] {
        if !request[field].is_null() {
            return Err(CompatError::invalid(
                API,
                field,
                "not supported by this proxy",
            ));
        }
    }
    let request: AnthropicRequest = super::read_body(API, request)?;
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
    let model = request.model.clone();
    let stream = request.stream.unwrap_or(false);
    let last_results = request
        .messages
        .last()
        .filter(|message| message.role == "user")
        .and_then(|message| tool_results_of(&message.content));
    if let Some(results) = last_results {
        return Ok(Asked {
            ask: Ask::ToolResults(results, None),
            model,
            stream,
        });
    }
    let client_tools = match no_tools {
        true => Vec::new(),
        false => client_tools_of(request.tools.unwrap_or_default())?,
    };
    let system = match request.system {
        None => None,
        Some(system) => Some(system_text(system, "system")?),
    };
    let mut turns: Vec<(&str, String, Vec<Value>)> = Vec::new();
    for (n, message) in request.messages.into_iter().enumerate() {
        let field = format!("messages[{n}]");
        let (text, images) = content_of(message.content, &format!("{field}.content"))?;
        match message.role.as_str() {
            "user" => turns.push(("user", text, images)),
            "assistant" => turns.push(("assistant", text, images)),
            _ => {
                return Err(CompatError::invalid(
                    API,
                    format!("{field}.role"),
                    "must be user or assistant",
                ));
            }
        }
    }
    let migration = Migration::of(API, headers, request.session_id, request.enable_tools)?;
    let mut turn = super::chat_turn(API, &model, system, turns, migration)?;
    // The beta API's `output_format`, or the same object as `output_config.format`.
    let (field, format) = match request.output_format {
        None => (
            "output_config.format",
            request.output_config.and_then(|config| config.format),
        ),
        format => ("output_format", format),
    };
    turn.json_schema = match format {
        None => None,
        Some(AnthropicOutputFormat {
            kind,
            schema: Some(schema),
        }) if kind == "json_schema" && schema.is_object() => Some(schema),
        Some(_) => {
            return Err(CompatError::invalid(
                API,
                field,
                "must be {\"type\": \"json_schema\", \"schema\": {...}}",
            ));
        }
    };
    turn.client_tools = client_tools;
    Ok(Asked {
        ask: Ask::Turn(Box::new(turn)),
        model,
        stream,
    })
}

/// A message: the CLI runs the conversation's last user turn as a chat model.
#[utoipa::path(post, path = "/v1/messages", tag = "compatible",
    params(("anthropic-version" = Option<String>, Header, description = "Accepted, as the SDK sends it.")),
    request_body = AnthropicRequest,
    responses(
        (status = 200, description = "A message; with `stream`, the Messages API's own events as Server-Sent Events (`message_start` ... `message_stop`, whose data also has `x_claude_proxy`).",
            content((AnthropicResponse = "application/json"), (Object = "text/event-stream")),
            headers(("x-claude-session-id" = String, description = "The CLI's session (not streamed)."))),
        (status = 400, description = "An invalid or unsupported field.", body = AnthropicError),
        (status = 401, description = "No key, or a wrong one.", body = AnthropicError),
        (status = 404, description = "An unknown model.", body = AnthropicError),
        (status = 413, description = "The body is over PROXY_MAX_BODY_BYTES.", body = AnthropicError),
        (status = 429, description = "Too many agents, or the subscription is rate limited (Retry-After).", body = AnthropicError),
        (status = 502, description = "The CLI failed before it answered.", body = AnthropicError),
        (status = 503, description = "The CLI cannot be found.", body = AnthropicError),
    ))]
pub async fn messages(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, CompatError> {
    let body = body.map_err(|rejection| CompatError::rejected(API, &rejection))?;
    let asked = read_request(&headers, &body)?;
    let model = asked.model;
    let (agent_id, turn) = super::start_turn(&state, client, API, asked.ask).await?;
    let id = format!("msg_{}", agent_id.simple());
    if asked.stream {
        return stream(turn, &id, &model).await;
    }
    let WholeReply {
        text,
        stop_reason: stop,
        end,
    } = turn.whole().await;
    if end.failed() {
        return Err(CompatError::cli_failed(API, &end));
    }
    Ok(super::whole_response(
        AnthropicResponse {
            id,
            kind: MessageType,
            role: AssistantRole,
            model,
            content: (!text.is_empty() || end.tool_calls.is_empty())
                .then_some(AnthropicBlock::Text { text })
                .into_iter()
                .chain(end.tool_calls.iter().map(|call| AnthropicBlock::ToolUse {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    input: call.input.clone(),
                }))
                .collect(),
            stop_reason: match end.tool_calls.is_empty() {
                true => stop.unwrap_or_else(|| "end_turn".to_owned()),
                false => "tool_use".to_owned(),
            },
            stop_sequence: None,
            usage: usage(&end),
            x_claude_proxy: super::extension(&end),
        },
        &end,
    ))
}

/// The usage fields, as the CLI's result gives them.
fn usage(end: &TurnEnd) -> AnthropicUsage {
    let usage = end.result.as_ref().map(|r| &r["usage"]);
    let tokens = |name: &str| usage.and_then(|u| u[name].as_u64()).unwrap_or(0);
    AnthropicUsage {
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
        cache_creation_input_tokens: tokens("cache_creation_input_tokens"),
        cache_read_input_tokens: tokens("cache_read_input_tokens"),
    }
}

/// An event named by its data's `type`, as the Messages API streams it.
fn event(event: &Value) -> Bytes {
    let name = event["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {event}\n\n"))
}

fn error_event(error: &CompatError) -> Bytes {
    let mut out = b"event: error\ndata: ".to_vec();
    serde_json::to_writer(&mut out, &error.body()).expect("a body serializes");
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A reply the CLI gave only in its result, as the Messages API streams a message: one text
/// block, then the stop; `message_stop` carries the run's cost and session.
fn result_events(id: &str, model: &str, end: &TurnEnd) -> Bytes {
    let usage = usage(end);
    let output_tokens = usage.output_tokens;
    let mut stop = json!({"type": "message_stop"});
    stop["x_claude_proxy"] = json!(super::extension(end));
    [
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": json!(usage),
        }}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": end.result_text()}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
        stop,
    ]
    .iter()
    .map(event)
    .collect::<Vec<_>>()
    .concat()
    .into()
}

/// An event of the API, passed on as the CLI wrote it; a block that calls a client's tool
/// names the tool as the client did.
fn api_event(event: &ApiEvent, out: &mut BytesMut) {
    let renamed;
    let json = match event.kind == "content_block_start" {
        true => {
            let prefixed = format!("\"{TOOL_PREFIX}");
            renamed = String::from_utf8_lossy(event.json()).replace(&prefixed, "\"");
            renamed.as_bytes()
        }
        false => event.json(),
    };
    for part in [
        b"event: ",
        event.kind.as_bytes(),
        b"\ndata: ",
        json,
        b"\n\n",
    ] {
        out.extend_from_slice(part);
    }
}

/// Streams the Messages API's events. The answer's status is only given once the CLI has
/// passed one on: a CLI that fails before that is an error answer, not a stream.
/// `message_stop` waits for the result, so that it carries the run's cost and session.
async fn stream(mut turn: Turn, id: &str, model: &str) -> Result<Response, CompatError> {
    let first = loop {
        match turn.next().await {
            Step::Api(event) => break event,
            Step::Other => {}
            Step::End(end) if end.failed() => return Err(CompatError::cli_failed(API, &end)),
            Step::End(end) => {
                // Done without a partial message: the whole reply is the result's.
                let events = result_events(id, model, &end);
                return Ok(crate::http::sse::response(Body::from(events)));
            }
        }
    };
    let body = async_stream::stream! {
        let mut out = BytesMut::new();
        api_event(&first, &mut out);
        yield Ok::<_, std::convert::Infallible>(out.split().freeze());
        let mut held_stop = None;
        // What the log holds at each read goes out in one write.
        loop {
            let mut over = false;
            for step in turn.next_batch().await {
                match step {
                    Step::Api(held) if held.kind == "message_stop" => held_stop = Some(held),
                    Step::Api(passed) => api_event(&passed, &mut out),
                    Step::Other => {}
                    Step::End(end) => {
                        if end.failed() {
                            out.extend_from_slice(&error_event(&CompatError::cli_failed(API, &end)));
                        } else {
                            let mut stop = held_stop
                                .take()
                                .and_then(|held| serde_json::from_slice::<Value>(held.json()).ok())
                                .unwrap_or_else(|| json!({"type": "message_stop"}));
                            stop["x_claude_proxy"] = json!(super::extension(&end));
                            out.extend_from_slice(&event(&stop));
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
