//! A compatible API's turn as a run, how it ended, what is remembered of it, and the
//! client's own tools.

pub(super) mod client_tools;
pub(super) mod end;
pub(super) mod memory;
pub(super) mod responses;
pub(super) mod turn;
