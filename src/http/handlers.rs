//! The route handlers. Every route but the public ones (/health, /openapi.json, /docs) gets the [`Client`] that the key check
//! attached; a client sees and touches its own agents only (another's are "not found").

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::MaybeClient;
use super::error::ApiError;
use super::extract::{AgentId, RequestId, ValidJson};
use super::openapi::{ErrorBody, StreamEvent};
use super::sse;
use crate::agent::{
    AgentDetail, AgentKind, AgentListItem, AgentRequest, AgentUpdate, Client, Condition,
    EventReader, MessageRequest, PermissionAnswer, PermissionMode, PermissionRequest, Start,
    SubscriptionLimits, UsageBy, UsageQuery, UsageReport, WatchdogStatus,
};

/// The answer to `POST /agent/start`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub agent_id: Uuid,
    pub pid: u32,
    /// Always "started".
    pub status: &'static str,
}

/// The answer to `POST /agent/stop/{agent_id}`, once the agent has ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stopped {
    /// Always "stopped".
    pub status: &'static str,
    pub agent_id: Uuid,
}

/// The answer to `GET /agents`: the client's own agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentListItem>,
}

/// The answer to `POST /agent/{agent_id}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageQueued {
    pub agent_id: Uuid,
    /// Messages waiting for the CLI, this one included.
    pub queued: u64,
}

/// The answer to `POST /agent/{agent_id}/interrupt`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Interrupted {
    pub agent_id: Uuid,
    /// Messages still waiting, which become the next turns.
    pub still_queued: u64,
}

/// The answer to `POST /agent/{agent_id}/close`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Closing {
    pub agent_id: Uuid,
    /// Always "closing".
    pub status: &'static str,
}

/// The answer to `PATCH /agent/{agent_id}`: what the CLI confirmed, of what was asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    pub agent_id: Uuid,
    /// The model now (null: the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PermissionMode>)]
    pub permission_mode: Option<Value>,
}

/// The answer to `GET /agent/{agent_id}/permissions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingPermissions {
    pub agent_id: Uuid,
    pub pending_permissions: Vec<PermissionRequest>,
}

/// The answer to `POST /agent/{agent_id}/permissions/{request_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionAnswered {
    pub agent_id: Uuid,
    pub request_id: String,
    /// allow or deny.
    pub behavior: &'static str,
}

/// The answer to `GET /health`. A request without a key (when keys are configured) gets only
/// `status` and `timestamp`; the other fields are for a client with a key.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Health {
    /// ok; degraded (200: a database write failed in the last minute, the database file is
    /// gone, or no watchdog process runs); unavailable (503: the CLI is missing or not logged
    /// in).
    pub status: &'static str,
    /// RFC 3339, in milliseconds.
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_agents: Option<usize>,
    /// How many agents may run at once (PROXY_MAX_AGENTS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_agents: Option<usize>,
    /// While the subscription is rate limited: until when new agents are refused (null: it is
    /// not).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub rate_limited_until: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// The subscription's windows (status, utilization and reset of the 5-hour and 7-day
    /// ones), as the API's last answer through the gateway told them (null before one has).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SubscriptionLimits>)]
    pub subscription: Option<Option<SubscriptionLimits>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// bwrap or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub cli: Option<HealthCli>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub storage: Option<HealthStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub watchdog: Option<HealthWatchdog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub warm_pool: Option<HealthWarmPool>,
}

/// The CLIs started ahead of the requests they serve (PROXY_WARM_POOL).
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthWarmPool {
    /// Most CLIs that wait at once (PROXY_WARM_POOL); 0: no pool.
    pub size: usize,
    /// CLIs waiting now.
    pub waiting: usize,
    /// Runs served by a waiting CLI.
    pub hits: u64,
    /// Runs of no waiting CLI's shape.
    pub misses: u64,
    /// Time to first line saved: for each hit, the cold runs' average less the hit's.
    pub saved_seconds: f64,
    /// The shapes kept warm, the operator's (PROXY_WARM_SHAPES) first, then those learned from
    /// requests, the most recent first.
    #[schema(inline)]
    pub shapes: Vec<HealthWarmShape>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthWarmShape {
    /// A name for the shape that tells nothing of it (its key, directory, tools, prompt).
    pub shape: String,
    /// operator or learned.
    pub source: &'static str,
    /// Its CLIs waiting now.
    pub waiting: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCli {
    pub path: String,
    pub found: bool,
    pub logged_in: bool,
    /// As `claude auth status` says: api_key, oauth_token, claude.ai, none, ...
    pub auth_method: Option<String>,
    pub login_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStorage {
    /// memory, sqlite or postgres.
    pub kind: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The process that ends every CLI if the proxy is killed.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthWatchdog {
    /// running; down (no agent is started until one runs again); off (none was asked for).
    pub status: &'static str,
    pub pid: Option<u32>,
    /// How many times it died and another was started.
    pub restarts: u64,
    /// Why none runs, while down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/health", tag = "service", security(()),
    responses(
        (status = 200, description = "The CLI is found and logged in.", body = Health),
        (status = 503, description = "The CLI is missing or not logged in.", body = Health),
    ))]
/// 200 while the CLI can be found and is logged in (an API key it is given counts), else 503,
/// so that a container's health check says so. A store that failed to write in the last
/// minute makes it `degraded`, still 200: streams go on.
pub async fn health(
    State(state): State<ApiState>,
    MaybeClient(client): MaybeClient,
) -> (StatusCode, Json<Health>) {
    let found = state.agents.health().await;
    let code = match found.condition {
        Condition::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Condition::Ok | Condition::Degraded => StatusCode::OK,
    };
    let status = found.condition.as_str();
    let logged_in = found.logged_in();
    let storage = match found.storage {
        Some(health) => HealthStorage {
            kind: health.kind.to_string(),
            ok: health.error.is_none(),
            error: health.error,
        },
        None => HealthStorage {
            kind: "memory".into(),
            ok: true,
            error: None,
        },
    };
    let watchdog = match found.watchdog {
        WatchdogStatus::NotStarted => HealthWatchdog {
            status: "off",
            pid: None,
            restarts: 0,
            error: None,
        },
        WatchdogStatus::Running { pid, restarts } => HealthWatchdog {
            status: "running",
            pid: Some(pid),
            restarts,
            error: None,
        },
        WatchdogStatus::Down { why, restarts } => HealthWatchdog {
            status: "down",
            pid: None,
            restarts,
            error: Some(why),
        },
    };
    let (cli, login) = (found.cli, found.login);
    let mut body = Health {
        status,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ..Health::default()
    };
    if client.is_some() {
        body.active_agents = Some(state.agents.running());
        body.max_agents = Some(state.agents.max_agents());
        body.rate_limited_until = Some(state.agents.rate_limited_until());
        body.subscription = Some(state.agents.subscription_limits());
        body.version = Some(env!("CARGO_PKG_VERSION"));
        body.instance_id = Some(state.agents.instance_id().to_string());
        body.sandbox = Some(if state.agents.sandboxed() {
            "bwrap"
        } else {
            "off"
        });
        body.cli = Some(HealthCli {
            path: cli
                .as_deref()
                .unwrap_or(state.agents.cli())
                .display()
                .to_string(),
            found: cli.is_some(),
            logged_in,
            auth_method: login.as_ref().map(|l| l.auth_method.clone()),
            login_expires_at: login.as_ref().and_then(|l| l.login_expires_at),
        });
        body.storage = Some(storage);
        body.watchdog = Some(watchdog);
        let pool = state.agents.warm_pool();
        body.warm_pool = Some(HealthWarmPool {
            size: pool.size,
            waiting: pool.waiting,
            hits: pool.hits,
            misses: pool.misses,
            saved_seconds: pool.saved.as_secs_f64(),
            shapes: pool
                .shapes
                .into_iter()
                .map(|shape| HealthWarmShape {
                    shape: shape.shape,
                    source: shape.source,
                    waiting: shape.waiting,
                })
                .collect(),
        });
    }
    (code, Json(body))
}

#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus (OpenMetrics) text.", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
    ))]
/// Every metric, in the Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    state
        .metrics
        .agents_running
        .set(state.agents.running() as i64);
    state
        .metrics
        .agents_queued
        .set(state.agents.queued() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        // Past the metrics key's check: only its holder, the operator, sees each key's use.
        state.metrics.encode(state.metrics_key.is_some()),
    )
}

#[utoipa::path(post, path = "/agent/start", tag = "agents", request_body = AgentRequest,
    responses(
        (status = 200, description = "Started in the background.", body = Started),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 403, description = "A field asks for more than the operator's policy allows (a webhook among them: one not in PROXY_WEBHOOK_URLS), or session_id is not a session this key made here.", body = ErrorBody),
        (status = 409, description = "The session is in use by a running agent of this key (named in the detail), or only another instance has it.", body = ErrorBody),
        (status = 413, description = "The body is over PROXY_MAX_BODY_BYTES.", body = ErrorBody),
        (status = 422, description = "A field is invalid; nothing was started.", body = ErrorBody),
        (status = 429, description = "Too many agents run (and the queue, if any, is full), or the subscription is rate limited (Retry-After).", body = ErrorBody),
        (status = 503, description = "The CLI cannot be found, or the database cannot be written.", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Json<Started>, ApiError> {
    let run = state
        .agents
        .check(client, AgentKind::Start, request)
        .await?;
    let launched = state.agents.launch(run).await?;
    Ok(Json(Started {
        agent_id: launched.agent_id,
        pid: launched.pid,
        status: "started",
    }))
}

/// The agent's events as Server-Sent Events, as they come; the CLI is stopped when the client
/// goes away (unless `detach_on_disconnect`).
#[utoipa::path(post, path = "/agent/stream", tag = "agents", request_body = AgentRequest,
    responses(
        (status = 200, description = "The agent's events, `complete` last; first `queued` while it waits for a place (PROXY_QUEUE).", content_type = "text/event-stream", body = StreamEvent,
            headers(("x-agent-id" = Uuid, description = "The agent's id (absent when it was queued: its `agent` event names it)."))),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 403, description = "A field asks for more than the operator's policy allows (a webhook among them: one not in PROXY_WEBHOOK_URLS), or session_id is not a session this key made here.", body = ErrorBody),
        (status = 409, description = "The session is in use by a running agent of this key (named in the detail), or only another instance has it.", body = ErrorBody),
        (status = 413, description = "The body is over PROXY_MAX_BODY_BYTES.", body = ErrorBody),
        (status = 422, description = "A field is invalid; nothing was started.", body = ErrorBody),
        (status = 429, description = "Too many agents run (and the queue, if any, is full), or the subscription is rate limited (Retry-After).", body = ErrorBody),
        (status = 503, description = "The CLI cannot be found, or the database cannot be written.", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    ValidJson(request): ValidJson<AgentRequest>,
) -> Result<Response, ApiError> {
    let run = state
        .agents
        .check(client, AgentKind::Stream, request)
        .await?;
    match state.agents.launch_or_queue(run).await? {
        Start::Launched(launched) => Ok(sse::event_stream(
            launched.agent_id,
            EventReader::Live(launched.reader),
            state.keepalive,
            launched.client_leaving,
            state.metrics.clone(),
        )),
        Start::Queued(queued) => Ok(sse::queued_stream(
            queued,
            state.keepalive,
            state.metrics.clone(),
        )),
    }
}

#[utoipa::path(post, path = "/agent/stop/{agent_id}", tag = "agents", params(AgentId),
    responses(
        (status = 200, description = "Stopped, and ended.", body = Stopped),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
    ))]
/// Stops a running agent and answers once it has finished (at most the grace period after
/// SIGTERM). A finished agent is not running: 404.
pub async fn stop(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Stopped>, ApiError> {
    state
        .agents
        .stop(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(Stopped {
        status: "stopped",
        agent_id: agent.id,
    }))
}

#[utoipa::path(get, path = "/agents", tag = "agents",
    responses(
        (status = 200, description = "The client's agents, running and recently ended.", body = AgentList),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
) -> Json<AgentList> {
    Json(AgentList {
        agents: state.agents.list(client).await,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// From this time (RFC 3339) or day (`YYYY-MM-DD`, from its start, UTC).
    from: Option<String>,
    /// Up to this time or day (exclusive).
    to: Option<String>,
    /// What each row adds up: `day` (the default), `agent` or `model`.
    by: Option<String>,
}

/// A time of `GET /usage`'s query: RFC 3339, or a day from its start (UTC).
fn usage_time(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(Some(time.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|start| Some(start.and_utc()))
        .ok_or_else(|| ApiError::InvalidField {
            field,
            reason: "must be a time (RFC 3339, such as 2026-01-31T12:00:00Z) or a day (2026-01-31)"
                .into(),
        })
}

#[utoipa::path(get, path = "/usage", tag = "agents", params(UsageParams),
    responses(
        (status = 200, description = "The key's own usage of the API, as the proxy's gateway relayed its agents' requests, added up by day, agent or model.", body = UsageReport),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 422, description = "`from`, `to` or `by` is not one the route takes.", body = ErrorBody),
        (status = 503, description = "The store cannot be read.", body = ErrorBody),
    ))]
/// The key's own usage (requests, errors, and input, output, cache-read and cache-write
/// tokens), kept by the hour: an hour is counted when it ends after `from` and begins before
/// `to`.
pub async fn usage(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    query: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let Query(params) = query?;
    let by = match params.by.as_deref() {
        None | Some("day") => UsageBy::Day,
        Some("agent") => UsageBy::Agent,
        Some("model") => UsageBy::Model,
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: "by",
                reason: "must be day, agent or model".into(),
            });
        }
    };
    let query = UsageQuery {
        from: usage_time("from", params.from.as_deref())?,
        to: usage_time("to", params.to.as_deref())?,
        by,
    };
    Ok(Json(state.agents.usage(client, query).await?))
}

#[utoipa::path(get, path = "/agent/{agent_id}", tag = "agents", params(AgentId),
    responses(
        (status = 200, description = "The agent.", body = AgentDetail),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
    ))]
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

#[utoipa::path(delete, path = "/agent/{agent_id}", tag = "agents", params(AgentId),
    responses(
        (status = 204, description = "Stopped if it ran, and forgotten."),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this id (`Last-Event-ID` wins).
    after: Option<u64>,
}

#[utoipa::path(get, path = "/agent/{agent_id}/events", tag = "agents", params(AgentId, EventsQuery,
        ("last-event-id" = Option<u64>, Header, description = "The id of the last event read: the events after it follow.")),
    responses(
        (status = 200, description = "The agent's kept events, then live ones until `complete`; `gap` for those no longer kept.", content_type = "text/event-stream", body = StreamEvent),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 416, description = "The agent has ended, and `after` or `Last-Event-ID` is past its last event, which `detail` names. (While it runs, the stream waits for the events after it.)", body = ErrorBody),
        (status = 422, description = "`after` or `Last-Event-ID` is not an event id.", body = ErrorBody),
    ))]
/// The agent's events from the start, or after `Last-Event-ID` (which a browser's EventSource
/// sends when it reconnects to the same URL, so it wins) or `?after=N`, then live ones. A
/// position past the last event of an ended agent is a 416, which an EventSource does not
/// retry.
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
    let (field, cursor) = match (last_event_id, query.after) {
        (Some(id), _) => ("Last-Event-ID", id),
        (None, Some(after)) => ("after", after),
        (None, None) => ("after", 0),
    };
    let reader = state
        .agents
        .events(client, agent.id, cursor)
        .await
        .map_err(|e| match e {
            crate::agent::Error::PastLastEvent { after, last } => {
                ApiError::PastLastEvent { field, after, last }
            }
            e => agent.error(e),
        })?;
    Ok(sse::event_stream(
        agent.id,
        reader,
        state.keepalive,
        None,
        state.metrics.clone(),
    ))
}

#[utoipa::path(post, path = "/agent/{agent_id}/messages", tag = "interactive", params(AgentId), request_body = MessageRequest,
    responses(
        (status = 202, description = "Queued for the CLI: it becomes a turn.", body = MessageQueued),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 409, description = "The agent is not interactive, or no longer takes this.", body = ErrorBody),
        (status = 422, description = "The content is invalid.", body = ErrorBody),
        (status = 429, description = "Too many messages wait already.", body = ErrorBody),
    ))]
/// A message to an interactive agent: 202 once it is queued for the CLI.
pub async fn send_message(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    ValidJson(message): ValidJson<MessageRequest>,
) -> Result<(StatusCode, Json<MessageQueued>), ApiError> {
    let queued = state
        .agents
        .send_message(client, agent.id, message)
        .await
        .map_err(|e| agent.error(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageQueued {
            agent_id: agent.id,
            queued,
        }),
    ))
}

#[utoipa::path(post, path = "/agent/{agent_id}/interrupt", tag = "interactive", params(AgentId),
    responses(
        (status = 200, description = "The CLI ended the turn.", body = Interrupted),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 409, description = "The agent is not interactive, or no longer takes this.", body = ErrorBody),
    ))]
/// Ends the running turn of an interactive agent, once the CLI has said so.
pub async fn interrupt(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<Interrupted>, ApiError> {
    let still_queued = state
        .agents
        .interrupt(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(Interrupted {
        agent_id: agent.id,
        still_queued,
    }))
}

#[utoipa::path(post, path = "/agent/{agent_id}/close", tag = "interactive", params(AgentId),
    responses(
        (status = 202, description = "Its input is closed: it ends once its turns are done.", body = Closing),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 409, description = "The agent is not interactive, or no longer takes this.", body = ErrorBody),
    ))]
/// Closes an interactive agent's input: it finishes its turns, then `complete` follows.
pub async fn close(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<(StatusCode, Json<Closing>), ApiError> {
    state
        .agents
        .close(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Closing {
            agent_id: agent.id,
            status: "closing",
        }),
    ))
}

#[utoipa::path(patch, path = "/agent/{agent_id}", tag = "interactive", params(AgentId), request_body = AgentUpdate,
    responses(
        (status = 200, description = "What the CLI confirmed.", body = Updated),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 409, description = "The agent is not interactive, or no longer takes this.", body = ErrorBody),
        (status = 403, description = "A permission mode wider than the operator's.", body = ErrorBody),
        (status = 422, description = "A field is invalid.", body = ErrorBody),
    ))]
/// Changes an interactive agent's model or permission mode; answers what the CLI confirmed.
pub async fn update(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    ValidJson(update): ValidJson<AgentUpdate>,
) -> Result<Json<Updated>, ApiError> {
    let mut confirmed = state
        .agents
        .update(client, agent.id, update)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(Updated {
        agent_id: agent.id,
        model: confirmed.remove("model"),
        permission_mode: confirmed.remove("permission_mode"),
    }))
}

#[utoipa::path(get, path = "/agent/{agent_id}/permissions", tag = "interactive", params(AgentId),
    responses(
        (status = 200, description = "The tool approvals the agent waits for.", body = PendingPermissions),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
    ))]
pub async fn permissions(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
) -> Result<Json<PendingPermissions>, ApiError> {
    let pending = state
        .agents
        .permissions(client, agent.id)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(PendingPermissions {
        agent_id: agent.id,
        pending_permissions: pending,
    }))
}

#[utoipa::path(post, path = "/agent/{agent_id}/permissions/{request_id}", tag = "interactive",
    params(AgentId, ("request_id" = String, Path, description = "The approval's id, from its `permission_request` event.")),
    request_body = PermissionAnswer,
    responses(
        (status = 200, description = "The answer reached the CLI.", body = PermissionAnswered),
        (status = 401, description = "No key, or a wrong one.", body = ErrorBody),
        (status = 404, description = "No such agent of this client's.", body = ErrorBody),
        (status = 409, description = "Already answered, expired or cancelled.", body = ErrorBody),
        (status = 422, description = "The answer is invalid.", body = ErrorBody),
    ))]
/// The owner's answer to a tool approval.
pub async fn answer_permission(
    State(state): State<ApiState>,
    Extension(client): Extension<Client>,
    agent: AgentId,
    RequestId(request_id): RequestId,
    ValidJson(answer): ValidJson<PermissionAnswer>,
) -> Result<Json<PermissionAnswered>, ApiError> {
    let behavior = match &answer {
        PermissionAnswer::Allow { .. } => "allow",
        PermissionAnswer::Deny { .. } => "deny",
    };
    state
        .agents
        .answer_permission(client, agent.id, &request_id, answer)
        .await
        .map_err(|e| agent.error(e))?;
    Ok(Json(PermissionAnswered {
        agent_id: agent.id,
        request_id,
        behavior,
    }))
}
