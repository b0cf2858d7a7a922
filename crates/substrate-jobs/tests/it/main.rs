//! The jobs crate's integration tests: the sandbox against hostile workloads.

mod sandbox;
