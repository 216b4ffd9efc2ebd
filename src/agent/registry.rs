//! The live agents, shared by the handlers: for the agent limit, stop and health.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::{ProcessGroup, StopReason, StopSignal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Started by /agent/stream: its client reads the events.
    Stream,
    /// Started by /agent/start: it runs in the background.
    Start,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Starting,
    Running,
    Stopping,
}

#[derive(Debug)]
struct Entry {
    kind: AgentKind,
    pid: Option<u32>,
    status: LiveStatus,
    started_at: DateTime<Utc>,
    stop: StopSignal,
    /// Cancelled once the agent's process is reaped and it has left the registry.
    gone: CancellationToken,
}

/// A copy of one entry, for reading outside the lock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentSnapshot {
    pub agent_id: Uuid,
    pub kind: AgentKind,
    pub pid: Option<u32>,
    pub status: LiveStatus,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Registry {
    agents: Mutex<HashMap<Uuid, Entry>>,
    max_agents: usize,
}

/// The registry is full.
#[derive(Debug, Clone, Copy)]
pub struct Full {
    pub max_agents: usize,
}

impl Registry {
    pub fn new(max_agents: usize) -> Arc<Self> {
        Arc::new(Self {
            agents: Mutex::default(),
            max_agents,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert or remove), so a poisoned lock is still good to use.
        self.agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a place for a new agent before anything is spawned, so the limit holds however
    /// many requests arrive at once. The place is given back when the slot is dropped.
    pub fn reserve(self: &Arc<Self>, kind: AgentKind, stop: StopSignal) -> Result<Slot, Full> {
        let mut agents = self.lock();
        if agents.len() >= self.max_agents {
            return Err(Full {
                max_agents: self.max_agents,
            });
        }
        let agent_id = Uuid::new_v4();
        let gone = CancellationToken::new();
        agents.insert(
            agent_id,
            Entry {
                kind,
                pid: None,
                status: LiveStatus::Starting,
                started_at: Utc::now(),
                stop,
                gone: gone.clone(),
            },
        );
        Ok(Slot {
            registry: Arc::clone(self),
            agent_id,
            gone,
        })
    }

    /// Asks a live agent to stop; returns a token that is cancelled once it is gone, or None
    /// when no such agent runs.
    pub fn stop(&self, agent_id: Uuid) -> Option<CancellationToken> {
        let mut agents = self.lock();
        let entry = agents.get_mut(&agent_id)?;
        entry.status = LiveStatus::Stopping;
        entry.stop.stop(StopReason::Requested);
        Some(entry.gone.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Vec<AgentSnapshot> {
        self.lock()
            .iter()
            .map(|(id, e)| AgentSnapshot {
                agent_id: *id,
                kind: e.kind,
                pid: e.pid,
                status: e.status,
                started_at: e.started_at,
            })
            .collect()
    }

    /// The last resort of a shutdown that ran out of time: SIGKILL to every group left.
    pub fn kill_all(&self) {
        for pid in self.lock().values().filter_map(|e| e.pid) {
            ProcessGroup::of_leader(pid).signal(Signal::SIGKILL);
        }
    }
}

/// One agent's place in the registry, held by the task that runs it.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
    agent_id: Uuid,
    gone: CancellationToken,
}

impl Slot {
    pub fn agent_id(&self) -> Uuid {
        self.agent_id
    }

    pub fn running(&self, pid: u32) {
        if let Some(entry) = self.registry.lock().get_mut(&self.agent_id) {
            entry.pid = Some(pid);
            if entry.status == LiveStatus::Starting {
                entry.status = LiveStatus::Running;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.agent_id);
        self.gone.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_and_places_come_back() {
        let shutdown = CancellationToken::new();
        let registry = Registry::new(2);
        let a = registry
            .reserve(AgentKind::Stream, StopSignal::new(&shutdown))
            .unwrap();
        let _b = registry
            .reserve(AgentKind::Start, StopSignal::new(&shutdown))
            .unwrap();
        assert!(
            registry
                .reserve(AgentKind::Stream, StopSignal::new(&shutdown))
                .is_err()
        );
        drop(a);
        assert_eq!(registry.len(), 1);
        assert!(
            registry
                .reserve(AgentKind::Stream, StopSignal::new(&shutdown))
                .is_ok()
        );
    }

    #[test]
    fn stop_reaches_the_agent_and_unknown_ids_are_none() {
        let shutdown = CancellationToken::new();
        let registry = Registry::new(2);
        let stop = StopSignal::new(&shutdown);
        let slot = registry.reserve(AgentKind::Start, stop.clone()).unwrap();
        assert!(registry.stop(Uuid::new_v4()).is_none());
        let gone = registry.stop(slot.agent_id()).unwrap();
        assert!(stop.is_stopped());
        assert_eq!(stop.reason(), StopReason::Requested);
        assert!(!gone.is_cancelled());
        drop(slot);
        assert!(gone.is_cancelled());
    }
}
