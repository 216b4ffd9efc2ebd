//! claude-proxy runs the Claude Code CLI for HTTP clients and streams its stream-json output
//! back as Server-Sent Events.
//!
//! The layers, each a module, point one way (ARCHITECTURE.md has the map):
//! [`app`] builds everything from the settings → [`http`] is the edge → [`agent`] is the core →
//! [`process`] runs programs. [`store`] keeps agents beyond the process, for the core, which
//! knows it only as a trait; the app picks it. [`metrics`] and [`telemetry`] are leaves any
//! layer may use.
//! [`run`] serves on a listener until a shutdown future resolves, then ends every agent.

pub mod agent;
pub mod app;
pub mod cli;
pub mod http;
pub mod metrics;
pub mod process;
pub mod store;
pub mod telemetry;

use std::sync::{Mutex, MutexGuard};

pub use app::{App, Config, Error, StartupError, bind, raise_open_files_limit, run};

/// Locks `mutex`, poisoned or not. Every critical section in this crate leaves its data
/// consistent at each step (a single insert, remove, field update or write), so a panic in
/// one of them is no reason for every later caller to panic too.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
