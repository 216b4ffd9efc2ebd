//! A compatible API's turn as a run, how it ended, and what is remembered of it.

pub(super) mod end;
pub(super) mod memory;
pub(super) mod responses;
pub(super) mod turn;
