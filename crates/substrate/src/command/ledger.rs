//! `ledger checkpoint | entries | prove | consistency | replay`.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use substrate_store::reader::ConsistencyProof;
use substrate_store::{DataDir, ReplayMode};
use substrate_tlog::{Checkpoint, NoteVerifier, TlogProof, cosignature};

use crate::cli::LedgerCommand;
use crate::client::Client;

pub fn run(command: LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Checkpoint { node, trust } => {
            let client = Client::new(&node.node);
            checkpoint(&client, &trusted_key(&client, &trust)?)
        }
        LedgerCommand::Entries { start, limit, node } => {
            let page: serde_json::Value = Client::new(&node.node)
                .get(&format!("/v1/log/entries?start={start}&limit={limit}"))?
                .json()?;
            for entry in page["entries"].as_array().into_iter().flatten() {
                let signer = entry["envelope"]["signatures"][0]["keyid"].as_str().unwrap_or("?");
                println!(
                    "{:>8}  {}  {:<15} {}",
                    entry["index"],
                    entry["integrated_time"].as_str().unwrap_or(""),
                    entry["kind"].as_str().unwrap_or(""),
                    signer
                );
            }
            Ok(())
        }
        LedgerCommand::Prove { index, node, trust } => {
            let client = Client::new(&node.node);
            let log = trusted_key(&client, &trust)?;
            let text = client.get(&format!("/v1/log/proofs/inclusion/{index}"))?.body;
            let proof = TlogProof::parse(&text).context("the node's proof is malformed")?;
            let receipt: substrate_core::receipt::Receipt =
                client.get(&format!("/v1/receipts/{index}"))?.json()?;
            let leaf = STANDARD.decode(&receipt.entry).context("the entry is not base64")?;
            let hash = substrate_tlog::leaf_hash(&leaf);
            let checkpoint = proof.verify(&hash, &log).context("the inclusion proof does NOT verify")?;
            print!("{text}");
            eprintln!(
                "ok: entry {index} ({}, logged {}) is in the checkpoint of size {}",
                receipt.kind, receipt.integrated_time, checkpoint.size
            );
            Ok(())
        }
        LedgerCommand::Consistency { old, new, node, trust } => {
            let client = Client::new(&node.node);
            let log = trusted_key(&client, &trust)?;
            let proof: ConsistencyProof =
                client.get(&format!("/v1/log/proofs/consistency?old={old}&new={new}"))?.json()?;
            let verified = check_consistency(&proof, &log)?;
            println!("{}", serde_json::to_string_pretty(&proof)?);
            eprintln!(
                "ok: the tree of size {} is a prefix of the tree of size {}, both signed by {}",
                verified.0.size,
                verified.1.size,
                log.name()
            );
            Ok(())
        }
        LedgerCommand::Replay { data, check: _, rebuild } => {
            let mode = if rebuild { ReplayMode::Rebuild } else { ReplayMode::Check };
            let dir = DataDir::new(&data.data_dir);
            let report = substrate_store::replay::replay(&dir, mode, None)
                .with_context(|| format!("replay of {} FAILED", dir.root().display()))?;
            println!(
                "replay ok: {} entries, {} checkpoints matched (tree and state roots), {} deposits ({} withdrawn, {} removed)",
                report.entries, report.checkpoints, report.deposits, report.withdrawn, report.removed
            );
            println!(
                "  {} members; {} decisions recomputed from the log, each identical to the sequencer's",
                report.members, report.decisions
            );
            println!("  tree root:  {}", STANDARD.encode(report.tree_root));
            println!("  state root: {}", STANDARD.encode(report.state_root));
            if rebuild {
                println!("  rebuilt {} materialised rows from the fold", report.rows_rebuilt);
            } else {
                println!("  materialised tables match the fold");
            }
            println!("  took {:.2}s", report.seconds);
            Ok(())
        }
    }
}

/// Prints the latest checkpoint with every mirror's cosignature of it appended (a C2SP note
/// other tools can check), then, on stderr, who cosigned it and who lags behind.
fn checkpoint(client: &Client, log: &NoteVerifier) -> anyhow::Result<()> {
    let note = client.get("/v1/log/checkpoint")?.body;
    let checkpoint = Checkpoint::open(&note, log).context("the node's checkpoint does NOT verify")?;
    let kept: serde_json::Value = client.get("/v1/log/cosignatures")?.json()?;
    let mut merged = note.clone();
    let mut cosigners = Vec::new();
    let mut behind = Vec::new();
    for kept in kept["cosignatures"].as_array().into_iter().flatten() {
        let (Some(name), Some(size), Some(cosigned)) =
            (kept["cosigner"].as_str(), kept["size"].as_u64(), kept["note"].as_str())
        else {
            anyhow::bail!("the node sent a malformed cosignature record: {kept}");
        };
        let key = substrate_core::identity::key_of(name)
            .with_context(|| format!("the cosigner {name} is not a did:key"))?;
        let verified = cosignature::verify_with(cosigned, name, &key)
            .with_context(|| format!("the cosignature by {name} does NOT verify"))?;
        if size != checkpoint.size || cosignature::body_of(cosigned).ok() != cosignature::body_of(&note).ok()
        {
            behind.push(format!("{name} (last cosigned size {size})"));
            continue;
        }
        let line =
            cosignature::line_of(cosigned, name).context("a cosigned note without its cosignature line")?;
        merged.push_str(line);
        merged.push('\n');
        cosigners
            .push(format!("{name} at {}", substrate_core::timestamp::rfc3339(verified.timestamp * 1000)));
    }
    print!("{merged}");
    if cosigners.is_empty() {
        eprintln!("cosigned by: nobody yet (mirrors cosign each checkpoint they verify)");
    } else {
        eprintln!("cosigned by {} mirror(s), each signature verified:", cosigners.len());
        for cosigner in cosigners {
            eprintln!("  {cosigner}");
        }
    }
    for name in behind {
        eprintln!("  not yet at size {}: {name}", checkpoint.size);
    }
    Ok(())
}

/// The key the node's checkpoints must verify against: the one the user named, or, when asked
/// for, the one the node states (with a warning). A node that states another key than the one
/// named is not this commons' node, and is refused before anything it signed is read.
fn trusted_key(client: &Client, trust: &crate::cli::TrustArgs) -> anyhow::Result<NoteVerifier> {
    let stated = commons_key(client)?;
    match &trust.commons_key {
        Some(named) => {
            let named = NoteVerifier::from_vkey(named.trim()).context(
                "--commons-key is not a signed-note verifier key (name+hash+base64, printed by `substrate init`)",
            )?;
            anyhow::ensure!(
                stated.to_vkey() == named.to_vkey(),
                "the node states the log key {}, not the commons key you named, {}: it is not this \
                 commons' node, or it is lying; nothing it signed was checked",
                stated.to_vkey(),
                named.to_vkey()
            );
            Ok(named)
        }
        None if trust.trust_node_key => {
            eprintln!(
                "note: checking against the log key the node states ({}); this shows the node agrees with \
                 itself, not that it is the commons you mean (pass --commons-key for that)",
                stated.name()
            );
            Ok(stated)
        }
        None => anyhow::bail!(
            "which commons? pass --commons-key with its log key (printed by `substrate init`, or set \
             SUBSTRATE_COMMONS_KEY): a node's own statement of its key cannot vouch for what it signs; \
             --trust-node-key checks against it anyway"
        ),
    }
}

/// The commons' log key as the node states it.
pub fn commons_key(client: &Client) -> anyhow::Result<NoteVerifier> {
    let commons: serde_json::Value = client.get("/v1/commons")?.json()?;
    let vkey = commons["log_key"].as_str().context("the node did not state its log key")?;
    NoteVerifier::from_vkey(vkey).context("the node's log key is malformed")
}

/// Opens both checkpoints with `log` and checks the proof between them.
pub fn check_consistency(
    proof: &ConsistencyProof,
    log: &NoteVerifier,
) -> anyhow::Result<(Checkpoint, Checkpoint)> {
    let old = Checkpoint::open(&proof.old_checkpoint, log).context("the old checkpoint does not verify")?;
    let new = Checkpoint::open(&proof.new_checkpoint, log).context("the new checkpoint does not verify")?;
    let hashes = proof
        .proof
        .iter()
        .map(|h| STANDARD.decode(h).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<[u8; 32]>>>()
        .context("a proof hash is not base64 of 32 bytes")?;
    substrate_tlog::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes)
        .context("the consistency proof does NOT verify: the log was rewritten")?;
    Ok((old, new))
}
