//! Server-Sent Events on the wire: an agent's log, read from a cursor on.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::agent::{
    Error, ErrorEvent, ErrorKind, Event, EventReader, GapEvent, GapType, Queued, QueuedEvent,
    QueuedType, StopOnDrop, Waited,
};
use crate::metrics::Metrics;

/// What one read of the log gathers into a single write.
const BATCH_BYTES: usize = 64 * 1024;

/// An SSE response with the events `reader` reads, live until the agent's last event.
/// `stop_when_dropped` stops the agent when the client goes away: hyper drops the body then,
/// even while the CLI is silent.
pub fn event_stream(
    agent_id: Uuid,
    reader: EventReader,
    keepalive: Duration,
    stop_when_dropped: Option<StopOnDrop>,
    metrics: Arc<Metrics>,
) -> Response {
    let body = events(reader, keepalive, stop_when_dropped, metrics);
    let mut response = response(Body::from_stream(body));
    response.headers_mut().insert(
        HeaderName::from_static("x-agent-id"),
        HeaderValue::from_str(&agent_id.to_string()).expect("a UUID is a valid header value"),
    );
    response
}

/// An SSE response for a run waiting in the queue: `queued` with its position (again each
/// time it changes), then the agent's events once it has a place. The agent's id is not known
/// yet, so there is no `x-agent-id` (its `agent` event names it). A run that cannot start after
/// all ends its stream with an `error` event. Dropped, the stream leaves the queue.
pub fn queued_stream(
    mut queued: Box<Queued>,
    keepalive: Duration,
    metrics: Arc<Metrics>,
) -> Response {
    let body = async_stream::stream! {
        let mut buf = BytesMut::new();
        encode_queued(queued.position(), &mut buf);
        yield Ok::<_, Infallible>(buf.split().freeze());
        let launched = loop {
            let waited = tokio::select! {
                waited = queued.wait() => waited,
                () = tokio::time::sleep(keepalive) => {
                    yield Ok(Bytes::from_static(b": keep-alive\n\n"));
                    continue;
                }
            };
            let failed = match waited {
                Ok(Waited::Moved(position)) => {
                    encode_queued(position, &mut buf);
                    yield Ok(buf.split().freeze());
                    continue;
                }
                Ok(Waited::Turn) => match queued.try_place().await {
                    Ok(Some(launched)) => break launched,
                    Ok(None) => continue,
                    Err(err) => err,
                },
                Err(err) => err,
            };
            let error = ErrorEvent::new(not_started_code(&failed), failed.to_string());
            let data = serde_json::to_string(&error).expect("an error serializes");
            yield Ok(Bytes::from(format!("event: error\ndata: {data}\n\n")));
            return;
        };
        let events = events(
            EventReader::Live(launched.reader),
            keepalive,
            launched.client_leaving,
            metrics,
        );
        for await chunk in events {
            yield chunk;
        }
    };
    response(Body::from_stream(body))
}

/// The `error` code of a queued run that could not start.
fn not_started_code(err: &Error) -> &'static str {
    match err {
        Error::BudgetExceeded { .. } => "budget_exceeded",
        Error::ShuttingDown => "shutdown",
        _ => match err.kind() {
            ErrorKind::TooMany => "too_many_agents",
            ErrorKind::CliUnavailable => "cli_unavailable",
            _ => "not_started",
        },
    }
}

/// `event: queued`, without an id: it is not one of the agent's events, so a client that
/// comes back with Last-Event-ID is not misled by it.
fn encode_queued(position: usize, buf: &mut BytesMut) {
    let queued = QueuedEvent {
        kind: QueuedType,
        position,
    };
    let data = serde_json::to_string(&queued).expect("a queued event serializes");
    buf.put_slice(format!("event: queued\ndata: {data}\n\n").as_bytes());
}

/// The body of an agent's events as `reader` reads them, live until its last.
fn events(
    mut reader: EventReader,
    keepalive: Duration,
    stop_when_dropped: Option<StopOnDrop>,
    metrics: Arc<Metrics>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    async_stream::stream! {
        let _stop_when_dropped = stop_when_dropped;
        let mut delivery = Delivery { metrics, finished: false };
        let mut buf = BytesMut::new();
        loop {
            let read = reader.read(BATCH_BYTES).await;
            if let Some((from, to)) = read.gap {
                encode_gap(from, to, &mut buf);
            }
            for event in &read.events {
                if event.data.len() > BATCH_BYTES {
                    // Its payload goes out as it is, not copied once more for each reader.
                    let [head, tail] = frame_parts(event);
                    buf.put_slice(&head);
                    delivery.metrics.sse_bytes.inc_by((buf.len() + event.data.len() + tail.len()) as u64);
                    yield Ok::<_, Infallible>(buf.split().freeze());
                    yield Ok(event.data.clone());
                    yield Ok(tail);
                } else {
                    encode(event, &mut buf);
                }
            }
            if !buf.is_empty() {
                delivery.metrics.sse_bytes.inc_by(buf.len() as u64);
                yield Ok(buf.split().freeze());
            }
            if read.finished {
                delivery.finished = true;
                break;
            }
            if read.events.is_empty() && read.gap.is_none() {
                tokio::select! {
                    () = reader.changed() => {}
                    () = tokio::time::sleep(keepalive) => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
                }
            }
        }
    }
}

/// A Server-Sent Events answer that nothing between it and the client holds back.
pub fn response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// Counts a stream whose client went away before its last event.
struct Delivery {
    metrics: Arc<Metrics>,
    finished: bool,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.client_disconnects.inc();
        }
    }
}

/// `id:`, then `event:` unless it is a plain message, then the one-line JSON payload.
pub fn encode(event: &Event, buf: &mut BytesMut) {
    buf.reserve(event.data.len() + 48);
    put_head(event, buf);
    buf.put_slice(&event.data);
    buf.put_slice(b"\n\n");
}

fn put_head(event: &Event, buf: &mut BytesMut) {
    buf.put_slice(b"id: ");
    buf.put_slice(itoa::Buffer::new().format(event.id).as_bytes());
    if let Some(name) = event.name {
        buf.put_slice(b"\nevent: ");
        buf.put_slice(name.as_bytes());
    }
    buf.put_slice(b"\ndata: ");
}

/// What goes before and after an event's payload.
fn frame_parts(event: &Event) -> [Bytes; 2] {
    let mut head = BytesMut::with_capacity(48);
    put_head(event, &mut head);
    [head.freeze(), Bytes::from_static(b"\n\n")]
}

/// The events `from..=to` are no longer kept. The gap carries the id of the last one, so a
/// client that reconnects with Last-Event-ID goes on after it.
fn encode_gap(from: u64, to: u64, buf: &mut BytesMut) {
    let gap = GapEvent {
        kind: GapType,
        from,
        to,
    };
    // Its fields in their declared order, as the gap has always been written.
    let data = serde_json::to_string(&gap).expect("a gap serializes");
    buf.put_slice(format!("id: {to}\nevent: gap\ndata: {data}\n\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_as_sse() {
        let mut buf = BytesMut::new();
        encode(
            &Event {
                id: 7,
                name: None,
                data: Bytes::from_static(b"{\"a\":1}"),
            },
            &mut buf,
        );
        encode(
            &Event {
                id: 8,
                name: Some("complete"),
                data: Bytes::from_static(b"{}"),
            },
            &mut buf,
        );
        encode_gap(9, 12, &mut buf);
        assert_eq!(
            &buf[..],
            b"id: 7\ndata: {\"a\":1}\n\nid: 8\nevent: complete\ndata: {}\n\nid: 12\nevent: gap\ndata: {\"type\":\"gap\",\"from\":9,\"to\":12}\n\n"
        );
    }
}
