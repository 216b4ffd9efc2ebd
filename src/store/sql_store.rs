//! The store in a SQL database, written once for both engines ([`Db`]): SQLite by default,
//! PostgreSQL when instances share it.
//!
//! Writes go to a thread of their own, which owns the writing connection: what the agents hand
//! over is queued (bounded in bytes; past the bound it is not kept, and its readers see a gap)
//! and written in one transaction per `flush` interval, with the bounds on events applied as
//! it goes. Reads use a few connections of their own, on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use super::db::{Db, DbError, DbResult, Row, Value, stored_time};
use super::writer::{Limits, Op, Writer, total_log_bytes};
use super::{chunk, outbox};
use crate::agent::{
    AgentInfo, AgentKind, AgentRecord, AgentStatus, CONVERSATIONS_PER_KEY, ClaimedWebhooks, Client,
    ConversationRecord, Event, FinalStatus, ModelUsage, Store, StoreError, StoreFuture,
    StoreHealth, StoredEvents, Usage, UsageBy, UsageEntry, UsageQuery, UsageRow, WebhookAttempt,
    WebhookClaim, WebhookDelivery, WebhookEvent, ended_webhook_event, interrupted_events,
};
use crate::metrics::Metrics;

/// Operations that may wait for the writer, besides the bound on their bytes.
const QUEUE_OPS: usize = 65_536;
/// Connections that read at once.
const READERS: usize = 4;

/// Opens connections to one database.
pub type Connect<D> = Arc<dyn Fn() -> DbResult<D> + Send + Sync>;

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database {database} cannot be opened: {source}")]
    Open { database: String, source: DbError },
    #[error(
        "the database {database} is of a newer claude-proxy (schema version {found}; this one knows {known}): use that version, or another PROXY_DATABASE_URL"
    )]
    Newer {
        database: String,
        found: usize,
        known: usize,
    },
}

/// Which agents left running are this instance's to end at start: all of them when it is the
/// database's only instance, else those it ran under the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted<'a> {
    All,
    OfInstance(&'a str),
}

/// How long a failed write keeps the store reported as failing: on a full disk, small writes
/// go on succeeding between the large ones that fail.
const FAILURE_SHOWN_FOR: Duration = Duration::from_secs(60);

pub struct SqlStore<D: Db + 'static> {
    kind: &'static str,
    /// A channel that takes room only for what waits in it, bounded by `queued_ops`.
    queue: Sender<Op>,
    queued_ops: Arc<AtomicUsize>,
    /// Bytes of events queued for the writer.
    queued_bytes: Arc<AtomicUsize>,
    limits: Limits,
    health: Arc<Mutex<Option<(String, Instant)>>>,
    readers: Arc<Pool<D>>,
    metrics: Arc<Metrics>,
}

impl<D: Db + 'static> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Connections for work on tokio's blocking pool (reads), opened as they are needed, a few
/// at most.
pub(super) struct Pool<D: Db + 'static> {
    connect: Connect<D>,
    idle: Mutex<Vec<D>>,
    working: Arc<Semaphore>,
}

impl<D: Db + 'static> Pool<D> {
    pub(super) fn new(connect: Connect<D>, first: D) -> Arc<Self> {
        Arc::new(Self {
            connect,
            idle: Mutex::new(vec![first]),
            working: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// Runs `work` on a connection of the pool, on tokio's blocking pool.
    pub(super) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut D) -> DbResult<T> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let pool = Arc::clone(self);
        Box::pin(async move {
            let permit = Arc::clone(&pool.working)
                .acquire_owned()
                .await
                .map_err(|err| StoreError(err.to_string()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let idle = crate::sync::lock(&pool.idle).pop();
                let mut db = match idle {
                    Some(db) => db,
                    None => (pool.connect)()?,
                };
                let result = work(&mut db);
                // A connection that failed may be broken: the next work opens another.
                if result.is_ok() {
                    crate::sync::lock(&pool.idle).push(db);
                }
                result
            })
            .await
            .map_err(|err| StoreError(err.to_string()))?
            .map_err(|err| StoreError(err.0))
        })
    }
}

impl<D: Db + 'static> Drop for Pool<D> {
    /// A blocking client may hold a runtime of its own, which must not be dropped within the
    /// server's: the connections are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *crate::sync::lock(&self.idle));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || drop(idle));
        }
    }
}

impl<D: Db + 'static> SqlStore<D> {
    /// Opens the database `name` (as it is shown in errors), upgrades its schema, ends the
    /// records of the agents that were running when their proxy last died, and starts the
    /// writer.
    pub fn open(
        kind: &'static str,
        name: &str,
        connect: Connect<D>,
        migrations: &[&str],
        interrupted: Interrupted<'_>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Self, OpenError> {
        let opened = |source| OpenError::Open {
            database: name.to_owned(),
            source,
        };
        let mut db = connect().map_err(opened)?;
        migrate(&mut db, name, migrations)?;
        let ended = end_interrupted(&mut db, interrupted).map_err(opened)?;
        if !ended.is_empty() {
            tracing::warn!(
                agents = ended.len(),
                "agents were running when the proxy last stopped without ending them; recorded as interrupted"
            );
        }
        let readers = Pool::new(Arc::clone(&connect), connect().map_err(opened)?);

        let (queue, ops) = channel();
        let queued_ops = Arc::new(AtomicUsize::new(0));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let health = Arc::new(Mutex::new(None));
        let mut writer = Writer {
            total_log_bytes: total_log_bytes(&mut db).map_err(opened)?,
            queued_ops: Arc::clone(&queued_ops),
            db,
            limits,
            queued_bytes: Arc::clone(&queued_bytes),
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
            last_sweep: None,
            lost: false,
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(ops))
            .expect("a thread starts");
        Ok(Self {
            kind,
            queue,
            queued_ops,
            queued_bytes,
            limits,
            health,
            readers,
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

    /// The store's connections, for other work on the same database.
    pub(super) fn pool(&self) -> Arc<Pool<D>> {
        Arc::clone(&self.readers)
    }

    /// Runs `read` on a reading connection, on tokio's blocking pool.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut D) -> DbResult<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.readers.run(read)
    }
}

impl<D: Db + 'static> Store for SqlStore<D> {
    fn health(&self) -> StoreHealth {
        StoreHealth {
            kind: self.kind,
            error: crate::sync::lock(&self.health)
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
        self.read(move |db| {
            Ok(db
                .query_row(
                    concat!(
                        "SELECT ",
                        agent_columns!(),
                        " FROM agents a WHERE agent_id = ?1 AND owner = ?2"
                    ),
                    &[agent_id.to_string().into(), owner.to_stored().into()],
                )?
                .and_then(|row| agent_of_row(&row)))
        })
    }

    fn agents(&self, owner: Client) -> StoreFuture<'_, Vec<AgentRecord>> {
        self.read(move |db| {
            Ok(db
                .query(
                    concat!(
                        "SELECT ",
                        agent_columns!(),
                        " FROM agents a WHERE owner = ?1 ORDER BY started_at"
                    ),
                    &[owner.to_stored().into()],
                )?
                .iter()
                .filter_map(agent_of_row)
                .collect())
        })
    }

    fn events_after(
        &self,
        agent_id: Uuid,
        after: u64,
        max_bytes: usize,
    ) -> StoreFuture<'_, StoredEvents> {
        self.read(move |db| {
            let chunks = db.query(
                "SELECT events FROM event_chunks WHERE agent_id = ?1 AND last_id > ?2 ORDER BY first_id LIMIT 8",
                &[agent_id.to_string().into(), after.into()],
            )?;
            let mut page = StoredEvents {
                at_end: chunks.is_empty(),
                ..StoredEvents::default()
            };
            let mut bytes = 0;
            'chunks: for row in chunks {
                let Some(events) = row.blob(0).and_then(chunk::decode) else {
                    return Err(DbError("a damaged chunk of events".into()));
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

    fn conversation(&self, conversation: ConversationRecord) {
        self.send(Op::Conversation(Box::new(conversation)));
    }

    fn forget_conversations(&self, owner: Client, recalls: Vec<String>) {
        self.send(Op::ForgetConversations(owner, recalls));
    }

    fn conversation_of(
        &self,
        owner: Client,
        recall: String,
    ) -> StoreFuture<'_, Option<ConversationRecord>> {
        self.read(move |db| {
            Ok(db
                .query_row(
                    concat!(
                        "SELECT ",
                        conversation_columns!(),
                        " FROM conversations WHERE owner = ?1 AND recall = ?2"
                    ),
                    &[owner.to_stored().into(), recall.into()],
                )?
                .and_then(|row| conversation_of_row(&row)))
        })
    }

    fn conversations(&self, owner: Client) -> StoreFuture<'_, Vec<ConversationRecord>> {
        self.read(move |db| {
            Ok(db
                .query(
                    concat!(
                        "SELECT ",
                        conversation_columns!(),
                        " FROM conversations WHERE owner = ?1 ORDER BY last_used_at DESC LIMIT ?2"
                    ),
                    &[owner.to_stored().into(), CONVERSATIONS_PER_KEY.into()],
                )?
                .iter()
                .filter_map(conversation_of_row)
                .collect())
        })
    }

    fn usage(&self, entry: UsageEntry) {
        self.send(Op::Usage(Box::new(entry)));
    }

    fn usage_rows(&self, owner: Client, query: UsageQuery) -> StoreFuture<'_, Vec<UsageRow>> {
        self.read(move |db| {
            let params = [
                owner.to_stored().into(),
                // An hour counts when it ends after `from` and begins before `to`.
                query
                    .from
                    .map(|from| stored_time(from - chrono::TimeDelta::hours(1)))
                    .unwrap_or_default()
                    .into(),
                query
                    .to
                    .map(stored_time)
                    .unwrap_or_else(|| "~".to_owned())
                    .into(),
            ];
            let rows = match query.by {
                UsageBy::Day => db.query(
                    concat!(
                        "SELECT substr(hour, 1, 10), ",
                        usage_sums!(),
                        " FROM usage_hours WHERE owner = ?1 AND hour > ?2 AND hour < ?3
                         GROUP BY substr(hour, 1, 10) ORDER BY 1"
                    ),
                    &params,
                )?,
                UsageBy::Agent => db.query(
                    concat!(
                        "SELECT agent_id, ",
                        usage_sums!(),
                        " FROM usage_hours WHERE owner = ?1 AND hour > ?2 AND hour < ?3
                         GROUP BY agent_id ORDER BY MIN(hour), agent_id"
                    ),
                    &params,
                )?,
                UsageBy::Model => db.query(
                    concat!(
                        "SELECT model, ",
                        usage_sums!(),
                        " FROM usage_hours WHERE owner = ?1 AND hour > ?2 AND hour < ?3
                         GROUP BY model ORDER BY model"
                    ),
                    &params,
                )?,
            };
            Ok(rows
                .iter()
                .filter_map(|row| {
                    let key = row.text(0)?.to_owned();
                    let mut out = UsageRow {
                        day: None,
                        agent_id: None,
                        model: None,
                        usage: usage_of_row(row, 1),
                    };
                    match query.by {
                        UsageBy::Day => out.day = Some(key),
                        UsageBy::Agent => out.agent_id = Some(Uuid::try_parse(&key).ok()?),
                        UsageBy::Model => out.model = Some(key),
                    }
                    Some(out)
                })
                .collect())
        })
    }

    fn agent_usage(&self, owner: Client, agent_id: Uuid) -> StoreFuture<'_, Vec<ModelUsage>> {
        self.read(move |db| usage_of_agent(db, owner, agent_id))
    }

    fn webhook(&self, event: WebhookEvent) {
        self.send(Op::Webhook(Box::new(event)));
    }

    fn claim_webhooks(&self, claim: WebhookClaim) -> StoreFuture<'_, ClaimedWebhooks> {
        let (answer, claimed) = oneshot::channel();
        self.send(Op::ClaimWebhooks(Box::new(claim), answer));
        Box::pin(async move {
            claimed
                .await
                .map_err(|_| StoreError("the webhook outbox could not be claimed from".into()))
        })
    }

    fn webhook_attempt(&self, attempt: WebhookAttempt) {
        self.send(Op::WebhookAttempt(Box::new(attempt)));
    }

    fn webhook_deliveries(
        &self,
        owner: Client,
        agent_id: Uuid,
    ) -> StoreFuture<'_, Vec<WebhookDelivery>> {
        self.read(move |db| super::outbox::deliveries(db, owner, agent_id))
    }

    fn session_owner(&self, session: Uuid) -> StoreFuture<'_, Option<(Client, PathBuf)>> {
        self.read(move |db| {
            let row = db.query_row(
                "SELECT owner, cwd FROM sessions WHERE session_id = ?1",
                &[session.to_string().into()],
            )?;
            Ok(row.and_then(|row| {
                Some((
                    Client::from_stored(row.text(0)?)?,
                    PathBuf::from(row.text(1)?),
                ))
            }))
        })
    }
}

macro_rules! conversation_columns {
    () => {
        "owner, recall, session_id, created_at, last_used_at, replies, body"
    };
}
use conversation_columns;

fn conversation_of_row(row: &Row) -> Option<ConversationRecord> {
    Some(ConversationRecord {
        owner: Client::from_stored(row.text(0)?)?,
        recall: row.text(1)?.to_owned(),
        session: Uuid::try_parse(row.text(2)?).ok()?,
        created_at: time_of_row(row, 3)?,
        last_used_at: time_of_row(row, 4)?,
        replies: u32::try_from(row.int(5)?).unwrap_or(u32::MAX),
        body: row.text(6).map(str::to_owned),
    })
}

/// Runs the migrations this database has not had; refuses a database of a newer version.
fn migrate<D: Db>(db: &mut D, name: &str, migrations: &[&str]) -> Result<(), OpenError> {
    let newer = std::cell::Cell::new(None);
    db.exclusive(|db| {
        let version = db.schema_version()?;
        if version > migrations.len() {
            newer.set(Some(version));
            return Ok(());
        }
        for (done, migration) in migrations.iter().enumerate().skip(version) {
            db.batch(migration)?;
            db.set_schema_version(done + 1)?;
        }
        Ok(())
    })
    .map_err(|source| OpenError::Open {
        database: name.to_owned(),
        source,
    })?;
    match newer.get() {
        Some(found) => Err(OpenError::Newer {
            database: name.to_owned(),
            found,
            known: migrations.len(),
        }),
        None => Ok(()),
    }
}

/// The columns of an agent's record, its newest and oldest events and how many it keeps (from
/// its chunks).
macro_rules! agent_columns {
    () => {
        "agent_id, owner, kind, status, pid, model, session_id, started_at, ended_at, \
         exit_code, interactive, turns, result, total_cost_usd, num_turns, is_error, \
         (SELECT MAX(last_id) FROM event_chunks c WHERE c.agent_id = a.agent_id), \
         (SELECT MIN(first_id) FROM event_chunks c WHERE c.agent_id = a.agent_id), \
         ids_leased_through, instance_id, \
         (SELECT CAST(COALESCE(SUM(event_count), 0) AS BIGINT) FROM event_chunks c \
          WHERE c.agent_id = a.agent_id), \
         written_at, mcp_servers, webhook_url"
    };
}
pub(super) use agent_columns;

/// Columns of [`agent_columns`] beside the record's: its id lease, and when its instance last
/// wrote of it.
pub(super) const LEASED_THROUGH: usize = 18;
const WRITTEN_AT: usize = 21;

/// A row read back; None for one this version cannot read (its owner or status unknown).
/// The usage columns added up, as [`usage_of_row`] reads them.
macro_rules! usage_sums {
    () => {
        "CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
         CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
         CAST(SUM(cache_read_input_tokens) AS BIGINT), \
         CAST(SUM(cache_creation_input_tokens) AS BIGINT)"
    };
}
use usage_sums;

/// What the API counted for one agent's requests, by model.
fn usage_of_agent<D: Db>(db: &mut D, owner: Client, agent_id: Uuid) -> DbResult<Vec<ModelUsage>> {
    Ok(db
        .query(
            concat!(
                "SELECT model, ",
                usage_sums!(),
                " FROM usage_hours WHERE owner = ?1 AND agent_id = ?2
                 GROUP BY model ORDER BY MIN(hour), model"
            ),
            &[owner.to_stored().into(), agent_id.to_string().into()],
        )?
        .iter()
        .filter_map(|row| {
            Some(ModelUsage {
                model: row.text(0)?.to_owned(),
                usage: usage_of_row(row, 1),
            })
        })
        .collect())
}

/// [`usage_sums!`]'s columns, from `first` on.
fn usage_of_row(row: &Row, first: usize) -> Usage {
    let count = |i: usize| row.int(first + i).map_or(0, |n| n.max(0) as u64);
    Usage {
        requests: count(0),
        errors: count(1),
        input_tokens: count(2),
        output_tokens: count(3),
        cache_read_input_tokens: count(4),
        cache_creation_input_tokens: count(5),
    }
}

pub(super) fn agent_of_row(row: &Row) -> Option<AgentRecord> {
    let time = |i: usize| time_of_row(row, i);
    let count = |i: usize| row.int(i).map(|n| n.max(0) as u64);
    Some(AgentRecord {
        owner: Client::from_stored(row.text(1)?)?,
        info: AgentInfo {
            agent_id: Uuid::try_parse(row.text(0)?).ok()?,
            kind: AgentKind::from_str_opt(row.text(2)?)?,
            status: AgentStatus::from_str_opt(row.text(3)?)?,
            pid: row.int(4).and_then(|n| u32::try_from(n).ok()),
            model: row.text(5).map(str::to_owned),
            session_id: row.text(6).map(str::to_owned),
            started_at: time(7)?,
            ended_at: time(8),
            exit_code: row.int(9).and_then(|n| i32::try_from(n).ok()),
            interactive: row.bool(10).unwrap_or(false),
            turns: count(11).unwrap_or(0),
            mcp_servers: row
                .text(22)
                .and_then(|names| serde_json::from_str(names).ok())
                .unwrap_or_default(),
        },
        result: row.blob(12).map(Bytes::copy_from_slice),
        total_cost_usd: row.real(13),
        num_turns: count(14),
        is_error: row.bool(15),
        newest_event: count(16).unwrap_or(0),
        oldest_event: count(17).unwrap_or(0),
        kept_events: count(20).unwrap_or(0),
        instance: row.text(19).map(Arc::from),
        webhook: row.text(23).map(Arc::from),
    })
}

fn time_of_row(row: &Row, column: usize) -> Option<DateTime<Utc>> {
    row.text(column)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Ends, in their records, the agents that were running when their proxy died without ending
/// them: an `interrupted` error and `complete` `stopped`, numbered past their id lease, the
/// run's time up to the last time their proxy wrote of them. Returns the ids of those it
/// ended.
fn end_interrupted<D: Db>(db: &mut D, which: Interrupted<'_>) -> DbResult<Vec<Uuid>> {
    db.exclusive(|db| end_interrupted_within(db, which))
}

/// [`end_interrupted`], within a transaction begun with [`Db::begin_exclusive`].
pub(super) fn end_interrupted_within<D: Db>(
    db: &mut D,
    which: Interrupted<'_>,
) -> DbResult<Vec<Uuid>> {
    {
        let rows = match which {
            Interrupted::All => db.query(
                concat!(
                    "SELECT ",
                    agent_columns!(),
                    " FROM agents a WHERE ended_at IS NULL"
                ),
                &[],
            )?,
            Interrupted::OfInstance(instance) => db.query(
                concat!(
                    "SELECT ",
                    agent_columns!(),
                    " FROM agents a WHERE ended_at IS NULL AND instance_id = ?1"
                ),
                &[instance.into()],
            )?,
        };
        let now = Utc::now();
        let mut ended = Vec::new();
        for row in &rows {
            let Some(record) = agent_of_row(row) else {
                continue;
            };
            let leased_through = row.int(LEASED_THROUGH).unwrap_or(0).max(0) as u64;
            let first_id = leased_through.max(record.newest_event) + 1;
            // A record from before version 3 has no time of its last write: the run's time
            // then runs to now, as it did.
            let last_alive = time_of_row(row, WRITTEN_AT).unwrap_or(now);
            let events = interrupted_events(&record, first_id, last_alive);
            let blob = chunk::encode(&events);
            let stopped_id = record.info.agent_id;
            let id = stopped_id.to_string();
            db.execute(
                "INSERT INTO event_chunks (agent_id, first_id, last_id, events, event_count) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    id.clone().into(),
                    first_id.into(),
                    (first_id + events.len() as u64 - 1).into(),
                    Value::Blob(blob.clone()),
                    events.len().into(),
                ],
            )?;
            db.execute(
                "UPDATE agents SET status = 'stopped', ended_at = ?2, exit_code = NULL, log_bytes = log_bytes + ?3 WHERE agent_id = ?1",
                &[id.into(), stored_time(now).into(), blob.len().into()],
            )?;
            // In the same transaction as its end: whoever records the end posts it, once.
            if let Some(url) = record.webhook.clone() {
                let usage = usage_of_agent(db, record.owner, record.info.agent_id)?;
                let stopped = AgentRecord {
                    info: AgentInfo {
                        status: AgentStatus::Ended(FinalStatus::Stopped),
                        ended_at: Some(last_alive),
                        exit_code: None,
                        ..record.info.clone()
                    },
                    ..record
                };
                if let Some(event) = ended_webhook_event(&stopped, &usage, &url) {
                    outbox::put(db, &event)?;
                }
            }
            ended.push(stopped_id);
        }
        Ok(ended)
    }
}
