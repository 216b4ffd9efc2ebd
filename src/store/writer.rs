//! The store's writer: the one connection that writes, on a thread of its own. What comes
//! within `flush` of the first waiting operation goes in one transaction, with the bounds on
//! events and retention applied as it goes.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::chunk;
use super::db::{Db, DbResult, Value, stored_time};
use crate::agent::{
    AgentRecord, CONVERSATIONS_PER_KEY, ClaimedWebhooks, Client, ConversationRecord, Event,
    Retention, UsageEntry, WebhookAttempt, WebhookClaim, WebhookEvent,
};
use crate::metrics::Metrics;

/// Ids of events an agent may make past what is written, before its record says so: after a
/// crash, its closing events are numbered past the lease, so past anything a client saw.
const ID_LEASE: u64 = 1_000_000;
/// How the store keeps agents, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a write waits to be committed with the ones after it.
    pub flush: Duration,
    /// Most bytes of events kept per agent, and in all.
    pub agent_log_bytes: usize,
    pub logs_total_bytes: usize,
    pub retention: Retention,
    /// Most bytes of events waiting for the writer.
    pub queue_bytes: usize,
}

/// Where the writer says which agents have new events, for instances that read them live.
pub const EVENTS_CHANNEL: &str = "claude_proxy_events";
/// PostgreSQL takes up to 8000 bytes in one notification; ids go in several below that.
const ANNOUNCEMENT_BYTES: usize = 7_000;

/// Sessions are kept as long as the CLI keeps their files (30 days by default), and at most
/// this many.
const SESSIONS_KEPT: usize = 100_000;
const SESSION_DAYS: i64 = 30;
/// How often a writer with nothing to write asks whether its database is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// SQL's "no limit" that both engines take, for `LIMIT ... OFFSET`.
const NO_LIMIT: i64 = i64::MAX;

#[derive(Debug)]
pub enum Op {
    Record(Box<AgentRecord>),
    Events(Uuid, Vec<Event>, usize),
    Session(Uuid, Client, PathBuf),
    Forget(Uuid),
    Conversation(Box<ConversationRecord>),
    ForgetConversations(Client, Vec<String>),
    /// One relayed request's usage, added to its hour's.
    Usage(Box<UsageEntry>),
    /// A webhook event, into the outbox.
    Webhook(Box<WebhookEvent>),
    /// Claims the outbox's due events, answered once the claim is committed (a claim that
    /// fails drops the answer).
    ClaimWebhooks(Box<WebhookClaim>, oneshot::Sender<ClaimedWebhooks>),
    /// How an attempt at a claimed event went.
    WebhookAttempt(Box<WebhookAttempt>),
    /// Write now, and say so.
    Flush(oneshot::Sender<()>),
    /// Say when what came before is written.
    Written(oneshot::Sender<()>),
}

pub struct Writer<D> {
    pub db: D,
    pub limits: Limits,
    pub queued_ops: Arc<AtomicUsize>,
    pub queued_bytes: Arc<AtomicUsize>,
    pub health: Arc<Mutex<Option<(String, Instant)>>>,
    pub metrics: Arc<Metrics>,
    /// The bytes of all agents' chunks.
    pub total_log_bytes: usize,
    pub last_sweep: Option<Instant>,
    /// The database was found gone (see [`Db::lost`]), and said so.
    pub lost: bool,
}

/// What has come for the writer since its last transaction.
#[derive(Default)]
struct Pending {
    /// Each agent's latest record: a record replaces the one before it.
    records: HashMap<Uuid, Box<AgentRecord>>,
    /// In the order they came: sessions and forgettings.
    ops: Vec<Op>,
    /// Each agent's events to write, already within its bound.
    events: HashMap<Uuid, PendingEvents>,
    flushed: Vec<oneshot::Sender<()>>,
}

#[derive(Default)]
struct PendingEvents {
    events: VecDeque<Event>,
    bytes: usize,
    /// Events older than these were let go for the bound: what is written of the agent is
    /// older still, and goes too.
    dropped: bool,
}

impl<D: Db> Writer<D> {
    /// Writes until every sender is gone: what has come within `flush` of the first waiting
    /// operation goes in one transaction.
    pub fn run(&mut self, ops: Receiver<Op>) {
        let queued_ops = Arc::clone(&self.queued_ops);
        let received = move |op: Op| {
            queued_ops.fetch_sub(1, Ordering::Relaxed);
            op
        };
        loop {
            let first = match ops.recv_timeout(CHECK_EVERY) {
                Ok(op) => received(op),
                Err(RecvTimeoutError::Timeout) => {
                    self.check_database();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let deadline = Instant::now() + self.limits.flush;
            let mut pending = Pending::default();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                // A claim waits for nothing after it: the delivery worker waits for it.
                let flush = matches!(op, Op::Flush(_) | Op::ClaimWebhooks(..));
                self.take(&mut pending, op);
                if flush {
                    break;
                }
                next = ops
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok()
                    .map(&received);
            }
            self.write(pending);
        }
    }

    /// Takes an operation into what is pending. An agent's events are kept within its bound
    /// as they come, so what waits is at most each agent's newest PROXY_AGENT_LOG_BYTES, the
    /// same events its log in memory holds.
    fn take(&self, pending: &mut Pending, op: Op) {
        match op {
            Op::Events(agent_id, events, bytes) => {
                let agent = pending.events.entry(agent_id).or_default();
                // A line larger than the whole log is not kept: in memory only its live readers
                // get it, and a reader of the store is told of a gap where it was.
                let limit = self.limits.agent_log_bytes;
                let mut too_big = 0;
                agent.events.extend(events.into_iter().filter(|e| {
                    let keep = e.data.len() <= limit;
                    if !keep {
                        too_big += e.data.len();
                    }
                    keep
                }));
                self.queued_bytes.fetch_sub(too_big, Ordering::Relaxed);
                agent.bytes += bytes - too_big;
                let mut freed = 0;
                while agent.bytes > self.limits.agent_log_bytes && agent.events.len() > 1 {
                    let old = agent.events.pop_front().expect("more than one");
                    agent.bytes -= old.data.len();
                    freed += old.data.len();
                    agent.dropped = true;
                }
                self.queued_bytes.fetch_sub(freed, Ordering::Relaxed);
            }
            Op::Forget(agent_id) => {
                if let Some(agent) = pending.events.remove(&agent_id) {
                    self.queued_bytes.fetch_sub(agent.bytes, Ordering::Relaxed);
                }
                pending.ops.push(op);
            }
            Op::Flush(done) | Op::Written(done) => pending.flushed.push(done),
            Op::Record(record) => {
                pending.records.insert(record.info.agent_id, record);
            }
            op => pending.ops.push(op),
        }
    }

    fn write(&mut self, mut pending: Pending) {
        let queued: usize = pending.events.values().map(|a| a.bytes).sum();
        let flushed = std::mem::take(&mut pending.flushed);
        let result = self.apply(pending);
        self.queued_bytes.fetch_sub(queued, Ordering::Relaxed);
        let result = result.and_then(|()| self.sweep_when_due());
        if let Err(err) = result {
            self.metrics.store_errors.inc();
            tracing::error!(%err, "writing to the store failed; these updates are not kept");
            *crate::sync::lock(&self.health) = Some((err.to_string(), Instant::now()));
            // What the database holds is the truth again.
            if let Ok(total) = total_log_bytes(&mut self.db) {
                self.total_log_bytes = total;
            }
        }
        self.check_database();
        for done in flushed {
            let _ = done.send(());
        }
    }

    /// Whether the database is still the one opened: one deleted or replaced under the proxy
    /// takes what is written with it, so the store says why it fails for as long as it does.
    fn check_database(&mut self) {
        let Some(why) = self.db.lost() else {
            return;
        };
        if !self.lost {
            self.lost = true;
            self.metrics.store_errors.inc();
            tracing::error!(%why, "the store's database is gone");
        }
        *crate::sync::lock(&self.health) = Some((why, Instant::now()));
    }

    fn apply(&mut self, pending: Pending) -> DbResult<()> {
        let limits = self.limits;
        let mut total = self.total_log_bytes;
        let mut claimed = Vec::new();
        let result = self.db.transaction(|db| {
            let mut forgotten = Vec::new();
            let mut ended = false;
            for record in pending.records.values() {
                ended |= record.info.ended_at.is_some();
                upsert(db, record)?;
            }
            for op in pending.ops {
                match op {
                    Op::Session(session, owner, cwd) => {
                        db.execute(
                            "INSERT INTO sessions (session_id, owner, cwd, created_at) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (session_id) DO NOTHING",
                            &[
                                session.to_string().into(),
                                owner.to_stored().into(),
                                cwd.to_string_lossy().as_ref().into(),
                                stored_time(Utc::now()).into(),
                            ],
                        )?;
                    }
                    Op::Forget(agent_id) => forgotten.push(agent_id),
                    Op::Conversation(conversation) => remember_conversation(db, &conversation)?,
                    Op::ForgetConversations(owner, recalls) => {
                        for recall in recalls {
                            db.execute(
                                "DELETE FROM conversations WHERE owner = ?1 AND recall = ?2",
                                &[owner.to_stored().into(), recall.into()],
                            )?;
                        }
                    }
                    Op::Usage(entry) => add_usage(db, &entry)?,
                    Op::Webhook(event) => super::outbox::put(db, &event)?,
                    Op::ClaimWebhooks(claim, answer) => {
                        claimed.push((answer, super::outbox::claim(db, &claim)?));
                    }
                    Op::WebhookAttempt(attempt) => super::outbox::attempted(db, &attempt)?,
                    Op::Record(_) | Op::Events(..) | Op::Flush(_) | Op::Written(_) => {}
                }
            }
            let mut announced = Announcement::default();
            for (agent_id, agent) in pending.events {
                if append(db, &limits, &mut total, agent_id, agent)? {
                    announced.push(agent_id);
                }
            }
            db.announce(EVENTS_CHANNEL, announced.payloads())?;
            if ended {
                // The count kept holds the moment an agent ends, not at the next sweep.
                keep_newest_finished(db, limits.retention.max_finished)?;
                total = total_log_bytes(db)?;
            }
            // After the records and events: a record that came before the forgetting goes too.
            for agent_id in forgotten {
                let id: Value = agent_id.to_string().into();
                let freed = db
                    .query_row(
                        "SELECT log_bytes FROM agents WHERE agent_id = ?1",
                        std::slice::from_ref(&id),
                    )?
                    .and_then(|row| row.int(0))
                    .unwrap_or(0);
                db.execute(
                    "DELETE FROM event_chunks WHERE agent_id = ?1",
                    std::slice::from_ref(&id),
                )?;
                db.execute("DELETE FROM agents WHERE agent_id = ?1", &[id])?;
                total = total.saturating_sub(freed.max(0) as usize);
            }
            Ok(())
        });
        if result.is_ok() {
            self.total_log_bytes = total;
            for (answer, claimed) in claimed {
                let _ = answer.send(claimed);
            }
        }
        result
    }

    /// Retention, at most once a second: finished agents past their time or past the count
    /// kept go, all events past their total bound go (those of the agents that finished first,
    /// first), and so do old sessions.
    fn sweep_when_due(&mut self) -> DbResult<()> {
        if self
            .last_sweep
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
            && self.total_log_bytes <= self.limits.logs_total_bytes
        {
            return Ok(());
        }
        self.last_sweep = Some(Instant::now());
        let limits = self.limits;
        let cutoff = Utc::now()
            - chrono::Duration::from_std(limits.retention.keep_for)
                .unwrap_or(chrono::Duration::MAX);
        let total = self.db.transaction(|db| {
            db.execute(
                "DELETE FROM agents WHERE ended_at IS NOT NULL AND ended_at < ?1",
                &[stored_time(cutoff).into()],
            )?;
            keep_newest_finished(db, limits.retention.max_finished)?;
            // Over the total: the finished agents' events go, oldest first, but their last
            // chunk (which holds `complete`).
            let mut total = total_log_bytes(db)?;
            if total > limits.logs_total_bytes {
                let oldest = db.query(
                    "SELECT agent_id FROM agents WHERE ended_at IS NOT NULL ORDER BY ended_at",
                    &[],
                )?;
                for row in oldest {
                    if total <= limits.logs_total_bytes {
                        break;
                    }
                    let id: Value = row.text(0).unwrap_or_default().into();
                    db.execute(
                        "DELETE FROM event_chunks WHERE agent_id = ?1 AND first_id < (
                             SELECT MAX(first_id) FROM event_chunks WHERE agent_id = ?1)",
                        std::slice::from_ref(&id),
                    )?;
                    db.execute(
                        "UPDATE agents SET log_bytes = (
                             SELECT CAST(COALESCE(SUM(length(events)), 0) AS BIGINT)
                             FROM event_chunks WHERE agent_id = ?1)
                         WHERE agent_id = ?1",
                        &[id],
                    )?;
                    total = total_log_bytes(db)?;
                }
            }
            super::outbox::sweep(db)?;
            db.execute(
                "DELETE FROM sessions WHERE created_at < ?1 OR session_id IN (
                     SELECT session_id FROM sessions ORDER BY created_at DESC LIMIT ?3 OFFSET ?2)",
                &[
                    stored_time(Utc::now() - chrono::Duration::days(SESSION_DAYS)).into(),
                    SESSIONS_KEPT.into(),
                    NO_LIMIT.into(),
                ],
            )?;
            Ok(total)
        })?;
        self.total_log_bytes = total;
        Ok(())
    }
}

/// The agents with new events, as notifications of at most [`ANNOUNCEMENT_BYTES`]: ids
/// separated by spaces.
#[derive(Default)]
struct Announcement {
    payloads: Vec<String>,
}

impl Announcement {
    fn push(&mut self, agent_id: Uuid) {
        match self.payloads.last_mut() {
            Some(last) if last.len() + 37 <= ANNOUNCEMENT_BYTES => {
                last.push(' ');
                last.push_str(&agent_id.to_string());
            }
            _ => self.payloads.push(agent_id.to_string()),
        }
    }

    fn payloads(self) -> Vec<String> {
        self.payloads
    }
}

/// Most bytes of one chunk: what the writer holds to encode it.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Writes an agent's next events, in chunks of about a megabyte at most, and keeps the agent
/// within its bound: older chunks go to make room, all of them when some of its events were
/// let go before they were written. Returns whether any were written.
fn append<D: Db>(
    db: &mut D,
    limits: &Limits,
    total_log_bytes: &mut usize,
    agent_id: Uuid,
    agent: PendingEvents,
) -> DbResult<bool> {
    let id: Value = agent_id.to_string().into();
    let Some(first_new) = agent.events.front().map(|e| e.id) else {
        return Ok(false);
    };
    let last_id = agent.events.back().map_or(first_new, |e| e.id);
    let Some(mut log_bytes) = db
        .query_row(
            "SELECT log_bytes FROM agents WHERE agent_id = ?1",
            std::slice::from_ref(&id),
        )?
        .and_then(|row| row.int(0))
    else {
        // Its record was not kept (the writer fell behind): neither are its events.
        return Ok(false);
    };
    if agent.dropped {
        db.execute(
            "DELETE FROM event_chunks WHERE agent_id = ?1",
            std::slice::from_ref(&id),
        )?;
        *total_log_bytes = (*total_log_bytes).saturating_sub(log_bytes.max(0) as usize);
        log_bytes = 0;
    }
    let events = Vec::from(agent.events);
    let mut start = 0;
    while start < events.len() {
        let mut end = start + 1;
        let mut bytes = events[start].data.len();
        while end < events.len() && bytes + events[end].data.len() <= CHUNK_BYTES {
            bytes += events[end].data.len();
            end += 1;
        }
        let run = &events[start..end];
        let blob = chunk::encode(run);
        let blob_len = blob.len();
        db.execute(
            "INSERT INTO event_chunks (agent_id, first_id, last_id, events, event_count) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (agent_id, first_id) DO UPDATE SET last_id = excluded.last_id,
                 events = excluded.events, event_count = excluded.event_count",
            &[
                id.clone(),
                run[0].id.into(),
                run[run.len() - 1].id.into(),
                blob.into(),
                run.len().into(),
            ],
        )?;
        log_bytes += blob_len as i64;
        *total_log_bytes += blob_len;
        start = end;
    }
    // Older chunks go while the agent is over its bound; the newest always stays.
    while log_bytes.max(0) as usize > limits.agent_log_bytes {
        let oldest = db.query_row(
            "SELECT first_id, CAST(length(events) AS BIGINT) FROM event_chunks
             WHERE agent_id = ?1 AND last_id < ?2 ORDER BY first_id LIMIT 1",
            &[id.clone(), last_id.into()],
        )?;
        let Some((first_id, bytes)) = oldest.and_then(|row| Some((row.int(0)?, row.int(1)?)))
        else {
            break;
        };
        db.execute(
            "DELETE FROM event_chunks WHERE agent_id = ?1 AND first_id = ?2",
            &[id.clone(), first_id.into()],
        )?;
        log_bytes -= bytes;
        *total_log_bytes = (*total_log_bytes).saturating_sub(bytes.max(0) as usize);
    }
    db.execute(
        "UPDATE agents SET log_bytes = ?2, ids_leased_through = GREATEST(ids_leased_through, ?3),
             written_at = ?4 WHERE agent_id = ?1",
        &[
            id,
            log_bytes.into(),
            (last_id + ID_LEASE).into(),
            stored_time(Utc::now()).into(),
        ],
    )?;
    Ok(true)
}

/// Forgets the finished agents past the newest `max_finished`, and their events.
fn keep_newest_finished<D: Db>(db: &mut D, max_finished: usize) -> DbResult<()> {
    let removed = db.execute(
        "DELETE FROM agents WHERE agent_id IN (
             SELECT agent_id FROM agents WHERE ended_at IS NOT NULL
             ORDER BY ended_at DESC LIMIT ?2 OFFSET ?1)",
        &[max_finished.into(), NO_LIMIT.into()],
    )?;
    if removed > 0 {
        db.execute(
            "DELETE FROM event_chunks WHERE agent_id NOT IN (SELECT agent_id FROM agents)",
            &[],
        )?;
    }
    Ok(())
}

/// Writes an agent's record, the first time with its first id lease, and when it was written
/// (its instance ran it then).
pub(super) fn upsert<D: Db>(db: &mut D, record: &AgentRecord) -> DbResult<()> {
    let r = &record.info;
    db.execute(
        "INSERT INTO agents (agent_id, owner, kind, status, pid, model, session_id, started_at,
             ended_at, exit_code, interactive, turns, result, total_cost_usd, num_turns, is_error,
             ids_leased_through, instance_id, written_at, mcp_servers, webhook_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
             ?20, ?21)
         ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, pid = excluded.pid,
             written_at = excluded.written_at,
             model = excluded.model, session_id = excluded.session_id,
             ended_at = excluded.ended_at, exit_code = excluded.exit_code,
             turns = excluded.turns, result = excluded.result,
             total_cost_usd = excluded.total_cost_usd, num_turns = excluded.num_turns,
             is_error = excluded.is_error,
             ids_leased_through = GREATEST(agents.ids_leased_through, excluded.ids_leased_through)",
        &[
            r.agent_id.to_string().into(),
            record.owner.to_stored().into(),
            r.kind.as_str().into(),
            r.status.as_str().into(),
            r.pid.map(i64::from).into(),
            r.model.clone().into(),
            r.session_id.clone().into(),
            stored_time(r.started_at).into(),
            r.ended_at.map(stored_time).into(),
            r.exit_code.map(i64::from).into(),
            r.interactive.into(),
            r.turns.into(),
            record.result.as_deref().into(),
            record.total_cost_usd.into(),
            record.num_turns.into(),
            record.is_error.into(),
            (record.newest_event + ID_LEASE).into(),
            record.instance.as_deref().into(),
            stored_time(Utc::now()).into(),
            (!r.mcp_servers.is_empty())
                .then(|| serde_json::to_string(&r.mcp_servers).unwrap_or_default())
                .into(),
            record.webhook.as_deref().into(),
        ],
    )?;
    Ok(())
}

/// The bytes of all agents' chunks, as the database counts them.
/// Adds one request's usage to its key's, agent's and model's hour.
fn add_usage<D: Db>(db: &mut D, entry: &UsageEntry) -> DbResult<()> {
    use chrono::{DurationRound, TimeDelta};
    let hour = entry
        .at
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or(entry.at);
    let u = &entry.usage;
    db.execute(
        "INSERT INTO usage_hours (owner, hour, agent_id, model, requests, errors, input_tokens,
             output_tokens, cache_read_input_tokens, cache_creation_input_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (owner, hour, agent_id, model) DO UPDATE SET
             requests = usage_hours.requests + excluded.requests,
             errors = usage_hours.errors + excluded.errors,
             input_tokens = usage_hours.input_tokens + excluded.input_tokens,
             output_tokens = usage_hours.output_tokens + excluded.output_tokens,
             cache_read_input_tokens = usage_hours.cache_read_input_tokens + excluded.cache_read_input_tokens,
             cache_creation_input_tokens = usage_hours.cache_creation_input_tokens + excluded.cache_creation_input_tokens",
        &[
            entry.owner.to_stored().into(),
            stored_time(hour).into(),
            entry.agent_id.to_string().into(),
            entry.model.as_str().into(),
            u.requests.into(),
            u.errors.into(),
            u.input_tokens.into(),
            u.output_tokens.into(),
            u.cache_read_input_tokens.into(),
            u.cache_creation_input_tokens.into(),
        ],
    )?;
    Ok(())
}

pub(super) fn total_log_bytes<D: Db>(db: &mut D) -> DbResult<usize> {
    Ok(db
        .query_row(
            "SELECT CAST(COALESCE(SUM(log_bytes), 0) AS BIGINT) FROM agents",
            &[],
        )?
        .and_then(|row| row.int(0))
        .unwrap_or(0) as usize)
}

/// Remembers a conversation's latest session (one more reply), then forgets its owner's least
/// recently used ones past the bound.
fn remember_conversation<D: Db>(db: &mut D, conversation: &ConversationRecord) -> DbResult<()> {
    let owner = conversation.owner.to_stored();
    db.execute(
        "INSERT INTO conversations (owner, recall, session_id, created_at, last_used_at, replies, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (owner, recall) DO UPDATE SET session_id = ?3, last_used_at = ?5,
             replies = conversations.replies + 1, body = ?7",
        &[
            owner.as_str().into(),
            conversation.recall.as_str().into(),
            conversation.session.to_string().into(),
            stored_time(conversation.created_at).into(),
            stored_time(conversation.last_used_at).into(),
            i64::from(conversation.replies).into(),
            conversation.body.clone().into(),
        ],
    )?;
    db.execute(
        "DELETE FROM conversations WHERE owner = ?1 AND recall IN (
             SELECT recall FROM conversations WHERE owner = ?1
             ORDER BY last_used_at DESC LIMIT ?3 OFFSET ?2)",
        &[
            owner.as_str().into(),
            CONVERSATIONS_PER_KEY.into(),
            NO_LIMIT.into(),
        ],
    )?;
    Ok(())
}
