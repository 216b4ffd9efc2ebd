//! The usage of one relayed request, read from the answer as it passes, never holding it back:
//! a stream's `message_start` (model, input and cache tokens) and `message_delta` (the counts
//! so far, output tokens above all), or a whole message's `usage`. Only those lines are
//! parsed; the rest of a stream is looked at only for its line ends.

use crate::agent::Usage;

/// Longest SSE line kept to be parsed: `message_start` and `message_delta` are small; a longer
/// line (a large delta) is skipped to its end.
const MAX_LINE: usize = 256 * 1024;
/// Most bytes of a non-streamed answer kept to read its `usage` from: the largest message the
/// API writes is well within it.
const MAX_JSON: usize = 16 * 1024 * 1024;

/// What the API said of its tokens so far, field by field (a later event's count replaces an
/// earlier one: the API's counts are cumulative).
#[derive(Debug, Default)]
struct Counts {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl Counts {
    fn read(&mut self, usage: &serde_json::Value) {
        let field = |name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
        self.input = field("input_tokens").or(self.input);
        self.output = field("output_tokens").or(self.output);
        self.cache_read = field("cache_read_input_tokens").or(self.cache_read);
        self.cache_write = field("cache_creation_input_tokens").or(self.cache_write);
    }
}

#[derive(Debug)]
enum Shape {
    Sse {
        line: Vec<u8>,
        /// The line under way is past MAX_LINE: skipped to its end.
        skipping: bool,
        /// Whether the event the next `data:` belongs to is one worth parsing; None before an
        /// `event:` line names it.
        event: Option<bool>,
    },
    Json(Vec<u8>),
    /// Past MAX_JSON, or neither.
    Unread,
}

/// Reads one answer's usage as its chunks pass.
#[derive(Debug)]
pub struct Meter {
    shape: Shape,
    ok: bool,
    error: bool,
    model: Option<String>,
    counts: Counts,
}

impl Meter {
    /// For an answer with this status (`ok`: 2xx) and `content-type`.
    pub fn new(ok: bool, content_type: &str) -> Self {
        let shape = if content_type.starts_with("text/event-stream") {
            Shape::Sse {
                line: Vec::new(),
                skipping: false,
                event: None,
            }
        } else if content_type.starts_with("application/json") {
            Shape::Json(Vec::new())
        } else {
            Shape::Unread
        };
        Self {
            shape,
            ok,
            error: false,
            model: None,
            counts: Counts::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.shape {
            Shape::Sse {
                line,
                skipping,
                event,
            } => {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let (part, ended) = match memchr::memchr(b'\n', rest) {
                        Some(at) => (&rest[..at], Some(at + 1)),
                        None => (rest, None),
                    };
                    if !*skipping {
                        if line.len() + part.len() > MAX_LINE {
                            *skipping = true;
                            line.clear();
                        } else {
                            line.extend_from_slice(part);
                        }
                    }
                    let Some(next) = ended else { break };
                    if !*skipping {
                        if let Some(data) = sse_line(line, event) {
                            apply(&data, &mut self.model, &mut self.counts, &mut self.error);
                        }
                        // Kept with its room: the next line needs no allocation.
                        line.clear();
                    }
                    *skipping = false;
                    rest = &rest[next..];
                }
            }
            Shape::Json(body) => {
                if body.len() + chunk.len() > MAX_JSON {
                    tracing::warn!("an answer too large to read its usage from");
                    self.shape = Shape::Unread;
                } else {
                    body.extend_from_slice(chunk);
                }
            }
            Shape::Unread => {}
        }
    }

    /// The model the answer named, and its usage: one request, an error if the API refused it
    /// or said so in its stream.
    pub fn finish(mut self) -> (Option<String>, Usage) {
        if let Shape::Json(body) = &self.shape {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
                if value["type"] == "error" {
                    self.error = true;
                }
                if let Some(model) = value["model"].as_str() {
                    self.model = Some(model.to_owned());
                }
                self.counts.read(&value["usage"]);
            }
        }
        let counts = &self.counts;
        let usage = Usage {
            requests: 1,
            errors: u64::from(!self.ok || self.error),
            input_tokens: counts.input.unwrap_or(0),
            output_tokens: counts.output.unwrap_or(0),
            cache_read_input_tokens: counts.cache_read.unwrap_or(0),
            cache_creation_input_tokens: counts.cache_write.unwrap_or(0),
        };
        (self.model, usage)
    }
}

/// One whole SSE line: the `data:` worth parsing, if it is one; notes whether the event it is
/// of is worth it. Most lines are neither, and cost no allocation.
fn sse_line(line: &[u8], event: &mut Option<bool>) -> Option<serde_json::Value> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        *event = None;
        return None;
    }
    if let Some(name) = line.strip_prefix(b"event:") {
        *event = Some(matches!(
            name.trim_ascii(),
            b"message_start" | b"message_delta" | b"error"
        ));
        return None;
    }
    let data = line.strip_prefix(b"data:")?;
    let wanted = match *event {
        Some(wanted) => wanted,
        // No event line: the data says what it is.
        None => ["message_start", "message_delta", "\"error\""]
            .iter()
            .any(|word| memchr::memmem::find(data, word.as_bytes()).is_some()),
    };
    if !wanted {
        return None;
    }
    serde_json::from_slice(data).ok()
}

fn apply(
    data: &serde_json::Value,
    model: &mut Option<String>,
    counts: &mut Counts,
    error: &mut bool,
) {
    match data["type"].as_str() {
        Some("message_start") => {
            let message = &data["message"];
            if let Some(name) = message["model"].as_str() {
                *model = Some(name.to_owned());
            }
            counts.read(&message["usage"]);
        }
        Some("message_delta") => counts.read(&data["usage"]),
        Some("error") => *error = true,
        _ => {}
    }
}

/// The `model` a request's body names, from its first bytes (the CLI writes it first): for a
/// request the API refuses before it names one. None when the prefix does not hold it.
pub fn model_named(prefix: &[u8]) -> Option<String> {
    let at = memchr::memmem::find(prefix, b"\"model\"")?;
    let rest = &prefix[at + b"\"model\"".len()..];
    let rest = std::str::from_utf8(rest).ok().or_else(|| {
        // Cut within a character: what is before it.
        let valid = std::str::from_utf8(rest).err()?.valid_up_to();
        std::str::from_utf8(&rest[..valid]).ok()
    })?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.is_empty() && name.len() <= 200 && !name.contains('\\')).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in chunks of every size from 1 byte, so that lines break anywhere.
    fn read_in_chunks(ok: bool, content_type: &str, text: &str) -> Vec<(Option<String>, Usage)> {
        (1..=text.len().min(64))
            .map(|size| {
                let mut meter = Meter::new(ok, content_type);
                text.as_bytes().chunks(size).for_each(|c| meter.feed(c));
                meter.finish()
            })
            .collect()
    }

    #[test]
    fn a_stream_counts_its_start_and_its_last_delta() {
        let stream = "event: message_start\r\n\
            data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\r\n\r\n\
            event: content_block_delta\n\
            data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"message_delta usage 999\"}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        for got in read_in_chunks(true, "text/event-stream; charset=utf-8", stream) {
            assert_eq!(
                got,
                (
                    Some("claude-x".to_owned()),
                    Usage {
                        requests: 1,
                        errors: 0,
                        input_tokens: 12,
                        output_tokens: 5,
                        cache_read_input_tokens: 2,
                        cache_creation_input_tokens: 3,
                    }
                )
            );
        }
    }

    #[test]
    fn an_error_in_a_stream_or_a_refusal_is_an_error() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":7}}}\n\n\
            event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n";
        let (model, usage) = read_in_chunks(true, "text/event-stream", stream).remove(0);
        assert_eq!(
            (model.as_deref(), usage.errors, usage.input_tokens),
            (Some("m"), 1, 7)
        );
        let refused = r#"{"type":"error","error":{"type":"rate_limit_error","message":"no"}}"#;
        let (model, usage) = read_in_chunks(false, "application/json", refused).remove(0);
        assert_eq!((model, usage.requests, usage.errors), (None, 1, 1));
    }

    #[test]
    fn a_whole_message_counts_its_usage() {
        let message = r#"{"id":"m1","type":"message","model":"claude-y","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":4}}"#;
        let (model, usage) = read_in_chunks(true, "application/json", message).remove(0);
        assert_eq!(model.as_deref(), Some("claude-y"));
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_input_tokens
            ),
            (10, 3, 4)
        );
    }

    #[test]
    fn a_line_too_long_is_skipped_and_the_next_one_read() {
        let long = format!(
            "data: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":999}},\"pad\":\"{}\"}}\n",
            "x".repeat(MAX_LINE)
        );
        let stream = format!(
            "{long}data: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":6}}}}\n\n"
        );
        let mut meter = Meter::new(true, "text/event-stream");
        stream.as_bytes().chunks(4096).for_each(|c| meter.feed(c));
        assert_eq!(meter.finish().1.output_tokens, 6);
    }

    #[test]
    fn a_requests_model_is_read_from_its_first_bytes() {
        assert_eq!(
            model_named(br#"{"model" : "claude-z","messages":[]}"#).as_deref(),
            Some("claude-z")
        );
        assert_eq!(model_named(br#"{"messages":[],"model":"claude-"#), None);
        assert_eq!(model_named(b"{}"), None);
    }
}
