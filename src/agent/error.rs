//! What the agent core refuses, and why. Each error says what to do about it; the HTTP edge
//! picks the status code.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of a request that cannot be used as it is.
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },

    /// A request for more than the operator's policy allows, or for another client's session.
    #[error("{0}")]
    Forbidden(String),

    /// A compatible API's request names a model that is neither an alias, nor `claude-*`,
    /// nor in PROXY_MODEL_MAP.
    #[error(
        "The model `{0}` does not exist here: use sonnet, opus, haiku, a claude-* name, or a name in PROXY_MODEL_MAP"
    )]
    UnknownModel(String),

    /// No conversation of this client's compatible requests is known by that id.
    #[error("No conversation {0:?} of this key's is remembered")]
    ConversationNotFound(String),

    /// No response of this client's is kept by that id (never kept, forgotten, or another
    /// key's).
    #[error("Response with id '{0}' not found")]
    ResponseNotFound(String),

    /// No agent of this client has that id (another client's agent is not found either).
    #[error("Agent {0} not found")]
    NotFound(Uuid),

    #[error(
        "{max_agents} agents are already running (PROXY_MAX_AGENTS); retry later, stop one, or raise the limit"
    )]
    TooManyAgents { max_agents: usize },

    #[error(
        "this client key already runs {max} agents (PROXY_MAX_AGENTS_PER_KEY); retry later or stop one"
    )]
    TooManyAgentsForKey { max: usize },

    #[error("the Claude subscription is rate limited until {until}; retry after that")]
    RateLimited { until: DateTime<Utc> },

    #[error(
        "budget_exceeded: this key has spent its budget of {budget} (PROXY_KEY_BUDGETS) until {until}; retry after that"
    )]
    BudgetExceeded {
        budget: String,
        until: DateTime<Utc>,
    },

    /// Not possible in the agent's present state: it is not interactive, it has ended, the CLI
    /// refused, or a permission request was already settled.
    #[error("{0}")]
    Conflict(String),

    /// Another agent of the client still runs on the session: two CLIs would write its file.
    #[error(
        "session_id: session {session} is in use by agent {agent_id}, which still runs; resume it once that agent has ended (or stop it first)"
    )]
    SessionInUse { session: Uuid, agent_id: Uuid },

    /// The server shut down while the run waited in the queue.
    #[error("the server is shutting down; retry on another instance or once it is back")]
    ShuttingDown,

    #[error("{max} messages already wait for this agent; retry once a turn has ended")]
    QueueFull { max: usize },

    #[error("this agent has no permission request {0}")]
    PermissionNotFound(String),

    #[error("the CLI did not answer within {} s", waited.as_secs_f64())]
    CliDidNotAnswer { waited: std::time::Duration },

    #[error(
        "{problem}. Install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_CLI_PATH to the path of the `claude` program."
    )]
    CliUnavailable { problem: CliProblem },

    /// The refusal of the instance that runs the agent, as it gave it.
    #[error("{message}")]
    Elsewhere { kind: ErrorKind, message: String },

    #[error(
        "the instance {instance} that runs this agent did not answer within {} s (PROXY_FORWARD_TIMEOUT_SECS); retry",
        waited.as_secs_f64()
    )]
    InstanceDidNotAnswer {
        instance: String,
        waited: std::time::Duration,
    },

    /// No watchdog process runs, so a CLI started now would outlive a killed server.
    #[error(
        "no agent is started while the proxy has no watchdog process ({0}); it keeps trying to start one: see /health"
    )]
    NoWatchdog(String),

    /// A client's workspace or home cannot be made.
    #[error("{} cannot be made: {source}", path.display())]
    Workspace {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A position in an agent's events past its last one, when the agent has ended: no event
    /// will ever follow it.
    #[error("{after} is past the last event, {last}: the agent has ended")]
    PastLastEvent { after: u64, last: u64 },

    /// The database that instances share cannot be reached.
    #[error("the shared database cannot be reached: {0}; retry")]
    SharedStore(String),
}

/// What kind of refusal an error is, whichever instance gave it: the edge picks the status
/// code from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Invalid,
    Forbidden,
    NotFound,
    TooMany,
    Conflict,
    CliDidNotAnswer,
    CliUnavailable,
    InstanceDidNotAnswer,
    SharedStore,
    PastTheEnd,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidField { .. } => ErrorKind::Invalid,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::NotFound(_)
            | Error::PermissionNotFound(_)
            | Error::UnknownModel(_)
            | Error::ConversationNotFound(_)
            | Error::ResponseNotFound(_) => ErrorKind::NotFound,
            Error::TooManyAgents { .. }
            | Error::TooManyAgentsForKey { .. }
            | Error::RateLimited { .. }
            | Error::BudgetExceeded { .. }
            | Error::QueueFull { .. } => ErrorKind::TooMany,
            Error::Conflict(_) | Error::SessionInUse { .. } => ErrorKind::Conflict,
            Error::CliDidNotAnswer { .. } => ErrorKind::CliDidNotAnswer,
            Error::CliUnavailable { .. }
            | Error::Workspace { .. }
            | Error::NoWatchdog(_)
            | Error::ShuttingDown => ErrorKind::CliUnavailable,
            Error::Elsewhere { kind, .. } => *kind,
            Error::InstanceDidNotAnswer { .. } => ErrorKind::InstanceDidNotAnswer,
            Error::SharedStore(_) => ErrorKind::SharedStore,
            Error::PastLastEvent { .. } => ErrorKind::PastTheEnd,
        }
    }
}

/// Why the CLI could not be started, and where it was looked for.
#[derive(Debug, thiserror::Error)]
pub enum CliProblem {
    #[error("the Claude Code CLI was not found {}", looked_for(.0))]
    NotFound(PathBuf),
    #[error("the Claude Code CLI {} is not executable", looked_for(.0))]
    NotExecutable(PathBuf),
    #[error("the Claude Code CLI {} could not be started: {source}", looked_for(.program))]
    Other {
        program: PathBuf,
        source: std::io::Error,
    },
}

impl CliProblem {
    pub fn of(program: PathBuf, err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => CliProblem::NotFound(program),
            std::io::ErrorKind::PermissionDenied => CliProblem::NotExecutable(program),
            _ => CliProblem::Other {
                program,
                source: err,
            },
        }
    }
}

/// "at /path" for a path, "as `name` on PATH" for a bare name.
fn looked_for(program: &std::path::Path) -> String {
    if program.components().count() > 1 {
        format!("at {}", program.display())
    } else {
        format!("as `{}` on PATH", program.display())
    }
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
