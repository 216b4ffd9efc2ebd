//! `POST /internal/mcp/{token}`: the MCP server (Streamable HTTP, a JSON answer to each
//! message) through which a compatible API's run reaches its client's tools. Only that run's CLI
//! knows the token: it is in the run's MCP configuration file alone. A tool call is answered
//! once the client's next request brings its result.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::agent::{McpAnswer, McpRefusal};
use crate::http::ApiState;

/// A JSON-RPC message from a run's CLI to its client tool server.
#[utoipa::path(post, path = "/internal/mcp/{token}", tag = "internal",
    params(("token" = String, Path, description = "The run's own token, from its MCP configuration.")),
    request_body(content = Object, description = "A JSON-RPC 2.0 request or notification (MCP)."),
    responses(
        (status = 200, description = "The JSON-RPC response; a tool call's once the client sent its result.", body = Object),
        (status = 202, description = "A notification, taken."),
        (status = 400, description = "Not a JSON-RPC message."),
        (status = 404, description = "No run has that token (it has ended)."),
    ))]
pub async fn message(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match state.agents.answer_tool_server(&token, &message).await {
        Ok(McpAnswer::Reply(reply)) => Json(reply).into_response(),
        Ok(McpAnswer::Accepted) => StatusCode::ACCEPTED.into_response(),
        Err(McpRefusal::UnknownServer) => StatusCode::NOT_FOUND.into_response(),
    }
}
