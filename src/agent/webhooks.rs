//! An agent's webhook events: made when it ends and when it waits for a tool approval, and put
//! in the store's outbox. The app's delivery worker signs and sends them from there, so an
//! event outlives this process and is sent by whichever instance gets to it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::agent::admission::keys::Client;
use crate::agent::ports::store::{AgentRecord, Store, WebhookEvent};
use crate::agent::status::{AgentStatus, FinalStatus};
use crate::agent::usage::ModelUsage;
use crate::agent::view::PermissionRequest;

/// The most of a result's text an event carries: a receiver that wants all of it asks
/// `GET /agent/{id}`.
const RESULT_TEXT_BYTES: usize = 4096;

/// Where one agent's events go.
#[derive(Debug)]
pub struct Webhook {
    store: Arc<dyn Store>,
    /// Wakes the delivery worker.
    wake: Arc<tokio::sync::Notify>,
    url: Arc<str>,
    agent_id: Uuid,
    owner: Client,
}

/// An event's body, as every attempt sends it.
#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    /// The event's id, also in the `X-Claude-Proxy-Delivery` header: the same on every
    /// attempt, so a receiver drops the repeats of an at-least-once delivery.
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: DateTime<Utc>,
    data: &'a T,
}

#[derive(Serialize)]
struct Ended<'a> {
    agent_id: Uuid,
    status: AgentStatus,
    result: Summary,
    usage: &'a [ModelUsage],
}

/// What a receiver most likely wants of the result line.
#[derive(Serialize)]
struct Summary {
    /// The result's text, cut to its first 4 KiB (at a character's end).
    text: Option<String>,
    text_truncated: bool,
    subtype: Option<String>,
    is_error: Option<bool>,
    total_cost_usd: Option<f64>,
    num_turns: Option<u64>,
    duration_ms: Option<u64>,
    exit_code: Option<i32>,
}

#[derive(Serialize)]
struct Asked<'a> {
    agent_id: Uuid,
    status: AgentStatus,
    permission: &'a PermissionRequest,
}

impl Webhook {
    pub fn new(
        store: Arc<dyn Store>,
        wake: Arc<tokio::sync::Notify>,
        url: Arc<str>,
        agent_id: Uuid,
        owner: Client,
    ) -> Self {
        Self {
            store,
            wake,
            url,
            agent_id,
            owner,
        }
    }

    /// The agent waits for the client's answer to a tool approval.
    pub fn permission_requested(&self, permission: &PermissionRequest) {
        let asked = event(
            &self.url,
            self.agent_id,
            self.owner,
            "permission.requested",
            &Asked {
                agent_id: self.agent_id,
                // A turn runs, held at the tool until the answer (`waiting` is an agent with
                // no turn running).
                status: AgentStatus::Running,
                permission,
            },
        );
        if let Some(asked) = asked {
            self.put(asked);
        }
    }

    /// The agent has ended, as `record` says.
    pub fn ended(&self, record: &AgentRecord, usage: &[ModelUsage]) {
        if let Some(event) = ended_event(record, usage, &self.url) {
            self.put(event);
        }
    }

    fn put(&self, event: WebhookEvent) {
        self.store.webhook(event);
        self.wake.notify_one();
    }
}

/// The event of an agent that has ended, as `record` says: `agent.completed`, or
/// `agent.failed` for any other end (failed, stopped, timed out; its status says which). Also
/// made by the store for an agent whose proxy died, as it records its end.
pub fn ended_event(record: &AgentRecord, usage: &[ModelUsage], url: &str) -> Option<WebhookEvent> {
    let status = record.info.status;
    let kind = match status {
        AgentStatus::Ended(FinalStatus::Completed) => "agent.completed",
        _ => "agent.failed",
    };
    let line: Option<serde_json::Value> = record
        .result
        .as_ref()
        .and_then(|line| serde_json::from_slice(line).ok());
    let field = |name: &str| line.as_ref().and_then(|line| line.get(name));
    let (text, text_truncated) = match field("result").and_then(|t| t.as_str()) {
        Some(text) => {
            let cut = cut_at(text, RESULT_TEXT_BYTES);
            (Some(cut.to_owned()), cut.len() < text.len())
        }
        None => (None, false),
    };
    let agent_id = record.info.agent_id;
    event(
        url,
        agent_id,
        record.owner,
        kind,
        &Ended {
            agent_id,
            status,
            result: Summary {
                text,
                text_truncated,
                subtype: field("subtype").and_then(|s| s.as_str()).map(str::to_owned),
                is_error: record.is_error,
                total_cost_usd: record.total_cost_usd,
                num_turns: record.num_turns,
                duration_ms: record.info.ended_at.map(|ended| {
                    u64::try_from((ended - record.info.started_at).num_milliseconds()).unwrap_or(0)
                }),
                exit_code: record.info.exit_code,
            },
            usage,
        },
    )
}

/// An event for the outbox; None (and an error logged) if its body cannot be made.
fn event(
    url: &str,
    agent_id: Uuid,
    owner: Client,
    kind: &'static str,
    data: &impl Serialize,
) -> Option<WebhookEvent> {
    let id = Uuid::new_v4();
    let created_at = Utc::now();
    let body = Body {
        id,
        kind,
        created_at,
        data,
    };
    let body = match serde_json::to_string(&body) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(%err, event = kind, "a webhook event could not be made");
            return None;
        }
    };
    Some(WebhookEvent {
        id,
        agent_id,
        owner,
        event: kind.to_owned(),
        url: url.to_owned(),
        body,
        created_at,
        attempts: 0,
    })
}

/// `text`'s longest start of at most `max` bytes that ends at a character's end.
fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_characters_end() {
        assert_eq!(cut_at("héllo", 2), "h");
        assert_eq!(cut_at("héllo", 3), "hé");
        assert_eq!(cut_at("hi", 10), "hi");
    }
}
