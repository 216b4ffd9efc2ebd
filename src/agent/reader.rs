//! A reader of an agent's events, wherever they are: in memory while the agent is there, live
//! until its `complete`; else in the store.

use std::sync::Arc;

use uuid::Uuid;

use super::log::{LogReader, Read};
use super::store::Store;

#[derive(Debug)]
pub enum EventReader {
    Live(LogReader),
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
            EventReader::Stored {
                store,
                agent_id,
                cursor,
            } => match store.events_after(*agent_id, *cursor, max_bytes).await {
                Ok(page) => {
                    if let Some(last) = page.events.last() {
                        *cursor = last.id;
                    } else if let Some((_, to)) = page.gap {
                        *cursor = to;
                    }
                    Read {
                        gap: page.gap,
                        events: page.events,
                        finished: page.at_end,
                    }
                }
                Err(err) => {
                    // The stream ends without `complete`: a client that reconnects later with
                    // the last id it saw goes on from there.
                    tracing::warn!(%err, %agent_id, "could not read an agent's events from the store");
                    Read {
                        finished: true,
                        ..Read::default()
                    }
                }
            },
        }
    }

    /// Waits until an event is added after the last read. Only a live agent gets more: a kept
    /// one has all of its events.
    pub async fn changed(&mut self) {
        match self {
            EventReader::Live(reader) => reader.changed().await,
            EventReader::Stored { .. } => std::future::pending().await,
        }
    }
}
