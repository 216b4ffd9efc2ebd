//! The HTTP edge, and the only place that knows HTTP: routes, the key check, extractors,
//! handlers, Server-Sent Events, the error type with its status codes, and the accept loop.
//! Every decision about agents is the agent core's.

mod auth;
mod error;
mod extract;
mod handlers;
mod observe;
mod serve;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use serve::{ConnectionLimits, serve};

use crate::agent::{Agents, ApiKeys};
use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub agents: Agents,
    pub keys: ApiKeys,
    pub metrics: Arc<Metrics>,
    /// Silence after which a stream gets a keep-alive comment.
    pub keepalive: Duration,
}

/// The whole API. Every route but /health needs a client key when keys are configured.
/// Errors, including the ones axum would answer in plain text (unknown route, wrong method,
/// body limit), come back as JSON `{"detail": ...}`. Every response carries `x-request-id`.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let agents = Router::new()
        .route("/agent/start", post(handlers::start))
        .route("/agent/stream", post(handlers::stream))
        .route("/agent/stop/{agent_id}", post(handlers::stop))
        .route("/agents", get(handlers::list))
        .route(
            "/agent/{agent_id}",
            get(handlers::detail).delete(handlers::delete),
        )
        .route("/agent/{agent_id}/events", get(handlers::events))
        .route("/metrics", get(handlers::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.keys.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/health", get(handlers::health))
        .merge(agents)
        .fallback(|uri: Uri| async move { ApiError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            observe::track_requests,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(observe::set_request_id())
                .layer(observe::propagate_request_id())
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(observe::request_span)
                        .on_failure(()),
                )
                .layer(middleware::from_fn(observe::internal_errors))
                .layer(CatchPanicLayer::custom(observe::panicked)),
        )
        .with_state(state)
}
