//! The agent core: what an agent is and what may be done with it, whoever asks. An agent is one
//! run of the CLI, from a checked request to its last event, kept for a while after.
//!
//! It knows nothing of HTTP: the edge hands it a client and a request, and gets back views,
//! readers of events, and domain errors. It runs processes through [`crate::process`].

mod error;
mod events;
mod json_line;
mod keys;
mod launch;
mod log;
mod policy;
mod rate_limit;
mod request;
mod sessions;
mod status;
mod stop;
mod table;
mod view;

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use error::{CliProblem, Error};
pub use events::{Event, RunSummary};
pub use keys::{ApiKeys, Client, KeysError, MIN_KEY_LEN};
pub use launch::Launched;
pub use log::{LogReader, Read};
pub use policy::{PermissionMode, ToolList, ToolPolicy, parse_list};
pub use request::{AgentRequest, Run, parse_model};
pub use status::{AgentKind, AgentStatus, FinalStatus, StopReason};
pub use stop::{StopOnDrop, StopSignal};
pub use table::{Admission, Retention};
pub use view::{AgentDetail, AgentInfo};

use crate::metrics::Metrics;
use crate::process::{self, ProcessGroup};
use log::SharedBytes;
use rate_limit::RateLimitGate;
use sessions::SessionBook;
use table::AgentTable;

/// What the core is given once, at start-up.
#[derive(Debug)]
pub struct Settings {
    /// The CLI: a path, or a name looked up on PATH.
    pub cli: PathBuf,
    /// The CLI's whole environment.
    pub cli_env: Arc<Vec<(OsString, OsString)>>,
    pub limits: process::Limits,
    pub default_model: Option<String>,
    pub policy: ToolPolicy,
    pub admission: Admission,
    pub retention: Retention,
    /// Most bytes of events kept per agent.
    pub agent_log_bytes: usize,
    /// ... and by all agents together.
    pub logs_total_bytes: usize,
}

/// The agents of one server. Cheap to clone: every clone is the same agents.
#[derive(Debug, Clone)]
pub struct Agents {
    core: Arc<Core>,
}

#[derive(Debug)]
struct Core {
    settings: Settings,
    table: Arc<AgentTable>,
    sessions: Mutex<SessionBook>,
    rate_limit: RateLimitGate,
    /// The bytes held by all agents' logs (and kept results) together.
    all_logs: SharedBytes,
    metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down; every agent's stop signal is a child of it.
    shutdown: CancellationToken,
    /// Every agent's task, so a shutdown can wait until each CLI has been reaped.
    tasks: TaskTracker,
}

impl Agents {
    /// `shutdown`, once cancelled, stops every agent.
    pub fn new(settings: Settings, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        let all_logs = SharedBytes::default();
        Self {
            core: Arc::new(Core {
                table: AgentTable::new(settings.admission, settings.retention, all_logs.clone()),
                settings,
                sessions: Mutex::default(),
                rate_limit: RateLimitGate::default(),
                all_logs,
                metrics,
                shutdown,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Checks a request of `owner` against the operator's settings.
    pub fn check(
        &self,
        owner: Client,
        kind: AgentKind,
        request: AgentRequest,
    ) -> Result<Run, Error> {
        let settings = &self.core.settings;
        let context = request::Context {
            owner,
            kind,
            default_model: settings.default_model.as_deref(),
            policy: &settings.policy,
        };
        request.check(context, |session| {
            crate::lock(&self.core.sessions).home(owner, session)
        })
    }

    /// Starts an agent for a checked run.
    pub fn launch(&self, run: Run) -> Result<Launched, Error> {
        launch::launch(&self.core, run)
    }

    /// Stops a running agent of `client`; the future resolves once it has ended (at most the
    /// grace period after SIGTERM).
    pub fn stop(
        &self,
        client: Client,
        agent_id: Uuid,
    ) -> Result<impl Future<Output = ()> + use<>, Error> {
        let ended = self.core.table.stop(client, agent_id)?;
        Ok(async move { ended.cancelled().await })
    }

    /// Stops the agent if it runs, and forgets it.
    pub async fn delete(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        self.core.table.forget(client, agent_id).await
    }

    pub fn list(&self, client: Client) -> Vec<AgentInfo> {
        self.core.table.list(client)
    }

    pub fn detail(&self, client: Client, agent_id: Uuid) -> Result<AgentDetail, Error> {
        self.core.table.detail(client, agent_id)
    }

    /// A reader of the agent's events after `cursor`.
    pub fn events(&self, client: Client, agent_id: Uuid, cursor: u64) -> Result<LogReader, Error> {
        Ok(self.core.table.log(client, agent_id)?.reader(cursor))
    }

    /// The agents holding a CLI process now.
    pub fn running(&self) -> usize {
        self.core.table.running()
    }

    /// The CLI as configured: a path, or a name looked up on PATH.
    pub fn cli(&self) -> &Path {
        &self.core.settings.cli
    }

    /// Where the CLI would be found now: the path itself when it names a file, else the first
    /// executable of that name on PATH.
    pub fn find_cli(&self) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let program = self.cli();
        let executable = |p: &Path| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        if program.components().count() > 1 {
            return executable(program).then(|| program.to_path_buf());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| executable(p))
    }

    /// Forgets the finished agents past their retention time. Reads never show them; this
    /// gives their memory back.
    pub fn forget_expired(&self) {
        self.core.table.forget_expired();
    }

    /// How often [`Agents::forget_expired`] is worth calling.
    pub fn sweep_interval(&self) -> Duration {
        (self.core.settings.retention.keep_for / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Stops every agent (the shutdown token is cancelled by now) and waits until each CLI is
    /// reaped, or `deadline` has passed: then what is left gets SIGKILL.
    pub async fn shut_down(&self, deadline: tokio::time::Instant) {
        tracing::info!(agents = self.running(), "shutting down");
        self.core.shutdown.cancel();
        self.core.tasks.close();
        if tokio::time::timeout_at(deadline, self.core.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("agents still running at the shutdown timeout; killing them");
            for pid in self.core.table.pids() {
                ProcessGroup::of_leader(pid).signal(Signal::SIGKILL);
            }
        }
    }
}
