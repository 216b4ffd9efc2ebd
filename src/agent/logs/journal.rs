//! Where an agent's events are made and logged, one at a time: by its supervising task for the
//! CLI's lines, and by whoever settles one of its tool approvals. Held behind one lock, so the
//! events are numbered in the order they are logged.

use std::sync::Arc;

use crate::agent::event_bodies::NamedEvent;
use crate::agent::events::{EventMaker, RunSummary};
use crate::agent::logs::log::EventLog;
use crate::metrics::Metrics;
use crate::process::{Frame, Outcome};

use crate::agent::ports::store::Store;
use crate::agent::status::StopReason;
use uuid::Uuid;

#[derive(Debug)]
pub struct Journal {
    maker: EventMaker,
    log: Arc<EventLog>,
    metrics: Arc<Metrics>,
    /// Where the events are kept beyond this process, and under which agent.
    store: Option<(Arc<dyn Store>, Uuid)>,
}

/// What a step of the run changed, for the table and the conversation.
#[derive(Debug, Default)]
pub struct Changes {
    pub summary: Option<RunSummary>,
    /// The CLI's control lines, for the conversation.
    pub controls: Vec<bytes::Bytes>,
}

impl Journal {
    pub fn new(
        maker: EventMaker,
        log: Arc<EventLog>,
        metrics: Arc<Metrics>,
        store: Option<(Arc<dyn Store>, Uuid)>,
    ) -> Self {
        let mut journal = Self {
            maker,
            log,
            metrics,
            store,
        };
        journal.publish();
        journal
    }

    /// The CLI's lines become events.
    pub fn lines(&mut self, lines: Vec<Frame>) -> Changes {
        self.maker.lines(lines);
        self.publish();
        Changes {
            summary: self.maker.summary_update().cloned(),
            controls: self.maker.take_controls(),
        }
    }

    /// An event of the proxy's own.
    pub fn push<E: NamedEvent>(&mut self, event: &E) {
        self.maker.push_named(event);
        self.publish();
    }

    /// The closing events, but `complete`: the run's summary as it ends.
    pub fn ending(&mut self, outcome: Outcome, stopped_by: StopReason) -> RunSummary {
        self.maker.ending(outcome, stopped_by);
        self.maker
            .summary_update()
            .expect("the ending changes the summary")
            .clone()
    }

    /// Logs what is made and not yet logged (after an ending: the closing events).
    pub fn publish(&mut self) {
        let events = self.maker.take_events();
        if events.is_empty() {
            return;
        }
        self.metrics.events.inc_by(events.len() as u64);
        if let Some((store, agent_id)) = &self.store {
            store.events(*agent_id, &events);
        }
        self.log.extend(events);
    }
}
