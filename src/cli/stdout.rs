//! The lines the CLI writes on stdout (`--output-format stream-json`), as far as the proxy
//! reads them: each is one JSON object, and most are passed on as they are.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// How a result line says a turn ended when the client interrupted it.
pub const INTERRUPTED: [&str; 2] = ["aborted_streaming", "aborted_tools"];

/// The little the proxy reads of a CLI line: serde skips everything else without building it.
#[derive(Deserialize)]
pub struct LineHead<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(default, borrow)]
    pub result: Option<Cow<'a, str>>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    #[serde(default, borrow)]
    pub subtype: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
    /// An assistant line's API error, such as "rate_limit".
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default)]
    pub rate_limit_info: Option<serde_json::Value>,
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub num_turns: Option<u64>,
    #[serde(default, borrow)]
    pub terminal_reason: Option<Cow<'a, str>>,
}

impl LineHead<'_> {
    /// Whether this line says the subscription is rate limited, and until when if it knows.
    pub fn rate_limit(&self) -> Option<Option<DateTime<Utc>>> {
        match self.kind.as_deref() {
            Some("rate_limit_event") => {
                let info = self.rate_limit_info.as_ref()?;
                (info["status"] == "rejected").then(|| {
                    info["resetsAt"]
                        .as_i64()
                        .and_then(|secs| DateTime::from_timestamp(secs, 0))
                })
            }
            Some("assistant") if self.error.as_ref().is_some_and(|e| e == "rate_limit") => {
                Some(None)
            }
            _ => None,
        }
    }
}

/// A Messages API streaming event, as a `stream_event` line carries it: where it is in the
/// line, and the little of it a translation reads. A reply streams thousands of them: none is parsed into a tree, and a text
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
    pub fn of_line(line: &Bytes) -> Option<Self> {
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
pub fn unescape(escaped: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(escaped.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(escaped);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).unwrap_or_default()
}

crate::literal::literal!(SystemType, "system");
crate::literal::literal!(InitSubtype, "init");
crate::literal::literal!(AssistantType, "assistant");
crate::literal::literal!(UserType, "user");
crate::literal::literal!(ResultType, "result");
crate::literal::literal!(StreamEventType, "stream_event");

// The shapes of the lines the CLI writes, as the OpenAPI document describes them (the proxy
// passes the lines on as they are, reading only their heads, above). Each line has more
// fields than these. A test reads every line of the real CLI's captures into them; they
// serialize too, so that the test can check that what a shape holds is what the line held.

/// The CLI's first line: its session, model, tools and working directory.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct SystemInitEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: SystemType,
    #[schema(inline)]
    subtype: InitSubtype,
    session_id: String,
    model: String,
    cwd: String,
    tools: Vec<String>,
    #[serde(rename = "permissionMode")]
    permission_mode: String,
    claude_code_version: Option<String>,
}

/// Another `system` line of the CLI (such as `compact_boundary` or `status`).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct SystemEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: SystemType,
    subtype: String,
    session_id: Option<String>,
}

/// A message of the model, whole, as the Messages API gives it (`content` blocks of `text`,
/// `thinking`, `tool_use`, ...).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct AssistantEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: AssistantType,
    #[schema(inline)]
    message: ApiMessage,
    session_id: String,
    /// Set when a subagent's tool use made this message.
    parent_tool_use_id: Option<String>,
}

/// A user turn the CLI sent: the prompt, or tool results (`tool_result` blocks).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct UserEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: UserType,
    #[schema(inline)]
    message: ApiMessage,
    session_id: String,
    parent_tool_use_id: Option<String>,
}

/// A message in the Messages API's form.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct ApiMessage {
    /// assistant or user.
    role: String,
    content: ApiContent,
    id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    usage: Option<serde_json::Value>,
}

/// A message's content: a string, or blocks.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ApiContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// A block of a message, as the Messages API has them: `text`, `thinking`, `tool_use`,
/// `tool_result`, `image`, ..., each with the fields of its type.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    /// Of a `text` block.
    text: Option<String>,
    /// Of a `thinking` block.
    thinking: Option<String>,
    /// Of a `tool_use` block: its id, the tool and its input.
    id: Option<String>,
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    input: Option<serde_json::Value>,
    /// Of a `tool_result` block: the `tool_use` it answers, and what the tool gave.
    tool_use_id: Option<String>,
    /// A string, or blocks.
    content: Option<serde_json::Value>,
    is_error: Option<bool>,
}

/// The end of a turn: what the agent answered (`result`), whether it failed, its session and
/// its cost. `subtype` is `success`, or names the error (`error_max_turns`,
/// `error_during_execution`, ...).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct ResultEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: ResultType,
    subtype: String,
    is_error: bool,
    /// The answer's text (absent on some errors).
    result: Option<String>,
    session_id: String,
    total_cost_usd: Option<f64>,
    num_turns: Option<u64>,
    duration_ms: Option<u64>,
    duration_api_ms: Option<u64>,
    #[schema(value_type = Option<Object>)]
    usage: Option<serde_json::Value>,
    /// The status the API answered when it failed the turn (429: rate limited).
    api_error_status: Option<u16>,
}

/// A piece of a message as the API streams it (with `--include-partial-messages`): `event`
/// is one Messages API streaming event (`message_start`, `content_block_delta`, ...).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct StreamEventLine {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: StreamEventType,
    #[schema(value_type = Object)]
    event: serde_json::Value,
    session_id: String,
    parent_tool_use_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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

    /// Where the real CLI's captures are (README.md there says how they were made): beside
    /// the checkout, as CI has them.
    fn reference() -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
        assert!(
            dir.is_dir(),
            "{}: the real CLI's captures are missing (CI has them beside the checkout)",
            dir.display()
        );
        dir
    }

    /// Every stdout line of the captures: a `.jsonl` file is the lines; in a `.txt` file they
    /// are the lines marked `<` (read from stdout).
    fn captured_lines() -> Vec<(String, String)> {
        let mut lines = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(reference())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.starts_with("stream-json-")
                    && (name.ends_with(".jsonl")
                        || (name.ends_with(".txt") && !name.ends_with(".stderr.txt")))
            })
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let json = if name.ends_with(".jsonl") {
                    Some(line)
                } else {
                    // `seconds < line`
                    line.split_once(' ')
                        .and_then(|(_, rest)| rest.strip_prefix("< "))
                };
                if let Some(json) = json.filter(|j| !j.trim().is_empty()) {
                    lines.push((format!("{name}:{}", n + 1), json.to_owned()));
                }
            }
        }
        lines
    }

    /// What `typed` holds is what `line` holds: a field it has as null may be absent.
    fn held_in(typed: &serde_json::Value, line: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        match (typed, line) {
            (Value::Object(typed), Value::Object(line)) => {
                typed.iter().try_for_each(|(k, v)| match line.get(k) {
                    None if v.is_null() => Ok(()),
                    None => Err(format!("{k}: {v} is not in the line")),
                    Some(found) => held_in(v, found).map_err(|e| format!("{k}.{e}")),
                })
            }
            (Value::Array(typed), Value::Array(line)) if typed.len() == line.len() => typed
                .iter()
                .zip(line)
                .enumerate()
                .try_for_each(|(n, (t, l))| held_in(t, l).map_err(|e| format!("[{n}].{e}"))),
            // 0 read as an f64 is written back as 0.0.
            (Value::Number(typed), Value::Number(line)) if typed.as_f64() == line.as_f64() => {
                Ok(())
            }
            (typed, line) if typed == line => Ok(()),
            (typed, line) => Err(format!("{typed} where the line has {line}")),
        }
    }

    fn as_documented<T: serde::de::DeserializeOwned + Serialize>(
        line: &serde_json::Value,
    ) -> Result<(), String> {
        let typed: T = serde_json::from_value(line.clone()).map_err(|e| e.to_string())?;
        held_in(&serde_json::to_value(&typed).unwrap(), line)
    }

    /// The document's shapes of the CLI's lines are the real CLI's: every captured line of a
    /// type the document describes reads into its shape, and the shape holds what it wrote.
    #[test]
    fn every_line_the_real_cli_wrote_has_its_documented_shape() {
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        let mut wrong = Vec::new();
        let lines = captured_lines();
        assert!(lines.len() > 100, "{} lines", lines.len());
        for (at, line) in &lines {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (shape, checked) = match (value["type"].as_str(), value["subtype"].as_str()) {
                (Some("system"), Some("init")) => {
                    ("SystemInitEvent", as_documented::<SystemInitEvent>(&value))
                }
                (Some("system"), _) => ("SystemEvent", as_documented::<SystemEvent>(&value)),
                (Some("assistant"), _) => {
                    ("AssistantEvent", as_documented::<AssistantEvent>(&value))
                }
                (Some("user"), _) => ("UserEvent", as_documented::<UserEvent>(&value)),
                (Some("result"), _) => ("ResultEvent", as_documented::<ResultEvent>(&value)),
                (Some("stream_event"), _) => {
                    ("StreamEventLine", as_documented::<StreamEventLine>(&value))
                }
                // Lines the document leaves to "a later CLI may write lines of other types".
                _ => continue,
            };
            *seen.entry(shape).or_default() += 1;
            if let Err(why) = checked {
                wrong.push(format!("{at}: not a {shape}: {why}\n  {line}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        for shape in [
            "SystemInitEvent",
            "SystemEvent",
            "AssistantEvent",
            "UserEvent",
            "ResultEvent",
            "StreamEventLine",
        ] {
            assert!(
                seen.contains_key(shape),
                "no captured line is a {shape}: {seen:?}"
            );
        }
    }

    #[test]
    fn a_line_of_another_shape_is_refused() {
        let init = serde_json::json!({"type": "system", "subtype": "init", "session_id": "s"});
        assert!(
            as_documented::<SystemInitEvent>(&init).is_err(),
            "no model, cwd, tools"
        );
        let result = serde_json::json!({"type": "assistant", "subtype": "success",
            "is_error": false, "session_id": "s"});
        assert!(
            as_documented::<ResultEvent>(&result).is_err(),
            "not a result"
        );
    }
}
