//! The HTTP face of the proxy: routes, client keys, request validation and the SSE encoding.

mod handlers;
mod request;
mod sse;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::auth;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;

pub use request::AgentRequest;

/// The whole API. Every route but /health needs a client key when keys are configured.
/// Errors, including the ones axum would answer in plain text (unknown route, wrong method,
/// body limit), come back as JSON `{"detail": ...}`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
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
            metrics::track_requests,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
