//! The core's ports to what lies beyond this process: the store that keeps agents, the other
//! instances of a shared database, and forwarding an action to the instance an agent runs on.

pub(super) mod cluster;
pub(super) mod remote;
pub(super) mod store;
