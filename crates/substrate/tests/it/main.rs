//! End-to-end tests of the `substrate` binary: the CLI flow, bad input over HTTP, crash safety
//! under SIGKILL, and tamper detection by replay.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod cli_flow;
mod crash;
mod tamper;
mod util;
