//! Every error a client can get: one enum, answered as JSON `{"detail": "..."}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// How long a client turned away by the agent limit is told to wait.
const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON asked for: its status is axum's (400 syntax, 415 content type,
    /// 413 too large, 422 wrong shape), its text says why.
    #[error("{}", .0.body_text())]
    Json(#[from] JsonRejection),

    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },

    #[error("Agent {0} not found")]
    AgentNotFound(String),

    #[error("Not Found: no route {0}")]
    RouteNotFound(String),

    #[error("Method Not Allowed")]
    MethodNotAllowed,

    #[error("{}", .0.body_text())]
    Query(#[from] QueryRejection),

    #[error(
        "{max_agents} agents are already running (PROXY_MAX_AGENTS); retry later, stop one, or raise the limit"
    )]
    TooManyAgents { max_agents: usize },

    #[error(
        "this client key already runs {max} agents (PROXY_MAX_AGENTS_PER_KEY); retry later or stop one"
    )]
    TooManyAgentsForKey { max: usize },

    #[error("the Claude subscription is rate limited until {until}; retry after that")]
    RateLimited {
        until: chrono::DateTime<chrono::Utc>,
    },

    #[error(
        "a valid client key is needed: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
    )]
    Unauthorized,

    #[error("{0}")]
    Forbidden(String),

    #[error("{0}")]
    CliUnavailable(String),

    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Json(rejection) => rejection.status(),
            ApiError::Query(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::AgentNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyAgents { .. }
            | ApiError::TooManyAgentsForKey { .. }
            | ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::CliUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = self.to_string();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), %detail, "request failed");
        }
        let mut response = (status, Json(json!({ "detail": detail }))).into_response();
        let retry_after = match &self {
            ApiError::TooManyAgents { .. } | ApiError::TooManyAgentsForKey { .. } => {
                Some(RETRY_AFTER_SECS)
            }
            ApiError::RateLimited { until } => Some(
                u32::try_from((*until - chrono::Utc::now()).num_seconds().max(1))
                    .unwrap_or(u32::MAX),
            ),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
