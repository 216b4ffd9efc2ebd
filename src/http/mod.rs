//! The HTTP edge, and the only place that knows HTTP: routes, the key check, extractors,
//! handlers, Server-Sent Events, the error type with its status codes, and the accept loop.
//! Every decision about agents is the agent core's.

mod auth;
mod compat;
mod deadline;
mod error;
mod extract;
mod handlers;
mod observe;
mod openapi;
mod serve;
mod sse;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::MetricsKey;
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
    /// The operator's key to /metrics; None: any client key opens it.
    pub metrics_key: Option<Arc<MetricsKey>>,
}

/// What every request is held to before a handler sees it.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    /// From the end of a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// The host names a proxy without keys answers to besides the loopback ones; None (keys
    /// are configured): any.
    pub allowed_hosts: Option<Arc<[String]>>,
}

/// The whole API. Every route but /health, /openapi.json, /docs and /ui needs a client key when
/// keys are configured (/metrics: the operator's metrics key, when there is one); without
/// keys, only requests to a loopback name or an allowed host are answered. Errors, including
/// the ones axum would answer in plain text (unknown route, wrong method, body limit), come
/// back as JSON `{"detail": ...}`. Every response carries `x-request-id`.
pub fn router(state: ApiState, limits: RequestLimits) -> Router {
    let (keyed, _) = keyed_routes()
        .route_layer(middleware::from_fn_with_state(
            state.keys.clone(),
            auth::require_key,
        ))
        .split_for_parts();
    let (metrics, _) = metrics_routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_metrics_key,
        ))
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    let api = public
        .merge(keyed)
        .merge(metrics)
        .fallback(|uri: Uri| async move { ApiError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            observe::track_requests,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            limits.body_read_timeout,
            deadline::limit_body_time,
        ))
        .layer(middleware::from_fn_with_state(
            auth::HostCheck(limits.allowed_hosts),
            auth::check_host,
        ));
    observed(api).with_state(state)
}

/// The routes that need a key, each with its part of the OpenAPI document.
fn keyed_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::start))
        .routes(routes!(handlers::stream))
        .routes(routes!(handlers::stop))
        .routes(routes!(handlers::list))
        .routes(routes!(handlers::usage))
        .routes(routes!(
            handlers::detail,
            handlers::delete,
            handlers::update
        ))
        .routes(routes!(handlers::events))
        .routes(routes!(handlers::send_message))
        .routes(routes!(handlers::interrupt))
        .routes(routes!(handlers::close))
        .routes(routes!(handlers::permissions))
        .routes(routes!(handlers::answer_permission))
        .routes(routes!(compat::openai::chat_completions))
        .routes(routes!(compat::openai::models))
        .routes(routes!(compat::responses::create))
        .routes(routes!(
            compat::responses::retrieve,
            compat::responses::delete
        ))
        .routes(routes!(compat::anthropic::messages))
        .routes(routes!(compat::sessions::list))
        .routes(routes!(compat::sessions::show, compat::sessions::forget))
}

/// /metrics, behind the operator's metrics key when there is one.
fn metrics_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(handlers::metrics))
}

/// The routes anyone may ask.
fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::health))
        .routes(routes!(compat::tool_server::message))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(openapi::docs_asset))
        .routes(routes!(ui::page))
        .routes(routes!(ui::page_with_slash))
        .routes(routes!(ui::asset))
}

/// The OpenAPI document of every route the router serves: built from the same registrations,
/// so the two cannot drift.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let (_, keyed) = keyed_routes().split_for_parts();
    let (_, metrics) = metrics_routes().split_for_parts();
    let (_, public) = public_routes().split_for_parts();
    let mut document = openapi::ApiDoc::openapi();
    document.merge(keyed);
    document.merge(metrics);
    document.merge(public);
    document
}

/// Every response gets an `x-request-id` (the client's, or a new UUID), every log line of a
/// request carries it, and a 500 (a panic included) says only "internal error" and that id,
/// with its detail logged once, in the request's span.
fn observed<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(observe::drop_unusable_request_id))
            .layer(observe::set_request_id())
            .layer(observe::propagate_request_id())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(observe::request_span)
                    .on_response(observe::record_status)
                    .on_failure(()),
            )
            .layer(middleware::from_fn(observe::internal_errors))
            .layer(CatchPanicLayer::custom(observe::panicked)),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use axum::routing::get;

    use super::*;

    /// A log written to memory, for the lines a request leaves.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn body_json(response: axum::response::Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn app() -> Router {
        observed(
            Router::new()
                .route(
                    "/fails",
                    get(|| async { ApiError::Internal("the disk is on fire".into()) }),
                )
                .route(
                    "/panics",
                    get(|| async {
                        if true {
                            panic!("a bug of ours");
                        }
                        "unreachable"
                    }),
                )
                .route("/ok", get(|| async { "fine" })),
        )
    }

    #[tokio::test]
    async fn a_500_says_internal_error_and_its_request_id_and_logs_the_detail_once() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

        for (path, detail) in [
            ("/fails", "the disk is on fire"),
            ("/panics", "a bug of ours"),
        ] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = app().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
            let body = body_json(response).await;
            assert_eq!(
                body,
                serde_json::json!({"detail": "internal error", "request_id": id}),
                "the detail stays out of the answer"
            );
            let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(detail)).collect();
            assert_eq!(lines.len(), 1, "logged once: {log}");
            assert!(
                lines[0].contains(&id),
                "with the request's id: {}",
                lines[0]
            );
        }
    }

    #[tokio::test]
    async fn a_request_id_is_kept_or_made() {
        let request = Request::get("/ok")
            .header("x-request-id", "from-the-client-42")
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "from-the-client-42");
        let long = "x".repeat(129);
        for sent in [
            None,
            Some(long.as_str()),
            Some("two words"),
            Some("caf\u{e9}"),
        ] {
            let mut request = Request::get("/ok");
            if let Some(sent) = sent {
                request = request.header("x-request-id", sent);
            }
            let response = app()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let made = response.headers()["x-request-id"].to_str().unwrap();
            assert!(uuid::Uuid::try_parse(made).is_ok(), "{sent:?}: {made}");
        }
        let longest = "y".repeat(128);
        let request = Request::get("/ok")
            .header("x-request-id", &longest)
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], longest.as_str());
    }
}
