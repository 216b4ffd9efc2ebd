//! A stand-in for the Anthropic Messages API, so the real Claude Code CLI runs offline:
//! `ANTHROPIC_BASE_URL=http://127.0.0.1:<port>` points it here. Each test scripts the replies
//! and reads back what the CLI sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the stand-in answers to one main-loop request of the CLI.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An assistant message with this text.
    Text(String),
    /// A `tool_use` of Bash running this command; the CLI runs it and asks again.
    Bash(String),
    /// A `tool_use` of this tool with this input; the CLI runs it and asks again (except for
    /// `StructuredOutput`, whose call ends the turn).
    Tool(String, Value),
    /// Starts the message, then sends nothing more and keeps the connection open.
    Stall,
    /// Starts the message, waits until the test releases it, then sends this text.
    Held(Arc<tokio::sync::Notify>, String),
    /// An HTTP error with this status, error type and `retry-after`.
    Error {
        status: u16,
        kind: String,
        retry_after: Option<u32>,
    },
}

/// Picks the reply for a request from the texts it holds, before the scripted replies.
pub type Rule = Arc<dyn Fn(&[String]) -> Option<Reply> + Send + Sync>;

#[derive(Default)]
struct Script {
    rule: Option<Rule>,
    /// Requests for this model are answered `529 overloaded_error`.
    overloaded: Option<String>,
    replies: VecDeque<Reply>,
    requests: Vec<Value>,
    /// Every request's path and credentials, whatever its route.
    seen: Vec<Seen>,
    /// Headers every answer to /v1/messages carries.
    headers: Vec<(String, String)>,
    /// The bodies of the refreshes asked of its token endpoint (`/v1/oauth/token`).
    refreshes: Vec<Value>,
    message_count: u64,
}

/// One request as it reached the stand-in: where, and with which credentials.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub x_api_key: Option<String>,
    pub authorization: Option<String>,
    pub anthropic_beta: Option<String>,
}

impl Seen {
    fn of(uri: &axum::http::Uri, headers: &HeaderMap) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Self {
            path: uri.path().to_owned(),
            x_api_key: header("x-api-key"),
            authorization: header("authorization"),
            anthropic_beta: header("anthropic-beta"),
        }
    }
}

#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl StandIn {
    /// Serves on a free loopback port, answering with `replies` in order; past the script it
    /// answers [`DEFAULT_TEXT`], or stalls for a prompt holding [`STALL_MARKER`].
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::start_with(None, replies).await
    }

    /// Like [`StandIn::start`], with a rule that answers the requests it recognizes first.
    pub async fn start_with(rule: Option<Rule>, replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::serve("127.0.0.1:0", rule, replies).await
    }

    /// Like [`StandIn::start`], on every address of this machine, so that containers reach it
    /// (at `host.docker.internal`, with `--add-host host.docker.internal:host-gateway`).
    pub async fn start_for_containers(
        rule: Option<Rule>,
        replies: impl IntoIterator<Item = Reply>,
    ) -> Self {
        Self::serve("0.0.0.0:0", rule, replies).await
    }

    async fn serve(
        addr: &str,
        rule: Option<Rule>,
        replies: impl IntoIterator<Item = Reply>,
    ) -> Self {
        let script = Arc::new(Mutex::new(Script {
            rule,
            replies: replies.into_iter().collect(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/oauth/token", post(refresh))
            .fallback(any(
                |State(script): State<Arc<Mutex<Script>>>,
                 uri: axum::http::Uri,
                 headers: HeaderMap| async move {
                    script.lock().unwrap().seen.push(Seen::of(&uri, &headers));
                    StatusCode::OK
                },
            ))
            // The CLI sends whole conversations: the real API takes up to 32 MB.
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(Arc::clone(&script));
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Each event written as it is made, as the API's servers stream: with Nagle's algorithm
        // an event could wait for the reader's delayed ACK (40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, script }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds replies after those still scripted.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().replies.extend(replies);
    }

    /// From now on, answers every request for `model` with `529 overloaded_error`, as the API
    /// does under load.
    pub fn overload(&self, model: &str) {
        self.script.lock().unwrap().overloaded = Some(model.to_owned());
    }

    /// The bodies of every /v1/messages request so far.
    pub fn requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().requests.clone()
    }

    /// From now on, every answer to /v1/messages carries these headers too (the API's
    /// `anthropic-ratelimit-unified-*`, say).
    pub fn answer_with_headers(&self, headers: &[(&str, String)]) {
        self.script.lock().unwrap().headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
    }

    /// The refreshes its token endpoint was asked for, in order.
    pub fn refreshes(&self) -> Vec<Value> {
        self.script.lock().unwrap().refreshes.clone()
    }

    /// Every request so far, whatever its route: its path and credentials.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Every text the CLI sent in its requests' messages (user prompts, tool results,
    /// earlier assistant turns), flattened.
    pub fn texts_received(&self) -> Vec<String> {
        collect_all_texts(&self.requests())
    }
}

/// A prompt holding this followed by a JSON object, such as `STRUCT[{"name": "Ada"}]`, is
/// answered with a call of the CLI's `StructuredOutput` tool with that object, when the request
/// offers the tool (the CLI's `--json-schema`), before the scripted replies.
pub const STRUCTURED_MARKER: &str = "STRUCT[";

/// The `StructuredOutput` call a request asks for by [`STRUCTURED_MARKER`], if it offers the
/// tool.
fn structured_reply(request: &Value, texts: &[String]) -> Option<Reply> {
    let offered = request["tools"]
        .as_array()?
        .iter()
        .any(|tool| tool["name"] == "StructuredOutput");
    let after = texts
        .iter()
        .find_map(|t| t.split_once(STRUCTURED_MARKER).map(|(_, after)| after))?;
    let input = serde_json::Deserializer::from_str(after)
        .into_iter::<Value>()
        .next()?
        .ok()?;
    offered.then(|| Reply::Tool("StructuredOutput".into(), input))
}

/// A prompt holding this, a tool's name and a JSON object, such as
/// `CALL[get_weather {"city": "Paris"}]`, is answered with a call of the offered tool whose name
/// ends so (`mcp__client__get_weather`) with that object; once the request holds the tool's
/// result, with the text `the tool said: ` and the result.
pub const CALL_MARKER: &str = "CALL[";

fn tool_call_reply(request: &Value, texts: &[String]) -> Option<Reply> {
    let after = texts
        .iter()
        .find_map(|t| t.split_once(CALL_MARKER).map(|(_, after)| after))?;
    let (name, rest) = after.split_once(' ')?;
    let input = serde_json::Deserializer::from_str(rest)
        .into_iter::<Value>()
        .next()?
        .ok()?;
    let offered = request["tools"]
        .as_array()?
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .find(|offered| offered.ends_with(&format!("__{name}")) || *offered == name)?
        .to_owned();
    let messages = request["messages"].as_array()?;
    let result = messages.last()?["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|block| block["type"] == "tool_result");
    Some(match result {
        Some(result) => {
            let mut said = Vec::new();
            collect_texts(&result["content"], &mut said);
            Reply::Text(format!("the tool said: {}", said.join(" ")))
        }
        None => Reply::Tool(offered, input),
    })
}

/// A prompt holding this gets a stalled reply once the scripted replies are used up.
pub const STALL_MARKER: &str = "[stand-in: stall]";
/// The reply once the scripted replies are used up; not ASCII, to try the clients' decoding.
pub const DEFAULT_TEXT: &str = "Hello from the stand-in: café, 你好 🎉";

fn collect_all_texts(requests: &[Value]) -> Vec<String> {
    let mut texts = Vec::new();
    for request in requests {
        for message in request["messages"].as_array().into_iter().flatten() {
            collect_texts(&message["content"], &mut texts);
        }
    }
    texts
}

fn collect_texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, out)),
        Value::Object(map) => {
            for key in ["text", "content"] {
                if let Some(inner) = map.get(key) {
                    collect_texts(inner, out);
                }
            }
        }
        _ => {}
    }
}

async fn messages(
    State(script): State<Arc<Mutex<Script>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-stand-in")
        .to_owned();
    let texts = collect_all_texts(std::slice::from_ref(&request));
    let stall = texts.iter().any(|t| t.contains(STALL_MARKER));
    let streaming = request["stream"] == true;
    let structured =
        structured_reply(&request, &texts).or_else(|| tool_call_reply(&request, &texts));
    let (reply, id, extra_headers) = {
        let mut script = script.lock().unwrap();
        script.requests.push(request);
        script.seen.push(Seen::of(&uri, &headers));
        script.message_count += 1;
        let overloaded =
            (script.overloaded.as_deref() == Some(model.as_str())).then(|| Reply::Error {
                status: 529,
                kind: "overloaded_error".into(),
                retry_after: None,
            });
        let ruled = overloaded.or_else(|| script.rule.as_ref().and_then(|rule| rule(&texts)));
        let reply = match ruled.or(structured).or_else(|| script.replies.pop_front()) {
            Some(reply) => reply,
            None if stall => Reply::Stall,
            None => Reply::Text(DEFAULT_TEXT.into()),
        };
        (reply, script.message_count, script.headers.clone())
    };
    let mut response = answer(reply, id, &model, streaming);
    for (name, value) in extra_headers {
        response.headers_mut().insert(
            axum::http::HeaderName::try_from(name).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// The answer to one main-loop request.
fn answer(reply: Reply, id: u64, model: &str, streaming: bool) -> Response {
    match reply {
        Reply::Error {
            status,
            kind,
            retry_after,
        } => {
            let mut headers = HeaderMap::new();
            if let Some(secs) = retry_after {
                headers.insert("retry-after", secs.into());
            }
            let body = json!({"type": "error", "error": {"type": kind, "message": format!("stand-in {kind}")}});
            (
                StatusCode::from_u16(status).unwrap(),
                headers,
                axum::Json(body),
            )
                .into_response()
        }
        Reply::Text(text) if !streaming => axum::Json(json!({
            "id": format!("msg_standin_{id}"), "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 5,
                "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3},
        }))
        .into_response(),
        Reply::Text(text) => sse(
            message_events(id, model, text_block(&text), "end_turn"),
            false,
        ),
        Reply::Held(release, text) => {
            let events = message_events(id, model, text_block(&text), "end_turn");
            let stream = async_stream::stream! {
                yield Ok::<_, Infallible>(Bytes::from(sse_event(&events[0])));
                release.notified().await;
                for event in &events[1..] {
                    yield Ok(Bytes::from(sse_event(event)));
                }
            };
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Reply::Bash(command) => {
            let input = json!({"command": command, "description": "Run a command"}).to_string();
            sse(
                message_events(id, model, tool_block(id, "Bash", &input), "tool_use"),
                false,
            )
        }
        Reply::Tool(name, input) => sse(
            message_events(
                id,
                model,
                tool_block(id, &name, &input.to_string()),
                "tool_use",
            ),
            false,
        ),
        Reply::Stall => sse(vec![message_start(id, model)], true),
    }
}

/// A stand-in of the CLI's OAuth token endpoint: each refresh gets new tokens, numbered.
async fn refresh(State(script): State<Arc<Mutex<Script>>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut script = script.lock().unwrap();
        script.refreshes.push(request);
        script.refreshes.len()
    };
    axum::Json(json!({
        "access_token": format!("refreshed-access-{n}"),
        "refresh_token": format!("rotated-refresh-{n}"),
        "expires_in": 3600,
        "token_type": "Bearer",
    }))
    .into_response()
}

fn sse(events: Vec<Value>, then_stall: bool) -> Response {
    let stream = async_stream::stream! {
        for event in events {
            yield Ok::<_, Infallible>(Bytes::from(sse_event(&event)));
        }
        if then_stall {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
    };
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn sse_event(event: &Value) -> String {
    let name = event["type"].as_str().unwrap_or("message");
    format!("event: {name}\ndata: {event}\n\n")
}

fn message_start(id: u64, model: &str) -> Value {
    json!({"type": "message_start", "message": {
        "id": format!("msg_standin_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 1,
            "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3}}})
}

/// What the stand-in counts for each message it answers (a stream's `message_start` says the
/// input and cache tokens and one output token, its `message_delta` the five in all).
pub const USAGE_PER_MESSAGE: Usage = Usage {
    input_tokens: 12,
    output_tokens: 5,
    cache_read_input_tokens: 2,
    cache_creation_input_tokens: 3,
};

/// Tokens of one answer, as the API counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

/// A content block: its start and its deltas.
type Block = (Value, Vec<Value>);

fn text_block(text: &str) -> Block {
    (
        json!({"type": "text", "text": ""}),
        vec![json!({"type": "text_delta", "text": text})],
    )
}

fn tool_block(id: u64, name: &str, input_json: &str) -> Block {
    let mut half = input_json.len() / 2;
    while !input_json.is_char_boundary(half) {
        half -= 1;
    }
    let (a, b) = input_json.split_at(half);
    (
        json!({"type": "tool_use", "id": format!("toolu_standin_{id}"), "name": name, "input": {}}),
        vec![
            json!({"type": "input_json_delta", "partial_json": a}),
            json!({"type": "input_json_delta", "partial_json": b}),
        ],
    )
}

fn message_events(id: u64, model: &str, (start, deltas): Block, stop_reason: &str) -> Vec<Value> {
    let mut events = vec![
        message_start(id, model),
        json!({"type": "content_block_start", "index": 0, "content_block": start}),
    ];
    events.extend(
        deltas
            .into_iter()
            .map(|delta| json!({"type": "content_block_delta", "index": 0, "delta": delta})),
    );
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 5}}));
    events.push(json!({"type": "message_stop"}));
    events
}
