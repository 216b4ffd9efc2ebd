//! A request body that must arrive whole within a time limit: hyper's header timer ends a
//! connection that trickles its head, and this ends one that trickles its body, however
//! steadily it trickles (tower-http's body timeout starts again at every chunk).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use tokio::time::{Sleep, sleep};

/// The body's time ran out (PROXY_BODY_READ_TIMEOUT_SECS).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within PROXY_BODY_READ_TIMEOUT_SECS")]
pub struct BodyDeadlinePassed;

/// Gives every request with a body `limit` to send all of it, counted from now (its head is
/// in).
pub async fn limit_body_time(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            body,
            deadline: Box::pin(sleep(limit)),
        })
    });
    next.run(request).await
}

struct DeadlineBody {
    body: Body,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyDeadlinePassed))));
        }
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
