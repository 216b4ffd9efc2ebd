//! An agent's events once made: each agent's bounded log, the journal that numbers and logs
//! them (to memory and the store), and the readers that follow them from either.

pub(super) mod journal;
pub(super) mod log;
pub(super) mod reader;
