//! `train`: the governed training run on the node's own data directory, with a progress display
//! of each phase.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use substrate_models::Weights;
use substrate_models::fetch;
use substrate_store::DataDir;
use substrate_training::record::Builder;
use substrate_training::run::{self, Phase, TrainOptions};
use substrate_training::signing::ModelSigningKey;

use crate::cli::{AuditCommand, TrainArgs};

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let like;
    let args = match args.like {
        Some(id) => {
            like = like_adapter(args, id)?;
            &like
        }
        None => args,
    };
    let data = DataDir::new(&args.models.data.data_dir);
    let lora = super::models::lora_config(&args.lora)?;
    let node_key_path = args.node_key.clone().unwrap_or_else(|| data.root().join("node.key"));
    let (_, node_key) = crate::keys::load(&node_key_path).with_context(|| {
        format!(
            "the node key signs the adapter's provenance; make one with `substrate id new --kind node --key {}`",
            node_key_path.display()
        )
    })?;
    // The snapshot first: it is cheap, names the default directory, and refuses early. A run
    // interrupted in the default directory is found and resumed on its own snapshot.
    let interrupted = match &args.out {
        Some(_) => None,
        None => interrupted_default(&data, args.decision)?,
    };
    let snapshot = match (&args.out, &interrupted) {
        (Some(out), _) => match run::pending(out)? {
            Some(p) => run::snapshot(&data, p.decision, Some(p.log_size))?,
            None => run::snapshot(&data, args.decision, None)?,
        },
        (None, Some((_, p))) => run::snapshot(&data, p.decision, Some(p.log_size))?,
        (None, None) => run::snapshot(&data, args.decision, None)?,
    };
    if snapshot.entries.is_empty() {
        let weighted: Vec<&str> =
            snapshot.mixture.iter().filter(|(_, w)| **w > 0.0).map(|(r, _)| r.as_str()).collect();
        return Err(run::TrainError::NothingEligible(weighted.join(", ")).into());
    }
    let node = substrate_core::identity::did_of(&node_key.verifying_key());
    if !snapshot.nodes.contains(&node) {
        eprintln!(
            "note: the node key {node} is not registered in this commons, so `adapters verify --data-dir` will refuse the adapter; a member registers it with `substrate node-register --node-key {}`",
            node_key_path.display()
        );
    }
    let out = match (&args.out, interrupted) {
        (Some(out), _) => out.clone(),
        (None, Some((out, _))) => out,
        (None, None) => {
            let root: String = snapshot.root[..6].iter().map(|b| format!("{b:02x}")).collect();
            data.root().join("adapters").join(format!("e{}-{root}", snapshot.log_size))
        }
    };
    if out.exists() {
        anyhow::bail!("{} already exists; publish into another --out, or remove it first", out.display());
    }
    let signing_path = args.signing_key.clone().unwrap_or_else(|| data.root().join("model-signing.key"));
    let signing_key = ModelSigningKey::load_or_create(&signing_path)
        .with_context(|| format!("the model-signing key {}", signing_path.display()))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }

    let path = super::models::model_path(&args.models, &fetch::GENERATION);
    let base_sha256 = fetch::file_sha256(&path)?;
    if let Some(expected) = &args.base_sha256
        && !expected.eq_ignore_ascii_case(&base_sha256)
    {
        anyhow::bail!(
            "the base model {} has sha256 {base_sha256}, not the {expected} asked for; fetch the right file (`substrate models fetch`) or name it with --model",
            path.display()
        );
    }
    eprintln!("loading {}", path.display());
    let mut model = substrate_models::Llama::load(&path, Weights::Dense)?;
    let options = TrainOptions {
        data_dir: data.clone(),
        decision: args.decision,
        out: out.clone(),
        base_name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        base_sha256,
        lora,
        steps: args.lora.steps,
        batch: args.lora.batch,
        seq_len: args.lora.seq_len,
        lr: args.lora.lr,
        save_every: args.lora.save_every,
        node_key,
        signing_key,
        builder: builder()?,
        now: || substrate_core::timestamp::rfc3339(super::now_ms()),
    };
    if let Some(p) = run::pending(&out)? {
        eprintln!(
            "resuming from {} (the run started on the log's first {} entries)",
            run::partial_dir(&out).display(),
            p.log_size
        );
    }
    let tty = std::io::stderr().is_terminal();
    let record = run::train(&mut model, &options, |phase| match phase {
        Phase::Snapshot { log_size, deposits, root } => {
            eprintln!("snapshot    {deposits} deposits as of entry {log_size}, root {root}")
        }
        Phase::Tokenising { texts } => eprintln!("tokenising  {texts} texts"),
        Phase::Planned { windows, held_out } => {
            eprintln!("planned     {windows} windows; {held_out} texts held out to measure the loss")
        }
        Phase::Step(p) => super::models::show_step(p, tty),
        Phase::Signing => {
            if tty {
                eprintln!();
            }
            eprintln!("signing     provenance (node key) and model-signing (P-256)")
        }
        Phase::Published { dir } => eprintln!("published   {}", dir.display()),
    })?;

    println!("adapter {}", out.display());
    match &record.decision {
        Some(d) => println!("  decision:   entry {} (proposal {})", d.index, d.proposal),
        None => println!("  decision:   none yet; every register weighed the same"),
    }
    println!(
        "  snapshot:   {} deposits as of entry {}, root {}",
        record.contributions.len(),
        record.log_size,
        record.snapshot_root
    );
    println!("  trained:    {} tokens in {} windows", record.tokens_trained, record.windows);
    println!(
        "  {:<16} {:>8} {:>9} {:>10}  {:>18}",
        "register", "decided", "achieved", "tokens", "held-out loss"
    );
    let tokens = record.tokens_by_register();
    for (register, weight) in &record.mixture {
        let loss = record
            .held_out
            .get(register)
            .map(|h| format!("{:.4} -> {:.4}", h.before, h.after))
            .unwrap_or_else(|| "-".into());
        println!(
            "  {register:<16} {weight:>8.4} {:>9.4} {:>10}  {loss:>18}",
            record.achieved.get(register).copied().unwrap_or(0.0),
            tokens.get(register).copied().unwrap_or(0)
        );
    }
    if !record.registers_without_text.is_empty() {
        println!(
            "  no eligible text in {}: their weight went to the other registers",
            record.registers_without_text.join(", ")
        );
    }
    println!("  contributors: {}", record.contributors().len());
    if record.decision.is_none() {
        println!(
            "not published: the log records runs that follow a decided mixture, and none is decided yet"
        );
        return Ok(());
    }
    if args.no_publish {
        println!(
            "not published (--no-publish): `substrate adapters publish {}` records it in the log",
            out.display()
        );
        return Ok(());
    }
    match super::adapters::publish(&args.node.node, &out, &node_key_path) {
        Ok(_) => Ok(()),
        Err(e) if format!("{e:#}").contains("cannot reach the node") => {
            eprintln!(
                "note: not recorded in the log: {e:#}\nthe adapter is complete in {}; `substrate adapters publish {}` records and uploads it once the node runs",
                out.display(),
                out.display()
            );
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "the adapter is complete in {}, but the log did not take it; fix what is said and run `substrate adapters publish {}`",
            out.display(),
            out.display()
        ))),
    }
}

/// The arguments of a run like adapter `id`: its decision, base model and hyperparameters.
fn like_adapter(args: &TrainArgs, id: u64) -> anyhow::Result<TrainArgs> {
    let client = crate::client::Client::new(&args.node.node);
    let adapter: serde_json::Value = client.get(&format!("/v1/adapters/{id}"))?.json()?;
    let record: substrate_training::RunRecord = serde_json::from_slice(
        &client
            .get_bytes(&format!("/v1/adapters/{id}/files/run.json"))
            .with_context(|| format!("the run record of adapter {id}, for its hyperparameters"))?,
    )
    .with_context(|| format!("the run record of adapter {id}"))?;
    let mut like = args.clone();
    like.like = None;
    like.decision = adapter["decision"].as_u64();
    like.base_sha256 = adapter["baseModel"].as_str().map(str::to_owned);
    let h = &record.hyperparameters;
    like.lora.rank = h.rank;
    like.lora.alpha = h.alpha;
    like.lora.targets = h.targets.clone();
    like.lora.steps = h.steps;
    like.lora.batch = h.batch;
    like.lora.seq_len = h.seq_len;
    like.lora.lr = h.lr;
    let withdrawn = adapter["withdrawals"].as_array().map_or(0, Vec::len);
    eprintln!(
        "like adapter {id}: decision {}, rank {}, {} steps of {} windows of {} tokens; {withdrawn} of its snapshot's deposits gone since, and not in today's snapshot",
        adapter["decision"], h.rank, h.steps, h.batch, h.seq_len
    );
    Ok(like)
}

/// An interrupted run under DATA_DIR/adapters that a run with `decision` would resume: its
/// directory and what it started on. The newest when there are several.
fn interrupted_default(
    data: &DataDir,
    decision: Option<u64>,
) -> anyhow::Result<Option<(PathBuf, run::Pending)>> {
    let Ok(entries) = std::fs::read_dir(data.root().join("adapters")) else { return Ok(None) };
    let mut found: Vec<(PathBuf, run::Pending)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".partial") else { continue };
        let out = data.root().join("adapters").join(stem);
        if let Some(p) = run::pending(&out)?
            && (decision.is_none() || decision == p.decision)
        {
            found.push((out, p));
        }
    }
    Ok(found.into_iter().max_by_key(|(_, p)| p.log_size))
}

/// This program, as the provenance names it.
fn builder() -> anyhow::Result<Builder> {
    let exe: PathBuf = std::env::current_exe().context("finding this program's file")?;
    Ok(Builder {
        name: env!("CARGO_PKG_NAME").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        sha256: fetch::file_sha256(&exe)?,
    })
}

pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Amputation(args) => super::amputation::audit(&args),
        AuditCommand::Answers { questions, model, passages, min_words, max_tokens, json, node } => {
            let asked = super::search::AuditSettings { model, passages, min_words, max_tokens };
            super::search::audit_answers(&node.node, &questions, &asked, json)
        }
        AuditCommand::Per { dir, data_dir, json } => {
            let stages = substrate_training::audit::per(&dir, &DataDir::new(&data_dir))
                .with_context(|| format!("auditing {}", dir.display()))?;
            if json {
                let rows: Vec<serde_json::Value> = stages
                    .iter()
                    .map(|s| serde_json::json!({"stage": s.name, "entered": s.entered, "missing": s.missing, "misattributed": s.misattributed, "per": s.rate()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("provenance erasure rate of {}", dir.display());
            print!("{}", substrate_training::audit::table(&stages));
            // Name what was lost, a few per stage.
            const SHOWN: usize = 5;
            for stage in &stages {
                if stage.entered > 0 && stage.missing.len() == stage.entered {
                    println!("  {}: every one of the {} contributions is missing", stage.name, stage.entered);
                    continue;
                }
                let lines = stage.missing.iter().map(|cid| format!("{cid} is missing")).chain(
                    stage.misattributed.iter().map(|(cid, what)| format!("{cid} is misattributed: {what}")),
                );
                let count = stage.missing.len() + stage.misattributed.len();
                for line in lines.take(SHOWN) {
                    println!("  {}: {line}", stage.name);
                }
                if count > SHOWN {
                    println!("  {}: and {} more (--json lists them all)", stage.name, count - SHOWN);
                }
            }
            Ok(())
        }
    }
}
