//! What the agent core asks of a store that keeps agents beyond this process: their records,
//! their events and who owns each session. The core keeps the running and recent agents in
//! memory and hands the store a copy of all of it as it happens; after a restart, it asks the
//! store for what memory no longer has.
//!
//! Writing never waits: a store queues what it is given and writes it on its own time, and
//! whatever it cannot keep is a gap its readers are told of. Each backend (SQLite in
//! `crate::store`) implements this; the core knows none of them.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::agent::admission::keys::Client;
use crate::agent::event_bodies::{CompleteEvent, CompleteType, ErrorEvent, wire};
use crate::agent::events::Event;
use crate::agent::status::FinalStatus;
use crate::agent::usage::{ModelUsage, UsageEntry, UsageQuery, UsageRow};
use crate::agent::view::{AgentDetail, AgentInfo, WebhookDelivery};

/// What a read of the store gives, some time later.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store failed: {0}")]
pub struct StoreError(pub String);

/// One agent as kept: what `GET /agent/{id}` shows, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub owner: Client,
    /// What `GET /agents` shows of it.
    pub info: AgentInfo,
    /// The latest result line, as the CLI wrote it.
    pub result: Option<Bytes>,
    pub total_cost_usd: Option<f64>,
    pub num_turns: Option<u64>,
    pub is_error: Option<bool>,
    /// The id of its newest event kept, and of its oldest (0: none), as the store knows them.
    pub newest_event: u64,
    pub oldest_event: u64,
    /// How many of its events a reader gets: the ids up to `newest_event` that are missing
    /// (no longer kept, never written, or lost to a crash) are not among them.
    pub kept_events: u64,
    /// The instance that runs it (or ran it), by its id.
    pub instance: Option<Arc<str>>,
    /// Where its webhook events go: kept so that whoever ends it after its proxy died posts
    /// its `agent.failed`. Never shown (an operator's URL may hold a token).
    pub webhook: Option<Arc<str>>,
}

impl AgentRecord {
    /// What `GET /agent/{id}` shows of an agent the store keeps: it waits for nothing.
    pub fn detail(&self) -> AgentDetail {
        AgentDetail {
            info: self.info.clone(),
            result: self
                .result
                .as_ref()
                .and_then(|line| serde_json::from_slice(line).ok()),
            total_cost_usd: self.total_cost_usd,
            num_turns: self.num_turns,
            is_error: self.is_error,
            events: self.kept_events,
            dropped_events: self.newest_event.saturating_sub(self.kept_events),
            pending_permissions: Vec::new(),
            instance_id: self.instance.clone(),
            // Kept apart from the record: the core asks the store for it.
            usage: Vec::new(),
            webhooks: Vec::new(),
        }
    }
}

/// A page of a kept agent's events.
#[derive(Debug, Default)]
pub struct StoredEvents {
    /// Ids the reader asked for that are not kept (inclusive).
    pub gap: Option<(u64, u64)>,
    pub events: Vec<Event>,
    /// No event is kept after these.
    pub at_end: bool,
}

/// Whether the store writes what it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    pub kind: &'static str,
    /// The last write failed, with this error; None while writes succeed.
    pub error: Option<String>,
}

pub trait Store: Send + Sync + fmt::Debug + 'static {
    fn health(&self) -> StoreHealth;

    /// An agent started, or its record changed (its session, its results, its end).
    fn record(&self, record: AgentRecord);

    /// The next events of an agent, in order.
    fn events(&self, agent_id: Uuid, events: &[Event]);

    /// The client that made a session, and where it lives.
    fn session(&self, session: Uuid, owner: Client, cwd: PathBuf);

    /// Forgets an agent (`DELETE /agent/{id}`).
    fn forget(&self, agent_id: Uuid);

    /// Writes everything given so far now; resolves once it is written, or could not be.
    fn flush(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Resolves once everything given so far is written (or could not be), in the store's
    /// own time: unlike [`Store::flush`], it hastens nothing.
    fn written(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// An agent of `owner`, if it is kept.
    fn agent(&self, owner: Client, agent_id: Uuid) -> StoreFuture<'_, Option<AgentRecord>>;

    /// The agents of `owner` that are kept, oldest first.
    fn agents(&self, owner: Client) -> StoreFuture<'_, Vec<AgentRecord>>;

    /// Events of an agent after `after`, about `max_bytes` of them.
    fn events_after(
        &self,
        agent_id: Uuid,
        after: u64,
        max_bytes: usize,
    ) -> StoreFuture<'_, StoredEvents>;

    /// Who made a session, and where it lives.
    fn session_owner(&self, session: Uuid) -> StoreFuture<'_, Option<(Client, PathBuf)>>;

    /// A compatible API's reply was given by `conversation.session`: remembered under its
    /// owner and recall key (its reply count grows by one), within the bound per key.
    fn conversation(&self, conversation: ConversationRecord);

    /// Forgets conversations of `owner`, by their recall keys.
    fn forget_conversations(&self, owner: Client, recalls: Vec<String>);

    /// The conversation of `owner` remembered under `recall`.
    fn conversation_of(
        &self,
        owner: Client,
        recall: String,
    ) -> StoreFuture<'_, Option<ConversationRecord>>;

    /// The conversations of `owner`, the most recently used first.
    fn conversations(&self, owner: Client) -> StoreFuture<'_, Vec<ConversationRecord>>;

    /// What the API counted for one request of an agent's: kept by key, agent, model and
    /// hour, beyond the agent's own record (usage outlives retention and `DELETE`).
    fn usage(&self, entry: UsageEntry);

    /// `owner`'s usage, added up as `query` asks, in the order of what it adds up by.
    fn usage_rows(&self, owner: Client, query: UsageQuery) -> StoreFuture<'_, Vec<UsageRow>>;

    /// The usage of one agent of `owner`, by model.
    fn agent_usage(&self, owner: Client, agent_id: Uuid) -> StoreFuture<'_, Vec<ModelUsage>>;

    /// Puts a webhook event in the outbox: it is delivered (by this instance or any other
    /// sharing the database, now or after a restart) until it is, or its attempts run out.
    fn webhook(&self, event: WebhookEvent);

    /// Claims the outbox's events that are due and that no instance holds, for
    /// `claim.lease_until`: no other instance sends them meanwhile.
    fn claim_webhooks(&self, claim: WebhookClaim) -> StoreFuture<'_, ClaimedWebhooks>;

    /// How one attempt at a claimed event went; the claim ends.
    fn webhook_attempt(&self, attempt: WebhookAttempt);

    /// The webhook events of one agent of `owner`, oldest first, and how their delivery goes.
    fn webhook_deliveries(
        &self,
        owner: Client,
        agent_id: Uuid,
    ) -> StoreFuture<'_, Vec<WebhookDelivery>>;
}

/// A webhook event as the outbox keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Also its delivery's id, the same on every attempt: a receiver drops the repeats.
    pub id: Uuid,
    pub agent_id: Uuid,
    pub owner: Client,
    /// `agent.completed`, `agent.failed` or `permission.requested`.
    pub event: String,
    pub url: String,
    /// The JSON body, as every attempt sends it.
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// The attempts made before this one.
    pub attempts: u32,
}

/// What an instance asks of the outbox.
#[derive(Debug, Clone)]
pub struct WebhookClaim {
    pub instance: Arc<str>,
    pub now: DateTime<Utc>,
    /// Another instance may claim an event again after this (this one died meanwhile).
    pub lease_until: DateTime<Utc>,
    /// At most this many events.
    pub max: usize,
}

/// The events an instance claimed, and when the next of the others is due.
#[derive(Debug, Clone, Default)]
pub struct ClaimedWebhooks {
    pub events: Vec<WebhookEvent>,
    pub next_due: Option<DateTime<Utc>>,
}

/// One attempt at a claimed event.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub id: Uuid,
    /// The instance that claimed it: another's claim is not ended by this one.
    pub instance: Arc<str>,
    pub outcome: AttemptOutcome,
    /// The attempts made, this one included (unchanged when `Released`).
    pub attempts: u32,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed: tried again at this time.
    Retry(DateTime<Utc>),
    /// Failed, and its attempts are spent.
    GaveUp,
    /// Not attempted after all (the instance is shutting down): due again at once.
    Released,
}

/// The most conversations kept per key; past it, the least recently used are forgotten.
pub const CONVERSATIONS_PER_KEY: usize = 256;

/// A compatible API's conversation, as kept: the session that gave its last reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    pub owner: Client,
    /// How a request finds it again: `hash:` and the conversation's hash in hex, `name:` and
    /// the name the client gave it, or `response:` and a Responses API response's id.
    pub recall: String,
    pub session: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The replies given in it.
    pub replies: u32,
    /// A Responses API response's own record, as JSON (`recall` is `response:` and its id).
    pub body: Option<String>,
}

/// The events that close the record of an agent that was running when the proxy died without
/// ending it (its process group was ended by the watchdog): numbered from `first_id`, past any
/// id it may have sent before. Its `duration_ms` runs to `last_alive`, the last time the dead
/// proxy was known to run it.
pub fn interrupted_events(
    record: &AgentRecord,
    first_id: u64,
    last_alive: DateTime<Utc>,
) -> Vec<Event> {
    let duration_ms = (last_alive - record.info.started_at)
        .num_milliseconds()
        .max(0);
    vec![
        Event {
            id: first_id,
            name: Some("error"),
            data: wire(&ErrorEvent::new(
                "interrupted",
                "the proxy stopped without ending this agent (a crash, SIGKILL or a power cut); its CLI was ended with it",
            )),
        },
        Event {
            id: first_id + 1,
            name: Some("complete"),
            data: wire(&CompleteEvent {
                kind: CompleteType,
                agent_id: record.info.agent_id,
                status: FinalStatus::Stopped,
                exit_code: None,
                duration_ms: u64::try_from(duration_ms).unwrap_or(0),
                signal: None,
            }),
        },
    ]
}
