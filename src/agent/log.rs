//! One agent's events, kept for readers who come (back) later.
//!
//! The log is written by the agent's own task and never waits for a reader: a reader that falls
//! behind the log's bound is told which events it missed (a gap) instead of holding the CLI
//! back. Memory is bounded per log, and all logs share one budget.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::Event;

/// What an event costs beyond its payload: id, name and framing.
const EVENT_OVERHEAD: usize = 64;

/// The bytes held by every log together.
pub type SharedBytes = Arc<AtomicUsize>;

#[derive(Debug)]
pub struct EventLog {
    state: Mutex<LogState>,
    capacity: usize,
    all_logs: SharedBytes,
    /// The id of the newest event, for readers to wait on.
    newest: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct LogState {
    events: VecDeque<Event>,
    bytes: usize,
    /// Ids up to this one are no longer kept.
    dropped_through: u64,
    newest: u64,
    /// The last event (`complete`) is in.
    closed: bool,
}

/// What a reader gets for one read.
#[derive(Debug, Default)]
pub struct Read {
    /// Events the reader asked for that are no longer kept: `(from, to)`, inclusive.
    pub gap: Option<(u64, u64)>,
    pub events: Vec<Event>,
    /// The log is closed and the reader has everything: the stream is over.
    pub finished: bool,
}

impl EventLog {
    pub fn new(capacity: usize, all_logs: SharedBytes) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            capacity,
            all_logs,
            newest: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        crate::lock(&self.state)
    }

    /// Adds the next event. Older events go while the log is over its bound; the newest one
    /// always stays until the next arrives, so readers keeping up get even an event larger
    /// than the whole log.
    #[cfg(test)]
    pub fn append(&self, event: Event) {
        self.extend(std::iter::once(event));
    }

    /// Adds the next events with one lock, and wakes the readers once.
    pub fn extend(&self, events: impl IntoIterator<Item = Event>) {
        let newest = {
            let mut state = self.lock();
            for event in events {
                let size = cost(&event);
                state.bytes += size;
                self.all_logs.fetch_add(size, Ordering::Relaxed);
                state.newest = event.id;
                state.closed |= event.name == Some("complete");
                state.events.push_back(event);
                // Shrinking per event keeps every event but the newest within the bound, as
                // one at a time would.
                self.shrink(&mut state, self.capacity);
            }
            state.newest
        };
        self.newest.send_replace(newest);
    }

    /// Drops all but the newest event (the `complete` of a finished agent), to give memory
    /// back to newer agents. Returns the bytes freed.
    pub fn drop_old_events(&self) -> usize {
        let mut state = self.lock();
        let before = state.bytes;
        self.shrink(&mut state, 0);
        before - state.bytes
    }

    fn shrink(&self, state: &mut LogState, limit: usize) {
        while state.bytes > limit && state.events.len() > 1 {
            let old = state.events.pop_front().expect("more than one event");
            let size = cost(&old);
            state.bytes -= size;
            self.all_logs.fetch_sub(size, Ordering::Relaxed);
            state.dropped_through = old.id;
        }
    }

    /// Events after `cursor` (the last id the reader has), up to about `max_bytes` of them.
    pub fn read_after(&self, cursor: u64, max_bytes: usize) -> Read {
        let state = self.lock();
        let mut read = Read::default();
        let mut cursor = cursor;
        if cursor < state.dropped_through {
            read.gap = Some((cursor + 1, state.dropped_through));
            cursor = state.dropped_through;
        }
        let first = state.events.front().map_or(state.newest + 1, |e| e.id);
        let skip = usize::try_from(cursor.saturating_sub(first - 1)).unwrap_or(usize::MAX);
        let mut bytes = 0;
        for event in state.events.iter().skip(skip) {
            if bytes > 0 && bytes + cost(event) > max_bytes {
                break;
            }
            bytes += cost(event);
            read.events.push(event.clone());
        }
        let reached = read.events.last().map_or(cursor, |e| e.id);
        read.finished = state.closed && reached >= state.newest;
        read
    }

    /// A receiver that is told each time an event is added.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    pub fn stats(&self) -> LogStats {
        let state = self.lock();
        LogStats {
            events: state.newest,
            dropped: state.dropped_through,
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let bytes = self.lock().bytes;
        self.all_logs.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LogStats {
    /// Events written so far.
    pub events: u64,
    /// Events no longer kept.
    pub dropped: u64,
}

fn cost(event: &Event) -> usize {
    event.data.len() + EVENT_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(id: u64, size: usize) -> Event {
        Event {
            id,
            name: None,
            data: Bytes::from(vec![b'x'; size]),
        }
    }

    fn ids(read: &Read) -> Vec<u64> {
        read.events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn readers_get_what_follows_their_cursor() {
        let log = EventLog::new(10_000, SharedBytes::default());
        for id in 1..=5 {
            log.append(event(id, 10));
        }
        assert_eq!(ids(&log.read_after(0, usize::MAX)), [1, 2, 3, 4, 5]);
        assert_eq!(ids(&log.read_after(3, usize::MAX)), [4, 5]);
        assert!(log.read_after(5, usize::MAX).events.is_empty());
        assert_eq!(
            ids(&log.read_after(0, 150)),
            [1, 2],
            "reads are bounded in size"
        );
    }

    #[test]
    fn the_oldest_events_go_and_late_readers_are_told() {
        let log = EventLog::new(3 * (100 + EVENT_OVERHEAD), SharedBytes::default());
        for id in 1..=10 {
            log.append(event(id, 100));
        }
        let read = log.read_after(2, usize::MAX);
        assert_eq!(read.gap, Some((3, 7)));
        assert_eq!(ids(&read), [8, 9, 10]);
        assert_eq!(log.read_after(8, usize::MAX).gap, None);
        assert_eq!(log.stats().dropped, 7);
    }

    #[test]
    fn an_event_larger_than_the_log_stays_only_while_newest() {
        let log = EventLog::new(1000, SharedBytes::default());
        log.append(event(1, 10));
        log.append(event(2, 5000));
        assert_eq!(
            ids(&log.read_after(1, usize::MAX)),
            [2],
            "a live reader gets it"
        );
        log.append(event(3, 10));
        let read = log.read_after(1, usize::MAX);
        assert_eq!(read.gap, Some((2, 2)), "a later reader gets a gap");
        assert_eq!(ids(&read), [3]);
    }

    #[test]
    fn all_logs_share_one_count_of_bytes() {
        let all = SharedBytes::default();
        let a = EventLog::new(10_000, all.clone());
        let b = EventLog::new(10_000, all.clone());
        a.append(event(1, 100));
        b.append(event(1, 100));
        b.append(event(2, 100));
        assert_eq!(all.load(Ordering::Relaxed), 3 * (100 + EVENT_OVERHEAD));
        assert_eq!(b.drop_old_events(), 100 + EVENT_OVERHEAD);
        drop(a);
        assert_eq!(all.load(Ordering::Relaxed), 100 + EVENT_OVERHEAD);
    }

    #[test]
    fn a_closed_log_says_when_a_reader_has_it_all() {
        let log = EventLog::new(10_000, SharedBytes::default());
        log.append(event(1, 10));
        log.append(Event {
            id: 2,
            name: Some("complete"),
            data: Bytes::from_static(b"{}"),
        });
        assert!(!log.read_after(0, 20).finished);
        assert!(log.read_after(0, usize::MAX).finished);
        assert!(log.read_after(2, usize::MAX).finished);
    }
}
