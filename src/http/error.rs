//! Every error a client can get: one enum, answered as JSON `{"detail": "..."}`, with the
//! status that says what went wrong. The core's errors become it here, and only here.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::agent;

/// How long a client turned away by the agent limit is told to wait.
const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON asked for: its status is axum's (400 syntax, 415 content type,
    /// 413 too large, 422 wrong shape), its text says why.
    #[error("{}", .0.body_text())]
    Json(#[from] JsonRejection),

    #[error("{}", .0.body_text())]
    Query(#[from] QueryRejection),

    /// A header or parameter of the request that cannot be used.
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },

    /// A position in an ended agent's events past its last one, as `field` gave it.
    #[error(
        "{field} {after} is past the last event, {last}: the agent has ended, and no event follows it"
    )]
    PastLastEvent {
        field: &'static str,
        after: u64,
        last: u64,
    },

    /// An agent id as the client wrote it, which names none of its agents.
    #[error("Agent {0} not found")]
    AgentNotFound(String),

    #[error("Not Found: no route {0}")]
    RouteNotFound(String),

    #[error("Method Not Allowed")]
    MethodNotAllowed,

    #[error(
        "a valid client key is needed: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
    )]
    Unauthorized,

    /// A header that cannot be used as it is sent.
    #[error("{name}: {reason}")]
    InvalidHeader { name: &'static str, reason: String },

    /// A keyless proxy asked by a name that is not its own (see `auth::check_host`).
    #[error(
        "Host `{0}` is not answered: without client keys the proxy answers only to localhost, loopback addresses and the names in PROXY_ALLOWED_HOSTS"
    )]
    HostNotAllowed(String),

    #[error("/metrics needs the operator's PROXY_METRICS_KEY; a client key does not open it")]
    MetricsKeyNeeded,

    #[error(transparent)]
    Agent(#[from] agent::Error),

    /// A fault of the proxy's own: the client is told only that it happened, and the request
    /// id to report; the detail goes to the log (see `observe::internal_errors`).
    #[error("internal error")]
    Internal(String),
}

/// The body did not arrive within PROXY_BODY_READ_TIMEOUT_SECS.
fn body_timed_out(rejection: &JsonRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if error.is::<super::deadline::BodyDeadlinePassed>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The detail of a 500, carried from the response to the layer that logs it.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use agent::ErrorKind as K;
        match self {
            ApiError::Json(rejection) if body_timed_out(rejection) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Json(rejection) => rejection.status(),
            ApiError::Query(_) | ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::AgentNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PastLastEvent { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidHeader { .. } => StatusCode::BAD_REQUEST,
            ApiError::HostNotAllowed(_) | ApiError::MetricsKeyNeeded => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Agent(error) => match error.kind() {
                K::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                K::Forbidden => StatusCode::FORBIDDEN,
                K::NotFound => StatusCode::NOT_FOUND,
                K::TooMany => StatusCode::TOO_MANY_REQUESTS,
                K::Conflict => StatusCode::CONFLICT,
                K::CliDidNotAnswer | K::InstanceDidNotAnswer => StatusCode::GATEWAY_TIMEOUT,
                K::CliUnavailable | K::SharedStore => StatusCode::SERVICE_UNAVAILABLE,
                K::PastTheEnd => StatusCode::RANGE_NOT_SATISFIABLE,
            },
        }
    }

    pub(super) fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Agent(
                agent::Error::TooManyAgents { .. }
                | agent::Error::TooManyAgentsForKey { .. }
                | agent::Error::QueueFull { .. }
                | agent::Error::Elsewhere {
                    kind: agent::ErrorKind::TooMany,
                    ..
                },
            ) => Some(RETRY_AFTER_SECS),
            ApiError::Agent(
                agent::Error::RateLimited { until } | agent::Error::BudgetExceeded { until, .. },
            ) => Some(
                u32::try_from((*until - chrono::Utc::now()).num_seconds().max(1))
                    .unwrap_or(u32::MAX),
            ),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = self {
            // The body, with the request's id, is written by the layer that logs the detail.
            let mut response = status.into_response();
            response.extensions_mut().insert(InternalDetail(detail));
            return response;
        }
        let mut response = (status, Json(json!({ "detail": self.to_string() }))).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Unauthorized = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
