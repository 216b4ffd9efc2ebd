//! The payloads of the proxy's own events (`queued`, `agent`, `error`, `gap`, `proxy_raw`,
//! `permission_*`, `complete`): each is made by serializing one of these, and the OpenAPI
//! document describes the same types. (The CLI's lines pass as it wrote them; their shapes are
//! `cli::stdout`'s.)

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::status::FinalStatus;
use super::view::PermissionRequest;
use crate::literal::literal;

literal!(AgentType, "agent");
literal!(ErrorType, "error");
literal!(GapType, "gap");
literal!(ProxyRawType, "proxy_raw");
literal!(PermissionRequestType, "permission_request");
literal!(PermissionDecisionType, "permission_decision");
literal!(PermissionCancelledType, "permission_cancelled");
literal!(CompleteType, "complete");
literal!(QueuedType, "queued");

/// An event's payload as it goes on the wire: one line of JSON whose keys are in alphabetical
/// order (through a `serde_json::Value`, whose map sorts them), as these events have always
/// been written. They are rare (a few per run), so the detour costs nothing that matters.
pub fn wire(body: &impl Serialize) -> Bytes {
    let value = serde_json::to_value(body).expect("an event's payload serializes");
    Bytes::from(serde_json::to_vec(&value).expect("a JSON value serializes"))
}

/// A payload that others than the run's [`EventMaker`](super::events::EventMaker) log (a
/// tool approval's), with its event's name.
pub trait NamedEvent: Serialize {
    const NAME: &'static str;
}

impl NamedEvent for PermissionRequestEvent {
    const NAME: &'static str = "permission_request";
}

impl NamedEvent for PermissionDecisionEvent {
    const NAME: &'static str = "permission_decision";
}

impl NamedEvent for PermissionCancelledEvent {
    const NAME: &'static str = "permission_cancelled";
}

/// An error the proxy tells of while the run goes on or as it ends (`budget_exceeded`).
impl NamedEvent for ErrorEvent {
    const NAME: &'static str = "error";
}

/// `event: agent`, first: the agent's id and the CLI's pid.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: AgentType,
    pub agent_id: Uuid,
    pub pid: u32,
}

/// `event: error`: a fault, as `code` says (exit_nonzero, no_result, line_too_long, timeout,
/// idle_timeout, stopped, shutdown, wait_failed, rate_limited, budget_exceeded, interrupted,
/// ...).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ErrorEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: ErrorType,
    pub code: &'static str,
    pub message: String,
    /// Of `exit_nonzero`: the CLI's exit code (null when a signal ended it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i32>)]
    pub exit_code: Option<Option<i32>>,
    /// Of `exit_nonzero`: the signal that ended the CLI, such as SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub signal: Option<Option<String>>,
    /// Of `exit_nonzero`: the last 4 KiB the CLI wrote on stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Of `line_too_long`: the line's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Of `line_too_long`: PROXY_MAX_LINE_BYTES.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Of `rate_limited`: when the subscription takes requests again (null: unknown); of
    /// `budget_exceeded`: when the key's budget resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub resets_at: Option<Option<String>>,
}

impl ErrorEvent {
    /// An error with only its code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            ..Self::default()
        }
    }
}

/// `event: gap`: the events `from` to `to` are no longer kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct GapEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: GapType,
    pub from: u64,
    pub to: u64,
}

/// A line of the CLI that is not JSON (or nests too deep), wrapped.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyRawEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: ProxyRawType,
    pub line: String,
}

/// `event: permission_request`: a tool approval the CLI waits for (agents with approvals);
/// answer it with `POST /agent/{agent_id}/permissions/{request_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionRequestEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: PermissionRequestType,
    #[serde(flatten)]
    pub request: PermissionRequest,
}

/// `event: permission_decision`: how a tool approval was answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionDecisionEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: PermissionDecisionType,
    pub request_id: String,
    pub tool_name: String,
    /// allow or deny.
    pub behavior: &'static str,
    /// client or timeout.
    pub decided_by: &'static str,
    /// Of an allow: the input the tool runs with when the answer changed it (null: the
    /// model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub updated_input: Option<Option<Value>>,
    /// Of a deny: what the model is told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Of a deny: whether the turn was ended with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupt: Option<bool>,
}

/// `event: permission_cancelled`: the CLI no longer waits for this approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionCancelledEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: PermissionCancelledType,
    pub request_id: String,
}

/// `event: queued`, before the agent exists (PROXY_QUEUE): the run waits for a place, this
/// far from the front (1: next); sent again each time its position changes. It has no `id`:
/// it is not one of the agent's events, which follow from `agent` once it has a place.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: QueuedType,
    pub position: usize,
}

/// `event: complete`, always last.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteEvent {
    #[serde(rename = "type")]
    #[schema(inline)]
    pub kind: CompleteType,
    pub agent_id: Uuid,
    pub status: FinalStatus,
    /// Null when a signal ended the CLI, or its end could not be learned.
    pub exit_code: Option<i32>,
    /// From its start to its end; for an agent a crash ended, to the last time the dead proxy
    /// wrote of it.
    pub duration_ms: u64,
    /// The signal that ended the CLI, such as SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes clients have always read: keys in alphabetical order.
    #[test]
    fn the_payloads_are_written_as_they_always_were() {
        let agent = AgentEvent {
            kind: AgentType,
            agent_id: Uuid::nil(),
            pid: 42,
        };
        assert_eq!(
            &wire(&agent)[..],
            br#"{"agent_id":"00000000-0000-0000-0000-000000000000","pid":42,"type":"agent"}"#
        );
        let error = ErrorEvent {
            exit_code: Some(None),
            signal: Some(Some("SIGKILL".into())),
            stderr: Some("x".into()),
            ..ErrorEvent::new("exit_nonzero", "the CLI was killed by SIGKILL")
        };
        assert_eq!(
            &wire(&error)[..],
            br#"{"code":"exit_nonzero","exit_code":null,"message":"the CLI was killed by SIGKILL","signal":"SIGKILL","stderr":"x","type":"error"}"#
        );
        let complete = CompleteEvent {
            kind: CompleteType,
            agent_id: Uuid::nil(),
            status: FinalStatus::Completed,
            exit_code: Some(0),
            duration_ms: 7,
            signal: None,
        };
        assert_eq!(
            &wire(&complete)[..],
            br#"{"agent_id":"00000000-0000-0000-0000-000000000000","duration_ms":7,"exit_code":0,"status":"completed","type":"complete"}"#
        );
        let decision = PermissionDecisionEvent {
            kind: PermissionDecisionType,
            request_id: "r".into(),
            tool_name: "Bash".into(),
            behavior: "allow",
            decided_by: "client",
            updated_input: Some(None),
            message: None,
            interrupt: None,
        };
        assert_eq!(
            &wire(&decision)[..],
            br#"{"behavior":"allow","decided_by":"client","request_id":"r","tool_name":"Bash","type":"permission_decision","updated_input":null}"#
        );
    }
}
