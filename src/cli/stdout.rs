//! The lines the CLI writes on stdout (`--output-format stream-json`), as far as the proxy
//! reads them: each is one JSON object, and most are passed on as they are.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

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
}
