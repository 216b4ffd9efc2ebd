//! What an instance shares with the other instances of one database, whichever runs an agent:
//! actions go to the instance that runs it, live events are announced to all, and the limits
//! that guard the subscription hold across them. The PostgreSQL backend implements it
//! (`crate::store`); a single instance has none.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::agent::error::ErrorKind;
use crate::agent::ports::store::{AgentRecord, StoreFuture};

/// An action on an agent, for the instance that runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The client that asked, as the store keeps it.
    pub owner: String,
    pub agent_id: Uuid,
    pub action: Action,
}

/// The actions on a running agent that only the instance running it can take. Bodies travel
/// as the client sent them and are checked there.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Stop,
    Delete,
    Message { body: Value },
    Interrupt,
    Close,
    Update { body: Value },
    Permissions,
    Answer { request_id: String, body: Value },
}

/// What the instance that runs the agent answered: the result as JSON, or its refusal.
pub type Answer = Result<Value, Refusal>;

/// A refusal of the instance that runs the agent, as its client would have had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
}

/// An action another instance forwarded here, and where its answer goes.
pub struct Incoming {
    pub forwarded: Forwarded,
    pub reply: Box<dyn FnOnce(Answer) + Send>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("forwarded", &self.forwarded)
            .finish_non_exhaustive()
    }
}

/// What became of an agent's admission across the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Recorded: it counts from now on.
    Yes,
    /// Its owner already runs as many agents as it may.
    TooMany,
    /// This agent of its owner still runs on the session.
    SessionInUse(Uuid),
}

/// Why a session cannot be resumed on this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHere {
    /// It was larger than the bound, so only the instance that ran it has its file.
    TooLarge { instance: String },
}

pub trait Cluster: Send + Sync + fmt::Debug + 'static {
    /// Sends an action to `instance` and waits up to `wait` for its answer. None: it did not
    /// take the action in that time, and the action is withdrawn, so it is never done. An
    /// instance that took it in time is waited for once more as long.
    fn forward(
        &self,
        instance: &str,
        forwarded: Forwarded,
        wait: Duration,
    ) -> StoreFuture<'_, Option<Answer>>;

    /// The actions other instances send here; the first call takes them, later ones get None.
    fn incoming(&self) -> Option<mpsc::Receiver<Incoming>>;

    /// Changes each time new events of the agent are written, by whichever instance runs it.
    fn watch(&self, agent_id: Uuid) -> watch::Receiver<()>;

    /// Records a new agent unless its owner already runs `max` agents across all instances,
    /// or, when the record names a session, another agent of its owner still runs on it.
    fn admit(&self, record: AgentRecord, max: Option<usize>) -> StoreFuture<'_, Admitted>;

    /// Tells every instance the subscription is rate limited until `until`.
    fn share_rate_limit(&self, until: DateTime<Utc>);

    /// Until when another instance found the subscription rate limited.
    fn rate_limited_until(&self) -> Option<DateTime<Utc>>;

    /// Keeps the session's file (after a turn), as it is at `file` now, for any instance to
    /// resume it.
    fn save_session(&self, session: Uuid, file: PathBuf) -> StoreFuture<'_, ()>;

    /// Puts the session's kept file at `file` before the CLI resumes it, unless the one there
    /// is the version kept.
    fn restore_session(&self, session: Uuid, file: PathBuf)
    -> StoreFuture<'_, Result<(), NotHere>>;
}
