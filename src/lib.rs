//! claude-proxy runs the Claude Code CLI for HTTP clients and streams its stream-json output
//! back as Server-Sent Events.
//!
//! The layers, each a module, point one way (ARCHITECTURE.md has the map):
//! [`app`] builds everything from the settings → `http` is the edge → `agent` is the core →
//! `cli` is the Claude Code CLI's contract → `process` runs programs. `store` keeps agents beyond the process, for the core, which knows
//! it only as a trait; the app picks it. `gateway` is where every CLI reaches the API, with a
//! credential of its agent's own that the core hands out through a trait of its own. `metrics`, `telemetry`, `literal` and `sync` (a lock that
//! outlives a panic) are leaves any layer may use.
//!
//! Only [`app`] is public: the program (`main.rs`) and the tests use the library through it.
//! [`run`] serves on a listener until a shutdown future resolves, then ends every agent.

pub(crate) mod agent;
pub mod app;
pub(crate) mod cli;
pub(crate) mod gateway;
pub(crate) mod http;
mod literal;
pub(crate) mod metrics;
pub(crate) mod process;
pub(crate) mod store;
mod sync;
pub(crate) mod telemetry;

pub use app::{App, Config, Error, StartupError, bind, raise_open_files_limit, run};
