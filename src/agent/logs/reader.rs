//! A reader of an agent's events, wherever they are: in memory while the agent is there, live
//! until its `complete`; in the store while it runs on another instance, live as that
//! instance writes them; else in the store.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::agent::admission::keys::Client;
use crate::agent::logs::log::{LogReader, Read};
use crate::agent::ports::store::{Store, StoredEvents};

/// A reader of an agent on another instance looks again this often even when nothing was
/// announced: an announcement lost with a connection costs this much delay, never a hang.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// An agent recorded as ended whose `complete` is not in the store (its writer fell behind)
/// ends its readers' streams after this long.
const ENDED_WITHOUT_COMPLETE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum EventReader {
    Live(LogReader),
    Remote(RemoteReader),
    Stored {
        store: Arc<dyn Store>,
        agent_id: Uuid,
        /// The id of the last event read.
        cursor: u64,
    },
}

impl EventReader {
    /// The events after the last one read, up to about `max_bytes` of them.
    pub async fn read(&mut self, max_bytes: usize) -> Read {
        match self {
            EventReader::Live(reader) => reader.read(max_bytes),
            EventReader::Remote(reader) => reader.read(max_bytes).await,
            EventReader::Stored {
                store,
                agent_id,
                cursor,
            } => match store.events_after(*agent_id, *cursor, max_bytes).await {
                Ok(page) => {
                    let finished = page.at_end;
                    page_read(page, cursor, finished)
                }
                Err(err) => unreadable(&err, *agent_id),
            },
        }
    }

    /// Waits until an event is added after the last read. Only a live agent gets more: a kept
    /// one has all of its events.
    pub async fn changed(&mut self) {
        match self {
            EventReader::Live(reader) => reader.changed().await,
            EventReader::Remote(reader) => reader.changed().await,
            EventReader::Stored { .. } => std::future::pending().await,
        }
    }
}

/// A page of the store as read, the cursor moved past it.
fn page_read(page: StoredEvents, cursor: &mut u64, finished: bool) -> Read {
    if let Some(last) = page.events.last() {
        *cursor = last.id;
    } else if let Some((_, to)) = page.gap {
        *cursor = to;
    }
    Read {
        gap: page.gap,
        events: page.events,
        finished,
    }
}

/// The stream ends without `complete`: a client that reconnects later with the last id it saw
/// goes on from there.
fn unreadable(err: &crate::agent::ports::store::StoreError, agent_id: Uuid) -> Read {
    tracing::warn!(%err, %agent_id, "could not read an agent's events from the store");
    Read {
        finished: true,
        ..Read::default()
    }
}

/// A reader of an agent that runs on another instance: pages of the store, and a wait for the
/// announcements of its new events there.
#[derive(Debug)]
pub struct RemoteReader {
    store: Arc<dyn Store>,
    owner: Client,
    agent_id: Uuid,
    /// The id of the last event read.
    cursor: u64,
    announced: watch::Receiver<()>,
    /// When the agent was first seen ended with nothing more to read.
    seen_ended: Option<Instant>,
}

impl RemoteReader {
    /// `announced` changes whenever the agent's events are written.
    pub fn new(
        store: Arc<dyn Store>,
        owner: Client,
        agent_id: Uuid,
        cursor: u64,
        announced: watch::Receiver<()>,
    ) -> Self {
        Self {
            store,
            owner,
            agent_id,
            cursor,
            announced,
            seen_ended: None,
        }
    }

    async fn read(&mut self, max_bytes: usize) -> Read {
        let page = match self
            .store
            .events_after(self.agent_id, self.cursor, max_bytes)
            .await
        {
            Ok(page) => page,
            Err(err) => return unreadable(&err, self.agent_id),
        };
        let complete = page
            .events
            .last()
            .is_some_and(|e| e.name == Some("complete"));
        let nothing = page.events.is_empty() && page.gap.is_none();
        let finished = complete || (nothing && self.has_ended().await);
        page_read(page, &mut self.cursor, finished)
    }

    /// Whether the agent is gone, or ended long enough ago that its `complete` is not coming.
    async fn has_ended(&mut self) -> bool {
        match self.store.agent(self.owner, self.agent_id).await {
            Ok(None) => true,
            Ok(Some(record)) if record.info.ended_at.is_some() => {
                self.seen_ended.get_or_insert_with(Instant::now).elapsed() >= ENDED_WITHOUT_COMPLETE
            }
            _ => false,
        }
    }

    async fn changed(&mut self) {
        let announced = async {
            if self.announced.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = announced => {}
            () = tokio::time::sleep(LOOK_AGAIN) => {}
        }
    }
}
