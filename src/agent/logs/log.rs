//! One agent's events, kept for readers who come (back) later.
//!
//! The log is written by the agent's own task and never waits for a reader: a reader that falls
//! behind the log's bound is told which events it missed (a gap) instead of holding the CLI
//! back. Memory is bounded per log, and all logs share one budget.
//!
//! A reader that is keeping up still gets every event, however large: when an event leaves the
//! log while a reader has taken everything before it, the log keeps it aside, past its budget,
//! until those readers have it or go away. It keeps one such event at most; when the next one
//! comes, a reader that still has not taken the first gets a gap, as any slow reader does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::agent::Event;

/// What an event costs beyond its payload: its place in the deque (56 bytes, in a deque that
/// may have room for twice its length) and the header of its payload's allocation.
pub const EVENT_OVERHEAD: usize = 128;

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
    /// What `events` cost.
    bytes: usize,
    /// Ids up to this one are no longer in `events`.
    dropped_through: u64,
    newest: u64,
    /// The last event (`complete`) is in.
    closed: bool,
    /// Each reader, and the id of the last event it has taken. A few at most: a list.
    readers: Vec<(u64, u64)>,
    next_reader: u64,
    /// An event gone from `events` that these readers had everything before.
    owed: Option<Owed>,
}

#[derive(Debug)]
struct Owed {
    event: Event,
    readers: Vec<u64>,
}

/// What a reader gets for one read.
#[derive(Debug, Default)]
pub struct Read {
    /// Events the reader asked for that are no longer kept: `(from, to)`, inclusive. They
    /// come before `events`.
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
        crate::sync::lock(&self.state)
    }

    /// Adds the next event. Older events go while the log is over its bound; the newest one
    /// always stays until the next arrives.
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
                self.shrink(&mut state, self.capacity, Keep::Owed);
            }
            state.newest
        };
        self.newest.send_replace(newest);
    }

    /// Drops all but the newest event (the `complete` of a finished agent), and any event kept
    /// for a reader, to give memory back to newer agents. Returns the bytes freed.
    pub fn drop_old_events(&self) -> usize {
        let mut state = self.lock();
        let before = state.bytes + state.owed_bytes();
        self.shrink(&mut state, 0, Keep::Nothing);
        self.release_owed(&mut state);
        before - state.bytes
    }

    fn shrink(&self, state: &mut LogState, limit: usize, keep: Keep) {
        while state.bytes > limit && state.events.len() > 1 {
            let old = state.events.pop_front().expect("more than one event");
            let size = cost(&old);
            state.bytes -= size;
            state.dropped_through = old.id;
            let owed_to: Vec<u64> = match keep {
                Keep::Owed => state
                    .readers
                    .iter()
                    .filter(|(_, taken)| *taken + 1 == old.id)
                    .map(|(reader, _)| *reader)
                    .collect(),
                Keep::Nothing => Vec::new(),
            };
            if owed_to.is_empty() {
                self.all_logs.fetch_sub(size, Ordering::Relaxed);
            } else {
                // Its bytes stay counted in all logs' total while it is owed.
                self.release_owed(state);
                state.owed = Some(Owed {
                    event: old,
                    readers: owed_to,
                });
            }
        }
    }

    fn release_owed(&self, state: &mut LogState) {
        if let Some(owed) = state.owed.take() {
            self.all_logs
                .fetch_sub(cost(&owed.event), Ordering::Relaxed);
        }
    }

    /// `reader` is owed nothing any more; an event owed to nobody is let go.
    fn settle_owed(&self, state: &mut LogState, reader: u64) {
        let Some(owed) = &mut state.owed else { return };
        owed.readers.retain(|r| *r != reader);
        if owed.readers.is_empty() {
            self.release_owed(state);
        }
    }

    /// A reader of the events after `cursor` (the last id it has).
    pub fn reader(self: &Arc<Self>, cursor: u64) -> LogReader {
        let id = {
            let mut state = self.lock();
            let id = state.next_reader;
            state.next_reader += 1;
            state.readers.push((id, cursor));
            id
        };
        LogReader {
            log: Arc::clone(self),
            id,
            cursor,
            newest: self.newest.subscribe(),
        }
    }

    /// The id of the last event, when the log is closed (it has `complete`) and `cursor` is
    /// past it: no event will ever follow `cursor`.
    pub fn closed_before(&self, cursor: u64) -> Option<u64> {
        let state = self.lock();
        (state.closed && cursor > state.newest).then_some(state.newest)
    }

    pub fn stats(&self) -> LogStats {
        let state = self.lock();
        LogStats {
            newest: state.newest,
            dropped: state.dropped_through,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Keep {
    /// An event that a reader keeping up has not taken yet is kept for it.
    Owed,
    Nothing,
}

impl LogState {
    fn owed_bytes(&self) -> usize {
        self.owed.as_ref().map_or(0, |owed| cost(&owed.event))
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let state = self.lock();
        let bytes = state.bytes + state.owed_bytes();
        self.all_logs.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One reader of a log: it reads from its cursor on, and the log knows how far it has come.
#[derive(Debug)]
pub struct LogReader {
    log: Arc<EventLog>,
    id: u64,
    cursor: u64,
    newest: watch::Receiver<u64>,
}

impl LogReader {
    /// The events after the last one read, up to about `max_bytes` of them.
    pub fn read(&mut self, max_bytes: usize) -> Read {
        // Marked seen before reading, so an event added after the read wakes `changed`.
        self.newest.borrow_and_update();
        let mut state = self.log.lock();
        let read = self.read_locked(&mut state, max_bytes);
        if let Some(last) = read.events.last() {
            self.cursor = last.id;
        } else if let Some((_, to)) = read.gap {
            self.cursor = to;
        }
        if let Some(taken) = state.readers.iter_mut().find(|(id, _)| *id == self.id) {
            taken.1 = self.cursor;
        }
        read
    }

    fn read_locked(&self, state: &mut LogState, max_bytes: usize) -> Read {
        let mut read = Read::default();
        let owed_here = state
            .owed
            .as_ref()
            .filter(|owed| owed.event.id == self.cursor + 1 && owed.readers.contains(&self.id));
        if let Some(owed) = owed_here {
            read.events.push(owed.event.clone());
            self.log.settle_owed(state, self.id);
            // What follows it, a gap perhaps, comes with the next read.
            return read;
        }
        let mut cursor = self.cursor;
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

    /// Waits until an event is added after the last read.
    pub async fn changed(&mut self) {
        // The sender lives in the log, which this reader holds: it is never dropped first.
        let _ = self.newest.changed().await;
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        let mut state = self.log.lock();
        state.readers.retain(|(id, _)| *id != self.id);
        self.log.settle_owed(&mut state, self.id);
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LogStats {
    /// The id of the newest event: events are numbered from 1, with no hole.
    pub newest: u64,
    /// Events no longer kept: the oldest ones, up to this id.
    pub dropped: u64,
}

impl LogStats {
    /// The events a reader gets.
    pub fn kept(&self) -> u64 {
        self.newest - self.dropped
    }
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

    /// What a reader that joins now, after `cursor`, reads first.
    fn read_after(log: &Arc<EventLog>, cursor: u64, max_bytes: usize) -> Read {
        log.reader(cursor).read(max_bytes)
    }

    #[test]
    fn readers_get_what_follows_their_cursor() {
        let log = EventLog::new(10_000, SharedBytes::default());
        for id in 1..=5 {
            log.append(event(id, 10));
        }
        assert_eq!(ids(&read_after(&log, 0, usize::MAX)), [1, 2, 3, 4, 5]);
        assert_eq!(ids(&read_after(&log, 3, usize::MAX)), [4, 5]);
        assert!(read_after(&log, 5, usize::MAX).events.is_empty());
        assert_eq!(
            ids(&read_after(&log, 0, 2 * (10 + EVENT_OVERHEAD) + 1)),
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
        let read = read_after(&log, 2, usize::MAX);
        assert_eq!(read.gap, Some((3, 7)));
        assert_eq!(ids(&read), [8, 9, 10]);
        assert_eq!(read_after(&log, 8, usize::MAX).gap, None);
        assert_eq!(log.stats().dropped, 7);
    }

    #[test]
    fn an_event_larger_than_the_log_stays_only_while_newest() {
        let log = EventLog::new(1000, SharedBytes::default());
        log.append(event(1, 10));
        log.append(event(2, 5000));
        assert_eq!(
            ids(&read_after(&log, 1, usize::MAX)),
            [2],
            "a live reader gets it"
        );
        log.append(event(3, 10));
        let read = read_after(&log, 1, usize::MAX);
        assert_eq!(read.gap, Some((2, 2)), "a later reader gets a gap");
        assert_eq!(ids(&read), [3]);
    }

    #[test]
    fn a_reader_keeping_up_gets_a_large_event_that_left_the_log() {
        let all = SharedBytes::default();
        let log = EventLog::new(1000, all.clone());
        log.append(event(1, 10));
        let mut live = log.reader(0);
        assert_eq!(ids(&live.read(usize::MAX)), [1]);
        let mut behind = log.reader(0);
        // The large event and two more, in one write of the CLI.
        log.extend([event(2, 5000), event(3, 10), event(4, 10)]);
        assert_eq!(ids(&live.read(usize::MAX)), [2], "the large event, whole");
        let rest = live.read(usize::MAX);
        assert_eq!((rest.gap, ids(&rest)), (None, vec![3, 4]));
        assert_eq!(
            all.load(Ordering::Relaxed),
            2 * (10 + EVENT_OVERHEAD),
            "once taken, it is no longer kept"
        );
        let late = behind.read(usize::MAX);
        assert_eq!(
            late.gap,
            Some((1, 2)),
            "a reader that was behind gets a gap"
        );
        assert_eq!(ids(&late), [3, 4]);
    }

    #[test]
    fn one_large_event_at_most_is_kept_for_readers() {
        let all = SharedBytes::default();
        let log = EventLog::new(1000, all.clone());
        let mut slow = log.reader(0);
        log.extend([event(1, 5000), event(2, 10)]);
        let mut fast = log.reader(1);
        assert_eq!(ids(&fast.read(usize::MAX)), [2]);
        log.extend([event(3, 5000), event(4, 10)]);
        assert_eq!(
            all.load(Ordering::Relaxed),
            5000 + 10 + 2 * EVENT_OVERHEAD,
            "the event owed to the fast reader replaced the one owed to the slow one"
        );
        assert_eq!(ids(&fast.read(usize::MAX)), [3]);
        assert_eq!(ids(&fast.read(usize::MAX)), [4]);
        let read = slow.read(usize::MAX);
        assert_eq!((read.gap, ids(&read)), (Some((1, 3)), vec![4]));
        drop((slow, fast));
        drop(log);
        assert_eq!(all.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_reader_behind_an_owed_event_gets_it_then_a_gap() {
        let log = EventLog::new(1000, SharedBytes::default());
        let mut reader = log.reader(0);
        log.extend([event(1, 5000), event(2, 5000), event(3, 10)]);
        assert_eq!(
            ids(&reader.read(usize::MAX)),
            [1],
            "owed when it left the log"
        );
        let read = reader.read(usize::MAX);
        assert_eq!((read.gap, ids(&read)), (Some((2, 2)), vec![3]));
    }

    #[test]
    fn a_reader_that_goes_away_frees_what_it_was_owed() {
        let all = SharedBytes::default();
        let log = EventLog::new(1000, all.clone());
        let reader = log.reader(0);
        log.extend([event(1, 5000), event(2, 10)]);
        assert_eq!(all.load(Ordering::Relaxed), 5000 + 10 + 2 * EVENT_OVERHEAD);
        drop(reader);
        assert_eq!(all.load(Ordering::Relaxed), 10 + EVENT_OVERHEAD);
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
        assert!(!read_after(&log, 0, 20).finished);
        assert!(read_after(&log, 0, usize::MAX).finished);
        assert!(read_after(&log, 2, usize::MAX).finished);
    }
}
