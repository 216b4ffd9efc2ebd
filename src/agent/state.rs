//! What the agents of one server share: the settings they were given, the table, the session
//! book, the rate-limit gate, the log budget, the metrics and the tasks.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cluster::Cluster;
use super::log::SharedBytes;
use super::policy::ToolPolicy;
use super::rate_limit::RateLimitGate;
use super::sessions::SessionBook;
use super::store::Store;
use super::table::{Admission, AgentTable, Retention};
use crate::metrics::Metrics;
use crate::process;

/// What the core is given once, at start-up.
#[derive(Debug)]
pub struct Settings {
    /// The CLI: a path, or a name looked up on PATH.
    pub cli: PathBuf,
    /// The CLI's whole environment.
    pub cli_env: Arc<Vec<(OsString, OsString)>>,
    pub limits: process::Limits,
    pub default_model: Option<String>,
    pub policy: Arc<ToolPolicy>,
    pub admission: Admission,
    pub retention: Retention,
    /// Most bytes of events kept per agent.
    pub agent_log_bytes: usize,
    /// ... and by all agents together.
    pub logs_total_bytes: usize,
    /// Longest an interactive agent waits with no turn running before it is closed.
    pub interactive_idle: Duration,
    /// Longest a tool approval waits for its answer before it is denied.
    pub permission_timeout: Duration,
    /// Clients may answer tool approvals.
    pub client_approvals: bool,
    /// Largest image a message may hold, decoded.
    pub max_image_bytes: usize,
    /// This instance, among those that share a store.
    pub instance_id: Arc<str>,
    /// Where agents are kept beyond this process; None: in memory only.
    pub store: Option<Arc<dyn Store>>,
    /// The other instances of the store's database; None: this instance is its only one.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// Longest an action waits for the instance that runs its agent.
    pub forward_timeout: Duration,
    /// Where the CLI keeps its sessions' files (`$HOME/.claude`, or `CLAUDE_CONFIG_DIR`).
    pub claude_config_dir: Option<PathBuf>,
    /// Client keys are set: a session the proxy does not know is nobody's to resume.
    pub known_sessions_only: bool,
}

#[derive(Debug)]
pub struct Core {
    pub settings: Settings,
    /// The settings' store, at hand.
    pub store: Option<Arc<dyn Store>>,
    /// ... and cluster.
    pub cluster: Option<Arc<dyn Cluster>>,
    pub table: Arc<AgentTable>,
    pub sessions: Mutex<SessionBook>,
    pub rate_limit: RateLimitGate,
    /// The bytes held by all agents' logs (and kept results) together.
    pub all_logs: SharedBytes,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down; every agent's stop signal is a child of it.
    pub shutdown: CancellationToken,
    /// Every agent's task, so a shutdown can wait until each CLI has been reaped.
    pub tasks: TaskTracker,
}
