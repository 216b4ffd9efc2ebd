//! The instances that share one PostgreSQL database: the agent core's [`Cluster`], over
//! LISTEN/NOTIFY and a few tables (`migrations/postgres/0002_instances.sql`).
//!
//! Three threads of its own, each with a connection: the *listener* hears what other instances
//! announce (new events, actions for this instance, their answers, the rate-limit gate); the
//! *replier* writes this instance's answers; the *heartbeat* says this instance is alive and
//! ends the agents of instances that have stopped saying so. The rest runs on the store's pool
//! of connections, on tokio's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::db::{Db, DbError, DbResult, stored_time};
use super::postgres::Postgres;
use super::sql_store::{Interrupted, Pool, end_interrupted_within};
use super::writer::{EVENTS_CHANNEL, upsert};
use crate::agent::{
    Admitted, AgentRecord, Answer, Cluster, ErrorKind, Forwarded, Incoming, NotHere, Refusal,
    StoreError, StoreFuture,
};

/// Payload `TARGET ID`: an action for the instance TARGET waits in row ID.
const ACTIONS: &str = "claude_proxy_actions";
/// Payload `ORIGIN ID`: the answer the instance ORIGIN waits for is in row ID.
const ANSWERS: &str = "claude_proxy_answers";
/// Payload: until when the subscription is rate limited (RFC 3339).
const GATES: &str = "claude_proxy_gates";
const RATE_LIMIT_GATE: &str = "rate_limit";
/// Actions another instance forwarded that wait to be performed here, at most.
const INCOMING: usize = 1024;
/// How long an answered or expired action's row stays, for an instance that reads it late.
const ACTION_ROWS_KEPT_MS: i64 = 60_000;
/// Between two attempts to reach the database again.
const RECONNECT: Duration = Duration::from_secs(1);

/// Now, in milliseconds since 1970, by the database's clock: one clock for all instances.
macro_rules! now_ms {
    () => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    };
}

/// What the cluster is given by the settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub instance: Arc<str>,
    /// Without a heartbeat this long, an instance's agents are ended by another.
    pub instance_timeout: Duration,
    /// How long a forwarded action may wait to be taken.
    #[expect(
        dead_code,
        reason = "the app sets it, but nothing in the cluster expires a forwarded action by it \
                  yet: the forwarding instance gives up after its own (agent::Settings)"
    )]
    pub forward_timeout: Duration,
    /// Largest session file kept for other instances.
    pub max_session_bytes: usize,
}

/// What the threads and the calls share.
struct Shared {
    instance: Arc<str>,
    /// Readers of agents that run elsewhere, by agent.
    watchers: Mutex<HashMap<Uuid, watch::Sender<()>>>,
    /// Forwarded actions waiting for their answer, by row.
    waiting: Mutex<HashMap<i64, oneshot::Sender<Answer>>>,
    rate_limited_until: Mutex<Option<DateTime<Utc>>>,
    incoming: mpsc::Sender<Incoming>,
    replies: Mutex<std_mpsc::Sender<Reply>>,
}

/// An answer for the instance that forwarded an action.
struct Reply {
    id: i64,
    origin: String,
    answer: Answer,
}

pub struct PgCluster {
    settings: ClusterSettings,
    pool: Arc<Pool<Postgres>>,
    shared: Arc<Shared>,
    incoming: Mutex<Option<mpsc::Receiver<Incoming>>>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("instance", &self.settings.instance)
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// Joins the instances of the database at `url`: beats once, then starts the threads.
    pub fn join(url: &str, settings: ClusterSettings, pool: Arc<Pool<Postgres>>) -> DbResult<Self> {
        let mut db = Postgres::connect(url)?;
        beat(&mut db, &settings.instance)?;
        let gate = db
            .query_row(
                "SELECT until FROM shared_gates WHERE name = ?1",
                &[RATE_LIMIT_GATE.into()],
            )?
            .and_then(|row| parse_time(row.text(0)?));
        drop(db);
        let (incoming_tx, incoming) = mpsc::channel(INCOMING);
        let (replies, replies_rx) = std_mpsc::channel();
        let shared = Arc::new(Shared {
            instance: Arc::clone(&settings.instance),
            watchers: Mutex::default(),
            waiting: Mutex::default(),
            rate_limited_until: Mutex::new(gate),
            incoming: incoming_tx,
            replies: Mutex::new(replies),
        });
        spawn("cluster-listener", {
            let (url, shared) = (url.to_owned(), Arc::clone(&shared));
            move || reconnecting(&url, |db| listen(db, &shared))
        });
        spawn("cluster-replier", {
            let url = url.to_owned();
            move || reply(&url, &replies_rx)
        });
        spawn("cluster-heartbeat", {
            let (url, settings) = (url.to_owned(), settings.clone());
            move || reconnecting(&url, |db| heartbeat(db, &settings))
        });
        Ok(Self {
            settings,
            pool,
            shared,
            incoming: Mutex::new(Some(incoming)),
        })
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .expect("a thread starts");
}

/// Runs `work` on a connection, and again on a new one whenever it fails.
fn reconnecting(url: &str, mut work: impl FnMut(&mut Postgres) -> DbResult<()>) {
    loop {
        let result = Postgres::connect(url).and_then(|mut db| work(&mut db));
        if let Err(err) = result {
            tracing::warn!(%err, "lost the shared database; connecting again");
        }
        std::thread::sleep(RECONNECT);
    }
}

impl Cluster for PgCluster {
    fn forward(
        &self,
        instance: &str,
        forwarded: Forwarded,
        wait: Duration,
    ) -> StoreFuture<'_, Option<Answer>> {
        let target = instance.to_owned();
        let instance = instance.to_owned();
        let origin = self.settings.instance.to_string();
        let expires_in = wait.as_millis() as i64;
        let shared = Arc::clone(&self.shared);
        let pool = Arc::clone(&self.pool);
        Box::pin(async move {
            let action = serde_json::to_string(&forwarded.action)
                .map_err(|err| StoreError(err.to_string()))?;
            let id = pool
                .run(move |db| {
                    db.transaction(|db| {
                        let id = db
                            .query_row(
                                concat!(
                                    "INSERT INTO forwarded_actions (origin, target, agent_id, owner, action, expires_ms)
                                     VALUES (?1, ?2, ?3, ?4, ?5, ",
                                    now_ms!(),
                                    " + ?6) RETURNING id"
                                ),
                                &[
                                    origin.into(),
                                    target.clone().into(),
                                    forwarded.agent_id.to_string().into(),
                                    forwarded.owner.into(),
                                    action.into(),
                                    expires_in.into(),
                                ],
                            )?
                            .and_then(|row| row.int(0))
                            .ok_or_else(|| DbError("no id for a forwarded action".into()))?;
                        db.announce(ACTIONS, vec![format!("{target} {id}")])?;
                        Ok(id)
                    })
                })
                .await?;
            let (answered, answer) = oneshot::channel();
            crate::sync::lock(&shared.waiting).insert(id, answered);
            let _waiting = Waiting { shared, id };
            // Answered before it was waited for: the listener had nobody to give it to.
            if let Some(answer) = pool.run(move |db| take_answer(db, id)).await? {
                return Ok(Some(answer));
            }
            let mut answer = answer;
            let lost = |_| StoreError("the answer was lost".into());
            if let Ok(answered) = tokio::time::timeout(wait, &mut answer).await {
                return answered.map(Some).map_err(lost);
            }
            // Withdrawn, unless the instance took it meanwhile: then it is being done, and its
            // answer is on its way.
            if pool.run(move |db| withdraw(db, id)).await? {
                return Ok(None);
            }
            match tokio::time::timeout(wait, answer).await {
                Ok(answered) => answered.map(Some).map_err(lost),
                Err(_) => Err(StoreError(format!(
                    "instance {instance} took the action but did not answer in twice {wait:?}; it may have been done"
                ))),
            }
        })
    }

    fn incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        crate::sync::lock(&self.incoming).take()
    }

    fn watch(&self, agent_id: Uuid) -> watch::Receiver<()> {
        let mut watchers = crate::sync::lock(&self.shared.watchers);
        watchers.retain(|_, sender| sender.receiver_count() > 0);
        watchers
            .entry(agent_id)
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    fn admit(&self, record: AgentRecord, max: Option<usize>) -> StoreFuture<'_, Admitted> {
        self.pool.run(move |db| {
            db.transaction(|db| {
                let owner = record.owner.to_stored();
                // One admission of this owner at a time, across instances.
                db.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(?1))",
                    &[owner.clone().into()],
                )?;
                if let Some(session) = &record.info.session_id {
                    let running = db.query_row(
                        "SELECT agent_id FROM agents
                         WHERE owner = ?1 AND session_id = ?2 AND ended_at IS NULL AND agent_id <> ?3
                         LIMIT 1",
                        &[
                            owner.clone().into(),
                            session.as_str().into(),
                            record.info.agent_id.to_string().into(),
                        ],
                    )?;
                    if let Some(running) = running
                        .as_ref()
                        .and_then(|row| row.text(0))
                        .and_then(|id| Uuid::try_parse(id).ok())
                    {
                        return Ok(Admitted::SessionInUse(running));
                    }
                }
                if let Some(max) = max {
                    let running = db
                        .query_row(
                            "SELECT COUNT(*) FROM agents WHERE owner = ?1 AND ended_at IS NULL",
                            &[owner.into()],
                        )?
                        .and_then(|row| row.int(0))
                        .unwrap_or(0);
                    if running.max(0) as usize >= max {
                        return Ok(Admitted::TooMany);
                    }
                }
                upsert(db, &record)?;
                Ok(Admitted::Yes)
            })
        })
    }

    fn share_rate_limit(&self, until: DateTime<Utc>) {
        raise(&self.shared.rate_limited_until, until);
        let shared = self.pool.run(move |db| {
            db.transaction(|db| {
                db.execute(
                    "INSERT INTO shared_gates (name, until) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET until = GREATEST(shared_gates.until, excluded.until)",
                    &[RATE_LIMIT_GATE.into(), stored_time(until).into()],
                )?;
                db.announce(GATES, vec![stored_time(until)])
            })
        });
        tokio::spawn(async move {
            if let Err(err) = shared.await {
                tracing::warn!(%err, "could not tell the other instances of the rate limit");
            }
        });
    }

    fn rate_limited_until(&self) -> Option<DateTime<Utc>> {
        *crate::sync::lock(&self.shared.rate_limited_until)
    }

    fn save_session(&self, session: Uuid, file: PathBuf) -> StoreFuture<'_, ()> {
        let instance = self.settings.instance.to_string();
        let max = self.settings.max_session_bytes;
        self.pool
            .run(move |db| save_session(db, session, &file, &instance, max))
    }

    fn restore_session(
        &self,
        session: Uuid,
        file: PathBuf,
    ) -> StoreFuture<'_, Result<(), NotHere>> {
        let instance = self.settings.instance.to_string();
        self.pool
            .run(move |db| restore_session(db, session, &file, &instance))
    }
}

/// Forgets a forwarded action nobody waits for any more.
struct Waiting {
    shared: Arc<Shared>,
    id: i64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        crate::sync::lock(&self.shared.waiting).remove(&self.id);
    }
}

fn raise(gate: &Mutex<Option<DateTime<Utc>>>, until: DateTime<Utc>) {
    let mut current = crate::sync::lock(gate);
    if current.is_none_or(|c| c < until) {
        *current = Some(until);
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The answer in row `id`, if it has come; the row goes once it is read.
/// Withdraws action `id` unless its instance has taken it: true when it will never be done.
fn withdraw(db: &mut Postgres, id: i64) -> DbResult<bool> {
    let row = db.query_row(
        "DELETE FROM forwarded_actions WHERE id = ?1 AND NOT taken RETURNING id",
        &[id.into()],
    )?;
    Ok(row.is_some())
}

fn take_answer(db: &mut Postgres, id: i64) -> DbResult<Option<Answer>> {
    let row = db.query_row(
        "DELETE FROM forwarded_actions WHERE id = ?1 AND answer IS NOT NULL RETURNING answer",
        &[id.into()],
    )?;
    Ok(row.and_then(|row| {
        let text = row.text(0)?;
        Some(serde_json::from_str(text).unwrap_or_else(|err| {
            Err(Refusal {
                kind: ErrorKind::SharedStore,
                message: format!("an answer this instance cannot read: {err}"),
            })
        }))
    }))
}

/// Says this instance is alive.
fn beat(db: &mut Postgres, instance: &str) -> DbResult<()> {
    db.execute(
        concat!(
            "INSERT INTO instances (instance_id, started_at, heartbeat_ms) VALUES (?1, ?2, ",
            now_ms!(),
            ") ON CONFLICT (instance_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms"
        ),
        &[instance.into(), stored_time(Utc::now()).into()],
    )
    .map(drop)
}

/// Beats, and ends the agents of the instances that have stopped beating, until the
/// connection fails.
fn heartbeat(db: &mut Postgres, settings: &ClusterSettings) -> DbResult<()> {
    let timeout_ms = settings.instance_timeout.as_millis() as i64;
    let every =
        (settings.instance_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        beat(db, &settings.instance)?;
        let silent = db.query(
            concat!(
                "SELECT instance_id FROM instances WHERE instance_id <> ?1 AND heartbeat_ms < ",
                now_ms!(),
                " - ?2"
            ),
            &[settings.instance.as_ref().into(), timeout_ms.into()],
        )?;
        for row in silent {
            let Some(dead) = row.text(0) else { continue };
            let ended = take_over(db, dead, timeout_ms)?;
            if let Some(ended) = ended {
                tracing::warn!(
                    instance = dead,
                    agents = ended,
                    "an instance stopped beating; its running agents are recorded as interrupted"
                );
            }
        }
        db.execute(
            concat!(
                "DELETE FROM forwarded_actions WHERE expires_ms < ",
                now_ms!(),
                " - ?1"
            ),
            &[ACTION_ROWS_KEPT_MS.into()],
        )?;
        std::thread::sleep(every);
    }
}

/// Ends a silent instance's running agents as after a crash, once: the instance that removes
/// its row does it. Returns how many, or None when another instance got there first.
fn take_over(db: &mut Postgres, dead: &str, timeout_ms: i64) -> DbResult<Option<usize>> {
    db.exclusive(|db| {
        let gone = db.execute(
            concat!(
                "DELETE FROM instances WHERE instance_id = ?1 AND heartbeat_ms < ",
                now_ms!(),
                " - ?2"
            ),
            &[dead.into(), timeout_ms.into()],
        )?;
        if gone == 0 {
            return Ok(None);
        }
        let ended = end_interrupted_within(db, Interrupted::OfInstance(dead))?;
        let ids: Vec<String> = ended.iter().map(Uuid::to_string).collect();
        // Readers elsewhere read the closing events at once.
        for batch in ids.chunks(180) {
            db.announce(EVENTS_CHANNEL, vec![batch.join(" ")])?;
        }
        Ok(Some(ended.len()))
    })
}

/// Hears what the other instances announce, until the connection fails.
fn listen(db: &mut Postgres, shared: &Shared) -> DbResult<()> {
    db.batch(&format!(
        "LISTEN {EVENTS_CHANNEL}; LISTEN {ACTIONS}; LISTEN {ANSWERS}; LISTEN {GATES}"
    ))?;
    // What may have come while nobody listened: actions waiting here, answers, events.
    let waiting = db.query(
        concat!(
            "SELECT id FROM forwarded_actions WHERE target = ?1 AND NOT taken AND expires_ms > ",
            now_ms!()
        ),
        &[shared.instance.as_ref().into()],
    )?;
    for row in waiting {
        if let Some(id) = row.int(0) {
            take_action(db, shared, id)?;
        }
    }
    let asked: Vec<i64> = crate::sync::lock(&shared.waiting).keys().copied().collect();
    for id in asked {
        answered(db, shared, id)?;
    }
    for watcher in crate::sync::lock(&shared.watchers).values() {
        watcher.send_replace(());
    }
    loop {
        let heard = {
            use ::postgres::fallible_iterator::FallibleIterator;
            let mut notifications = db.client().notifications();
            notifications.blocking_iter().next()
        };
        let heard = match heard {
            Ok(Some(heard)) => heard,
            Ok(None) => return Err(DbError("the connection closed".into())),
            Err(err) => return Err(super::postgres::error(err)),
        };
        let payload = heard.payload();
        match heard.channel() {
            EVENTS_CHANNEL => {
                let watchers = crate::sync::lock(&shared.watchers);
                for id in payload.split(' ').filter_map(|id| Uuid::try_parse(id).ok()) {
                    if let Some(watcher) = watchers.get(&id) {
                        watcher.send_replace(());
                    }
                }
            }
            ACTIONS => {
                if let Some((target, id)) = addressed(payload) {
                    if target == &*shared.instance {
                        take_action(db, shared, id)?;
                    }
                }
            }
            ANSWERS => {
                if let Some((origin, id)) = addressed(payload) {
                    if origin == &*shared.instance {
                        answered(db, shared, id)?;
                    }
                }
            }
            GATES => {
                if let Some(until) = parse_time(payload) {
                    raise(&shared.rate_limited_until, until);
                }
            }
            _ => {}
        }
    }
}

/// `INSTANCE ID`, as announced.
fn addressed(payload: &str) -> Option<(&str, i64)> {
    let (instance, id) = payload.rsplit_once(' ')?;
    Some((instance, id.parse().ok()?))
}

/// Takes the action in row `id` for this instance, unless another took it or it expired,
/// and hands it to the core.
fn take_action(db: &mut Postgres, shared: &Shared, id: i64) -> DbResult<()> {
    let Some(row) = db.query_row(
        concat!(
            "UPDATE forwarded_actions SET taken = TRUE WHERE id = ?1 AND target = ?2 AND NOT taken AND expires_ms > ",
            now_ms!(),
            " RETURNING origin, agent_id, owner, action"
        ),
        &[id.into(), shared.instance.as_ref().into()],
    )?
    else {
        return Ok(());
    };
    let origin = row.text(0).unwrap_or_default().to_owned();
    let replies = crate::sync::lock(&shared.replies).clone();
    let reply = move |answer: Answer| {
        let _ = replies.send(Reply { id, origin, answer });
    };
    let action = row.text(3).and_then(|a| serde_json::from_str(a).ok());
    let (Some(agent_id), Some(owner), Some(action)) = (
        row.text(1).and_then(|a| Uuid::try_parse(a).ok()),
        row.text(2),
        action,
    ) else {
        reply(Err(Refusal {
            kind: ErrorKind::Invalid,
            message: "an action this instance cannot read (is it of an older claude-proxy?)".into(),
        }));
        return Ok(());
    };
    let incoming = Incoming {
        forwarded: Forwarded {
            owner: owner.to_owned(),
            agent_id,
            action,
        },
        reply: Box::new(reply),
    };
    if let Err(refused) = shared.incoming.try_send(incoming) {
        let incoming = match refused {
            mpsc::error::TrySendError::Full(incoming)
            | mpsc::error::TrySendError::Closed(incoming) => incoming,
        };
        (incoming.reply)(Err(Refusal {
            kind: ErrorKind::TooMany,
            message: "the instance that runs this agent is too busy to take the action; retry"
                .into(),
        }));
    }
    Ok(())
}

/// Gives the answer in row `id` to the call waiting for it, if any.
fn answered(db: &mut Postgres, shared: &Shared, id: i64) -> DbResult<()> {
    if !crate::sync::lock(&shared.waiting).contains_key(&id) {
        return Ok(());
    }
    if let Some(answer) = take_answer(db, id)? {
        if let Some(waiting) = crate::sync::lock(&shared.waiting).remove(&id) {
            let _ = waiting.send(answer);
        }
    }
    Ok(())
}

/// Writes this instance's answers, each with a notification to the instance that asked.
fn reply(url: &str, replies: &std_mpsc::Receiver<Reply>) {
    let mut db: Option<Postgres> = None;
    while let Ok(reply) = replies.recv() {
        let answer = serde_json::to_string(&reply.answer).unwrap_or_else(|err| {
            serde_json::to_string(&Answer::Err(Refusal {
                kind: ErrorKind::SharedStore,
                message: err.to_string(),
            }))
            .expect("a refusal serializes")
        });
        let write = |db: &mut Postgres| {
            db.transaction(|db| {
                db.execute(
                    "UPDATE forwarded_actions SET answer = ?2 WHERE id = ?1",
                    &[reply.id.into(), answer.clone().into()],
                )?;
                db.announce(ANSWERS, vec![format!("{} {}", reply.origin, reply.id)])
            })
        };
        // One attempt, and one more on a new connection: past that, the asker times out.
        for _ in 0..2 {
            let connected = match db.take() {
                Some(db) => Ok(db),
                None => Postgres::connect(url),
            };
            match connected.and_then(|mut conn| write(&mut conn).map(|()| conn)) {
                Ok(conn) => {
                    db = Some(conn);
                    break;
                }
                Err(err) => tracing::warn!(%err, "could not write an answer for another instance"),
            }
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keeps the session's file as it is now, unless the version kept is the same.
fn save_session(
    db: &mut Postgres,
    session: Uuid,
    file: &Path,
    instance: &str,
    max_bytes: usize,
) -> DbResult<()> {
    let size = match std::fs::metadata(file) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(DbError(format!("{}: {err}", file.display()))),
    };
    let (contents, sha256) = if size as usize > max_bytes {
        (None, String::new())
    } else {
        let contents =
            std::fs::read(file).map_err(|err| DbError(format!("{}: {err}", file.display())))?;
        let sha256 = sha256_hex(&contents);
        (Some(contents), sha256)
    };
    let kept = db
        .query_row(
            "SELECT sha256 FROM session_files WHERE session_id = ?1",
            &[session.to_string().into()],
        )?
        .and_then(|row| row.text(0).map(str::to_owned));
    if contents.is_some() && kept.as_deref() == Some(sha256.as_str()) {
        return Ok(());
    }
    db.execute(
        "INSERT INTO session_files (session_id, contents, sha256, bytes, instance_id, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (session_id) DO UPDATE SET contents = excluded.contents,
             sha256 = excluded.sha256, bytes = excluded.bytes,
             instance_id = excluded.instance_id, updated_at = excluded.updated_at",
        &[
            session.to_string().into(),
            contents.into(),
            sha256.into(),
            size.into(),
            instance.into(),
            stored_time(Utc::now()).into(),
        ],
    )
    .map(drop)
}

/// Writes the kept version of the session's file where the CLI will look for it, unless the
/// file there is that version.
fn restore_session(
    db: &mut Postgres,
    session: Uuid,
    file: &Path,
    instance: &str,
) -> DbResult<Result<(), NotHere>> {
    let Some(row) = db.query_row(
        "SELECT contents, sha256, instance_id FROM session_files WHERE session_id = ?1",
        &[session.to_string().into()],
    )?
    else {
        return Ok(Ok(()));
    };
    let kept_by = row.text(2).unwrap_or_default();
    let Some(contents) = row.blob(0) else {
        if kept_by == instance {
            return Ok(Ok(()));
        }
        return Ok(Err(NotHere::TooLarge {
            instance: kept_by.to_owned(),
        }));
    };
    let here = std::fs::read(file).ok();
    if here.as_deref().map(sha256_hex).as_deref() == row.text(1) {
        return Ok(Ok(()));
    }
    let failed = |err: std::io::Error| DbError(format!("{}: {err}", file.display()));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    // Whole or not at all: a CLI never reads half a session.
    let partial = file.with_extension("jsonl.partial");
    std::fs::write(&partial, contents).map_err(failed)?;
    std::fs::rename(&partial, file).map_err(failed)?;
    Ok(Ok(()))
}
