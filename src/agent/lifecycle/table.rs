//! The agents, running and recently finished: admission under the limits, each agent's
//! lifecycle, and how long a finished one is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agent::Error;
use crate::agent::admission::keys::Client;
use crate::agent::conversation::Conversation;
use crate::agent::events::RunSummary;
use crate::agent::lifecycle::queue::AdmissionQueue;
use crate::agent::lifecycle::stop::StopSignal;
use crate::agent::logs::log::{EventLog, SharedBytes};
use crate::agent::ports::store::AgentRecord;
use crate::agent::status::{AgentKind, AgentStatus, FinalStatus, StopReason};
use crate::agent::usage::{ModelUsage, Usage, UsageBy, UsageQuery, UsageRow, add_model_usage};
use crate::agent::view::{AgentDetail, AgentInfo, AgentListItem};

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// How long a finished agent is kept.
    pub keep_for: Duration,
    /// How many finished agents are kept at most.
    pub max_finished: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Agents holding a process at once, all clients together.
    pub max_agents: usize,
    /// ... and for one client.
    pub max_agents_per_key: Option<usize>,
    /// Most agents that wait for a place (PROXY_QUEUE); None: refused at once.
    pub queue: Option<usize>,
}

#[derive(Debug)]
pub struct AgentTable {
    table: Mutex<Table>,
    admission: Admission,
    /// The agents waiting for a place, told of each one that frees.
    pub queue: Option<Arc<AdmissionQueue>>,
    retention: Retention,
    /// The bytes held by all logs, which results kept in the table are counted in too.
    all_logs: SharedBytes,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Uuid, Entry>,
    /// The finished agents, in the order they ended.
    finished: VecDeque<Uuid>,
}

#[derive(Debug)]
struct Entry {
    owner: Client,
    kind: AgentKind,
    status: AgentStatus,
    pid: Option<u32>,
    requested_model: Option<String>,
    /// The session its CLI writes: the one it resumes, else the one the CLI names.
    session: Option<Uuid>,
    summary: RunSummary,
    /// What the kept result line costs, counted in all logs' bytes.
    result_charge: Charge,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    stop: StopSignal,
    /// Cancelled once the agent has ended and its last event is in its log.
    ended: CancellationToken,
    log: Arc<EventLog>,
    /// An interactive agent's.
    conversation: Option<Arc<Conversation>>,
    /// What the API counted for its requests, by model (a few at most).
    usage: Vec<ModelUsage>,
    mcp_servers: Arc<[String]>,
    webhook: Option<Arc<str>>,
}

/// Bytes counted in a shared total for as long as this lives.
#[derive(Debug)]
struct Charge {
    bytes: usize,
    total: SharedBytes,
}

impl Charge {
    fn set(&mut self, bytes: usize) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A new agent, before it has a process.
#[derive(Debug)]
pub struct NewAgent {
    pub owner: Client,
    pub kind: AgentKind,
    pub requested_model: Option<String>,
    /// The session it resumes and goes on writing (not one it forks).
    pub session: Option<Uuid>,
    pub stop: StopSignal,
    pub log: Arc<EventLog>,
    /// The MCP servers its run named.
    pub mcp_servers: Arc<[String]>,
    /// Where its webhook events go.
    pub webhook: Option<Arc<str>>,
}

impl AgentTable {
    pub fn new(admission: Admission, retention: Retention, all_logs: SharedBytes) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::default(),
            queue: admission.queue.map(AdmissionQueue::new),
            admission,
            retention,
            all_logs,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        crate::sync::lock(&self.table)
    }

    /// Takes a place for a new agent before anything is spawned, so the limits hold however
    /// many requests arrive at once. A session that an agent of the same client still runs on
    /// is not resumed by another: two CLIs would write one session file.
    pub fn admit(self: &Arc<Self>, agent: NewAgent) -> Result<Place, Error> {
        let mut table = self.lock();
        if let Some(session) = agent.session {
            if let Some((running, _)) = table.entries.iter().find(|(_, e)| {
                e.owner == agent.owner && e.session == Some(session) && e.status.holds_process()
            }) {
                return Err(Error::SessionInUse {
                    session,
                    agent_id: *running,
                });
            }
        }
        let Admission {
            max_agents,
            max_agents_per_key,
            ..
        } = self.admission;
        if table.holding_process().count() >= max_agents {
            return Err(Error::TooManyAgents { max_agents });
        }
        if let Some(max) = max_agents_per_key {
            if table
                .holding_process()
                .filter(|e| e.owner == agent.owner)
                .count()
                >= max
            {
                return Err(Error::TooManyAgentsForKey { max });
            }
        }
        let agent_id = Uuid::new_v4();
        table.entries.insert(
            agent_id,
            Entry {
                owner: agent.owner,
                kind: agent.kind,
                status: AgentStatus::Starting,
                pid: None,
                requested_model: agent.requested_model,
                session: agent.session,
                summary: RunSummary::default(),
                result_charge: Charge {
                    bytes: 0,
                    total: Arc::clone(&self.all_logs),
                },
                started_at: Utc::now(),
                ended_at: None,
                stop: agent.stop,
                ended: CancellationToken::new(),
                log: agent.log,
                conversation: None,
                usage: Vec::new(),
                mcp_servers: agent.mcp_servers,
                webhook: agent.webhook,
            },
        );
        Ok(Place {
            table: Arc::clone(self),
            agent_id,
            ended: false,
        })
    }

    /// Asks a live agent of `client` to stop; returns a token that is cancelled once it has
    /// ended.
    pub fn stop(&self, client: Client, agent_id: Uuid) -> Result<CancellationToken, Error> {
        let mut table = self.lock();
        let entry = table
            .entries
            .get_mut(&agent_id)
            .filter(|e| e.owner == client && e.status.holds_process())
            .ok_or(Error::NotFound(agent_id))?;
        if !entry.stop.is_stopped() {
            entry.status = AgentStatus::Stopping;
            entry.stop.stop(StopReason::Requested);
        }
        Ok(entry.ended.clone())
    }

    /// Stops the agent if it runs, waits until it has ended, and forgets it.
    pub async fn forget(&self, client: Client, agent_id: Uuid) -> Result<(), Error> {
        let ended = match self.stop(client, agent_id) {
            Ok(ended) => ended,
            Err(_) => {
                let now = Utc::now();
                let table = self.lock();
                table
                    .visible(client, agent_id, now, self.retention)
                    .map(|e| e.ended.clone())
                    .ok_or(Error::NotFound(agent_id))?
            }
        };
        ended.cancelled().await;
        let mut table = self.lock();
        if table.entries.remove(&agent_id).is_none() {
            return Err(Error::NotFound(agent_id));
        }
        table.finished.retain(|id| *id != agent_id);
        Ok(())
    }

    /// Records what the run has shown so far.
    pub fn observe(&self, agent_id: Uuid, summary: &RunSummary) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.get_mut(&agent_id) {
            entry.observe(summary);
        }
    }

    /// An agent as the store keeps it.
    pub fn record(&self, agent_id: Uuid) -> Option<AgentRecord> {
        let table = self.lock();
        let entry = table.entries.get(&agent_id)?;
        let mut info = entry.info(agent_id);
        // A waiting agent is running, as the store sees it.
        info.status = entry.status;
        let stats = entry.log.stats();
        let summary = &entry.summary;
        Some(AgentRecord {
            owner: entry.owner,
            info,
            result: summary.result.clone(),
            total_cost_usd: summary.total_cost_usd,
            num_turns: summary.num_turns,
            is_error: summary.is_error,
            newest_event: stats.newest,
            oldest_event: stats.dropped + 1,
            kept_events: stats.kept(),
            instance: None,
            webhook: entry.webhook.clone(),
        })
    }

    /// The agents holding a process each.
    pub fn running(&self) -> usize {
        self.lock().holding_process().count()
    }

    /// The process ids of the agents that hold one.
    pub fn pids(&self) -> Vec<u32> {
        self.lock()
            .holding_process()
            .filter_map(|e| e.pid)
            .collect()
    }

    pub fn list(&self, client: Client) -> Vec<AgentListItem> {
        let now = Utc::now();
        let table = self.lock();
        let mut list: Vec<AgentListItem> = table
            .entries
            .iter()
            .filter(|(_, e)| e.owner == client && e.is_kept(now, self.retention))
            .map(|(id, e)| AgentListItem {
                info: e.info(*id),
                total_cost_usd: e.summary.total_cost_usd,
                pending_permissions: e
                    .conversation
                    .as_ref()
                    .map_or(0, |c| c.pending_permission_count()),
            })
            .collect();
        list.sort_by_key(|a| a.info.started_at);
        list
    }

    /// An interactive agent's conversation, while it runs.
    pub fn conversation(&self, client: Client, agent_id: Uuid) -> Result<Arc<Conversation>, Error> {
        let table = self.lock();
        let entry = table
            .visible(client, agent_id, Utc::now(), self.retention)
            .ok_or(Error::NotFound(agent_id))?;
        let conversation = entry.conversation.as_ref().ok_or_else(|| {
            Error::Conflict(format!(
                "agent {agent_id} is not interactive: start it with \"interactive\": true"
            ))
        })?;
        if !entry.status.holds_process() {
            return Err(Error::Conflict(format!("agent {agent_id} has ended")));
        }
        Ok(Arc::clone(conversation))
    }

    pub fn detail(&self, client: Client, agent_id: Uuid) -> Result<AgentDetail, Error> {
        let table = self.lock();
        let entry = table
            .visible(client, agent_id, Utc::now(), self.retention)
            .ok_or(Error::NotFound(agent_id))?;
        let stats = entry.log.stats();
        let summary = &entry.summary;
        Ok(AgentDetail {
            info: entry.info(agent_id),
            result: summary
                .result
                .as_ref()
                .and_then(|line| serde_json::from_slice(line).ok()),
            total_cost_usd: summary.total_cost_usd,
            num_turns: summary.num_turns,
            is_error: summary.is_error,
            events: stats.kept(),
            dropped_events: stats.dropped,
            pending_permissions: entry
                .conversation
                .as_ref()
                .map(|c| c.pending_permissions())
                .unwrap_or_default(),
            instance_id: None,
            usage: entry.usage.clone(),
            webhooks: Vec::new(),
        })
    }

    /// Adds what the API counted for one request of an agent's.
    pub fn add_usage(&self, agent_id: Uuid, model: &str, usage: &Usage) {
        if let Some(entry) = self.lock().entries.get_mut(&agent_id) {
            add_model_usage(&mut entry.usage, model, usage);
        }
    }

    /// The usage of `client`'s agents in memory, added up as `query` asks, each agent on the
    /// day it started (without a store, nothing else is known of when).
    pub fn usage_rows(&self, client: Client, query: UsageQuery) -> Vec<UsageRow> {
        let table = self.lock();
        let mut rows: Vec<UsageRow> = Vec::new();
        let agents = table.entries.iter().filter(|(_, e)| {
            e.owner == client
                && query.from.is_none_or(|from| e.started_at >= from)
                && query.to.is_none_or(|to| e.started_at < to)
        });
        for (agent_id, entry) in agents {
            for used in &entry.usage {
                let mut row = UsageRow {
                    day: None,
                    agent_id: None,
                    model: None,
                    usage: Usage::default(),
                };
                match query.by {
                    UsageBy::Day => row.day = Some(entry.started_at.format("%Y-%m-%d").to_string()),
                    UsageBy::Agent => row.agent_id = Some(*agent_id),
                    UsageBy::Model => row.model = Some(used.model.clone()),
                }
                match rows.iter_mut().find(|r| {
                    (&r.day, &r.agent_id, &r.model) == (&row.day, &row.agent_id, &row.model)
                }) {
                    Some(found) => found.usage.add(&used.usage),
                    None => {
                        row.usage = used.usage;
                        rows.push(row);
                    }
                }
            }
        }
        rows.sort_by(|a, b| (&a.day, a.agent_id, &a.model).cmp(&(&b.day, b.agent_id, &b.model)));
        rows
    }

    /// Whether memory has the agent (running, or finished and not yet handed over).
    pub fn knows(&self, client: Client, agent_id: Uuid) -> bool {
        self.lock()
            .visible(client, agent_id, Utc::now(), self.retention)
            .is_some()
    }

    pub fn log(&self, client: Client, agent_id: Uuid) -> Result<Arc<EventLog>, Error> {
        self.lock()
            .visible(client, agent_id, Utc::now(), self.retention)
            .map(|e| Arc::clone(&e.log))
            .ok_or(Error::NotFound(agent_id))
    }

    /// Forgets an agent that has ended and is kept by the store, which answers for it from now.
    pub fn hand_over(&self, agent_id: Uuid) {
        let mut table = self.lock();
        if table
            .entries
            .get(&agent_id)
            .is_some_and(|e| !e.status.holds_process())
        {
            table.entries.remove(&agent_id);
            table.finished.retain(|id| *id != agent_id);
        }
    }

    /// Forgets the finished agents past their retention time.
    pub fn forget_expired(&self) {
        let now = Utc::now();
        let mut table = self.lock();
        while let Some(oldest) = table.finished.front().copied() {
            let expired = table
                .entries
                .get(&oldest)
                .is_none_or(|e| !e.is_kept(now, self.retention));
            if !expired {
                break;
            }
            table.finished.pop_front();
            table.entries.remove(&oldest);
        }
    }

    /// Gives back memory when all logs together are `over_by` bytes over their budget: the
    /// logs of the agents that finished first are emptied first (their last event, `complete`,
    /// stays), and if that is not enough, those agents are forgotten.
    pub fn shrink_logs(&self, mut over_by: usize) {
        let mut table = self.lock();
        for id in &table.finished {
            if over_by == 0 {
                return;
            }
            if let Some(entry) = table.entries.get(id) {
                over_by = over_by.saturating_sub(entry.log.drop_old_events());
            }
        }
        while over_by > 0 {
            let Some(oldest) = table.finished.pop_front() else {
                return;
            };
            if let Some(entry) = table.entries.remove(&oldest) {
                over_by = over_by.saturating_sub(entry.result_charge.bytes);
            }
        }
    }
}

impl Table {
    /// The agents whose CLI process is there (or about to be): they count toward the limits.
    fn holding_process(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(|e| e.status.holds_process())
    }

    /// An agent of `client` that is still kept.
    fn visible(
        &self,
        client: Client,
        agent_id: Uuid,
        now: DateTime<Utc>,
        retention: Retention,
    ) -> Option<&Entry> {
        self.entries
            .get(&agent_id)
            .filter(|e| e.owner == client && e.is_kept(now, retention))
    }
}

impl Entry {
    /// Running, or finished within the retention time: a finished agent past it is gone for
    /// its readers at once, and from memory at the next sweep.
    fn is_kept(&self, now: DateTime<Utc>, retention: Retention) -> bool {
        let keep_for =
            chrono::Duration::from_std(retention.keep_for).unwrap_or(chrono::Duration::MAX);
        self.ended_at.is_none_or(|ended| now - ended < keep_for)
    }

    fn observe(&mut self, summary: &RunSummary) {
        self.result_charge
            .set(summary.result.as_ref().map_or(0, |line| line.len()));
        self.summary = summary.clone();
        if let Some(named) = summary.session_id.as_deref() {
            self.session = Uuid::try_parse(named).ok().or(self.session);
        }
    }

    fn info(&self, agent_id: Uuid) -> AgentInfo {
        let waiting = self.status == AgentStatus::Running
            && self.conversation.as_ref().is_some_and(|c| c.is_waiting());
        AgentInfo {
            agent_id,
            kind: self.kind,
            status: if waiting {
                AgentStatus::Waiting
            } else {
                self.status
            },
            pid: self.pid,
            model: self
                .summary
                .model
                .clone()
                .or_else(|| self.requested_model.clone()),
            // A resumed session is known from the start: another instance sees it in use.
            session_id: self
                .summary
                .session_id
                .clone()
                .or_else(|| self.session.map(|s| s.to_string())),
            started_at: self.started_at,
            ended_at: self.ended_at,
            exit_code: self.summary.exit_code,
            interactive: self.conversation.is_some(),
            turns: self.summary.turns,
            mcp_servers: self.mcp_servers.to_vec(),
        }
    }
}

/// An agent's hold on a process place, from admission until it has ended. Dropped without
/// [`Place::end`], it gives the place back all the same: an agent whose CLI never started is
/// forgotten, as it never was, and one whose run was abandoned is recorded as failed.
#[derive(Debug)]
pub struct Place {
    table: Arc<AgentTable>,
    agent_id: Uuid,
    ended: bool,
}

impl Place {
    pub fn agent_id(&self) -> Uuid {
        self.agent_id
    }

    pub fn spawned(&self, pid: u32, conversation: Option<Arc<Conversation>>) {
        if let Some(entry) = self.table.lock().entries.get_mut(&self.agent_id) {
            entry.pid = Some(pid);
            entry.conversation = conversation;
            if entry.status == AgentStatus::Starting {
                entry.status = AgentStatus::Running;
            }
        }
    }

    /// The agent has ended with `summary`, its process reaped: its place is free, and it is
    /// kept as finished. Returns what to cancel once its last event is in its log.
    pub fn end(mut self, summary: &RunSummary) -> CancellationToken {
        self.ended = true;
        let status = summary.status.unwrap_or(FinalStatus::Failed);
        self.table.end(self.agent_id, status, Some(summary))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut table = self.table.lock();
        let never_started = table
            .entries
            .get(&self.agent_id)
            .is_some_and(|e| e.pid.is_none());
        if never_started {
            table.entries.remove(&self.agent_id);
            drop(table);
            self.table.place_freed();
            return;
        }
        drop(table);
        self.table
            .end(self.agent_id, FinalStatus::Failed, None)
            .cancel();
    }
}

impl AgentTable {
    fn end(
        &self,
        agent_id: Uuid,
        status: FinalStatus,
        summary: Option<&RunSummary>,
    ) -> CancellationToken {
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(&agent_id) else {
            return CancellationToken::new();
        };
        if let Some(summary) = summary {
            entry.observe(summary);
        }
        entry.status = AgentStatus::Ended(status);
        entry.ended_at = Some(Utc::now());
        let ended = entry.ended.clone();
        table.finished.push_back(agent_id);
        // The count kept holds the moment an agent ends, not at the next sweep.
        while table.finished.len() > self.retention.max_finished {
            if let Some(oldest) = table.finished.pop_front() {
                table.entries.remove(&oldest);
            }
        }
        drop(table);
        self.place_freed();
        ended
    }

    fn place_freed(&self) {
        if let Some(queue) = &self.queue {
            queue.place_freed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_agents: usize) -> Arc<AgentTable> {
        AgentTable::new(
            Admission {
                max_agents,
                max_agents_per_key: None,
                queue: None,
            },
            Retention {
                keep_for: Duration::from_secs(3600),
                max_finished: 2,
            },
            SharedBytes::default(),
        )
    }

    fn admit(table: &Arc<AgentTable>, shutdown: &CancellationToken) -> Result<Place, Error> {
        table.admit(NewAgent {
            owner: Client::Anonymous,
            kind: AgentKind::Stream,
            requested_model: None,
            session: None,
            stop: StopSignal::new(shutdown),
            log: EventLog::new(1000, SharedBytes::default()),
            mcp_servers: Arc::default(),
            webhook: None,
        })
    }

    fn finish(place: Place) -> Uuid {
        let id = place.agent_id();
        place.spawned(1, None);
        place.end(&RunSummary {
            status: Some(FinalStatus::Completed),
            ..Default::default()
        });
        id
    }

    #[test]
    fn the_limit_counts_running_processes_only() {
        let shutdown = CancellationToken::new();
        let table = table(2);
        let a = admit(&table, &shutdown).unwrap();
        let b = admit(&table, &shutdown).unwrap();
        b.spawned(2, None);
        assert!(admit(&table, &shutdown).is_err());
        drop(a);
        assert_eq!(table.running(), 1);
        assert!(
            table.list(Client::Anonymous).len() == 1,
            "an agent that never started is forgotten"
        );
        finish(b);
        assert_eq!(table.running(), 0);
        assert!(admit(&table, &shutdown).is_ok());
    }

    #[test]
    fn only_running_agents_can_be_stopped() {
        let shutdown = CancellationToken::new();
        let table = table(2);
        let place = admit(&table, &shutdown).unwrap();
        let id = place.agent_id();
        assert!(table.stop(Client::Anonymous, Uuid::new_v4()).is_err());
        let ended = table.stop(Client::Anonymous, id).unwrap();
        assert_eq!(
            table.detail(Client::Anonymous, id).unwrap().info.status,
            AgentStatus::Stopping
        );
        assert!(!ended.is_cancelled());
        finish(place);
        assert!(
            table.stop(Client::Anonymous, id).is_err(),
            "a finished agent is not running"
        );
        assert_eq!(
            table.detail(Client::Anonymous, id).unwrap().info.status,
            AgentStatus::Ended(FinalStatus::Completed)
        );
    }

    #[test]
    fn past_the_count_kept_the_oldest_finished_go_as_they_end() {
        let shutdown = CancellationToken::new();
        let table = table(5);
        let first = finish(admit(&table, &shutdown).unwrap());
        let _second = finish(admit(&table, &shutdown).unwrap());
        let _third = finish(admit(&table, &shutdown).unwrap());
        assert_eq!(table.lock().entries.len(), 2, "without a read or a sweep");
        let list = table.list(Client::Anonymous);
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|a| a.info.agent_id != first));
    }

    #[test]
    fn an_abandoned_run_ends_failed_and_frees_its_place() {
        let shutdown = CancellationToken::new();
        let table = table(1);
        let place = admit(&table, &shutdown).unwrap();
        let id = place.agent_id();
        place.spawned(7, None);
        drop(place);
        assert_eq!(table.running(), 0);
        assert_eq!(
            table.detail(Client::Anonymous, id).unwrap().info.status,
            AgentStatus::Ended(FinalStatus::Failed)
        );
    }
}
