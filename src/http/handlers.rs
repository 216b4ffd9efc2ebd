//! The route handlers. Every route but /health gets the [`Client`] that the key check
//! attached; a client sees and touches its own agents only (another's are "not found").

use std::path::{Path, PathBuf};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::request::{AgentId, AgentRequest, RunRequest, ValidJson};
use super::sse;
use crate::agent::{self, AgentKind};
use crate::auth::Client;
use crate::error::ApiError;
use crate::runner::StopReason;
use crate::state::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let cli = resolve_program(&state.config.cli_path);
    Json(json!({
        "status": if cli.is_some() { "ok" } else { "degraded" },
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "active_agents": state.registry.running(),
        "version": env!("CARGO_PKG_VERSION"),
        "cli": {
            "path": cli.as_deref().unwrap_or(&state.config.cli_path),
            "found": cli.is_some(),
        },
    }))
}

/// Every metric, in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    state
        .metrics
        .agents_running
        .set(state.registry.running() as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

pub async fn start(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Json<Value>, ApiError> {
    let run = check(&state, client, request)?;
    let launched = agent::launch(&state, client, AgentKind::Start, &run.invocation)?;
    Ok(Json(
        json!({"agent_id": launched.agent_id, "pid": launched.pid, "status": "started"}),
    ))
}

pub async fn stream(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Response, ApiError> {
    let run = check(&state, client, request)?;
    let launched = agent::launch(&state, client, AgentKind::Stream, &run.invocation)?;
    let stop_when_dropped =
        (!run.detach_on_disconnect).then(|| launched.stop.stop_on_drop(StopReason::ClientGone));
    Ok(sse::event_stream(
        launched.agent_id,
        launched.log,
        0,
        state.config.keepalive,
        stop_when_dropped,
        state.metrics.clone(),
    ))
}

fn check(state: &AppState, client: Client, request: AgentRequest) -> Result<RunRequest, ApiError> {
    request.check(
        state.config.default_model.as_deref(),
        &state.policy,
        |session| state.registry.session_home(client, session),
    )
}

/// Stops a running agent and answers once it has finished (at most the grace period after
/// SIGTERM). A finished agent is not running: 404.
pub async fn stop(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Value>, ApiError> {
    let id = agent.id;
    let finished = state
        .registry
        .stop(client, id)
        .ok_or_else(|| agent.not_found())?;
    finished.cancelled().await;
    Ok(Json(json!({"status": "stopped", "agent_id": id})))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
) -> Json<Value> {
    Json(json!({ "agents": state.registry.list(client) }))
}

pub async fn detail(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Value>, ApiError> {
    let id = agent.id;
    let detail = state
        .registry
        .detail(client, id)
        .ok_or_else(|| agent.not_found())?;
    Ok(Json(
        serde_json::to_value(detail).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// Stops the agent if it runs and forgets it.
pub async fn delete(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<StatusCode, ApiError> {
    let id = agent.id;
    if state.registry.forget(client, id).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(agent.not_found())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<u64>,
}

/// The agent's events from the start, or after `Last-Event-ID` (which a browser's EventSource
/// sends when it reconnects to the same URL, so it wins) or `?after=N`, then live ones.
pub async fn events(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = agent.id;
    let Query(query) = query?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::InvalidField {
                    field: "Last-Event-ID",
                    reason: "must be the id of an event (a whole number)".into(),
                })?,
        ),
        None => None,
    };
    let log = state
        .registry
        .log(client, id)
        .ok_or_else(|| agent.not_found())?;
    let cursor = last_event_id.or(query.after).unwrap_or(0);
    Ok(sse::event_stream(
        id,
        log,
        cursor,
        state.config.keepalive,
        None,
        state.metrics.clone(),
    ))
}

/// Where the CLI would be found: the path itself when it names a file, else the first
/// executable of that name on PATH.
fn resolve_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.components().count() > 1 {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}
