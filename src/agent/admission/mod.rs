//! Who may ask for a run, and what it may ask: the request checked into a `Run`, the
//! operator's tool policy, the run's own choices within it (structured output, effort,
//! subagents), the MCP servers a request may name, client keys, the rate-limit gate, whose each session is, the
//! messages clients may send, and where an agent's webhook events may go.

pub(super) mod keys;
pub(super) mod mcp;
pub(super) mod message;
pub(super) mod policy;
pub(super) mod rate_limit;
pub(super) mod request;
pub(super) mod run_options;
pub(super) mod sessions;
pub(super) mod webhook;
