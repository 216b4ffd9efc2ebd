//! Starting, running and ending agents: the settings and parts all agents share, the table
//! of agents with its admission and retention, the launch and supervision of each, its stop
//! signal, the pool of CLIs started ahead of their runs, whether this instance can run agents
//! at all, what their API requests used, and the budgets per key that bound it.

pub(super) mod budget;
pub(super) mod health;
pub(super) mod launch;
pub(super) mod login;
pub(super) mod pool;
pub(super) mod queue;
pub(super) mod run_file;
pub(super) mod state;
pub(super) mod stop;
pub(super) mod table;
pub(super) mod usage;
pub(super) mod warm;
