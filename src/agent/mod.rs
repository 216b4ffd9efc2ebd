//! The agent core: what an agent is and what may be done with it, whoever asks. An agent is one
//! run of the CLI, from a checked request to its last event, kept for a while after.
//!
//! It knows nothing of HTTP: the edge hands it a client and a request, and gets back views,
//! readers of events, and domain errors. It runs processes through [`crate::process`].

mod admission;
mod chat;
mod conversation;
mod error;
mod event_bodies;
mod events;
mod lifecycle;
mod logs;
mod ports;
mod status;
mod usage;
mod view;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use crate::process::WatchdogStatus;
pub use admission::keys::{ApiKeys, Client};
pub use admission::mcp::{McpCatalog, McpKeys, McpServer};
pub use admission::message::{Block, MessageContent, MessageRequest, check_image_magic};
pub use admission::policy::{PermissionMode, ToolList, ToolPolicy, parse_list};
pub use admission::rate_limit::{SubscriptionLimits, Window};
pub use admission::request::{AgentRequest, AgentUpdate, Run};
pub use admission::run_options::{Effort, parse_model};
pub use admission::webhook::WebhookPolicy;
pub use chat::client_tools::{
    ClientTool, McpAnswer, McpRefusal, Paused, RunGuard, TOOL_PREFIX, ToolCall, ToolResult,
    ToolsGuard,
};
pub use chat::end::{TurnEnd, TurnFailure};
pub use chat::memory::ChatSession;
pub use chat::responses::{ResponseRecord, TokenUsage};
pub use chat::turn::{ChatTurn, CompatSettings, Continuation, ResponseTurn};
pub use conversation::PermissionAnswer;
pub use error::{Error, ErrorKind};
pub use event_bodies::{
    AgentEvent, CompleteEvent, ErrorEvent, GapEvent, GapType, PermissionCancelledEvent,
    PermissionDecisionEvent, PermissionRequestEvent, ProxyRawEvent, QueuedEvent, QueuedType,
};
pub use events::{EVENT_NAMES, Event};
pub use lifecycle::budget::{Budget, parse_budgets};
pub use lifecycle::health::Condition;
pub use lifecycle::launch::{Queued, Start, Waited};
pub use lifecycle::pool::{OperatorShape, WarmSettings, WarmView};
pub use lifecycle::state::Settings;
pub use lifecycle::stop::StopOnDrop;
pub use lifecycle::table::{Admission, Retention};
pub use logs::reader::{EventReader, RemoteReader};
pub use ports::cluster::{
    Action, Admitted, Answer, Cluster, Forwarded, Incoming, NotHere, Refusal,
};
pub use ports::gateway::Gateway;
pub use ports::store::{
    AgentRecord, AttemptOutcome, CONVERSATIONS_PER_KEY, ClaimedWebhooks, ConversationRecord, Store,
    StoreError, StoreFuture, StoreHealth, StoredEvents, WebhookAttempt, WebhookClaim, WebhookEvent,
    interrupted_events,
};
pub use status::{AgentKind, AgentStatus, FinalStatus, WebhookState};
pub use usage::{ModelUsage, Usage, UsageBy, UsageEntry, UsageQuery, UsageReport, UsageRow};
pub use view::{AgentDetail, AgentInfo, AgentListItem, PermissionRequest, WebhookDelivery};
pub use webhooks::ended_event as ended_webhook_event;

use crate::metrics::Metrics;
use crate::process::{self, ProcessGroup};
use admission::rate_limit::RateLimitGate;
use lifecycle::state::Core;
use lifecycle::table::AgentTable;
use logs::log::SharedBytes;

/// The agents of one server. Cheap to clone: every clone is the same agents.
#[derive(Debug, Clone)]
pub struct Agents {
    core: Arc<Core>,
}

impl Agents {
    /// `shutdown`, once cancelled, stops every agent.
    pub fn new(settings: Settings, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        let all_logs = SharedBytes::default();
        let pool = Arc::new(lifecycle::pool::WarmPool::new(
            settings.warm.clone(),
            Arc::clone(&metrics),
        ));
        let budget_book = lifecycle::budget::BudgetBook::new(settings.budgets.clone());
        Self {
            core: Arc::new(Core {
                table: AgentTable::new(settings.admission, settings.retention, all_logs.clone()),
                store: settings.store.clone(),
                cluster: settings.cluster.clone(),
                settings,
                sessions: Mutex::default(),
                rate_limit: RateLimitGate::default(),
                limits_seen: Default::default(),
                budget_book,
                over_budget: Mutex::default(),
                login: lifecycle::login::LoginCache::default(),
                chat_memory: chat::memory::ChatMemory::default(),
                client_tools: Arc::default(),
                own_url: std::sync::OnceLock::new(),
                responses: chat::responses::ResponseMemory::default(),
                all_logs,
                pool,
                metrics,
                shutdown,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Stops a running agent of `client`, wherever it runs; resolves once it has ended (at
    /// most the grace period after SIGTERM).
    pub async fn stop(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            return self.forward(instance, client, agent_id, Action::Stop).await;
        }
        let ended = self.core.table.stop(client, agent_id)?;
        ended.cancelled().await;
        if let (Some(store), Some(_)) = (&self.core.store, &self.core.cluster) {
            // Its end is in the shared database before the answer: the client's next agent,
            // on any instance, is counted without it.
            store.flush().await;
        }
        Ok(())
    }

    /// Stops the agent if it runs, and forgets it.
    pub async fn delete(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            return self
                .forward(instance, client, agent_id, Action::Delete)
                .await;
        }
        let in_memory = self.core.table.forget(client, agent_id).await;
        let Some(store) = &self.core.store else {
            return in_memory;
        };
        if in_memory.is_err() && self.stored(client, agent_id).await.is_none() {
            return in_memory;
        }
        store.forget(agent_id);
        // Written before the answer: a read right after it finds the agent gone.
        store.flush().await;
        Ok(())
    }

    /// The agents of `client`, running and kept, oldest first.
    pub async fn list(&self, client: Client) -> Vec<AgentListItem> {
        let mut list = self.core.table.list(client);
        if let Some(store) = &self.core.store {
            store.flush().await;
            match store.agents(client).await {
                Ok(records) => {
                    let in_memory: std::collections::HashSet<Uuid> =
                        list.iter().map(|a| a.info.agent_id).collect();
                    list.extend(
                        records
                            .iter()
                            .filter(|r| !in_memory.contains(&r.info.agent_id) && self.is_kept(r))
                            .map(|r| AgentListItem {
                                info: r.info.clone(),
                                total_cost_usd: r.total_cost_usd,
                                pending_permissions: 0,
                            }),
                    );
                    list.sort_by_key(|a| a.info.started_at);
                }
                Err(err) => tracing::warn!(%err, "could not list the agents the store keeps"),
            }
        }
        list
    }

    /// An agent the store keeps and memory does not, within its retention.
    async fn stored(&self, client: Client, agent_id: Uuid) -> Option<AgentRecord> {
        let store = self.core.store.as_ref()?;
        // What was handed to the store is written first: the store then agrees with memory
        // (an agent that just ended counts toward the finished agents kept, for one).
        store.flush().await;
        match store.agent(client, agent_id).await {
            Ok(record) => record.filter(|r| self.is_kept(r)),
            Err(err) => {
                tracing::warn!(%err, "could not read an agent from the store");
                None
            }
        }
    }

    fn is_kept(&self, record: &AgentRecord) -> bool {
        let keep_for = chrono::Duration::from_std(self.core.settings.retention.keep_for)
            .unwrap_or(chrono::Duration::MAX);
        record
            .info
            .ended_at
            .is_none_or(|ended| chrono::Utc::now() - ended < keep_for)
    }

    /// Sends a message to an interactive agent of `client`: it runs at once, or as a turn of
    /// its own after those before it. Returns how many turns run before it.
    pub async fn send_message(
        &self,
        client: Client,
        agent_id: Uuid,
        message: MessageRequest,
    ) -> Result<u64, Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            let body = serde_json::json!(message);
            return self
                .forward(instance, client, agent_id, Action::Message { body })
                .await;
        }
        let conversation = self.conversation(client, agent_id).await?;
        let content = MessageContent::check(message.content, self.core.settings.max_image_bytes)?;
        conversation.send(&content)
    }

    /// Interrupts an interactive agent's running turn; returns how many messages still wait.
    pub async fn interrupt(&self, client: Client, agent_id: Uuid) -> Result<u64, Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            return self
                .forward(instance, client, agent_id, Action::Interrupt)
                .await;
        }
        self.conversation(client, agent_id).await?.interrupt().await
    }

    /// Closes an interactive agent's input: it finishes its turns and ends.
    pub async fn close(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            return self
                .forward(instance, client, agent_id, Action::Close)
                .await;
        }
        self.conversation(client, agent_id).await?.close()
    }

    /// A running interactive agent's conversation. An agent only the store keeps has ended.
    async fn conversation(
        &self,
        client: Client,
        agent_id: Uuid,
    ) -> Result<Arc<conversation::Conversation>, Error> {
        match self.core.table.conversation(client, agent_id) {
            Err(Error::NotFound(_)) => match self.stored(client, agent_id).await {
                Some(record) if !record.info.interactive => Err(Error::Conflict(format!(
                    "agent {agent_id} is not interactive: start it with \"interactive\": true"
                ))),
                Some(_) => Err(Error::Conflict(format!("agent {agent_id} has ended"))),
                None => Err(Error::NotFound(agent_id)),
            },
            found => found,
        }
    }

    /// Changes an interactive agent's model or permission mode; returns what the CLI confirmed,
    /// by field.
    pub async fn update(
        &self,
        client: Client,
        agent_id: Uuid,
        update: AgentUpdate,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            let body = serde_json::json!(update);
            return self
                .forward(instance, client, agent_id, Action::Update { body })
                .await;
        }
        let conversation = self.conversation(client, agent_id).await?;
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
    pub async fn permissions(
        &self,
        client: Client,
        agent_id: Uuid,
    ) -> Result<Vec<PermissionRequest>, Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            return self
                .forward(instance, client, agent_id, Action::Permissions)
                .await;
        }
        match self.core.table.conversation(client, agent_id) {
            Ok(conversation) => Ok(conversation.pending_permissions()),
            // An agent that has ended, or is one-shot, waits for nothing.
            Err(Error::Conflict(_)) => Ok(Vec::new()),
            Err(Error::NotFound(_)) if self.stored(client, agent_id).await.is_some() => {
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }

    /// A client's answer to one of its agent's tool approvals.
    pub async fn answer_permission(
        &self,
        client: Client,
        agent_id: Uuid,
        request_id: &str,
        answer: PermissionAnswer,
    ) -> Result<(), Error> {
        if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
            let action = Action::Answer {
                request_id: request_id.to_owned(),
                body: serde_json::json!(answer),
            };
            return self.forward(instance, client, agent_id, action).await;
        }
        self.conversation(client, agent_id)
            .await?
            .answer(request_id, answer)
    }

    pub async fn detail(&self, client: Client, agent_id: Uuid) -> Result<AgentDetail, Error> {
        let mut detail = self.detail_of_agent(client, agent_id).await?;
        if let (Some(store), true) = (&self.core.store, self.core.settings.webhooks.enabled()) {
            match store.webhook_deliveries(client, agent_id).await {
                Ok(deliveries) => detail.webhooks = deliveries,
                Err(err) => tracing::warn!(%err, "could not read an agent's webhook deliveries"),
            }
        }
        Ok(detail)
    }

    async fn detail_of_agent(&self, client: Client, agent_id: Uuid) -> Result<AgentDetail, Error> {
        match self.core.table.detail(client, agent_id) {
            Ok(mut detail) => {
                detail.instance_id = Some(Arc::clone(&self.core.settings.instance_id));
                Ok(detail)
            }
            Err(Error::NotFound(_)) => {
                let Some(record) = self.stored(client, agent_id).await else {
                    return Err(Error::NotFound(agent_id));
                };
                let mut detail = record.detail();
                if let Some(store) = &self.core.store {
                    match store.agent_usage(client, agent_id).await {
                        Ok(usage) => detail.usage = usage,
                        Err(err) => tracing::warn!(%err, "could not read an agent's usage"),
                    }
                }
                if record.info.interactive {
                    if let Some(instance) = self.runs_elsewhere(client, agent_id).await {
                        // What it waits for is known only where it runs.
                        detail.pending_permissions = self
                            .forward(instance, client, agent_id, Action::Permissions)
                            .await
                            .unwrap_or_default();
                    }
                }
                Ok(detail)
            }
            Err(err) => Err(err),
        }
    }

    /// A reader of the agent's events after `cursor`: live from memory while it is there,
    /// else from the store, live while it runs on another instance. While the agent runs, a
    /// cursor past its newest event waits for the events after it; once it has ended, such a
    /// cursor is refused, naming its last event.
    pub async fn events(
        &self,
        client: Client,
        agent_id: Uuid,
        cursor: u64,
    ) -> Result<EventReader, Error> {
        let past = |last| Error::PastLastEvent {
            after: cursor,
            last,
        };
        match self.core.table.log(client, agent_id) {
            Ok(log) => match log.closed_before(cursor) {
                Some(last) => Err(past(last)),
                None => Ok(EventReader::Live(log.reader(cursor))),
            },
            Err(Error::NotFound(_)) => {
                match (&self.core.store, self.stored(client, agent_id).await) {
                    (Some(_), Some(record))
                        if record.info.ended_at.is_some() && cursor > record.newest_event =>
                    {
                        Err(past(record.newest_event))
                    }
                    (Some(store), Some(record)) => {
                        let elsewhere = record.info.ended_at.is_none()
                            && record.instance.as_deref() != Some(&*self.core.settings.instance_id);
                        Ok(match &self.core.cluster {
                            Some(cluster) if elsewhere => EventReader::Remote(RemoteReader::new(
                                Arc::clone(store),
                                client,
                                agent_id,
                                cursor,
                                cluster.watch(agent_id),
                            )),
                            _ => EventReader::Stored {
                                store: Arc::clone(store),
                                agent_id,
                                cursor,
                            },
                        })
                    }
                    _ => Err(Error::NotFound(agent_id)),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Whether the store writes what it is given; None without a store.
    pub fn storage(&self) -> Option<StoreHealth> {
        self.core.store.as_ref().map(|store| store.health())
    }

    /// This instance, among those that share a database.
    pub fn instance_id(&self) -> &str {
        &self.core.settings.instance_id
    }

    /// Whether each CLI runs in a sandbox.
    pub fn sandboxed(&self) -> bool {
        self.core.settings.sandbox.is_some()
    }

    /// How many agents may hold a CLI process at once (PROXY_MAX_AGENTS).
    pub fn max_agents(&self) -> usize {
        self.core.settings.admission.max_agents
    }

    /// Until when new agents are refused because the subscription is rate limited, as this
    /// instance or another one sharing the database found.
    pub fn rate_limited_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let shared = self
            .core
            .cluster
            .as_ref()
            .and_then(|c| c.rate_limited_until());
        self.core.rate_limit.until(shared)
    }

    /// The agents holding a CLI process now.
    pub fn running(&self) -> usize {
        self.core.table.running()
    }

    /// The agents waiting for a place now (PROXY_QUEUE).
    pub fn queued(&self) -> usize {
        self.core
            .table
            .queue
            .as_ref()
            .map_or(0, |queue| queue.waiting())
    }

    /// The CLI as configured: a path, or a name looked up on PATH.
    pub fn cli(&self) -> &Path {
        &self.core.settings.cli
    }

    /// Where the CLI would be found now: the path itself when it names a file, else the first
    /// executable of that name on PATH.
    pub fn find_cli(&self) -> Option<PathBuf> {
        process::find_program(self.cli()).ok()
    }

    /// The pool of CLIs started ahead of their runs, as it stands.
    pub fn warm_pool(&self) -> WarmView {
        self.core.pool.view()
    }

    /// The watchdog that ends every CLI if this server is killed.
    pub fn watchdog(&self) -> WatchdogStatus {
        process::watchdog::status()
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
            for pid in self
                .core
                .table
                .pids()
                .into_iter()
                .chain(self.core.pool.pids())
            {
                ProcessGroup::of_leader(pid).signal(Signal::SIGKILL);
            }
        }
        if let Some(store) = &self.core.store {
            if tokio::time::timeout_at(deadline, store.flush())
                .await
                .is_err()
            {
                tracing::warn!("the store had not written everything at the shutdown timeout");
            }
        }
    }
}
