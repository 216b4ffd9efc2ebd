//! What the agents of one server share: the settings they were given, the table, the session
//! book, the rate-limit gate, the log budget, the metrics and the tasks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::admission::keys::Client;
use crate::agent::admission::policy::ToolPolicy;
use crate::agent::admission::rate_limit::{LimitsSeen, RateLimitGate};
use crate::agent::admission::sessions::SessionBook;
use crate::agent::error::Error;
use crate::agent::lifecycle::pool::{WarmPool, WarmSettings};
use crate::agent::lifecycle::table::{Admission, AgentTable, Retention};
use crate::agent::logs::log::SharedBytes;
use crate::agent::ports::cluster::Cluster;
use crate::agent::ports::gateway::Gateway;
use crate::agent::ports::store::Store;
use crate::metrics::Metrics;
use crate::process;

/// What the core is given once, at start-up.
#[derive(Debug)]
pub struct Settings {
    /// The CLI: a path, or a name looked up on PATH.
    pub cli: PathBuf,
    /// The CLI's whole environment, but the gateway's address and its agent's credential.
    pub cli_env: Arc<Vec<(OsString, OsString)>>,
    /// The environment of the proxy's own `claude auth status`, with the operator's credential.
    pub cli_login_env: Arc<Vec<(OsString, OsString)>>,
    /// Where every CLI reaches the API, with a credential of its agent's own.
    pub gateway: Arc<dyn Gateway>,
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
    /// Where the CLI keeps its sessions' files (`$HOME/.claude`, or `CLAUDE_CONFIG_DIR`),
    /// when it runs unconfined.
    pub claude_config_dir: Option<PathBuf>,
    /// Each CLI runs in this sandbox; None: unconfined.
    pub sandbox: Option<Arc<process::Sandbox>>,
    /// Where each client's home is made for its sandboxed CLIs (`<PROXY_DATA_DIR>/homes`).
    pub homes: PathBuf,
    /// Where the system prompts of the compatible APIs' agents are written for their CLI
    /// (`<PROXY_DATA_DIR>/prompts`), each removed when its agent ends.
    pub prompts: PathBuf,
    /// Each client key has a workspace of its own under the workdir.
    pub workspace_per_key: bool,
    /// Client keys are set: a session the proxy does not know is nobody's to resume.
    pub known_sessions_only: bool,
    /// The compatible APIs' models, tools and system prompt.
    pub compat: crate::agent::CompatSettings,
    /// How long a chat run waits for its client's tool results (PROXY_TOOL_RESULT_TIMEOUT_SECS).
    pub tool_result_timeout: std::time::Duration,
    /// The pool of CLIs started ahead of their runs.
    pub warm: WarmSettings,
    /// Budgets per key (PROXY_KEY_BUDGETS).
    pub budgets: Vec<crate::agent::lifecycle::budget::Budget>,
    /// Where agents' webhook events may go (PROXY_WEBHOOK_URLS, PROXY_WEBHOOK_URL).
    pub webhooks: crate::agent::admission::webhook::WebhookPolicy,
    /// Told when an event is put in the store's outbox: the delivery worker wakes.
    pub webhook_wake: Arc<tokio::sync::Notify>,
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
    /// The subscription's windows, as the API's last answer that told them said.
    pub limits_seen: LimitsSeen,
    /// What each key spent against its budgets.
    pub budget_book: crate::agent::lifecycle::budget::BudgetBook,
    /// The agents whose request the gateway refused for their key's budget, until their end.
    pub over_budget:
        Mutex<std::collections::HashMap<uuid::Uuid, crate::agent::lifecycle::budget::Over>>,
    /// What the CLI last said of its login.
    pub login: crate::agent::lifecycle::login::LoginCache,
    /// The compatible APIs' conversations, and the sessions that answered them.
    pub chat_memory: crate::agent::chat::memory::ChatMemory,
    /// The client tool servers of chat runs, and the runs that wait for tool results.
    pub client_tools: Arc<crate::agent::chat::client_tools::ClientTools>,
    /// Where this proxy listens (`http://127.0.0.1:PORT`), once it does.
    pub own_url: std::sync::OnceLock<String>,
    /// The Responses API's kept responses, and the sessions that gave them.
    pub responses: crate::agent::chat::responses::ResponseMemory,
    /// The bytes held by all agents' logs (and kept results) together.
    pub all_logs: SharedBytes,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down; every agent's stop signal is a child of it.
    pub shutdown: CancellationToken,
    /// Every agent's task, so a shutdown can wait until each CLI has been reaped.
    pub tasks: TaskTracker,
    /// The CLIs started ahead of their runs (their keepers are among `tasks`).
    pub pool: Arc<WarmPool>,
}

impl Core {
    /// The client's own workspace, made when missing; None when clients share the workdir.
    pub fn workspace_of(&self, owner: Client) -> Result<Option<Arc<Path>>, Error> {
        let Client::Key(id) = owner else {
            return Ok(None);
        };
        if !self.settings.workspace_per_key {
            return Ok(None);
        }
        let dir = self.settings.policy.workdir.join(id.to_string());
        made(dir).map(|dir| Some(Arc::from(dir)))
    }

    /// The client's home for its sandboxed CLIs, made when missing.
    pub fn home_of(&self, owner: Client) -> Result<PathBuf, Error> {
        made(self.settings.homes.join(owner.to_stored()))
    }

    /// Where the CLI of `owner` keeps its sessions' files, as the host sees them.
    pub fn claude_config_dir(&self, owner: Client) -> Option<PathBuf> {
        if self.settings.sandbox.is_some() {
            return Some(crate::cli::home::config_dir_in(
                &self.settings.homes.join(owner.to_stored()),
            ));
        }
        self.settings.claude_config_dir.clone()
    }
}

fn made(dir: PathBuf) -> Result<PathBuf, Error> {
    match std::fs::create_dir_all(&dir) {
        Ok(()) => Ok(dir),
        Err(source) => Err(Error::Workspace { path: dir, source }),
    }
}
