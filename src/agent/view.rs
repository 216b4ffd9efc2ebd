//! Agents as their clients see them: `GET /agents` and `GET /agent/{id}`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::status::{AgentKind, AgentStatus, WebhookState};

/// One agent, in the list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentInfo {
    pub agent_id: Uuid,
    pub kind: AgentKind,
    pub status: AgentStatus,
    pub pid: Option<u32>,
    /// The model the CLI reported, else the one asked for.
    pub model: Option<String>,
    pub session_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// It takes messages while it runs (`"interactive": true`).
    pub interactive: bool,
    /// Results so far: an interactive agent has one per turn.
    pub turns: u64,
    /// The operator's MCP servers its run named (`mcp_servers`), by name; their settings and
    /// secrets are never shown.
    pub mcp_servers: Vec<String>,
}

/// One agent in the list, with what it cost so far and how many tool approvals it waits for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentListItem {
    #[serde(flatten)]
    pub info: AgentInfo,
    /// As its last result line said.
    pub total_cost_usd: Option<f64>,
    pub pending_permissions: usize,
}

/// One agent in full.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub info: AgentInfo,
    /// The CLI's result line, once there is one.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub total_cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub is_error: Option<bool>,
    /// The events a reader of `/agent/{id}/events` gets from the start (`gap`s not counted).
    pub events: u64,
    /// The ids up to its newest event that a reader gets no event for: the `gap`s it is told
    /// of, added up. They are the oldest events, past PROXY_AGENT_LOG_BYTES; events the store
    /// could not write; and after a crash, the ids its closing events skip, past the last
    /// event written (up to 1,000,000 of them: what the dead proxy had not written yet, at most
    /// its last PROXY_STORE_FLUSH_MS of events, is among them, how much of it is not known).
    pub dropped_events: u64,
    /// The tool approvals it waits for.
    pub pending_permissions: Vec<PermissionRequest>,
    /// The instance that runs it (or ran it), among those sharing a database.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<Arc<str>>,
    /// What the API counted for its requests, by model, as the proxy's gateway relayed them.
    pub usage: Vec<crate::agent::usage::ModelUsage>,
    /// Its webhook events (`webhook`, or the operator's PROXY_WEBHOOK_URL), oldest first, and
    /// how the delivery of each goes.
    pub webhooks: Vec<WebhookDelivery>,
}

/// One webhook event of an agent's, and its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// The event's id: its `X-Claude-Proxy-Delivery` header, the same on every attempt.
    pub id: Uuid,
    /// `agent.completed`, `agent.failed` or `permission.requested`.
    pub event: String,
    pub state: WebhookState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The receiver's HTTP status at the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it is tried next, while it is pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A tool approval the CLI waits for, as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PermissionRequest {
    pub request_id: String,
    pub tool_name: String,
    /// The tool's input, as the model wrote it.
    #[schema(value_type = Object)]
    pub input: Value,
    pub tool_use_id: Option<String>,
    pub description: Option<String>,
    /// The CLI's suggested permission updates (shown, never applied by an answer).
    #[schema(value_type = Vec<Object>)]
    pub suggestions: Value,
    pub expires_at: DateTime<Utc>,
}
