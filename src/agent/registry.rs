//! The agents, running and recently finished, shared by the handlers: for the agent limit,
//! stop, the agent views and health.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::{FinalStatus, RunSummary};
use super::log::EventLog;
use crate::auth::Client;
use crate::error::ApiError;
use crate::runner::{ProcessGroup, StopReason, StopSignal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Started by /agent/stream: its client reads the events as they come.
    Stream,
    /// Started by /agent/start: it runs in the background.
    Start,
}

/// Where an agent is in its life, as the views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Starting,
    Running,
    Stopping,
    Completed,
    Failed,
    Stopped,
    TimedOut,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Stream => "stream",
            AgentKind::Start => "start",
        }
    }
}

impl From<FinalStatus> for AgentStatus {
    fn from(status: FinalStatus) -> Self {
        match status {
            FinalStatus::Completed => AgentStatus::Completed,
            FinalStatus::Failed => AgentStatus::Failed,
            FinalStatus::Stopped => AgentStatus::Stopped,
            FinalStatus::TimedOut => AgentStatus::TimedOut,
        }
    }
}

#[derive(Debug)]
struct Entry {
    owner: Client,
    /// Where its CLI runs, which is where its session lives.
    cwd: PathBuf,
    kind: AgentKind,
    pid: Option<u32>,
    status: AgentStatus,
    /// The CLI process is still there (not yet reaped): it counts toward the limit.
    process_live: bool,
    requested_model: Option<String>,
    summary: RunSummary,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    stop: StopSignal,
    /// Cancelled once the agent has finished: its process reaped and its last event logged.
    finished: CancellationToken,
    log: Arc<EventLog>,
}

impl Entry {
    fn is_finished(&self) -> bool {
        self.ended_at.is_some()
    }
}

/// One agent as the views show it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub agent_id: Uuid,
    pub kind: AgentKind,
    pub status: AgentStatus,
    pub pid: Option<u32>,
    pub model: Option<String>,
    pub session_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
}

/// One agent in full, for `GET /agent/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub info: AgentInfo,
    pub result: Option<Arc<Value>>,
    pub total_cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub is_error: Option<bool>,
    pub events: u64,
    pub dropped_events: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// How long a finished agent is kept.
    pub keep_for: Duration,
    /// How many finished agents are kept at most.
    pub max_finished: usize,
}

#[derive(Debug)]
pub struct Registry {
    agents: Mutex<HashMap<Uuid, Entry>>,
    sessions: Mutex<SessionBook>,
    max_agents: usize,
    max_agents_per_key: Option<usize>,
    retention: Retention,
}

/// No place for another agent.
#[derive(Debug, Clone, Copy)]
pub enum Full {
    /// PROXY_MAX_AGENTS are running.
    All { max_agents: usize },
    /// This client runs PROXY_MAX_AGENTS_PER_KEY.
    Client { max: usize },
}

/// Which client made each session, and where it lives, so that only that client resumes it,
/// in the right directory. Kept in memory, for the most recent sessions.
#[derive(Debug, Default)]
struct SessionBook {
    sessions: HashMap<String, (Client, PathBuf)>,
    order: VecDeque<String>,
}

const SESSIONS_KEPT: usize = 100_000;

impl Registry {
    pub fn new(
        max_agents: usize,
        max_agents_per_key: Option<usize>,
        retention: Retention,
    ) -> Arc<Self> {
        Arc::new(Self {
            agents: Mutex::default(),
            sessions: Mutex::default(),
            max_agents,
            max_agents_per_key,
            retention,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        crate::lock(&self.agents)
    }

    /// Takes a place for a new agent before anything is spawned, so the limits hold however
    /// many requests arrive at once. The process's place is given back when the slot drops.
    pub fn reserve(
        self: &Arc<Self>,
        owner: Client,
        kind: AgentKind,
        launch: Launch,
    ) -> Result<Slot, Full> {
        let mut agents = self.lock();
        if live(&agents).count() >= self.max_agents {
            return Err(Full::All {
                max_agents: self.max_agents,
            });
        }
        if let Some(max) = self.max_agents_per_key {
            if live(&agents).filter(|e| e.owner == owner).count() >= max {
                return Err(Full::Client { max });
            }
        }
        let Launch {
            stop,
            requested_model,
            cwd,
            log,
        } = launch;
        let agent_id = Uuid::new_v4();
        agents.insert(
            agent_id,
            Entry {
                owner,
                cwd,
                kind,
                pid: None,
                status: AgentStatus::Starting,
                process_live: true,
                requested_model,
                summary: RunSummary::default(),
                started_at: Utc::now(),
                ended_at: None,
                stop,
                finished: CancellationToken::new(),
                log,
            },
        );
        Ok(Slot {
            registry: Arc::clone(self),
            agent_id,
        })
    }

    /// Asks a running agent of `client` to stop; returns a token that is cancelled once it has
    /// finished, or None when the client has no such agent running.
    pub fn stop(&self, client: Client, agent_id: Uuid) -> Option<CancellationToken> {
        let mut agents = self.lock();
        let entry = agents
            .get_mut(&agent_id)
            .filter(|e| e.owner == client && !e.is_finished())?;
        if !entry.stop.is_stopped() {
            entry.status = AgentStatus::Stopping;
            entry.stop.stop(StopReason::Requested);
        }
        Some(entry.finished.clone())
    }

    /// Stops the agent if it runs, waits until it has finished, and forgets it. False when
    /// `client` has no such agent.
    pub async fn forget(&self, client: Client, agent_id: Uuid) -> bool {
        let finished = self.stop(client, agent_id).or_else(|| {
            self.lock()
                .get(&agent_id)
                .filter(|e| e.owner == client)
                .map(|e| e.finished.clone())
        });
        let Some(finished) = finished else {
            return false;
        };
        finished.cancelled().await;
        self.lock().remove(&agent_id).is_some()
    }

    /// Records what the run has shown so far; `complete` finishes the agent.
    pub fn observe(&self, agent_id: Uuid, summary: &RunSummary) {
        let mut agents = self.lock();
        let Some(entry) = agents.get_mut(&agent_id) else {
            return;
        };
        if let Some(session) = &summary.session_id {
            if entry.summary.session_id.as_ref() != Some(session) {
                self.record_session(session, entry.owner, &entry.cwd);
            }
        }
        entry.summary = summary.clone();
        if let Some(status) = summary.status {
            entry.status = status.into();
            entry.ended_at = Some(Utc::now());
            entry.finished.cancel();
        }
    }

    /// The running agents, which hold a CLI process each.
    pub fn running(&self) -> usize {
        live(&self.lock()).count()
    }

    /// The first client to run a session owns it.
    fn record_session(&self, session: &str, owner: Client, cwd: &Path) {
        let mut book = crate::lock(&self.sessions);
        if book.sessions.contains_key(session) {
            return;
        }
        book.sessions
            .insert(session.to_owned(), (owner, cwd.to_path_buf()));
        book.order.push_back(session.to_owned());
        if book.order.len() > SESSIONS_KEPT {
            if let Some(oldest) = book.order.pop_front() {
                book.sessions.remove(&oldest);
            }
        }
    }

    /// Where a session made through the proxy lives, for `client` to resume it there; another
    /// client's session is refused. A session the proxy does not know is the CLI's to judge.
    pub fn session_home(&self, client: Client, session: &str) -> Result<Option<PathBuf>, ApiError> {
        let book = crate::lock(&self.sessions);
        match book.sessions.get(session) {
            Some((owner, _)) if *owner != client => Err(ApiError::Forbidden(format!(
                "session_id: session {session} belongs to another client"
            ))),
            Some((_, cwd)) => Ok(Some(cwd.clone())),
            None => Ok(None),
        }
    }

    pub fn list(&self, client: Client) -> Vec<AgentInfo> {
        self.forget_expired();
        let mut list: Vec<AgentInfo> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.owner == client)
            .map(|(id, e)| info(*id, e))
            .collect();
        list.sort_by_key(|a| a.started_at);
        list
    }

    pub fn detail(&self, client: Client, agent_id: Uuid) -> Option<AgentDetail> {
        self.forget_expired();
        let agents = self.lock();
        let entry = agents.get(&agent_id).filter(|e| e.owner == client)?;
        let result = entry.summary.result.clone();
        let field = |name: &str| result.as_ref().and_then(|r| r.get(name).cloned());
        let stats = entry.log.stats();
        Some(AgentDetail {
            info: info(agent_id, entry),
            total_cost_usd: field("total_cost_usd").and_then(|v| v.as_f64()),
            num_turns: field("num_turns").and_then(|v| v.as_u64()),
            is_error: field("is_error").and_then(|v| v.as_bool()),
            result,
            events: stats.events,
            dropped_events: stats.dropped,
        })
    }

    pub fn log(&self, client: Client, agent_id: Uuid) -> Option<Arc<EventLog>> {
        self.forget_expired();
        self.lock()
            .get(&agent_id)
            .filter(|e| e.owner == client)
            .map(|e| Arc::clone(&e.log))
    }

    /// Forgets finished agents past their retention time, and the oldest ones past the
    /// count kept.
    pub fn forget_expired(&self) {
        let now = Utc::now();
        let keep_for =
            chrono::Duration::from_std(self.retention.keep_for).unwrap_or(chrono::Duration::MAX);
        let mut agents = self.lock();
        agents.retain(|_, e| e.ended_at.is_none_or(|ended| now - ended < keep_for));
        let mut finished: Vec<(DateTime<Utc>, Uuid)> = agents
            .iter()
            .filter_map(|(id, e)| e.ended_at.map(|ended| (ended, *id)))
            .collect();
        if finished.len() > self.retention.max_finished {
            finished.sort();
            let excess = finished.len() - self.retention.max_finished;
            for (_, id) in &finished[..excess] {
                agents.remove(id);
            }
        }
    }

    /// Frees log memory when all logs together are over `budget`: the logs of the agents that
    /// finished first are emptied first (their last event, `complete`, stays).
    pub fn shrink_logs(&self, mut over_by: usize) {
        let mut finished: Vec<(DateTime<Utc>, Arc<EventLog>)> = self
            .lock()
            .values()
            .filter_map(|e| e.ended_at.map(|ended| (ended, Arc::clone(&e.log))))
            .collect();
        finished.sort_by_key(|(ended, _)| *ended);
        for (_, log) in finished {
            if over_by == 0 {
                break;
            }
            over_by = over_by.saturating_sub(log.drop_old_events());
        }
    }

    /// The last resort of a shutdown that ran out of time: SIGKILL to every group left.
    pub fn kill_all(&self) {
        for pid in live(&self.lock()).filter_map(|e| e.pid) {
            ProcessGroup::of_leader(pid).signal(Signal::SIGKILL);
        }
    }
}

/// The agents whose CLI process is there (not yet reaped): they count toward the limits.
fn live(agents: &HashMap<Uuid, Entry>) -> impl Iterator<Item = &Entry> {
    agents.values().filter(|e| e.process_live)
}

fn info(agent_id: Uuid, e: &Entry) -> AgentInfo {
    AgentInfo {
        agent_id,
        kind: e.kind,
        status: e.status,
        pid: e.pid,
        model: e
            .summary
            .model
            .clone()
            .or_else(|| e.requested_model.clone()),
        session_id: e.summary.session_id.clone(),
        started_at: e.started_at,
        ended_at: e.ended_at,
        exit_code: e.summary.exit_code,
    }
}

/// What a new agent brings to the registry.
#[derive(Debug)]
pub struct Launch {
    pub stop: StopSignal,
    pub requested_model: Option<String>,
    pub cwd: PathBuf,
    pub log: Arc<EventLog>,
}

/// One agent's hold on a process place, held by the task that runs its CLI.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
    agent_id: Uuid,
}

impl Slot {
    pub fn agent_id(&self) -> Uuid {
        self.agent_id
    }

    pub fn running(&self, pid: u32) {
        if let Some(entry) = self.registry.lock().get_mut(&self.agent_id) {
            entry.pid = Some(pid);
            if entry.status == AgentStatus::Starting {
                entry.status = AgentStatus::Running;
            }
        }
    }
}

impl Drop for Slot {
    /// The process was reaped (or never started): its place is free. An agent whose CLI could
    /// not start at all is forgotten, as it never was.
    fn drop(&mut self) {
        let mut agents = self.registry.lock();
        match agents.get_mut(&self.agent_id) {
            Some(entry) if entry.pid.is_none() => {
                agents.remove(&self.agent_id);
            }
            Some(entry) => entry.process_live = false,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::log::SharedBytes;

    fn registry(max_agents: usize) -> Arc<Registry> {
        Registry::new(
            max_agents,
            None,
            Retention {
                keep_for: Duration::from_secs(3600),
                max_finished: 2,
            },
        )
    }

    fn reserve(registry: &Arc<Registry>, shutdown: &CancellationToken) -> Result<Slot, Full> {
        let launch = Launch {
            stop: StopSignal::new(shutdown),
            requested_model: None,
            cwd: PathBuf::from("/"),
            log: EventLog::new(1000, SharedBytes::default()),
        };
        registry.reserve(Client::Anonymous, AgentKind::Stream, launch)
    }

    fn finish(registry: &Registry, slot: Slot) -> Uuid {
        let id = slot.agent_id();
        slot.running(1);
        drop(slot);
        registry.observe(
            id,
            &RunSummary {
                status: Some(FinalStatus::Completed),
                ..Default::default()
            },
        );
        id
    }

    #[test]
    fn the_limit_counts_running_processes_only() {
        let shutdown = CancellationToken::new();
        let registry = registry(2);
        let a = reserve(&registry, &shutdown).unwrap();
        let b = reserve(&registry, &shutdown).unwrap();
        b.running(2);
        assert!(reserve(&registry, &shutdown).is_err());
        drop(a);
        assert_eq!(registry.running(), 1);
        assert!(
            registry.list(Client::Anonymous).len() == 1,
            "an agent that never started is forgotten"
        );
        finish(&registry, b);
        assert_eq!(registry.running(), 0);
        assert!(reserve(&registry, &shutdown).is_ok());
    }

    #[test]
    fn only_running_agents_can_be_stopped() {
        let shutdown = CancellationToken::new();
        let registry = registry(2);
        let slot = reserve(&registry, &shutdown).unwrap();
        let id = slot.agent_id();
        assert!(registry.stop(Client::Anonymous, Uuid::new_v4()).is_none());
        let finished = registry.stop(Client::Anonymous, id).unwrap();
        assert_eq!(
            registry.detail(Client::Anonymous, id).unwrap().info.status,
            AgentStatus::Stopping
        );
        assert!(!finished.is_cancelled());
        finish(&registry, slot);
        assert!(finished.is_cancelled());
        assert!(
            registry.stop(Client::Anonymous, id).is_none(),
            "a finished agent is not running"
        );
        assert_eq!(
            registry.detail(Client::Anonymous, id).unwrap().info.status,
            AgentStatus::Completed
        );
    }

    #[test]
    fn past_the_count_kept_the_oldest_finished_go() {
        let shutdown = CancellationToken::new();
        let registry = registry(5);
        let first = finish(&registry, reserve(&registry, &shutdown).unwrap());
        let _second = finish(&registry, reserve(&registry, &shutdown).unwrap());
        let _third = finish(&registry, reserve(&registry, &shutdown).unwrap());
        let list = registry.list(Client::Anonymous);
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|a| a.agent_id != first));
    }
}
