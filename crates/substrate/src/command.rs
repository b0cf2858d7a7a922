//! What each subcommand does.

mod adapters;
mod amputation;
mod bench;
mod demo;
mod deposit;
mod doi;
mod govern;
mod identity;
mod import;
mod jobs;
mod ledger;
mod models;
mod node;
mod sandbox;
mod search;
mod tokens;
mod train;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data, mirror_of: Some(vkey), .. } => node::init_mirror(&data.data_dir, &vkey),
        Command::Init {
            data,
            name,
            mirror_of: None,
            origin,
            handle_prefix,
            registers,
            stewards,
            voting_window,
        } => {
            let name = name.unwrap_or_default();
            node::init(&data.data_dir, &name, origin, handle_prefix, registers, stewards, voting_window)
        }
        Command::Serve { data, listen, config, mesh, worker, serving } => {
            node::serve(&data.data_dir, listen, config, mesh, worker, serving)
        }
        Command::Search(args) => search::search(args),
        Command::Chat(args) => search::chat(args),
        Command::Token(command) => tokens::run(command),
        Command::Doi(command) => doi::run(command),
        Command::Job(command) => jobs::run(command),
        Command::Jobs { state, json, node } => jobs::list(&node.node, state.as_deref(), json),
        Command::Workers { json, node } => jobs::workers(&node.node, json),
        Command::Workload { args } => {
            substrate_jobs::workload::main_with(&args, |input| input).map_err(anyhow::Error::from)
        }
        Command::Peers { json, node } => node::peers(&node.node, json),
        Command::Id(command) => identity::run(command),
        Command::Deposit(args) => deposit::deposit(args),
        Command::Import { file, consent, receipts, key, node } => {
            import::import(&node.node, key.key.as_deref(), &file, &consent, receipts)
        }
        Command::Show { id, datacite, scores, json, node } => {
            deposit::show(&node.node, &id, datacite, scores.as_deref(), json)
        }
        Command::Verify { receipt, commons_key, content, witnesses, required } => {
            deposit::verify(&receipt, &commons_key, content.as_deref(), &witnesses, required)
        }
        Command::Receipt { index, witnessed, node } => deposit::receipt(&node.node, index, witnessed),
        Command::Withdraw { cid, reason, key, node } => {
            deposit::withdraw(&node.node, key.key.as_deref(), &cid, reason)
        }
        Command::Consent { cid, narrow, key, node } => {
            deposit::consent(&node.node, key.key.as_deref(), &cid, &narrow)
        }
        Command::Ledger(command) => ledger::run(command),
        Command::Member(command) => govern::member(command),
        Command::NodeRegister { node_key, node_did, binding, key, node } => {
            let half = match (node_key, node_did, binding) {
                (Some(node_key), _, _) => govern::NodeHalf::Key(node_key),
                (None, Some(did), Some(binding)) => govern::NodeHalf::Signed { did, binding },
                _ => anyhow::bail!(
                    "name the node: --node-key FILE, or --node-did DID with --binding B from `node-bind`"
                ),
            };
            govern::register_node(&node.node, key.key.as_deref(), half)
        }
        Command::NodeBind { node_key, operator, origin, node } => {
            govern::bind_node(&node.node, &node_key, &operator, origin.as_deref())
        }
        Command::Propose(args) => govern::propose(args),
        Command::Vote { proposal, choice, mixture, rank, key, node } => {
            govern::vote(&node.node, key.key.as_deref(), proposal, &choice, mixture.as_deref(), rank)
        }
        Command::Proposals { open, node } => govern::proposals(&node.node, open),
        Command::Proposal { id, json, node } => govern::proposal(&node.node, id, json),
        Command::Mixture { node } => govern::mixture(&node.node),
        Command::Dispute(command) => govern::dispute(command),
        Command::Credits { who, key, node } => govern::credits(&node.node, key.key.as_deref(), who),
        Command::Demo { artifacts } => demo::run(artifacts.as_deref()),
        Command::Models(command) => models::run(command),
        Command::Embed { models } => models::embed(&models),
        Command::Generate {
            models,
            prompt,
            system,
            raw,
            max_tokens,
            temperature,
            top_p,
            seed,
            adapter,
            ignore_eos,
            json,
        } => {
            let sampling = substrate_models::Sampling { temperature, top_p, seed, max_tokens, ignore_eos };
            models::generate(&models, &prompt, system.as_deref(), raw, &sampling, adapter.as_deref(), json)
        }
        Command::Finetune(args) => models::finetune(&args),
        Command::Train(args) => train::train(&args),
        Command::Adapters(command) => adapters::run(command),
        Command::Audit(command) => train::audit(command),
        Command::Lm(command) => amputation::lm(command),
        Command::Sandbox { without_network_namespace, without_scopes } => {
            sandbox::check(without_network_namespace, without_scopes)
        }
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
