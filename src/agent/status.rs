//! The words the proxy uses for an agent's kind and state, with their one string form each:
//! the views, the `complete` event, the metrics' labels and the logs all say them the same way.

use serde::{Serialize, Serializer};

/// How an agent was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// By /agent/stream: its client reads the events as they come.
    Stream,
    /// By /agent/start: it runs in the background.
    Start,
    /// By the OpenAI-compatible `POST /v1/chat/completions`.
    OpenAi,
    /// By the Anthropic-compatible `POST /v1/messages`.
    Anthropic,
}

/// How a run ended, as `complete` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalStatus {
    /// Exit 0 and a result that is not an error.
    Completed,
    /// A non-zero exit, an error result, no result, or an end that could not be learned.
    Failed,
    /// Stopped by a request, by its client going away, or by the shutdown.
    Stopped,
    TimedOut,
}

/// Why an agent was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Someone asked for it (`POST /agent/stop`).
    Requested,
    /// The client reading the stream went away.
    ClientGone,
    /// The server is shutting down.
    Shutdown,
}

/// Where an agent is in its life. An agent holds a process place until it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Its place is taken; its CLI is being spawned.
    Starting,
    Running,
    /// An interactive agent with no turn running: alive, and waiting for a message.
    Waiting,
    /// Told to stop; its CLI has not been reaped yet.
    Stopping,
    Ended(FinalStatus),
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Stream => "stream",
            AgentKind::Start => "start",
            AgentKind::OpenAi => "openai",
            AgentKind::Anthropic => "anthropic",
        }
    }
}

impl FinalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Completed => "completed",
            FinalStatus::Failed => "failed",
            FinalStatus::Stopped => "stopped",
            FinalStatus::TimedOut => "timed_out",
        }
    }
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Requested => "stopped",
            StopReason::ClientGone => "client_gone",
            StopReason::Shutdown => "shutdown",
        }
    }
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Starting => "starting",
            AgentStatus::Running => "running",
            AgentStatus::Waiting => "waiting",
            AgentStatus::Stopping => "stopping",
            AgentStatus::Ended(status) => status.as_str(),
        }
    }

    /// Its CLI process is there (or about to be): it counts toward the limits.
    pub fn holds_process(self) -> bool {
        !matches!(self, AgentStatus::Ended(_))
    }
}

impl AgentKind {
    /// Every kind there is.
    pub const ALL: [AgentKind; 4] = [
        AgentKind::Stream,
        AgentKind::Start,
        AgentKind::OpenAi,
        AgentKind::Anthropic,
    ];

    /// Back from [`AgentKind::as_str`].
    pub fn from_str_opt(s: &str) -> Option<Self> {
        AgentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The string forms, as the API documents them.
fn string_enum(
    description: &str,
    values: impl IntoIterator<Item = &'static str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

impl utoipa::PartialSchema for AgentKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            "How the agent was started: stream (POST /agent/stream), start (POST /agent/start), openai (POST /v1/chat/completions) or anthropic (POST /v1/messages).",
            AgentKind::ALL.map(AgentKind::as_str),
        )
    }
}
impl utoipa::ToSchema for AgentKind {}

impl utoipa::PartialSchema for AgentStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            "Where the agent is in its life; the last four are how it ended.",
            AgentStatus::ALL.map(AgentStatus::as_str),
        )
    }
}
impl utoipa::ToSchema for AgentStatus {}

impl utoipa::PartialSchema for FinalStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            "How the run ended.",
            [
                FinalStatus::Completed,
                FinalStatus::Failed,
                FinalStatus::Stopped,
                FinalStatus::TimedOut,
            ]
            .map(FinalStatus::as_str),
        )
    }
}
impl utoipa::ToSchema for FinalStatus {}

impl AgentStatus {
    /// Every status there is.
    pub const ALL: [AgentStatus; 8] = [
        AgentStatus::Starting,
        AgentStatus::Running,
        AgentStatus::Waiting,
        AgentStatus::Stopping,
        AgentStatus::Ended(FinalStatus::Completed),
        AgentStatus::Ended(FinalStatus::Failed),
        AgentStatus::Ended(FinalStatus::Stopped),
        AgentStatus::Ended(FinalStatus::TimedOut),
    ];

    /// Back from [`AgentStatus::as_str`].
    pub fn from_str_opt(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

macro_rules! serialize_as_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )*};
}

serialize_as_str!(AgentKind, FinalStatus, AgentStatus);

/// Where a webhook event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookState {
    /// Not delivered yet; it will be tried (again).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Its attempts are spent.
    Failed,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Pending => "pending",
            WebhookState::Delivered => "delivered",
            WebhookState::Failed => "failed",
        }
    }

    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(WebhookState::Pending),
            "delivered" => Some(WebhookState::Delivered),
            "failed" => Some(WebhookState::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_serializes_as_its_string() {
        for status in AgentStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        assert_eq!(
            AgentStatus::Ended(FinalStatus::TimedOut).as_str(),
            "timed_out"
        );
        assert_eq!(serde_json::to_value(AgentKind::Start).unwrap(), "start");
    }
}
