//! `adapters`: the registry of published adapters — list, show, publish, pull and verify.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::receipt::Receipt;
use substrate_store::DataDir;
use substrate_training::registry;

use crate::cli::AdaptersCommand;
use crate::client::{Client, segment};

pub fn run(command: AdaptersCommand) -> anyhow::Result<()> {
    match command {
        AdaptersCommand::List { node } => list(&node.node),
        AdaptersCommand::Show { id, json, node } => show(&node.node, id, json),
        AdaptersCommand::Pull { id, out, node } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("adapter-{id}")));
            pull(&node.node, id, &out)
        }
        AdaptersCommand::Publish { dir, node_key, data, node } => {
            let node_key = node_key.unwrap_or_else(|| data.data_dir.join("node.key"));
            publish(&node.node, &dir, &node_key).map(|_| ())
        }
        AdaptersCommand::Verify { dir, data_dir } => verify(&dir, data_dir.as_deref()),
    }
}

/// `n thing` or `n things`.
fn count(n: u64, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

fn list(node: &str) -> anyhow::Result<()> {
    let answer: Value = Client::new(node).get("/v1/adapters")?.json()?;
    let adapters = answer["adapters"].as_array().cloned().unwrap_or_default();
    if adapters.is_empty() {
        println!("no adapter is published yet; `substrate train` trains one on the decided mixture");
        return Ok(());
    }
    println!(
        "{:>6}  {:<28} {:>8} {:>10} {:>8}  {:<9} {:<8} published",
        "id", "name", "decision", "snapshot", "deposits", "withdrawn", "files"
    );
    for a in &adapters {
        let n = |v: &Value| v.as_u64().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:>6}  {:<28} {:>8} {:>10} {:>8}  {:<9} {:<8} {}",
            n(&a["id"]),
            s(&a["name"]),
            n(&a["decision"]),
            n(&a["snapshotSize"]),
            n(&a["deposits"]),
            n(&a["withdrawn"]),
            if a["filesComplete"] == true { "complete" } else { "partial" },
            substrate_core::timestamp::rfc3339(a["publishedAt"].as_u64().unwrap_or(0)),
        );
    }
    Ok(())
}

fn show(node: &str, id: u64, json: bool) -> anyhow::Result<()> {
    let a: Value = Client::new(node).get(&format!("/v1/adapters/{id}"))?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(());
    }
    println!("adapter {id}: {}", s(&a["name"]));
    println!("  weights:     sha256 {}", s(&a["adapter"]));
    println!("  provenance:  sha256 {}", s(&a["provenance"]));
    println!("  base model:  sha256 {}", s(&a["baseModel"]));
    println!("  node:        {} (operated by {})", s(&a["node"]), s(&a["operator"]));
    println!("  decision:    entry {}", a["decision"]);
    println!(
        "  snapshot:    {} deposits of the first {} entries, root {}",
        a["deposits"],
        a["snapshotSize"],
        s(&a["snapshotRoot"])
    );
    println!("  published:   {}", substrate_core::timestamp::rfc3339(a["publishedAt"].as_u64().unwrap_or(0)));
    let withdrawals = a["withdrawals"].as_array().cloned().unwrap_or_default();
    if withdrawals.is_empty() {
        println!("  withdrawals: none; every deposit of its snapshot is still in the commons");
    } else {
        println!(
            "  withdrawals: {} of its snapshot gone since it was trained; `substrate train --like {id}` retrains without them (nothing is unlearned)",
            count(withdrawals.len() as u64, "deposit")
        );
        for w in &withdrawals {
            let windows = match w["windows"].as_u64() {
                Some(0) => ", drawn in no window".to_owned(),
                Some(n) => format!(", drawn in {}", count(n, "window")),
                None => String::new(),
            };
            println!(
                "    {} {} {} since entry {}{windows}",
                s(&w["handle"]),
                s(&w["cid"]),
                s(&w["status"]),
                w["since"]
            );
        }
    }
    let files = a["files"].as_array().cloned().unwrap_or_default();
    match a["filesComplete"] == true {
        true => {
            println!("  files:       {} on this node, complete (`substrate adapters pull {id}`)", files.len())
        }
        false => println!(
            "  files:       {} on this node; missing {}",
            files.len(),
            a["missing"]
                .as_array()
                .map(|m| m.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
    }
    Ok(())
}

/// Records the adapter in `dir` in the log, if it is not already, and uploads its files. Returns
/// the adapter's id.
pub fn publish(node: &str, dir: &Path, node_key: &Path) -> anyhow::Result<u64> {
    let (record, publication) = registry::publication(dir, super::govern::requested())?;
    let (key_file, key) = crate::keys::load(node_key).with_context(|| {
        format!("the node key that trained the adapter signs its publication ({})", node_key.display())
    })?;
    if key_file.did != record.node {
        anyhow::bail!(
            "{} was trained and attested by the node {}, not by {} ({}); publish it with that node's key (--node-key)",
            dir.display(),
            record.node,
            key_file.did,
            node_key.display()
        );
    }
    let client = Client::new(node);
    // A publication already in the log (an interrupted earlier run) is finished, not repeated.
    let listed: Value = client.get("/v1/adapters")?.json()?;
    let existing = listed["adapters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["adapter"] == publication.adapter.as_str())
        .and_then(|a| a["id"].as_u64());
    let id = match existing {
        Some(id) => {
            println!("adapter {id}: already in the log");
            id
        }
        None => {
            let signed = SignedEvent::sign(Event::Adapter(publication), &key);
            let receipt: Receipt =
                super::deposit::submit_event(&client, &signed).context("recording the adapter in the log")?;
            println!(
                "adapter {}: recorded in the log at index {} ({})",
                receipt.log_index, receipt.log_index, receipt.integrated_time
            );
            receipt.log_index
        }
    };
    let names = registry::upload_order(dir)?;
    let mut complete = false;
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let answer: Value = client
            .put_bytes(&format!("/v1/adapters/{id}/files/{}", segment(name)), &bytes)
            .with_context(|| format!("uploading {name}"))?
            .json()?;
        complete = answer["complete"] == true;
    }
    println!("adapter {id}: {} files on the node{}", names.len(), if complete { ", complete" } else { "" });
    Ok(id)
}

fn pull(node: &str, id: u64, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{} already exists; pull into another --out, or remove it first", out.display());
    }
    let client = Client::new(node);
    let a: Value = client.get(&format!("/v1/adapters/{id}"))?.json()?;
    if a["filesComplete"] != true {
        anyhow::bail!(
            "the node holds only part of adapter {id} (missing {}): it fetches the rest from the node that published it, when that node is connected, or the publisher finishes the upload with `substrate adapters publish`; try again in a moment",
            a["missing"]
                .as_array()
                .map(|m| m.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    }
    let partial = substrate_training::run::partial_dir(out);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("clearing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    for file in a["files"].as_array().into_iter().flatten() {
        let name = s(&file["name"]);
        let bytes = client.get_bytes(&format!("/v1/adapters/{id}/files/{}", segment(&name)))?;
        let path = partial.join(&name);
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    // The files must be the ones the log recorded, whatever the node served.
    for (name, field) in
        [(substrate_models::lora::WEIGHTS_FILE, "adapter"), ("provenance.intoto.json", "provenance")]
    {
        let actual = substrate_training::provenance::file_sha256(&partial.join(name))?;
        if actual != s(&a[field]) {
            anyhow::bail!(
                "the node served a {name} with sha256 {actual}, but the log records {}; nothing was kept",
                s(&a[field])
            );
        }
    }
    let verified = substrate_training::verify::verify(&partial, None)
        .with_context(|| format!("adapter {id} as served does NOT verify; nothing was kept"))?;
    std::fs::rename(&partial, out).with_context(|| format!("moving it to {}", out.display()))?;
    println!(
        "adapter {id} pulled into {}: {} files, signature and attestation verified, weights and attestation are the ones the log records",
        out.display(),
        verified.files
    );
    Ok(())
}

fn verify(dir: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let log = data_dir.map(DataDir::new);
    let verified = substrate_training::verify::verify(dir, log.as_ref())
        .with_context(|| format!("{} does NOT verify", dir.display()))?;
    let record = &verified.record;
    println!("adapter verifies: {}", dir.display());
    println!("  signature:   ok, model-signing over {} files", verified.files);
    println!(
        "  attestation: ok, signed by node {}, {} subjects match their files",
        record.node, verified.subjects
    );
    println!(
        "  record:      ok, {} deposits of {} contributors, {} tokens in {} windows add up",
        record.contributions.len(),
        record.contributors().len(),
        record.tokens_trained,
        record.windows
    );
    match verified.log_checked {
        true => println!(
            "  log:         ok, the snapshot root is the log's at entry {} and the node is registered",
            record.log_size
        ),
        false => println!("  log:         not checked (give --data-dir with the commons' log)"),
    }
    Ok(())
}
