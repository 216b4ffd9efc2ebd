//! The route handlers.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::request::{AgentRequest, ValidJson};
use super::sse;
use crate::agent::{self, AgentKind};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let cli = resolve_program(&state.config.cli_path);
    Json(json!({
        "status": if cli.is_some() { "ok" } else { "degraded" },
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "active_agents": state.registry.len(),
        "version": env!("CARGO_PKG_VERSION"),
        "cli": {
            "path": cli.as_deref().unwrap_or(&state.config.cli_path),
            "found": cli.is_some(),
        },
    }))
}

pub async fn start(
    State(state): State<AppState>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Json<Value>, ApiError> {
    let invocation = request.into_invocation(state.config.default_model.as_deref())?;
    let launched = agent::launch(&state, AgentKind::Start, &invocation)?;
    let (agent_id, pid) = (launched.agent_id, launched.pid);
    // Nobody reads a started agent's events yet: drain them so the CLI never waits on a full
    // pipe, and log how it ended.
    let mut events = launched.events;
    state.tasks.spawn(async move {
        while let Some(event) = events.next().await {
            if event.name == Some("complete") {
                tracing::info!(%agent_id, complete = %String::from_utf8_lossy(&event.data), "started agent finished");
            }
        }
    });
    Ok(Json(
        json!({"agent_id": agent_id, "pid": pid, "status": "started"}),
    ))
}

pub async fn stream(
    State(state): State<AppState>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Response, ApiError> {
    let invocation = request.into_invocation(state.config.default_model.as_deref())?;
    let launched = agent::launch(&state, AgentKind::Stream, &invocation)?;
    Ok(sse::event_stream(launched, state.config.keepalive))
}

/// Stops a running agent and answers once its process group is gone (at most the grace
/// period after SIGTERM).
pub async fn stop(
    State(state): State<AppState>,
    UrlPath(agent_id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::AgentNotFound(agent_id.chars().take(100).collect());
    let id = Uuid::try_parse(&agent_id).map_err(|_| not_found())?;
    let gone = state.registry.stop(id).ok_or_else(not_found)?;
    gone.cancelled().await;
    Ok(Json(json!({"status": "stopped", "agent_id": id})))
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
