//! The core's ports to what lies beyond this process: the store that keeps agents, the other
//! instances of a shared database, forwarding an action to the instance an agent runs on, and
//! the gateway that gives each agent's CLI a credential of its own.

pub(super) mod cluster;
pub(super) mod gateway;
pub(super) mod remote;
pub(super) mod store;
