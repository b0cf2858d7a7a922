//! Runs the commons' approved workloads: the workload processes ([`workload`]) and the sandbox a
//! job's process is confined to ([`sandbox`]).
//!
//! The only crate that spawns job processes. A job is a child process that can read its inputs
//! and model files, write its output directory, and nothing else: no network, no new processes,
//! no other process to trace or signal, bounded CPU, memory, open files and wall-clock time.
//!
//! Invariant: nothing here decides what may run; the chambers approve workloads and the scheduler
//! assigns jobs. This crate only makes sure that what runs stays inside its walls.

pub mod sandbox;
pub mod training;
pub mod worker;
pub mod workload;

pub use sandbox::{Ended, Isolation, Kernel, Limits, Network, Report, Sandbox, SandboxError, Strength};
