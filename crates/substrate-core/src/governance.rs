//! Governance rules: pure functions over ballots, computed the same on every node.

pub mod mixture;
pub mod stv;
pub mod tally;
