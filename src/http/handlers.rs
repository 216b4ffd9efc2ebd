//! The route handlers. Every route but /health gets the [`Client`] that the key check
//! attached; a client sees and touches its own agents only (another's are "not found").

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::extract::{AgentId, RequestId, ValidJson};
use super::sse;
use crate::agent::{
    AgentDetail, AgentKind, AgentRequest, AgentUpdate, Client, EventReader, MessageRequest,
    PermissionAnswer, StopReason,
};

/// 200 while the CLI can be found and is logged in (an API key it is given counts), else 503,
/// so that a container's health check says so. A store that failed to write in the last
/// minute makes it `degraded`, still 200: streams go on.
pub async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let cli = state.agents.find_cli();
    let login = match cli {
        Some(_) => state.agents.cli_login().await,
        None => None,
    };
    let logged_in = login.as_ref().is_some_and(|l| l.logged_in);
    let storage = state.agents.storage();
    let storage_ok = storage.as_ref().is_none_or(|s| s.error.is_none());
    let storage = match storage {
        Some(health) => {
            let mut storage = json!({"kind": health.kind, "ok": health.error.is_none()});
            if let Some(error) = health.error {
                storage["error"] = error.into();
            }
            storage
        }
        None => json!({"kind": "memory", "ok": true}),
    };
    let usable = cli.is_some() && logged_in;
    let status = match (usable, storage_ok) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let body = json!({
        "status": status,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "active_agents": state.agents.running(),
        "version": env!("CARGO_PKG_VERSION"),
        "instance_id": state.agents.instance_id(),
        "sandbox": if state.agents.sandboxed() { "bwrap" } else { "off" },
        "cli": {
            "path": cli.as_deref().unwrap_or(state.agents.cli()),
            "found": cli.is_some(),
            "logged_in": logged_in,
            "auth_method": login.as_ref().map(|l| l.auth_method.as_str()),
            "login_expires_at": login.as_ref().and_then(|l| l.login_expires_at),
        },
        "storage": storage,
    });
    let code = if usable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Every metric, in the Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    state
        .metrics
        .agents_running
        .set(state.agents.running() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

pub async fn start(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Json<Value>, ApiError> {
    let run = state
        .agents
        .check(client, AgentKind::Start, request)
        .await?;
    let launched = state.agents.launch(run).await?;
    Ok(Json(
        json!({"agent_id": launched.agent_id, "pid": launched.pid, "status": "started"}),
    ))
}

pub async fn stream(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Response, ApiError> {
    let run = state
        .agents
        .check(client, AgentKind::Stream, request)
        .await?;
    let detach = run.detach_on_disconnect;
    let launched = state.agents.launch(run).await?;
    let stop_when_dropped = (!detach).then(|| launched.stop.stop_on_drop(StopReason::ClientGone));
    Ok(sse::event_stream(
        launched.agent_id,
        EventReader::Live(launched.reader),
        state.keepalive,
        stop_when_dropped,
        state.metrics.clone(),
    ))
}

/// Stops a running agent and answers once it has finished (at most the grace period after
/// SIGTERM). A finished agent is not running: 404.
pub async fn stop(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Value>, ApiError> {
    state
        .agents
        .stop(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(json!({"status": "stopped", "agent_id": agent.id})))
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
) -> Json<Value> {
    Json(json!({ "agents": state.agents.list(client).await }))
}

pub async fn detail(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<AgentDetail>, ApiError> {
    state
        .agents
        .detail(client, agent.id)
        .await
        .map(Json)
        .map_err(|e| agent.error(e))
}

/// Stops the agent if it runs and forgets it.
pub async fn delete(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<StatusCode, ApiError> {
    state
        .agents
        .delete(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<u64>,
}

/// The agent's events from the start, or after `Last-Event-ID` (which a browser's EventSource
/// sends when it reconnects to the same URL, so it wins) or `?after=N`, then live ones.
pub async fn events(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
    let cursor = last_event_id.or(query.after).unwrap_or(0);
    let reader = state
        .agents
        .events(client, agent.id, cursor)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(sse::event_stream(
        agent.id,
        reader,
        state.keepalive,
        None,
        state.metrics.clone(),
    ))
}

/// A message to an interactive agent: 202 once it is queued for the CLI.
pub async fn send_message(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    ValidJson(message): ValidJson<MessageRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let queued = state
        .agents
        .send_message(client, agent.id, message)
        .await
        .map_err(|e| agent.error(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"agent_id": agent.id, "queued": queued})),
    ))
}

/// Ends the running turn of an interactive agent, once the CLI has said so.
pub async fn interrupt(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Value>, ApiError> {
    let still_queued = state
        .agents
        .interrupt(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(
        json!({"agent_id": agent.id, "still_queued": still_queued}),
    ))
}

/// Closes an interactive agent's input: it finishes its turns, then `complete` follows.
pub async fn close(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .agents
        .close(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"agent_id": agent.id, "status": "closing"})),
    ))
}

/// Changes an interactive agent's model or permission mode; answers what the CLI confirmed.
pub async fn update(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    ValidJson(update): ValidJson<AgentUpdate>,
) -> Result<Json<Value>, ApiError> {
    let mut confirmed = state
        .agents
        .update(client, agent.id, update)
        .await
        .map_err(|e| agent.error(e))?;
    confirmed.insert("agent_id".into(), json!(agent.id));
    Ok(Json(Value::Object(confirmed)))
}

pub async fn permissions(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Value>, ApiError> {
    let pending = state
        .agents
        .permissions(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(
        json!({"agent_id": agent.id, "pending_permissions": pending}),
    ))
}

/// The owner's answer to a tool approval.
pub async fn answer_permission(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    RequestId(request_id): RequestId,
    ValidJson(answer): ValidJson<PermissionAnswer>,
) -> Result<Json<Value>, ApiError> {
    let behavior = match &answer {
        PermissionAnswer::Allow { .. } => "allow",
        PermissionAnswer::Deny { .. } => "deny",
    };
    state
        .agents
        .answer_permission(client, agent.id, &request_id, answer)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(
        json!({"agent_id": agent.id, "request_id": request_id, "behavior": behavior}),
    ))
}
