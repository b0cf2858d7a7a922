//! What each subcommand does.

mod bench;
mod demo;
mod deposit;
mod identity;
mod ledger;
mod node;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data, name, origin, handle_prefix, registers, stewards, voting_window } => {
            node::init(&data.data_dir, &name, origin, handle_prefix, registers, stewards, voting_window)
        }
        Command::Serve { data, listen, config } => node::serve(&data.data_dir, listen, config),
        Command::Id(command) => identity::run(command),
        Command::Deposit(args) => deposit::deposit(args),
        Command::Show { id, datacite, json, node } => deposit::show(&node.node, &id, datacite, json),
        Command::Verify { receipt, commons_key, content } => {
            deposit::verify(&receipt, &commons_key, content.as_deref())
        }
        Command::Withdraw { cid, reason, key, node } => {
            deposit::withdraw(&node.node, key.key.as_deref(), &cid, reason)
        }
        Command::Consent { cid, narrow, key, node } => {
            deposit::consent(&node.node, key.key.as_deref(), &cid, &narrow)
        }
        Command::Ledger(command) => ledger::run(command),
        Command::Demo { artifacts } => demo::run(artifacts.as_deref()),
        Command::Bench(command) => bench::run(command),
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
