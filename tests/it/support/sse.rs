//! A small SSE reader for the tests, following the WHATWG parsing rules for the fields the
//! proxy sends (id, event, data, comments).

use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }

    pub fn id_number(&self) -> u64 {
        self.id
            .as_deref()
            .expect("every event has an id")
            .parse()
            .unwrap()
    }

    /// The `type` of the JSON payload.
    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// Incremental SSE parser, usable over any byte chunks.
#[derive(Default)]
pub struct SseParser {
    buf: BytesMut,
    /// How far `buf` is known to hold no newline, so a long line is searched once.
    searched: usize,
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    pub comments: usize,
}

impl SseParser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            let Some(found) = memchr::memchr(b'\n', &self.buf[self.searched..]) else {
                self.searched = self.buf.len();
                break;
            };
            let pos = self.searched + found;
            self.searched = 0;
            let line = self.buf.split_to(pos + 1);
            let line = std::str::from_utf8(&line[..pos]).expect("SSE is UTF-8");
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        id: self.id.clone(),
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: self.data.join("\n"),
                    });
                }
                self.data.clear();
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.id = Some(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// Reads the events of an SSE response as they arrive.
pub struct SseReader {
    pub response_headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response_headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            parser: SseParser::default(),
            ready: Default::default(),
        }
    }

    /// The next event, or None at the end of the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let chunk = self.body.next().await?.expect("the stream reads");
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// The next event whose JSON `type` is `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> SseEvent {
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before a {kind} event"));
            if event.kind() == kind {
                return event;
            }
        }
    }

    /// Reads on until `n` comments (keep-alives) have arrived; events read meanwhile are kept.
    pub async fn wait_for_comments(&mut self, n: usize) {
        while self.parser.comments < n {
            let chunk = self
                .body
                .next()
                .await
                .expect("the stream ended while waiting for comments")
                .expect("the stream reads");
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// Reads a run of [`super::FAMILY`] until the CLI says it is ready: the CLI's pid and
    /// its grandchild's, both alive then.
    pub async fn family_pids(&mut self) -> (u32, u32) {
        let pid = self.next_of("agent").await.json()["pid"].as_u64().unwrap() as u32;
        let grandchild = self.next_of("fake_grandchild").await.json()["pid"]
            .as_u64()
            .unwrap() as u32;
        self.next_of("assistant").await;
        (pid, grandchild)
    }

    pub fn comments(&self) -> usize {
        self.parser.comments
    }

    pub async fn collect_all(mut self) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

/// The `complete` event, which must be the last one.
pub fn complete_of(events: &[SseEvent]) -> Value {
    let last = events.last().expect("the stream had events");
    assert_eq!(
        last.event, "complete",
        "the last event is complete: {events:#?}"
    );
    last.json()
}

/// The codes of the `error` events.
pub fn error_codes(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "error")
        .map(|e| e.json()["code"].as_str().unwrap().to_owned())
        .collect()
}
