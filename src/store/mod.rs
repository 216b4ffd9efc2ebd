//! Where agents are kept beyond the process: the backends of the agent core's [`Store`]
//! (`crate::agent::Store`). SQLite by default, PostgreSQL for instances that share one
//! database; `memory` keeps them in the process only.
//!
//! Both engines run the same store ([`SqlStore`], over the [`Db`] each implements). A backend
//! depends on the agent core (it stores its records and events); the core knows none of them,
//! and only the app chooses one.

mod chunk;
mod cluster;
mod db;
mod outbox;
mod postgres;
mod sql_store;
mod sqlite;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cluster::ClusterSettings;
pub use db::Db;
pub use sql_store::{Interrupted, OpenError, SqlStore};
pub use writer::Limits;

use crate::agent::{Cluster, Store};
use crate::metrics::Metrics;
use cluster::PgCluster;
use postgres::Postgres;
use sqlite::Sqlite;

/// Which database, from `PROXY_DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// In the process only: nothing outlives it.
    Memory,
    Sqlite(PathBuf),
    /// A `postgres://` URL (or `postgresql://`), which may hold a password.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Memory => f.write_str("Memory"),
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => f.debug_tuple("Postgres").field(&redacted(url)).finish(),
        }
    }
}

impl Database {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url == "memory" {
            return Ok(Database::Memory);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if !path.is_empty() {
                return Ok(Database::Sqlite(PathBuf::from(path)));
            }
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return url
                .parse::<::postgres::Config>()
                .map(|_| Database::Postgres(url.to_owned()))
                .map_err(|err| format!("not a PostgreSQL URL: {err}"));
        }
        Err("expected memory, sqlite://PATH (such as sqlite:///var/lib/claude-proxy/claude-proxy.db), or postgres://USER:PASSWORD@HOST/DATABASE".into())
    }
}

/// A database URL with its password, if any, left out: for errors and logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The store in the SQLite file at `path`, this process its only user.
pub fn open_sqlite(
    path: &Path,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> Result<SqlStore<impl Db + 'static>, OpenError> {
    let file = path.to_owned();
    SqlStore::open(
        "sqlite",
        &path.display().to_string(),
        Arc::new(move || Sqlite::open(&file)),
        sqlite::MIGRATIONS,
        Interrupted::All,
        limits,
        metrics,
    )
}

/// A store shared with other instances, and this instance's place among them.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub cluster: Arc<dyn Cluster>,
}

/// The store in PostgreSQL, shared with other instances, and this instance's place among
/// them: at start, it ends only the agents it ran itself under its id.
pub fn open_postgres(
    url: &str,
    settings: ClusterSettings,
    limits: Limits,
    metrics: Arc<Metrics>,
) -> Result<Shared, OpenError> {
    let target = url.to_owned();
    let store = SqlStore::open(
        "postgres",
        &redacted(url),
        Arc::new(move || Postgres::connect(&target)),
        postgres::MIGRATIONS,
        Interrupted::OfInstance(&settings.instance),
        limits,
        metrics,
    )?;
    let cluster =
        PgCluster::join(url, settings, store.pool()).map_err(|source| OpenError::Open {
            database: redacted(url),
            source,
        })?;
    Ok(Shared {
        store: Arc::new(store),
        cluster: Arc::new(cluster),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(Database::parse("memory"), Ok(Database::Memory));
        assert_eq!(
            Database::parse("sqlite:///var/lib/x.db"),
            Ok(Database::Sqlite("/var/lib/x.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite://data/x.db"),
            Ok(Database::Sqlite("data/x.db".into()))
        );
        assert_eq!(
            Database::parse("postgres://proxy:secret@db:5432/claude"),
            Ok(Database::Postgres(
                "postgres://proxy:secret@db:5432/claude".into()
            ))
        );
        assert!(Database::parse("postgres://x:y@h:notaport/d").is_err());
        assert!(Database::parse("mysql://localhost/x").is_err());
        assert!(Database::parse("sqlite://").is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conversations_are_kept_per_key_within_the_bound_the_least_recently_used_going() {
        use crate::agent::{CONVERSATIONS_PER_KEY, Client, ConversationRecord, Retention};
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            flush: std::time::Duration::from_millis(10),
            agent_log_bytes: 1 << 20,
            logs_total_bytes: 1 << 24,
            retention: Retention {
                keep_for: std::time::Duration::from_secs(3600),
                max_finished: 100,
            },
            queue_bytes: 1 << 20,
        };
        let store = open_sqlite(&dir.path().join("x.db"), limits, Arc::default()).unwrap();
        let owner = Client::Anonymous;
        let other = Client::from_stored(&"cd".repeat(16)).unwrap();
        let start = chrono::Utc::now();
        let record = |owner, n: usize| ConversationRecord {
            owner,
            recall: format!("name:c{n}"),
            session: uuid::Uuid::new_v4(),
            created_at: start,
            last_used_at: start + chrono::Duration::seconds(n as i64),
            replies: 1,
            body: None,
        };
        for n in 0..=CONVERSATIONS_PER_KEY {
            store.conversation(record(owner, n));
        }
        store.conversation(record(other, 0));
        // A second reply in c1: the same entry, one more reply, used last.
        let again = ConversationRecord {
            last_used_at: start + chrono::Duration::hours(1),
            ..record(owner, 1)
        };
        store.conversation(again.clone());
        store.flush().await;
        let kept = store.conversations(owner).await.unwrap();
        assert_eq!(kept.len(), CONVERSATIONS_PER_KEY);
        assert_eq!((kept[0].recall.as_str(), kept[0].replies), ("name:c1", 2));
        assert_eq!(kept[0].session, again.session);
        assert!(
            kept.iter().all(|c| c.recall != "name:c0"),
            "the least recently used went"
        );
        let found = store
            .conversation_of(owner, "name:c2".into())
            .await
            .unwrap();
        assert!(found.is_some());
        assert_eq!(
            store.conversations(other).await.unwrap().len(),
            1,
            "per key"
        );
        store.forget_conversations(owner, vec!["name:c2".into()]);
        store.flush().await;
        assert!(
            store
                .conversation_of(owner, "name:c2".into())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.conversations(other).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_webhook_event_is_claimed_by_one_instance_at_a_time_until_its_lease_runs_out() {
        use crate::agent::{
            AttemptOutcome, Client, Retention, WebhookAttempt, WebhookClaim, WebhookEvent,
            WebhookState,
        };
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            flush: std::time::Duration::from_millis(10),
            agent_log_bytes: 1 << 20,
            logs_total_bytes: 1 << 24,
            retention: Retention {
                keep_for: std::time::Duration::from_secs(3600),
                max_finished: 100,
            },
            queue_bytes: 1 << 20,
        };
        let store = open_sqlite(&dir.path().join("x.db"), limits, Arc::default()).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let start = chrono::Utc::now();
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        let event = WebhookEvent {
            id: uuid::Uuid::new_v4(),
            agent_id: uuid::Uuid::new_v4(),
            owner: Client::Anonymous,
            event: "agent.completed".into(),
            url: "http://127.0.0.1:9/hook".into(),
            body: "{}".into(),
            created_at: start,
            attempts: 0,
        };
        store.webhook(event.clone());
        let claim = |instance: &Arc<str>, now: i64, lease: i64| WebhookClaim {
            instance: Arc::clone(instance),
            now: at(now),
            lease_until: at(lease),
            max: 16,
        };
        let attempt = |instance: &Arc<str>, outcome, attempts| WebhookAttempt {
            id: event.id,
            instance: Arc::clone(instance),
            outcome,
            attempts,
            status: Some(500),
            error: Some("the receiver answered 500".into()),
            at: start,
        };
        let claimed = |c| async { store.claim_webhooks(c).await.unwrap().events };

        assert_eq!(claimed(claim(&a, 0, 60)).await, vec![event.clone()]);
        assert!(claimed(claim(&b, 1, 60)).await.is_empty(), "a holds it");
        // Only the holder's attempt counts.
        store.webhook_attempt(attempt(&b, AttemptOutcome::Delivered, 1));
        assert!(
            claimed(claim(&b, 2, 60)).await.is_empty(),
            "a still holds it"
        );
        store.webhook_attempt(attempt(&a, AttemptOutcome::Retry(at(10)), 1));
        assert!(claimed(claim(&b, 5, 60)).await.is_empty(), "not due yet");
        let again = claimed(claim(&b, 10, 20)).await;
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        // b dies holding it: once its lease has run out, a takes it.
        assert!(claimed(claim(&a, 15, 60)).await.is_empty());
        assert_eq!(claimed(claim(&a, 21, 80)).await.len(), 1);
        store.webhook_attempt(attempt(&b, AttemptOutcome::GaveUp, 2));
        // A shutdown hands it back: due at once.
        store.webhook_attempt(attempt(&a, AttemptOutcome::Released, 1));
        assert_eq!(claimed(claim(&b, 22, 80)).await.len(), 1);
        store.webhook_attempt(WebhookAttempt {
            status: Some(200),
            error: None,
            ..attempt(&b, AttemptOutcome::Delivered, 2)
        });
        assert!(claimed(claim(&a, 100, 160)).await.is_empty(), "delivered");
        store.flush().await;
        let shown = store
            .webhook_deliveries(Client::Anonymous, event.agent_id)
            .await
            .unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(
            (shown[0].state, shown[0].attempts, shown[0].last_status),
            (WebhookState::Delivered, 2, Some(200))
        );
        assert!(
            store
                .webhook_deliveries(
                    Client::from_stored(&"cd".repeat(16)).unwrap(),
                    event.agent_id
                )
                .await
                .unwrap()
                .is_empty(),
            "another key's"
        );
    }

    #[test]
    fn passwords_stay_out_of_what_is_shown() {
        let url = "postgres://proxy:s3cret@db:5432/claude";
        assert_eq!(redacted(url), "postgres://proxy:***@db:5432/claude");
        assert!(!format!("{:?}", Database::parse(url).unwrap()).contains("s3cret"));
        assert_eq!(redacted("postgres://db/claude"), "postgres://db/claude");
    }
}
