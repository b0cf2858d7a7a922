//! The governed training run through the real binary, on a served commons and a tiny model in the
//! real GGUF format: a run killed with SIGKILL publishes nothing and resumes to the adapter an
//! unbroken run makes, each refusal names the problem and the fix and writes nothing, and the
//! published directory is complete and loads into `generate`.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_core::{ConsentTier, SignedEvent};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Commons, Http, command, deposit_event, fails, new_key, ok, path};

/// The registers the texts go into (of the eight a new commons has), three texts each.
const REGISTERS: [&str; 3] = ["narrative", "oral", "sacred"];

/// Settings small enough for a debug build: the tiny model's context is 96 tokens.
const SETTINGS: [&str; 9] =
    ["--batch", "2", "--seq-len", "32", "--save-every", "4", "--rank", "4", "--no-publish"];

/// Steps of a run that only has to finish.
const STEPS: usize = 24;

/// Steps of the run that is killed: a step takes a few milliseconds, so this leaves the test a
/// wide margin to kill the run between its first checkpoint and its end, even on a loaded machine.
const LONG: usize = 400;

/// Everything a node needs to train: a founded commons, a tiny base model and a node key.
struct Node {
    commons: Commons,
    model: PathBuf,
    node_key: PathBuf,
    /// The node key's did:key, as `id new` printed it.
    did: String,
}

impl Node {
    fn new(name: &str) -> Node {
        let commons = Commons::init(name);
        let model = tiny::llama(commons.tmp.path(), 7, GgmlDType::F32).unwrap().path;
        let node_key = commons.file("node.key");
        let (did, _) = ok(&["id", "new", "--kind", "node", "--key", path(&node_key)]);
        Node { commons, model, node_key, did: did.trim().to_owned() }
    }

    /// `train --data-dir DATA --model MODEL --node-key KEY --out OUT --steps STEPS SETTINGS`,
    /// then `extra`.
    fn train_args(&self, out: &Path, steps: usize, extra: &[&str]) -> Vec<String> {
        let steps = steps.to_string();
        let mut args = vec![
            "train",
            "--data-dir",
            path(&self.commons.data),
            "--model",
            path(&self.model),
            "--node-key",
            path(&self.node_key),
            "--out",
            path(out),
            "--steps",
            &steps,
        ];
        args.extend(SETTINGS);
        args.extend(extra);
        args.into_iter().map(str::to_owned).collect()
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Deposits three texts in each of `REGISTERS`, each by its own key; returns their log indexes.
fn deposit_texts(http: &Http) -> Vec<u64> {
    let mut indexes = Vec::new();
    for register in REGISTERS {
        for i in 0..3 {
            let text = format!(
                "A {register} text, number {i}. The bread rose in the kitchen while the river ran past \
                 the mill, and the old songs of the {register} kind were told again {} times.",
                i * 7 + register.len()
            );
            let event =
                SignedEvent::sign(deposit_event(text.as_bytes(), register, ConsentTier::Public), &new_key());
            let receipt = http.deposit(&event, text.as_bytes());
            indexes.push(receipt["log_index"].as_u64().unwrap_or_else(|| panic!("no log_index: {receipt}")));
        }
    }
    indexes
}

/// `OUT.partial`, where a run stages its files until it publishes them.
fn partial(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn run_record(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The step a checkpoint was saved at, from its safetensors metadata.
fn checkpoint_step(checkpoint: &Path) -> u64 {
    let bytes = std::fs::read(checkpoint).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let state = header.metadata().as_ref().and_then(|m| m.get("state")).expect("a checkpoint state");
    let state: Value = serde_json::from_str(state).unwrap();
    state["step"].as_u64().unwrap_or_else(|| panic!("no step in {state}"))
}

#[test]
fn a_killed_training_run_resumes_to_the_same_adapter_bytes() {
    let node = Node::new("training commons");
    // The daemon keeps serving throughout, as on a real node: training reads its data directory.
    let daemon = node.commons.start();
    deposit_texts(&daemon.http());

    let out_a = node.commons.file("out-a");
    let (_, err) = ok(&strs(&node.train_args(&out_a, LONG, &[])));
    assert!(!err.contains("resuming from"), "{err}");
    assert!(!partial(&out_a).exists(), "the unbroken run left its staging directory");

    let out_b = node.commons.file("out-b");
    let args = node.train_args(&out_b, LONG, &[]);
    let log = node.commons.file("killed-run.log");
    let mut child =
        command(&strs(&args)).stdout(Stdio::null()).stderr(File::create(&log).unwrap()).spawn().unwrap();
    let checkpoint = partial(&out_b).join("checkpoint.safetensors");
    let started = Instant::now();
    while !checkpoint.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run exited ({status}) before its first checkpoint:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint after a minute");
        std::thread::sleep(Duration::from_millis(2));
    }
    // `Child::kill` sends SIGKILL: no chance to write anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out_b.exists(), "a killed run published {}", out_b.display());
    let step = checkpoint_step(&checkpoint);
    assert!(
        step < LONG as u64,
        "the run had trained all its steps (checkpoint at step {step}) before it was killed"
    );

    // The log grows meanwhile; the resumed run still trains on the snapshot it started from.
    let late = "A late oral text, deposited while the training run was down.";
    let event = SignedEvent::sign(deposit_event(late.as_bytes(), "oral", ConsentTier::Public), &new_key());
    daemon.http().deposit(&event, late.as_bytes());

    let (_, err) = ok(&strs(&args));
    assert!(err.contains("resuming from"), "{err}");
    assert!(err.contains(path(&partial(&out_b))), "{err}");
    assert!(err.contains("the run started on the log's first 10 entries"), "{err}");
    assert!(!partial(&out_b).exists(), "the resumed run left its staging directory");

    for file in ["adapter_model.safetensors", "adapter_config.json", "windows.jsonl", "manifest.jsonl"] {
        let a = std::fs::read(out_a.join(file)).unwrap();
        let b = std::fs::read(out_b.join(file)).unwrap();
        assert!(a == b, "{file} differs between the unbroken run and the one resumed from step {step}");
    }
    let (a, b) = (run_record(&out_a), run_record(&out_b));
    for field in
        ["snapshot_root", "log_size", "tokens_trained", "windows", "achieved", "held_out", "contributions"]
    {
        assert_eq!(a[field], b[field], "run.json's {field} differs after resuming from step {step}");
    }
    assert_eq!(a["contributions"].as_array().unwrap().len(), 9, "{a}");
    // The node served on through all three runs, its log untouched by them.
    assert_eq!(daemon.http().log_size(), 11, "the genesis, nine deposits and the late one");
}

#[test]
fn train_refusals_say_what_to_do() {
    let node = Node::new("refusing commons");
    let daemon = node.commons.start();
    let deposits = deposit_texts(&daemon.http());
    let out = node.commons.file("adapter");
    let nothing_written = |what: &str| {
        assert!(!out.exists(), "{what}: {} was written", out.display());
        assert!(!partial(&out).exists(), "{what}: {} was written", partial(&out).display());
    };

    // An entry that is a deposit, not a decision that set the mixture.
    let err = fails(&strs(&node.train_args(&out, STEPS, &["--decision", &deposits[0].to_string()])));
    assert!(
        err.contains(&format!("entry {} is not a decision that set the mixture", deposits[0]))
            && err.contains("substrate proposals")
            && err.contains("substrate mixture"),
        "{err}"
    );
    nothing_written("--decision on a deposit");

    // A base model other than the one asked for.
    let wrong = "0".repeat(64);
    let err = fails(&strs(&node.train_args(&out, STEPS, &["--base-sha256", &wrong])));
    assert!(
        err.contains(path(&node.model))
            && err.contains(&format!("not the {wrong} asked for"))
            && err.contains("substrate models fetch")
            && err.contains("--model"),
        "{err}"
    );
    nothing_written("--base-sha256 of another file");

    // No node key to sign the provenance, named or by default.
    let missing = node.commons.file("no-such.key");
    let mut args = node.train_args(&out, STEPS, &[]);
    let at = args.iter().position(|a| a == "--node-key").unwrap();
    args[at + 1] = path(&missing).to_owned();
    let err = fails(&strs(&args));
    assert!(err.contains(&format!("substrate id new --kind node --key {}", path(&missing))), "{err}");
    nothing_written("a missing --node-key");
    args.drain(at..at + 2);
    let err = fails(&strs(&args));
    let default = node.commons.data.join("node.key");
    assert!(err.contains(&format!("substrate id new --kind node --key {}", path(&default))), "{err}");
    nothing_written("no node key in the data directory");

    // An --out that already exists is left alone.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = fails(&strs(&node.train_args(&out, STEPS, &[])));
    assert!(
        err.contains(&format!("{} already exists", path(&out))) && err.contains("another --out"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["keep.txt"], "the existing --out was touched");
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    assert!(!partial(&out).exists(), "an existing --out: {} was written", partial(&out).display());
    drop(daemon);

    // A commons with no deposits at all has nothing eligible to train on.
    let empty = Node::new("empty commons");
    let out = empty.commons.file("adapter");
    let err = fails(&strs(&empty.train_args(&out, STEPS, &[])));
    assert!(
        err.contains("no eligible text")
            && err.contains("narrative")
            && err.contains("deposit texts in them"),
        "{err}"
    );
    assert!(!out.exists() && !partial(&out).exists(), "an empty commons: something was written");
}

#[test]
fn the_published_adapter_is_complete() {
    let node = Node::new("publishing commons");
    let daemon = node.commons.start();
    deposit_texts(&daemon.http());
    // This time the node is down while it trains.
    daemon.stop();

    let out = node.commons.file("adapter");
    let (stdout, stderr) = ok(&strs(&node.train_args(&out, STEPS, &[])));
    let files: BTreeSet<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let expected: BTreeSet<String> = [
        "README.md",
        "CONTRIBUTIONS.md",
        "contributions.json",
        "croissant.json",
        "eu-training-summary.md",
        "manifest.jsonl",
        "windows.jsonl",
        "run.json",
        "adapter_model.safetensors",
        "adapter_config.json",
        "model-signing.pub.pem",
        "provenance.intoto.json",
        "model.sig",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(files, expected, "the published directory");
    assert!(!partial(&out).exists(), "the staging directory is left behind");
    assert!(stderr.contains(&format!("published   {}", path(&out))), "{stderr}");

    // What it printed: the adapter, the decision, and a row per register of the mixture.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some(format!("adapter {}", path(&out)).as_str()), "{stdout}");
    assert!(stdout.contains("decision:   none yet; every register weighed the same"), "{stdout}");
    assert!(stdout.contains("snapshot:   9 deposits"), "{stdout}");
    let header =
        lines.iter().position(|l| l.split_whitespace().next() == Some("register")).unwrap_or_else(|| {
            panic!("no register table in:\n{stdout}");
        });
    for column in ["decided", "achieved", "tokens", "held-out loss"] {
        assert!(lines[header].contains(column), "{stdout}");
    }
    for register in substrate_core::register::DEFAULT_REGISTERS {
        let row = lines[header + 1..]
            .iter()
            .find(|l| l.split_whitespace().next() == Some(register))
            .unwrap_or_else(|| panic!("no row for {register} in:\n{stdout}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], "0.1250", "{register}'s decided weight:\n{stdout}");
        let tokens: u64 = cells[3].parse().unwrap_or_else(|_| panic!("{register}'s tokens:\n{stdout}"));
        assert_eq!(tokens > 0, REGISTERS.contains(&register), "{register}'s tokens:\n{stdout}");
        // One of each register's three texts is held out to measure the loss.
        assert_eq!(cells.len() > 5, REGISTERS.contains(&register), "{register}'s held-out loss:\n{stdout}");
    }
    assert!(
        stdout.contains("no eligible text in conversational, encyclopedic, lyric, pedagogical, technical"),
        "{stdout}"
    );
    assert!(stdout.contains("contributors: 9"), "{stdout}");

    let record = run_record(&out);
    assert_eq!(record["node"], node.did.as_str(), "the run names another node");
    assert_eq!(record["contributions"].as_array().unwrap().len(), 9, "{record}");
    assert_eq!(record["windows"], 2 * STEPS, "{record}");

    // `generate` applies it.
    let (generated, err) = ok(&[
        "generate",
        "--model",
        path(&node.model),
        "--adapter",
        path(&out),
        "--prompt",
        "hi",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--json",
    ]);
    let generated: Value = serde_json::from_str(&generated).unwrap_or_else(|e| panic!("{e}: {generated}"));
    assert_eq!(generated["tokens"].as_array().map(Vec::len), Some(4), "{generated}\n{err}");
    // It names its base model: another model refuses it.
    let other = tiny::llama(node.commons.tmp.path(), 8, GgmlDType::F32).unwrap().path;
    let err = fails(&["generate", "--model", path(&other), "--adapter", path(&out), "--prompt", "hi"]);
    assert!(err.contains("was trained on a base model with sha256"), "{err}");
}
