//! Child processes, from spawn to reaping: each runs as the leader of a process group of its
//! own, its stdout is framed into lines, its stderr's tail is kept, and when it ends, by itself
//! or because it was told to, its whole group ends with it.
//!
//! This is a leaf: it knows nothing of HTTP, agents or clients. It runs a program and reports
//! what happened.

mod brief;
mod group;
mod lines;
mod paths;
pub mod relay;
mod sandbox;
mod spawn;
mod supervise;
pub mod watchdog;

pub use watchdog::Status as WatchdogStatus;

pub use brief::run_briefly;
pub use group::{ProcessGroup, become_subreaper, reap_adopted_orphans, signal_name};
pub use lines::Frame;
pub use paths::{find_program, resolve_path};
pub use sandbox::{Confinement, GatewayLink, Sandbox, SandboxError};
pub use spawn::{Input, Spec, spawn};
pub use supervise::{Ending, Exit, Limits, Outcome, Spawned};
