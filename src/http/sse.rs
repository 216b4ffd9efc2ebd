//! Server-Sent Events on the wire.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};

use crate::agent::{Event, Launched};
use crate::runner::StopReason;

/// Events that are ready together go out in one write, up to about this much.
const BATCH_BYTES: usize = 64 * 1024;

/// The response of /agent/stream. When the client goes away hyper drops this body, and with it
/// the guard that stops the agent: the CLI is stopped even while it is silent, not at the next
/// failed write.
pub fn event_stream(launched: Launched, keepalive: Duration) -> Response {
    let Launched {
        agent_id,
        stop,
        mut events,
        ..
    } = launched;
    let client_gone = stop.stop_on_drop(StopReason::ClientGone);
    let body = async_stream::stream! {
        let _client_gone = client_gone;
        let mut buf = BytesMut::new();
        loop {
            let first = tokio::select! {
                event = events.next() => event,
                () = tokio::time::sleep(keepalive) => {
                    yield Ok::<_, Infallible>(Bytes::from_static(b": keep-alive\n\n"));
                    continue;
                }
            };
            let Some(event) = first else { break };
            encode(&event, &mut buf);
            while buf.len() < BATCH_BYTES {
                match events.next().now_or_never() {
                    Some(Some(event)) => encode(&event, &mut buf),
                    _ => break,
                }
            }
            yield Ok(buf.split().freeze());
        }
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
            (
                HeaderName::from_static("x-agent-id"),
                HeaderValue::from_str(&agent_id.to_string())
                    .expect("a UUID is a valid header value"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `id:`, then `event:` unless it is a plain message, then the one-line JSON payload.
pub fn encode(event: &Event, buf: &mut BytesMut) {
    buf.reserve(event.data.len() + 48);
    buf.put_slice(b"id: ");
    buf.put_slice(event.id.to_string().as_bytes());
    if let Some(name) = event.name {
        buf.put_slice(b"\nevent: ");
        buf.put_slice(name.as_bytes());
    }
    buf.put_slice(b"\ndata: ");
    buf.put_slice(&event.data);
    buf.put_slice(b"\n\n");
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
        assert_eq!(
            &buf[..],
            b"id: 7\ndata: {\"a\":1}\n\nid: 8\nevent: complete\ndata: {}\n\n"
        );
    }
}
