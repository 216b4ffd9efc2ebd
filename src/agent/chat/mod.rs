//! A compatible API's turn as a run, and how it ended.

pub(super) mod end;
pub(super) mod memory;
pub(super) mod turn;
