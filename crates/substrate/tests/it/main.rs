//! End-to-end tests of the `substrate` binary: the CLI flow, bad input over HTTP, crash safety
//! under SIGKILL, tamper detection by replay, the tlog-tiles reads, a three-node mesh, and the
//! project's conventions.

#![allow(clippy::unwrap_used)]

mod amputation;
mod bad_input;
mod cli_flow;
mod crash;
mod credits;
mod doi;
mod governance;
mod interop;
mod jobs;
mod mesh;
mod mesh_adapters;
mod models;
mod registry;
mod search;
mod serving;
mod tamper;
mod tidy;
mod tiles;
mod training;
mod util;
mod web;
mod withdrawal;
