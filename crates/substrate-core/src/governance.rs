//! Governance: the acts members sign, the records the fold keeps, and the rules (tallies,
//! mixtures, elections) computed the same on every node.

pub mod acts;
pub mod book;
pub mod credits;
pub mod doi;
pub mod fold;
pub mod jobs;
pub mod mixture;
pub mod number;
pub mod params;
pub mod stv;
pub mod tally;
pub mod tokens;
pub mod usage;
