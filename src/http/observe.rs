//! What every request passes through to be seen: its id (`x-request-id`, kept when the client
//! sends one, else made here), a tracing span that carries it, the metrics, and the one place a
//! 500's detail is logged.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse};

use super::error::{ApiError, InternalDetail};
use crate::metrics::Metrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest `x-request-id` kept from a client; a longer one, or one with other than
/// printable ASCII, is replaced by a new one (it is on every log line of the request).
const MAX_REQUEST_ID: usize = 128;

/// Drops a client's `x-request-id` that is too long or not printable, so that one is made.
pub async fn drop_unusable_request_id(mut request: Request, next: Next) -> Response {
    let usable = |id: &axum::http::HeaderValue| {
        let id = id.as_bytes();
        !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(|b| b.is_ascii_graphic())
    };
    let ids = request.headers().get_all(REQUEST_ID);
    if ids.iter().count() > 1 || ids.iter().any(|id| !usable(id)) {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

pub fn set_request_id() -> SetRequestIdLayer<MakeRequestUuid> {
    SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid)
}

pub fn propagate_request_id() -> PropagateRequestIdLayer {
    PropagateRequestIdLayer::new(REQUEST_ID)
}

fn request_id(request: &Request) -> &str {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
}

/// A span per request, holding its id, so every log line of the request carries it. When
/// traces are exported it continues the caller's trace (W3C `traceparent` and `tracestate`),
/// and its log lines carry the trace's id too.
pub fn request_span(request: &Request) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        method = %request.method(),
        uri = %request.uri(),
        request_id = request_id(request),
        trace_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name| {
        let mut values = request.headers().get_all(name).iter();
        // Two of either is no context the W3C allows.
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    crate::telemetry::continue_trace(&span, header(TRACEPARENT), header(TRACESTATE));
    span
}

/// Records the answer's status on the request's span (and logs it as tower-http does).
pub fn record_status<B>(response: &Response<B>, latency: Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
    DefaultOnResponse::default().on_response(response, latency, span);
}

/// A handler that panicked answers 500 like any other internal error.
pub fn panicked(panic: Box<dyn Any + Send>) -> Response<Body> {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::Internal(format!("the handler panicked: {what}")).into_response()
}

/// Answers a 500 with `{"detail": "internal error", "request_id": ...}` and logs its detail,
/// in the request's span, so the client's report and the log line meet at the id.
pub async fn internal_errors(request: Request, next: Next) -> Response {
    let id = request_id(&request).to_owned();
    let mut response = next.run(request).await;
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(%detail, "internal error");
        response = (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"detail": "internal error", "request_id": id})),
        )
            .into_response();
    }
    response
}

/// Counts each request by its matched route, method and status, and times it.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.answered(route, method, response.status().as_u16(), started.elapsed());
    response
}
