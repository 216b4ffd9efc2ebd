//! A cancellation that remembers why it happened.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::agent::status::StopReason;

/// Tells a run to stop, and why. It is a child of the server's shutdown token, so a shutdown
/// reaches every run without a list of them.
#[derive(Debug, Clone)]
pub struct StopSignal {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl StopSignal {
    pub fn new(shutdown: &CancellationToken) -> Self {
        Self {
            token: shutdown.child_token(),
            reason: Arc::default(),
        }
    }

    /// Stops the run; the first reason given is the one that counts.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Cancelled once the run is told to stop, for whoever supervises its process.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the run was stopped; a stop that came through the shutdown token carries no reason
    /// of its own.
    pub fn reason(&self) -> StopReason {
        self.reason.get().copied().unwrap_or(StopReason::Shutdown)
    }

    /// Stops the run with `reason` when the returned guard is dropped, unless it was stopped
    /// before: a response body holds one, so a client that goes away stops its run.
    pub fn stop_on_drop(&self, reason: StopReason) -> StopOnDrop {
        StopOnDrop {
            signal: self.clone(),
            reason,
        }
    }
}

#[derive(Debug)]
pub struct StopOnDrop {
    signal: StopSignal,
    reason: StopReason,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.signal.is_stopped() {
            self.signal.stop(self.reason);
        }
    }
}
