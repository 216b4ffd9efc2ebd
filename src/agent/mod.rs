//! The agent core: what an agent is and what may be done with it, whoever asks. An agent is one
//! run of the CLI, from a checked request to its last event, kept for a while after.
//!
//! It knows nothing of HTTP: the edge hands it a client and a request, and gets back views,
//! readers of events, and domain errors. It runs processes through [`crate::process`].

mod conversation;
mod error;
mod events;
mod journal;
mod json_line;
mod keys;
mod launch;
mod log;
mod message;
mod policy;
mod rate_limit;
mod request;
mod sessions;
mod state;
mod status;
mod stop;
mod table;
mod view;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use conversation::{MAX_WAITING, PermissionAnswer, PermissionRequest};
pub use error::{CliProblem, Error};
pub use events::{Event, RunSummary};
pub use keys::{ApiKeys, Client, KeysError, MIN_KEY_LEN};
pub use launch::Launched;
pub use log::{LogReader, Read};
pub use message::{MessageContent, MessageRequest};
pub use policy::{PermissionMode, ToolList, ToolPolicy, parse_list};
pub use request::{AgentRequest, AgentUpdate, Run, parse_model};
pub use state::Settings;
pub use status::{AgentKind, AgentStatus, FinalStatus, StopReason};
pub use stop::{StopOnDrop, StopSignal};
pub use table::{Admission, Retention};
pub use view::{AgentDetail, AgentInfo, AgentListItem};

use crate::metrics::Metrics;
use crate::process::ProcessGroup;
use log::SharedBytes;
use rate_limit::RateLimitGate;
use state::Core;
use table::AgentTable;

/// The agents of one server. Cheap to clone: every clone is the same agents.
#[derive(Debug, Clone)]
pub struct Agents {
    core: Arc<Core>,
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
            client_approvals: settings.client_approvals,
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

    pub fn list(&self, client: Client) -> Vec<AgentListItem> {
        self.core.table.list(client)
    }

    /// Sends a message to an interactive agent of `client`: it runs at once, or as a turn of
    /// its own after those before it. Returns how many turns run before it.
    pub fn send_message(
        &self,
        client: Client,
        agent_id: Uuid,
        message: MessageRequest,
    ) -> Result<u64, Error> {
        let conversation = self.core.table.conversation(client, agent_id)?;
        let content = MessageContent::check(message.content, self.core.settings.max_image_bytes)?;
        conversation.send(&content)
    }

    /// Interrupts an interactive agent's running turn; returns how many messages still wait.
    pub async fn interrupt(&self, client: Client, agent_id: Uuid) -> Result<u64, Error> {
        self.core
            .table
            .conversation(client, agent_id)?
            .interrupt()
            .await
    }

    /// Closes an interactive agent's input: it finishes its turns and ends.
    pub fn close(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        self.core.table.conversation(client, agent_id)?.close()
    }

    /// Changes an interactive agent's model or permission mode; returns what the CLI confirmed,
    /// by field.
    pub async fn update(
        &self,
        client: Client,
        agent_id: Uuid,
        update: AgentUpdate,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let conversation = self.core.table.conversation(client, agent_id)?;
        let settings = &self.core.settings;
        let (model, mode) = update.check(settings.default_model.as_deref(), &settings.policy)?;
        let mut confirmed = serde_json::Map::new();
        if let Some(model) = model {
            confirmed.insert(
                "model".into(),
                conversation.set_model(model.as_deref()).await?,
            );
        }
        if let Some(mode) = mode {
            confirmed.insert(
                "permission_mode".into(),
                conversation.set_permission_mode(mode).await?,
            );
        }
        Ok(confirmed)
    }

    /// The tool approvals an interactive agent of `client` waits for.
    pub fn permissions(
        &self,
        client: Client,
        agent_id: Uuid,
    ) -> Result<Vec<PermissionRequest>, Error> {
        match self.core.table.conversation(client, agent_id) {
            Ok(conversation) => Ok(conversation.pending_permissions()),
            // An agent that has ended waits for nothing.
            Err(Error::Conflict(_)) if self.detail(client, agent_id).is_ok() => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// A client's answer to one of its agent's tool approvals.
    pub fn answer_permission(
        &self,
        client: Client,
        agent_id: Uuid,
        request_id: &str,
        answer: PermissionAnswer,
    ) -> Result<(), Error> {
        self.core
            .table
            .conversation(client, agent_id)?
            .answer(request_id, answer)
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
