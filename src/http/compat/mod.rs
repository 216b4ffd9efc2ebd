//! The doors every tool already knows: an OpenAI-compatible `/v1/chat/completions`, an
//! Anthropic-compatible `/v1/messages`, and `/v1/models`. Each request is an agent like any
//! other (kind `openai` or `anthropic`), run by the core as a chat model
//! (`Agents::check_chat`); this module only translates: the request in, the CLI's lines out in
//! the API's shapes, and errors in the API's own format.

pub mod anthropic;
pub mod openai;
mod schema;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::Range;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::agent::{
    Agents, ChatTurn, Client, Continuation, Event, EventReader, StopOnDrop, StopReason,
};
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
            retry_after: None,
        }
    }

    /// The proxy's own refusal (a key, a limit, the CLI missing, ...), in the API's format.
    pub fn from_api(api: Api, error: ApiError) -> Self {
        let status = match error.status() {
            // The APIs answer 400 for what this proxy calls 422.
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            status => status,
        };
        Self {
            api,
            status,
            message: error.to_string(),
            param: None,
            retry_after: error.retry_after(),
        }
    }

    /// A CLI that failed before it said anything: 429 when the API refused it so, else 502.
    pub fn cli_failed(api: Api, turn: &TurnEnd) -> Self {
        let rate_limited = turn
            .result
            .as_ref()
            .is_some_and(|r| r["api_error_status"] == 429);
        Self {
            api,
            status: if rate_limited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::BAD_GATEWAY
            },
            message: turn.failure_message(),
            param: None,
            retry_after: rate_limited.then_some(60),
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
    pub fn body(&self) -> Value {
        match self.api {
            Api::Anthropic => json!({"type": "error", "error": {
                "type": self.anthropic_type(),
                "message": self.message,
            }}),
            Api::OpenAi => json!({"error": {
                "message": self.message,
                "type": self.openai_type(),
                "param": self.param,
                "code": match self.status.as_u16() {
                    401 => Some("invalid_api_key"),
                    404 => Some("model_not_found"),
                    _ => None,
                },
            }}),
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
pub fn whole_response(body: Value, end: &TurnEnd) -> Response {
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

/// A Messages API streaming event: where it is in the CLI's line, and the little of it the
/// translation reads. A reply streams thousands of them: none is parsed into a tree, and a text
/// delta, the most of them, is not parsed at all (see [`text_delta`]).
#[derive(Debug)]
pub struct ApiEvent {
    /// `message_start`, `content_block_delta`, ...
    pub kind: Cow<'static, str>,
    /// How the model ended its message (`end_turn`, `max_tokens`, ...), from `message_delta`.
    pub stop_reason: Option<String>,
    /// The CLI's line.
    line: Bytes,
    /// The event's JSON object, within the line.
    json: Range<usize>,
    /// The text a `text_delta` adds to the reply, within the line: JSON-escaped as the CLI
    /// wrote it, without its quotes.
    text: Option<Range<usize>>,
}

/// A CLI line, as far as the translation reads it.
#[derive(serde::Deserialize)]
struct LineFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct EventFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: Option<DeltaFields<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// How the CLI writes a text delta, up to the block's index and from it to the text.
const TEXT_DELTA_HEAD: &[u8] =
    br#"{"type":"stream_event","event":{"type":"content_block_delta","index":"#;
const TEXT_DELTA_TEXT: &[u8] = br#","delta":{"type":"text_delta","text":""#;
/// Where the event's object starts in such a line.
const TEXT_DELTA_EVENT: usize = r#"{"type":"stream_event","event":"#.len();

/// A text delta line as the CLI writes it (its fields in the CLI's order), found by its shape:
/// the event's object and the escaped text, within the line. Anything else is `None`, and is
/// parsed instead. The log holds only whole JSON lines of the CLI (it wraps any other output
/// in `proxy_raw`), so the shape is enough.
fn text_delta(line: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    let rest = line.strip_prefix(TEXT_DELTA_HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest.get(digits..).filter(|_| digits > 0)?;
    let rest = rest.strip_prefix(TEXT_DELTA_TEXT)?;
    let text_start = line.len() - rest.len();
    // The text ends at the first quote that no backslash escapes.
    let mut from = 0;
    let text_len = loop {
        let quote = from + rest.get(from..)?.iter().position(|&b| b == b'"')?;
        let backslashes = rest[..quote]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            break quote;
        }
        from = quote + 1;
    };
    let after = &rest[text_len + 1..];
    if !after.starts_with(b"}}") {
        return None;
    }
    let text = text_start..text_start + text_len;
    std::str::from_utf8(&line[text.clone()]).ok()?;
    Some((TEXT_DELTA_EVENT..text.end + 3, text))
}

/// Where `part`, a slice of `whole`, is in it.
fn range_in(whole: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

impl ApiEvent {
    /// The event of a CLI line, if it is a `stream_event`.
    fn of_line(line: &Bytes) -> Option<Self> {
        if let Some((json, text)) = text_delta(line) {
            return Some(Self {
                kind: Cow::Borrowed("content_block_delta"),
                stop_reason: None,
                line: line.clone(),
                json,
                text: Some(text),
            });
        }
        let fields: LineFields = serde_json::from_slice(line).ok()?;
        let event = fields.event.filter(|_| fields.kind == "stream_event")?;
        let read: EventFields = serde_json::from_str(event.get()).ok()?;
        let (text, stop_reason) = match (read.kind.as_ref(), read.delta) {
            ("content_block_delta", Some(delta)) if delta.kind.as_deref() == Some("text_delta") => {
                // The string as written, without its quotes (anything but a string is no text).
                let quoted = delta
                    .text
                    .filter(|text| text.get().starts_with('"'))
                    .map(|text| range_in(line, text.get()));
                (quoted.map(|q| q.start + 1..q.end - 1), None)
            }
            ("message_delta", Some(delta)) => (None, delta.stop_reason.map(Cow::into_owned)),
            _ => (None, None),
        };
        Some(Self {
            kind: Cow::Owned(read.kind.into_owned()),
            stop_reason,
            json: range_in(line, event.get()),
            line: line.clone(),
            text,
        })
    }

    /// The event's JSON object, as the CLI wrote it.
    pub fn json(&self) -> &[u8] {
        &self.line[self.json.clone()]
    }

    /// A `text_delta`'s text, JSON-escaped (without quotes): it goes into a JSON string as it
    /// is.
    pub fn escaped_text(&self) -> Option<&[u8]> {
        self.text.clone().map(|text| &self.line[text])
    }
}

/// Text escaped as in a JSON string, unescaped.
fn unescape(escaped: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(escaped.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(escaped);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).unwrap_or_default()
}

/// How a chat agent's run ended.
#[derive(Debug, Default)]
pub struct TurnEnd {
    /// The CLI's result line.
    pub result: Option<Value>,
    /// The proxy's `error` events.
    pub errors: Vec<Value>,
    /// `complete`'s status.
    pub status: Option<String>,
}

impl TurnEnd {
    pub fn failed(&self) -> bool {
        self.status.as_deref() != Some("completed")
            || self.result.as_ref().is_none_or(|r| r["is_error"] != false)
    }

    pub fn failure_message(&self) -> String {
        let said = self
            .errors
            .iter()
            .filter_map(|e| e["message"].as_str())
            .next_back()
            .map(str::to_owned)
            .or_else(|| {
                self.result
                    .as_ref()
                    .and_then(|r| r["result"].as_str())
                    .map(str::to_owned)
            });
        said.unwrap_or_else(|| "the Claude Code CLI failed without saying why".to_owned())
    }

    /// The result's text: the whole reply, when no piece of it streamed.
    pub fn result_text(&self) -> &str {
        self.result
            .as_ref()
            .and_then(|r| r["result"].as_str())
            .unwrap_or_default()
    }

    pub fn session_id(&self) -> Option<&str> {
        self.result.as_ref().and_then(|r| r["session_id"].as_str())
    }

    pub fn total_cost_usd(&self) -> Option<f64> {
        self.result
            .as_ref()
            .and_then(|r| r["total_cost_usd"].as_f64())
    }

    /// The extension field on responses: the run's cost and session.
    pub fn extension(&self) -> Value {
        json!({"total_cost_usd": self.total_cost_usd(), "session_id": self.session_id()})
    }
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
    _stop: StopOnDrop,
}

/// A conversation's turns, each `(role, text, images)`, as a turn for the core: the last must
/// be the user's, and say something.
pub fn chat_turn(
    api: Api,
    model: &str,
    system: Option<String>,
    mut turns: Vec<(&str, String, Vec<Value>)>,
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
    })
}

/// Checks and launches a chat turn: its agent's id, and its events as steps.
pub async fn start_turn(
    state: &ApiState,
    client: Client,
    api: Api,
    turn: ChatTurn,
) -> Result<(uuid::Uuid, Turn), CompatError> {
    let refused = |err: crate::agent::Error| CompatError::from_api(api, ApiError::from(err));
    let (run, continuation) = state
        .agents
        .check_chat(client, turn)
        .await
        .map_err(refused)?;
    let launched = state.agents.launch(run).await.map_err(refused)?;
    let turn = Turn::new(
        EventReader::Live(launched.reader),
        launched.stop.stop_on_drop(StopReason::ClientGone),
        state.agents.clone(),
        continuation,
    );
    Ok((launched.agent_id, turn))
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
        stop: StopOnDrop,
        agents: Agents,
        continuation: Continuation,
    ) -> Self {
        Self {
            reader,
            pending: VecDeque::new(),
            finished: false,
            end: TurnEnd::default(),
            escaped_text: Vec::new(),
            text: String::new(),
            remember: Some((agents, continuation)),
            _stop: stop,
        }
    }

    /// The run is over: a reply is remembered with its session.
    fn ended(&mut self) -> TurnEnd {
        let end = std::mem::take(&mut self.end);
        self.text = unescape(&self.escaped_text);
        if let (false, Some((agents, continuation))) = (end.failed(), self.remember.take()) {
            if let Some(session) = end.session_id() {
                agents.remember_reply(continuation, reply_text(&self.text, &end), session);
            }
        }
        end
    }

    /// The next step; `End` once, last.
    pub async fn next(&mut self) -> Step {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if let Some(step) = self.step(&event) {
                    return step;
                }
                continue;
            }
            if self.finished {
                return Step::End(self.ended());
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
            while let Some(event) = self.pending.pop_front() {
                steps.extend(self.step(&event));
            }
            if self.finished {
                steps.push(Step::End(self.ended()));
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
        if let Some(api_event) = ApiEvent::of_line(&event.data) {
            if let Some(text) = api_event.escaped_text() {
                self.escaped_text.extend_from_slice(text);
            }
            return Some(Step::Api(api_event));
        }
        let line: Value = serde_json::from_slice(&event.data).ok()?;
        match line["type"].as_str()? {
            "result" => {
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
            _ => Some(Step::Other),
        }
    }
}

/// `stream`, as both APIs take it: a boolean, or absent (null) for an answer not streamed.
pub fn stream_of(api: Api, request: &Value) -> Result<bool, CompatError> {
    match &request["stream"] {
        Value::Null => Ok(false),
        Value::Bool(stream) => Ok(*stream),
        _ => Err(CompatError::invalid(api, "stream", "must be true or false")),
    }
}

/// The text of a message's content: a string, or its text parts joined.
pub fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|part| part["type"] == "text")
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text delta as the real CLI (2.1.328) writes it, from a capture.
    const CLI_DELTA: &str = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w0 "}},"session_id":"07efd377-7415-491b-9591-828f2d517fbb","parent_tool_use_id":null,"uuid":"92817980-da6a-4801-ba7f-68864e841f57","api_message_id":"msg_33"}"#;

    fn event(line: &str) -> ApiEvent {
        ApiEvent::of_line(&Bytes::copy_from_slice(line.as_bytes())).expect("a stream event")
    }

    fn text(event: &ApiEvent) -> String {
        unescape(event.escaped_text().expect("a text delta"))
    }

    #[test]
    fn a_text_delta_as_the_cli_writes_it_is_found_by_its_shape() {
        let line = CLI_DELTA.as_bytes();
        let (json, escaped) = text_delta(line).expect("found by its shape");
        assert_eq!(&line[escaped], b"w0 ");
        assert_eq!(
            &CLI_DELTA[json],
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w0 "}}"#
        );
        let event = event(CLI_DELTA);
        assert_eq!(event.kind, "content_block_delta");
        assert_eq!(text(&event), "w0 ");
    }

    #[test]
    fn escaped_quotes_and_backslashes_end_the_text_where_its_string_ends() {
        for written in [
            r#"say \"hi\""#,
            r#"a backslash \\"#,
            r#"\\\"\\"#,
            r#"\u00e9t\u00e9 \n caf\u00e9 \ud83c\udf89"#,
            "",
        ] {
            let line = CLI_DELTA.replace(r#""text":"w0 ""#, &format!(r#""text":"{written}""#));
            let (_, escaped) = text_delta(line.as_bytes()).expect(&line);
            assert_eq!(&line[escaped], written);
            let parsed: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                text(&event(&line)),
                parsed["event"]["delta"]["text"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn other_shapes_are_parsed_and_give_the_same_text_and_event() {
        // Another field order (a later CLI, or another writer): read by a parse instead.
        let reordered = r#"{"session_id":"s","event":{"delta":{"text":"say \"hi\"","type":"text_delta"},"index":2,"type":"content_block_delta"},"type":"stream_event"}"#;
        assert!(text_delta(reordered.as_bytes()).is_none());
        let delta = event(reordered);
        assert_eq!(delta.kind, "content_block_delta");
        assert_eq!(text(&delta), r#"say "hi""#);
        let json: Value = serde_json::from_slice(delta.json()).unwrap();
        assert_eq!(json["index"], 2);

        let stop = event(
            r#"{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"max_tokens"}}}"#,
        );
        assert_eq!(stop.stop_reason.as_deref(), Some("max_tokens"));
        assert!(stop.escaped_text().is_none());
        let not_text = event(
            r#"{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":null}}}"#,
        );
        assert!(not_text.escaped_text().is_none());
        let result = r#"{"type":"result","result":"w0 "}"#;
        assert!(ApiEvent::of_line(&Bytes::from_static(result.as_bytes())).is_none());
    }
}
