//! The store in an SQLite database (WAL mode), through rusqlite with SQLite built in.
//!
//! Writes go to a thread of their own, which owns the writing connection: what the agents hand
//! over is queued (bounded in bytes; past the bound it is not kept, and its readers see a gap)
//! and written in one transaction per `flush` interval, with the bounds on events applied as
//! it goes. Reads use a connection of their own, on tokio's blocking pool. Migrations are
//! embedded and versioned with `PRAGMA user_version`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::chunk;
use crate::agent::{
    AgentInfo, AgentKind, AgentRecord, AgentStatus, Client, Event, Retention, Store, StoreError,
    StoreFuture, StoreHealth, StoredEvents, interrupted_events,
};
use crate::metrics::Metrics;

/// The migrations, in order: the database's `user_version` is how many have run.
const MIGRATIONS: &[&str] = &[include_str!("migrations/sqlite/0001_agents.sql")];

/// Ids of events an agent may make past what is written, before its record says so: after a
/// crash, its closing events are numbered past the lease, so past anything a client saw.
const ID_LEASE: u64 = 1_000_000;
/// Sessions are kept as long as the CLI keeps their files (30 days by default), and at most
/// this many.
const SESSIONS_KEPT: usize = 100_000;
const SESSION_DAYS: i64 = 30;
/// Operations that may wait for the writer, besides the bound on their bytes.
const QUEUE_OPS: usize = 65_536;

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

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database {} cannot be opened: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database {} is of a newer claude-proxy (schema version {found}; this one knows {known}): use that version, or another PROXY_DATABASE_URL",
        path.display()
    )]
    Newer {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

#[derive(Debug)]
pub struct SqliteStore {
    /// A channel that takes room only for what waits in it, bounded by `queued_ops`.
    queue: Sender<Op>,
    queued_ops: Arc<AtomicUsize>,
    /// Bytes of events queued for the writer.
    queued_bytes: Arc<AtomicUsize>,
    limits: Limits,
    health: Arc<Mutex<Option<(String, Instant)>>>,
    reader: Arc<Mutex<Connection>>,
    metrics: Arc<Metrics>,
}

/// How long a failed write keeps the store reported as failing: on a full disk, small writes
/// go on succeeding between the large ones that fail.
const FAILURE_SHOWN_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Op {
    Record(Box<AgentRecord>),
    Events(Uuid, Vec<Event>, usize),
    Session(Uuid, Client, PathBuf),
    Forget(Uuid),
    /// Write now, and say so.
    Flush(oneshot::Sender<()>),
    /// Say when what came before is written.
    Written(oneshot::Sender<()>),
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, upgrades its schema, ends the records of the
    /// agents that were running when the proxy last died, and starts the writer.
    pub fn open(path: &Path, limits: Limits, metrics: Arc<Metrics>) -> Result<Self, OpenError> {
        let opened = |source| OpenError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(opened)?;
        configure(&conn).map_err(opened)?;
        migrate(&mut conn, path)?;
        let interrupted = end_interrupted(&mut conn).map_err(opened)?;
        if interrupted > 0 {
            tracing::warn!(
                agents = interrupted,
                "agents were running when the proxy last stopped without ending them; recorded as interrupted"
            );
        }
        let reader = Connection::open(path).map_err(opened)?;
        configure(&reader).map_err(opened)?;

        let (queue, ops) = channel();
        let queued_ops = Arc::new(AtomicUsize::new(0));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let health = Arc::new(Mutex::new(None));
        let mut writer = Writer {
            total_log_bytes: total_log_bytes(&conn).map_err(opened)?,
            queued_ops: Arc::clone(&queued_ops),
            conn,
            limits,
            queued_bytes: Arc::clone(&queued_bytes),
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
            last_sweep: None,
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(ops))
            .expect("a thread starts");
        Ok(Self {
            queue,
            queued_ops,
            queued_bytes,
            limits,
            health,
            reader: Arc::new(Mutex::new(reader)),
            metrics,
        })
    }

    fn send(&self, op: Op) {
        let full = self.queued_ops.fetch_add(1, Ordering::Relaxed) >= QUEUE_OPS;
        let refused = if full {
            Some(op)
        } else {
            self.queue.send(op).err().map(|err| err.0)
        };
        if let Some(op) = refused {
            self.queued_ops.fetch_sub(1, Ordering::Relaxed);
            if let Op::Events(_, _, bytes) = op {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            }
            self.metrics.store_dropped.inc();
            tracing::warn!("the store's writer is behind: an update is not kept");
        }
    }

    /// Runs `read` on the reading connection, on tokio's blocking pool.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read(&crate::lock(&reader)))
                .await
                .map_err(|err| StoreError(err.to_string()))?
                .map_err(|err| StoreError(err.to_string()))
        })
    }
}

impl Store for SqliteStore {
    fn health(&self) -> StoreHealth {
        StoreHealth {
            kind: "sqlite",
            error: crate::lock(&self.health)
                .as_ref()
                .filter(|(_, at)| at.elapsed() < FAILURE_SHOWN_FOR)
                .map(|(error, _)| error.clone()),
        }
    }

    fn record(&self, record: AgentRecord) {
        self.send(Op::Record(Box::new(record)));
    }

    fn events(&self, agent_id: Uuid, events: &[Event]) {
        let bytes: usize = events.iter().map(|e| e.data.len()).sum();
        if self.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > self.limits.queue_bytes {
            // The disk is behind by the whole budget: these are not kept, and readers of the
            // store see a gap where they were.
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.metrics.store_dropped.inc();
            return;
        }
        self.send(Op::Events(agent_id, events.to_vec(), bytes));
    }

    fn session(&self, session: Uuid, owner: Client, cwd: PathBuf) {
        self.send(Op::Session(session, owner, cwd));
    }

    fn forget(&self, agent_id: Uuid) {
        self.send(Op::Forget(agent_id));
    }

    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let (done, written) = oneshot::channel();
        self.send(Op::Flush(done));
        Box::pin(async move {
            let _ = written.await;
        })
    }

    fn written(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let (done, written) = oneshot::channel();
        self.send(Op::Written(done));
        Box::pin(async move {
            let _ = written.await;
        })
    }

    fn agent(&self, owner: Client, agent_id: Uuid) -> StoreFuture<'_, Option<AgentRecord>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE agent_id = ?1 AND owner = ?2"),
                params![agent_id.to_string(), owner.to_stored()],
                agent_of_row,
            )
            .optional()
            .map(Option::flatten)
        })
    }

    fn agents(&self, owner: Client) -> StoreFuture<'_, Vec<AgentRecord>> {
        self.read(move |conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {AGENT_COLUMNS} FROM agents a WHERE owner = ?1 ORDER BY started_at"
            ))?;
            let rows = statement.query_map(params![owner.to_stored()], agent_of_row)?;
            rows.filter_map(Result::transpose).collect()
        })
    }

    fn events_after(
        &self,
        agent_id: Uuid,
        after: u64,
        max_bytes: usize,
    ) -> StoreFuture<'_, StoredEvents> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT events FROM event_chunks WHERE agent_id = ?1 AND last_id > ?2 ORDER BY first_id LIMIT 8",
            )?;
            let chunks = statement
                .query_map(params![agent_id.to_string(), after as i64], |row| {
                    row.get::<_, Vec<u8>>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut page = StoredEvents {
                at_end: chunks.is_empty(),
                ..StoredEvents::default()
            };
            let mut bytes = 0;
            'chunks: for blob in chunks {
                let Some(events) = chunk::decode(&blob) else {
                    return Err(rusqlite::Error::InvalidColumnType(
                        0,
                        "a damaged chunk of events".into(),
                        rusqlite::types::Type::Blob,
                    ));
                };
                for event in events.into_iter().filter(|e| e.id > after) {
                    let too_big = bytes > 0 && bytes + event.data.len() > max_bytes;
                    // Ids missing after this event are a gap, told at the start of a page.
                    let past_a_hole = page.events.last().is_some_and(|e: &Event| e.id + 1 < event.id);
                    if too_big || past_a_hole {
                        break 'chunks;
                    }
                    bytes += event.data.len();
                    page.events.push(event);
                }
            }
            if let Some(first) = page.events.first() {
                if first.id > after + 1 {
                    page.gap = Some((after + 1, first.id - 1));
                }
            }
            page.at_end |= page.events.last().is_some_and(|e| e.name == Some("complete"));
            Ok(page)
        })
    }

    fn session_owner(&self, session: Uuid) -> StoreFuture<'_, Option<(Client, PathBuf)>> {
        self.read(move |conn| {
            let found: Option<(String, String)> = conn
                .query_row(
                    "SELECT owner, cwd FROM sessions WHERE session_id = ?1",
                    params![session.to_string()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            Ok(found
                .and_then(|(owner, cwd)| Some((Client::from_stored(&owner)?, PathBuf::from(cwd)))))
        })
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
        row.get::<_, String>(0)
    })?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")
}

/// Runs the migrations this database has not had; refuses a database of a newer version.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let failed = |source| OpenError::Open {
        path: path.to_owned(),
        source,
    };
    let version = conn
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(failed)?
        .max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(OpenError::Newer {
            path: path.to_owned(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(migration).map_err(failed)?;
        tx.pragma_update(None, "user_version", (done + 1) as i64)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

/// The columns of an agent's record, and its newest and oldest events (from its chunks).
const AGENT_COLUMNS: &str = "agent_id, owner, kind, status, pid, model, session_id, started_at, ended_at, \
     exit_code, interactive, turns, result, total_cost_usd, num_turns, is_error, \
     (SELECT MAX(last_id) FROM event_chunks c WHERE c.agent_id = a.agent_id), \
     (SELECT MIN(first_id) FROM event_chunks c WHERE c.agent_id = a.agent_id), \
     ids_leased_through";

/// A row read back; None for one this version cannot read (its owner or status unknown).
fn agent_of_row(row: &Row<'_>) -> rusqlite::Result<Option<AgentRecord>> {
    let text = |i: usize| row.get::<_, String>(i);
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(row
            .get::<_, Option<String>>(i)?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    };
    let (Ok(agent_id), Some(owner), Some(kind), Some(status), Some(started_at)) = (
        Uuid::try_parse(&text(0)?),
        Client::from_stored(&text(1)?),
        AgentKind::from_str_opt(&text(2)?),
        AgentStatus::from_str_opt(&text(3)?),
        time(7)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(AgentRecord {
        owner,
        info: AgentInfo {
            agent_id,
            kind,
            status,
            pid: row.get(4)?,
            model: row.get(5)?,
            session_id: row.get(6)?,
            started_at,
            ended_at: time(8)?,
            exit_code: row.get(9)?,
            interactive: row.get(10)?,
            turns: row.get::<_, i64>(11)? as u64,
        },
        result: row.get::<_, Option<Vec<u8>>>(12)?.map(Bytes::from),
        total_cost_usd: row.get(13)?,
        num_turns: row.get::<_, Option<i64>>(14)?.map(|n| n as u64),
        is_error: row.get(15)?,
        newest_event: row.get::<_, Option<i64>>(16)?.unwrap_or(0) as u64,
        oldest_event: row.get::<_, Option<i64>>(17)?.unwrap_or(0) as u64,
    }))
}

fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn total_log_bytes(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row(
        "SELECT COALESCE(SUM(log_bytes), 0) FROM agents",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}

/// Ends, in their records, the agents that were running when the proxy died without ending
/// them: an `interrupted` error and `complete` `stopped`, numbered past their id lease.
fn end_interrupted(conn: &mut Connection) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let open: Vec<(AgentRecord, u64)> = {
        let mut statement = tx.prepare(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents a WHERE ended_at IS NULL"
        ))?;
        let rows =
            statement.query_map([], |row| {
                Ok(agent_of_row(row)?
                    .map(|record| (record, row.get::<_, i64>(18).unwrap_or(0) as u64)))
            })?;
        rows.filter_map(Result::transpose)
            .collect::<rusqlite::Result<_>>()?
    };
    let now = Utc::now();
    for (record, leased_through) in &open {
        let first_id = (*leased_through).max(record.newest_event) + 1;
        let events = interrupted_events(record, first_id, now);
        let blob = chunk::encode(&events);
        tx.execute(
            "INSERT INTO event_chunks (agent_id, first_id, last_id, events) VALUES (?1, ?2, ?3, ?4)",
            params![record.info.agent_id.to_string(), first_id as i64, (first_id + 1) as i64, blob],
        )?;
        tx.execute(
            "UPDATE agents SET status = 'stopped', ended_at = ?2, exit_code = NULL, log_bytes = log_bytes + ?3 WHERE agent_id = ?1",
            params![record.info.agent_id.to_string(), stored_time(now), blob.len() as i64],
        )?;
    }
    tx.commit()?;
    Ok(open.len())
}

/// The writer: the one connection that writes, on a thread of its own.
struct Writer {
    conn: Connection,
    limits: Limits,
    queued_ops: Arc<AtomicUsize>,
    queued_bytes: Arc<AtomicUsize>,
    health: Arc<Mutex<Option<(String, Instant)>>>,
    metrics: Arc<Metrics>,
    /// The bytes of all agents' chunks.
    total_log_bytes: usize,
    last_sweep: Option<Instant>,
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
    events: std::collections::VecDeque<Event>,
    bytes: usize,
    /// Events older than these were let go for the bound: what is written of the agent is
    /// older still, and goes too.
    dropped: bool,
}

impl Writer {
    /// Writes until every sender is gone: what has come within `flush` of the first waiting
    /// operation goes in one transaction.
    fn run(&mut self, ops: Receiver<Op>) {
        let queued_ops = Arc::clone(&self.queued_ops);
        let received = move |op: Op| {
            queued_ops.fetch_sub(1, Ordering::Relaxed);
            op
        };
        while let Ok(first) = ops.recv().map(&received) {
            let deadline = Instant::now() + self.limits.flush;
            let mut pending = Pending::default();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                let flush = matches!(op, Op::Flush(_));
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
                agent.events.extend(events);
                agent.bytes += bytes;
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
            *crate::lock(&self.health) = Some((err.to_string(), Instant::now()));
            // What the database holds is the truth again.
            if let Ok(total) = total_log_bytes(&self.conn) {
                self.total_log_bytes = total;
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }

    fn apply(&mut self, pending: Pending) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut forgotten = Vec::new();
        let mut ended = false;
        for record in pending.records.values() {
            ended |= record.info.ended_at.is_some();
            upsert(&tx, record)?;
        }
        for op in pending.ops {
            match op {
                Op::Session(session, owner, cwd) => {
                    tx.execute(
                        "INSERT OR IGNORE INTO sessions (session_id, owner, cwd, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            session.to_string(),
                            owner.to_stored(),
                            cwd.to_string_lossy(),
                            stored_time(Utc::now())
                        ],
                    )?;
                }
                Op::Forget(agent_id) => forgotten.push(agent_id),
                Op::Record(_) | Op::Events(..) | Op::Flush(_) | Op::Written(_) => {}
            }
        }
        for (agent_id, agent) in pending.events {
            append(
                &tx,
                &self.limits,
                &mut self.total_log_bytes,
                agent_id,
                agent,
            )?;
        }
        if ended {
            // The count kept holds the moment an agent ends, not at the next sweep.
            keep_newest_finished(&tx, self.limits.retention.max_finished)?;
            self.total_log_bytes = total_log_bytes(&tx)?;
        }
        // After the records and events: a record that came before the forgetting goes too.
        for agent_id in forgotten {
            let id = agent_id.to_string();
            let freed: i64 = tx
                .query_row(
                    "SELECT log_bytes FROM agents WHERE agent_id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()?
                .unwrap_or(0);
            tx.execute("DELETE FROM event_chunks WHERE agent_id = ?1", params![id])?;
            tx.execute("DELETE FROM agents WHERE agent_id = ?1", params![id])?;
            self.total_log_bytes = self.total_log_bytes.saturating_sub(freed as usize);
        }
        tx.commit()
    }

    /// Retention, at most once a second: finished agents past their time or past the count
    /// kept go, all events past their total bound go (those of the agents that finished first,
    /// first), and so do old sessions.
    fn sweep_when_due(&mut self) -> rusqlite::Result<()> {
        if self
            .last_sweep
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
            && self.total_log_bytes <= self.limits.logs_total_bytes
        {
            return Ok(());
        }
        self.last_sweep = Some(Instant::now());
        let retention = self.limits.retention;
        let cutoff = Utc::now()
            - chrono::Duration::from_std(retention.keep_for).unwrap_or(chrono::Duration::MAX);
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM agents WHERE ended_at IS NOT NULL AND ended_at < ?1",
            params![stored_time(cutoff)],
        )?;
        keep_newest_finished(&tx, retention.max_finished)?;
        // Over the total: the finished agents' events go, oldest first, but their last chunk
        // (which holds `complete`).
        let mut total = total_log_bytes(&tx)?;
        if total > self.limits.logs_total_bytes {
            let oldest: Vec<String> = {
                let mut statement = tx.prepare(
                    "SELECT agent_id FROM agents WHERE ended_at IS NOT NULL ORDER BY ended_at",
                )?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            for id in oldest {
                if total <= self.limits.logs_total_bytes {
                    break;
                }
                tx.execute(
                    "DELETE FROM event_chunks WHERE agent_id = ?1 AND first_id < (
                         SELECT MAX(first_id) FROM event_chunks WHERE agent_id = ?1)",
                    params![id],
                )?;
                tx.execute(
                    "UPDATE agents SET log_bytes = (SELECT COALESCE(SUM(length(events)), 0) FROM event_chunks WHERE agent_id = ?1) WHERE agent_id = ?1",
                    params![id],
                )?;
                total = total_log_bytes(&tx)?;
            }
        }
        tx.execute(
            "DELETE FROM sessions WHERE created_at < ?1 OR session_id IN (
                 SELECT session_id FROM sessions ORDER BY created_at DESC LIMIT -1 OFFSET ?2)",
            params![
                stored_time(Utc::now() - chrono::Duration::days(SESSION_DAYS)),
                SESSIONS_KEPT as i64
            ],
        )?;
        tx.commit()?;
        self.total_log_bytes = total;
        Ok(())
    }
}

/// Most bytes of one chunk: what the writer holds to encode it.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Writes an agent's next events, in chunks of about a megabyte at most, and keeps the agent
/// within its bound: older chunks go to make room, all of them when some of its events were
/// let go before they were written.
fn append(
    tx: &rusqlite::Transaction<'_>,
    limits: &Limits,
    total_log_bytes: &mut usize,
    agent_id: Uuid,
    agent: PendingEvents,
) -> rusqlite::Result<()> {
    let id = agent_id.to_string();
    let Some(first_new) = agent.events.front().map(|e| e.id) else {
        return Ok(());
    };
    let last_id = agent.events.back().map_or(first_new, |e| e.id);
    let Some(mut log_bytes) = tx
        .query_row(
            "SELECT log_bytes FROM agents WHERE agent_id = ?1",
            params![id],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
    else {
        // Its record was not kept (the writer fell behind): neither are its events.
        return Ok(());
    };
    if agent.dropped {
        tx.execute("DELETE FROM event_chunks WHERE agent_id = ?1", params![id])?;
        *total_log_bytes = (*total_log_bytes).saturating_sub(log_bytes as usize);
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
        tx.execute(
            "INSERT OR REPLACE INTO event_chunks (agent_id, first_id, last_id, events) VALUES (?1, ?2, ?3, ?4)",
            params![id, run[0].id as i64, run[run.len() - 1].id as i64, blob],
        )?;
        log_bytes += blob.len() as i64;
        *total_log_bytes += blob.len();
        start = end;
    }
    // Older chunks go while the agent is over its bound; the newest always stays.
    let budget = limits.agent_log_bytes;
    while log_bytes as usize > budget {
        let oldest: Option<(i64, usize)> = tx
            .query_row(
                "SELECT first_id, length(events) FROM event_chunks WHERE agent_id = ?1 AND last_id < ?2 ORDER BY first_id LIMIT 1",
                params![id, last_id as i64],
                |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as usize)),
            )
            .optional()?;
        let Some((first_id, bytes)) = oldest else {
            break;
        };
        tx.execute(
            "DELETE FROM event_chunks WHERE agent_id = ?1 AND first_id = ?2",
            params![id, first_id],
        )?;
        log_bytes -= bytes as i64;
        *total_log_bytes = (*total_log_bytes).saturating_sub(bytes);
    }
    tx.execute(
        "UPDATE agents SET log_bytes = ?2, ids_leased_through = MAX(ids_leased_through, ?3) WHERE agent_id = ?1",
        params![id, log_bytes, (last_id + ID_LEASE) as i64],
    )?;
    Ok(())
}

/// Forgets the finished agents past the newest `max_finished`, and their events.
fn keep_newest_finished(
    tx: &rusqlite::Transaction<'_>,
    max_finished: usize,
) -> rusqlite::Result<()> {
    let removed = tx.execute(
        "DELETE FROM agents WHERE agent_id IN (
             SELECT agent_id FROM agents WHERE ended_at IS NOT NULL
             ORDER BY ended_at DESC LIMIT -1 OFFSET ?1)",
        params![max_finished as i64],
    )?;
    if removed > 0 {
        tx.execute(
            "DELETE FROM event_chunks WHERE agent_id NOT IN (SELECT agent_id FROM agents)",
            [],
        )?;
    }
    Ok(())
}

/// Writes an agent's record, the first time with its first id lease.
fn upsert(tx: &rusqlite::Transaction<'_>, record: &AgentRecord) -> rusqlite::Result<()> {
    let r = &record.info;
    tx.execute(
        "INSERT INTO agents (agent_id, owner, kind, status, pid, model, session_id, started_at,
             ended_at, exit_code, interactive, turns, result, total_cost_usd, num_turns, is_error,
             ids_leased_through)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (agent_id) DO UPDATE SET status = excluded.status, pid = excluded.pid,
             model = excluded.model, session_id = excluded.session_id,
             ended_at = excluded.ended_at, exit_code = excluded.exit_code,
             turns = excluded.turns, result = excluded.result,
             total_cost_usd = excluded.total_cost_usd, num_turns = excluded.num_turns,
             is_error = excluded.is_error,
             ids_leased_through = MAX(ids_leased_through, excluded.ids_leased_through)",
        params![
            r.agent_id.to_string(),
            record.owner.to_stored(),
            r.kind.as_str(),
            r.status.as_str(),
            r.pid,
            r.model,
            r.session_id,
            stored_time(r.started_at),
            r.ended_at.map(stored_time),
            r.exit_code,
            r.interactive,
            r.turns as i64,
            record.result.as_deref(),
            record.total_cost_usd,
            record.num_turns.map(|n| n as i64),
            record.is_error,
            (record.newest_event + ID_LEASE) as i64,
        ],
    )?;
    Ok(())
}
