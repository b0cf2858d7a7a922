//! The governed training run end to end on a real ledger (SQLite, blobs) and a tiny model of the
//! real architecture: the decided mixture, the snapshot rules, attribution of every window,
//! the attestation and the signature, and each refusal.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use substrate_core::event::{Deposit, Event, Withdrawal};
use substrate_core::governance::acts::{Action, Attestation, Dispute, Ground, Proposal, VoteCast};
use substrate_core::governance::params::Windows;
use substrate_core::governance::tally::{ProposalClass, Vote};
use substrate_core::identity::did_of;
use substrate_core::snapshot::snapshot_root;
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_models::tiny::{self, GgmlDType};
use substrate_models::{Llama, LoraConfig, Target, Weights};
use substrate_store::ledger::Outcome;
use substrate_store::{DataDir, InitOptions, Ledger, Submission};
use substrate_training::record::Builder;
use substrate_training::run::{self, TrainError, TrainOptions};
use substrate_training::signing::{self, ModelSigningKey};
use substrate_training::verify;
use substrate_training::{audit, provenance};

const START: u64 = 1_800_000_000_000;
const WINDOW: u64 = 1_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn did(n: u8) -> String {
    did_of(&key(n).verifying_key())
}

/// A text of `register` long enough for several windows.
fn text(register: &str, n: usize) -> String {
    let words = match register {
        "oral" => "they told it by the fire, how the river came up to the second step",
        "sacred" => "blessed be the bread and the hands and the salt upon the table",
        _ => "once a lamp burned in the window every evening for a traveller",
    };
    format!("{n}: {}", [words; 4].join(" and "))
}

fn deposit_of(register: &str, consent: ConsentTier, body: &str) -> Event {
    Event::Deposit(Deposit {
        cid: Some(Cid::of(body.as_bytes())),
        register: Register::new(register).expect("register"),
        secondary_registers: Vec::new(),
        consent,
        title: format!("a {register} text"),
        language: "en".into(),
        license: "CC-BY-4.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: body.len() as u64,
        created: "2026-12-01T00:00:00.000Z".into(),
    })
}

struct Commons {
    _tmp: tempfile::TempDir,
    dir: DataDir,
    ledger: Ledger,
    now: u64,
    /// CIDs by role in the story: withdrawn, disputed, local.
    withdrawn: Cid,
    disputed: Cid,
    local: Cid,
    decision: u64,
    proposal: u64,
}

impl Commons {
    fn append(&mut self, submissions: Vec<Submission>) -> Vec<Outcome> {
        self.now += 10;
        let outcomes = self.ledger.append_batch(submissions, self.now).expect("append");
        for outcome in &outcomes {
            assert!(matches!(outcome, Outcome::Appended(_)), "{outcome:?}");
        }
        outcomes
    }

    fn act(&mut self, who: u8, event: Event) -> u64 {
        let outcome =
            self.append(vec![Submission { event: SignedEvent::sign(event, &key(who)), content: None }]);
        match &outcome[0] {
            Outcome::Appended(receipt) => receipt.log_index,
            other => panic!("{other:?}"),
        }
    }
}

/// A commons with a steward (1) and two members (2, 3), twelve texts in three registers from
/// both members, one withdrawn, one under dispute, one `local`; a passed mixture decision.
fn commons() -> Commons {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::new(tmp.path().join("commons"));
    let ledger = Ledger::init(
        &dir,
        SigningKey::from_bytes(&[42u8; 32]),
        InitOptions {
            name: "training test".into(),
            origin: "test.example/training".into(),
            handle_prefix: "tag:test.example,2026:t/".into(),
            registers: Register::defaults(),
            stewards: vec![did(1)],
            windows: Some(Windows { ordinary: WINDOW, resource: WINDOW, constitutional: 2 * WINDOW }),
            now: START,
        },
    )
    .expect("init");
    let mut c = Commons {
        _tmp: tmp,
        dir,
        ledger,
        now: START,
        withdrawn: Cid::of(b""),
        disputed: Cid::of(b""),
        local: Cid::of(b""),
        decision: 0,
        proposal: 0,
    };
    for person in [2, 3] {
        c.act(
            1,
            Event::Attestation(Attestation {
                person: did(person),
                days: None,
                note: None,
                requested: format!("a{person}"),
            }),
        );
    }
    let mut texts = Vec::new();
    for n in 0..12 {
        let register = ["oral", "sacred", "narrative"][n % 3];
        let consent = if n == 4 {
            ConsentTier::Local
        } else if n % 2 == 0 {
            ConsentTier::Commons
        } else {
            ConsentTier::TrainingOnly
        };
        let body = text(register, n);
        let depositor = 2 + (n % 2) as u8;
        let event = deposit_of(register, consent, &body);
        texts.push(Cid::of(body.as_bytes()));
        c.append(vec![Submission {
            event: SignedEvent::sign(event, &key(depositor)),
            content: Some(body.into_bytes()),
        }]);
    }
    c.local = texts[4].clone();
    c.withdrawn = texts[0].clone();
    c.act(
        2,
        Event::Withdrawal(Withdrawal { cid: Some(texts[0].clone()), reason: None, requested: "w".into() }),
    );
    c.disputed = texts[5].clone();
    c.act(
        2,
        Event::Dispute(Dispute {
            cid: Some(texts[5].clone()),
            ground: Ground::DoubtfulConsent,
            detail: "I am not sure it was theirs to give".into(),
            register: None,
            requested: "d".into(),
        }),
    );
    let ballot = |pairs: &[(&str, f64)]| -> BTreeMap<Register, f64> {
        pairs.iter().map(|(r, w)| (Register::new(r).expect("register"), *w)).collect()
    };
    c.proposal = c.act(
        2,
        Event::Proposal(Proposal {
            title: "Spoken texts first".into(),
            summary: None,
            class: ProposalClass::Ordinary,
            actions: vec![Action::SetMixture {
                ballot: ballot(&[("oral", 0.5), ("sacred", 0.3), ("narrative", 0.2)]),
            }],
            requested: "p".into(),
        }),
    );
    for (voter, weights) in [
        (1, ballot(&[("oral", 0.5), ("sacred", 0.3), ("narrative", 0.2)])),
        (2, ballot(&[("oral", 0.5), ("sacred", 0.3), ("narrative", 0.2)])),
        (3, ballot(&[("oral", 0.4), ("sacred", 0.3), ("narrative", 0.2), ("technical", 0.1)])),
    ] {
        let vote = VoteCast {
            proposal: c.proposal,
            choice: Vote::Yes,
            mixture: Some(weights),
            ranking: None,
            requested: "v".into(),
        };
        c.act(voter, Event::Vote(vote));
    }
    // The window closes; the next batch is preceded by the sequencer's decision.
    c.now += WINDOW;
    let decided = c.ledger.decide_due(c.now).expect("decide");
    assert_eq!(decided, vec![c.proposal]);
    c.decision = c.ledger.state().size() - 1;
    c
}

fn options(c: &Commons, out: &std::path::Path, base_sha256: &str) -> TrainOptions {
    TrainOptions {
        data_dir: c.dir.clone(),
        decision: None,
        out: out.to_path_buf(),
        base_name: "tiny.gguf".into(),
        base_sha256: base_sha256.into(),
        lora: LoraConfig { rank: 2, alpha: 4.0, targets: vec![Target::Q, Target::V] },
        steps: 12,
        batch: 2,
        seq_len: 24,
        lr: 1e-2,
        save_every: 4,
        node_key: key(9),
        signing_key: ModelSigningKey::generate(),
        builder: Builder { name: "substrate".into(), version: "test".into(), sha256: "00".repeat(32) },
        now: || "2026-12-06T00:00:00.000Z".to_owned(),
    }
}

#[test]
fn a_decided_mixture_trains_an_adapter_whose_every_token_is_attributed() {
    let c = commons();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tiny = tiny::llama(tmp.path(), 3, GgmlDType::F32).expect("tiny model");
    let mut model = Llama::load(&tiny.path, Weights::Dense).expect("load");
    let out = tmp.path().join("adapter");
    let record = run::train(&mut model, &options(&c, &out, "ab"), |_| {}).expect("train");

    // The decision in force, and the snapshot the log gives: not the withdrawn or disputed text,
    // the local one included (it trains here, where it is held).
    let decision = record.decision.as_ref().expect("a decision");
    assert_eq!((decision.index, decision.proposal), (c.decision, c.proposal));
    let cids: Vec<String> = record.contributions.iter().map(|k| k.entry.cid.to_string()).collect();
    assert_eq!(cids.len(), 10, "{cids:?}");
    assert!(!cids.contains(&c.withdrawn.to_string()) && !cids.contains(&c.disputed.to_string()));
    assert!(cids.contains(&c.local.to_string()));
    assert_eq!(record.local_texts, 1);
    let weighted = ["narrative", "oral", "sacred", "technical"].map(|r| Register::new(r).expect("r"));
    let entries = whole_state(&c.dir).snapshot(&weighted.into_iter().collect());
    assert_eq!(record.snapshot_root, hex::encode(snapshot_root(&entries)));
    assert_eq!(record.registers_without_text, vec!["technical".to_owned()]);

    // Every window is attributed: the side table, the contributions and the totals agree.
    assert_eq!(record.windows, 24);
    let trained: u64 = record.contributions.iter().map(|k| k.tokens_trained).sum();
    assert_eq!(trained, record.tokens_trained);
    assert!(record.contributions.iter().filter(|k| k.held_out).all(|k| k.tokens_trained == 0));
    let side = std::fs::read_to_string(out.join(run::WINDOWS_FILE)).expect("windows");
    let lines: Vec<serde_json::Value> =
        side.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 24);
    let mut windows_by_cid: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        let cid = line["cid"].as_str().expect("cid").to_owned();
        let contribution =
            record.contributions.iter().find(|k| k.entry.cid.to_string() == cid).expect("a contribution");
        let (start, end) =
            (line["bytes"][0].as_u64().expect("start"), line["bytes"][1].as_u64().expect("end"));
        assert!(start < end && end <= contribution.entry.bytes, "{line}");
        *windows_by_cid.entry(cid).or_default() += 1;
    }
    for k in &record.contributions {
        assert_eq!(windows_by_cid.get(&k.entry.cid.to_string()).copied().unwrap_or(0), k.windows);
    }
    let shares: f64 = record.contributors().iter().map(|k| k.share).sum();
    assert!((shares - 1.0).abs() < 1e-9);

    // The attestation and the signature hold, and name what is changed afterwards.
    let attestation = std::fs::read(out.join(provenance::PROVENANCE_FILE)).expect("attestation");
    let statement = provenance::open(&attestation, &did(9)).expect("signed by the node");
    assert!(provenance::check_subjects(&statement, &out).expect("subjects") >= 10);
    let deposits = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| d["annotations"]["role"] == "deposit")
        .count();
    assert_eq!(deposits, 10);
    let public = std::fs::read_to_string(out.join(run::SIGNING_KEY_FILE)).expect("public key");
    signing::verify_directory(&out, run::SIGNATURE_FILE, &public).expect("the signature verifies");
    let verified = verify::verify(&out, None).expect("verifies offline");
    assert_eq!(verified.record, record);
    // Against the log the snapshot root holds, but the node that signed is not registered.
    let err = verify::verify(&out, Some(&c.dir)).expect_err("an unregistered node");
    assert!(matches!(err, verify::AdapterVerifyError::UnregisteredNode(ref n) if n == &did(9)), "{err}");
    let card = out.join("README.md");
    let mut bytes = std::fs::read(&card).expect("card");
    bytes.push(b'\n');
    std::fs::write(&card, bytes).expect("tamper");
    let refused = signing::verify_directory(&out, run::SIGNATURE_FILE, &public).expect_err("tampered");
    assert!(refused.to_string().contains("README.md"), "{refused}");
    let refused = provenance::check_subjects(&statement, &out).expect_err("tampered");
    assert!(refused.to_string().contains("README.md"), "{refused}");
    let refused = verify::verify(&out, None).expect_err("tampered");
    assert!(refused.to_string().contains("README.md"), "{refused}");
    assert!(!run::partial_dir(&out).exists(), "nothing is left half-published");
}

#[test]
fn the_same_snapshot_trains_the_same_adapter_bytes() {
    let c = commons();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tiny = tiny::llama(tmp.path(), 3, GgmlDType::F32).expect("tiny model");
    let weights = |name: &str| {
        let mut model = Llama::load(&tiny.path, Weights::Dense).expect("load");
        let out = tmp.path().join(name);
        run::train(&mut model, &options(&c, &out, "ab"), |_| {}).expect("train");
        std::fs::read(out.join("adapter_model.safetensors")).expect("weights")
    };
    assert_eq!(weights("one"), weights("two"));
}

#[test]
fn bad_requests_are_refused_with_what_to_do_and_publish_nothing() {
    let mut c = commons();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tiny = tiny::llama(tmp.path(), 3, GgmlDType::F32).expect("tiny model");
    let mut model = Llama::load(&tiny.path, Weights::Dense).expect("load");
    let out = tmp.path().join("adapter");

    // A decision that did not set the mixture, and an entry that is no decision at all.
    let mut wrong = options(&c, &out, "ab");
    wrong.decision = Some(c.proposal);
    let err = run::train(&mut model, &wrong, |_| {}).expect_err("not a decision");
    assert!(matches!(err, TrainError::NotAMixtureDecision(i) if i == c.proposal), "{err}");
    assert!(err.to_string().contains("`substrate mixture`"), "{err}");
    wrong.decision = Some(10_000);
    assert!(matches!(run::train(&mut model, &wrong, |_| {}), Err(TrainError::NoSuchEntry { .. })));

    // A text the node does not hold is named.
    let gone = whole_state(&c.dir).snapshot(&[Register::new("oral").expect("r")].into_iter().collect())[0]
        .cid
        .clone();
    c.ledger.flush_texts().expect("flush");
    std::fs::remove_file(c.dir.blobs().join(&gone.to_string()[..2]).join(gone.to_string()))
        .or_else(|_| {
            // The blob layout is the store's; find the file wherever it is.
            let path =
                walk(&c.dir.blobs()).into_iter().find(|p| p.ends_with(gone.to_string())).expect("blob");
            std::fs::remove_file(path)
        })
        .expect("remove the blob");
    let err = run::train(&mut model, &options(&c, &out, "ab"), |_| {}).expect_err("missing text");
    assert!(matches!(&err, TrainError::MissingTexts(cids) if cids == &vec![gone.to_string()]), "{err}");
    assert!(!out.exists() && !run::partial_dir(&out).exists());

    // An existing adapter directory is never overwritten.
    std::fs::create_dir_all(&out).expect("mkdir");
    let err = run::train(&mut model, &options(&c, &out, "ab"), |_| {}).expect_err("exists");
    assert!(matches!(err, TrainError::Exists(_)), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Rewrites `file` in `dir` through `edit`, line by line for JSONL and whole for JSON.
fn rewrite(dir: &std::path::Path, file: &str, edit: impl FnOnce(String) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, edit(text)).expect("write");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn the_erasure_rate_is_zero_for_a_run_and_the_audit_sees_every_injected_erasure() {
    let c = commons();
    let tmp = tempfile::tempdir().expect("tempdir");
    let tiny = tiny::llama(tmp.path(), 3, GgmlDType::F32).expect("tiny model");
    let mut model = Llama::load(&tiny.path, Weights::Dense).expect("load");
    let out = tmp.path().join("adapter");
    let record = run::train(&mut model, &options(&c, &out, "ab"), |_| {}).expect("train");
    let stages = audit::per(&out, &c.dir).expect("audit");
    assert_eq!(
        stages.iter().map(|s| s.name).collect::<Vec<_>>(),
        ["eligible", "manifest", "windows", "provenance", "contribution card", "model card"]
    );
    for stage in &stages {
        assert_eq!(stage.rate(), 0.0, "{stage:?}");
    }
    assert_eq!(stages[1].entered, record.contributions.len());

    let trained: Vec<&substrate_training::Contribution> =
        record.contributions.iter().filter(|k| k.windows > 0).collect();
    let (first, second) = (
        trained[0],
        trained.iter().find(|k| k.entry.depositor != trained[0].entry.depositor).expect("two depositors"),
    );
    let cid = first.entry.cid.to_string();
    let case = |name: &str, file: &str, edit: &dyn Fn(String) -> String| -> Vec<audit::Stage> {
        let dir = tmp.path().join(name);
        copy_dir(&out, &dir);
        rewrite(&dir, file, edit);
        audit::per(&dir, &c.dir).expect("audit")
    };
    let named = |stages: &[audit::Stage], stage: &str, cid: &str| {
        let s = stages.iter().find(|s| s.name == stage).expect("stage");
        assert!(s.rate() > 0.0, "{stage} sees nothing: {s:?}");
        assert!(
            s.missing.iter().any(|m| m == cid) || s.misattributed.iter().any(|(m, _)| m == cid),
            "{stage} does not name {cid}: {s:?}"
        );
    };

    // A deposit dropped from the manifest.
    let stages = case("dropped", run::MANIFEST_FILE, &|t: String| {
        t.lines().filter(|l| !l.contains(&cid)).map(|l| format!("{l}\n")).collect()
    });
    named(&stages, "manifest", &cid);
    // A token count changed in the windows' side table.
    let stages = case("recounted", run::WINDOWS_FILE, &|t: String| {
        let mut done = false;
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
                if !done && v["cid"] == cid.as_str() {
                    v["tokens"][1] = serde_json::json!(v["tokens"][1].as_u64().expect("end") - 1);
                    done = true;
                }
                format!("{v}\n")
            })
            .collect()
    });
    named(&stages, "windows", &cid);
    // A depositor swapped in the attestation.
    let stages = case("swapped", provenance::PROVENANCE_FILE, &|t: String| {
        let mut envelope: serde_json::Value = serde_json::from_str(&t).expect("json");
        let payload = STANDARD.decode(envelope["payload"].as_str().expect("payload")).expect("base64");
        let text = String::from_utf8(payload)
            .expect("utf-8")
            .replace(&first.entry.depositor, &second.entry.depositor);
        envelope["payload"] = serde_json::json!(STANDARD.encode(text));
        envelope.to_string()
    });
    named(&stages, "provenance", &cid);
    // Two contributors merged in the contribution card.
    let stages = case("merged", "contributions.json", &|t: String| {
        let mut card: serde_json::Value = serde_json::from_str(&t).expect("json");
        let contributors = card["contributors"].as_array_mut().expect("contributors");
        let taken: Vec<serde_json::Value> = contributors
            .iter()
            .filter(|k| k["depositor"] == first.entry.depositor.as_str())
            .flat_map(|k| k["deposits"].as_array().cloned().unwrap_or_default())
            .collect();
        contributors.retain(|k| k["depositor"] != first.entry.depositor.as_str());
        for k in contributors.iter_mut() {
            if k["depositor"] == second.entry.depositor.as_str() {
                k["deposits"].as_array_mut().expect("deposits").extend(taken.clone());
            }
        }
        card.to_string()
    });
    named(&stages, "contribution card", &cid);
    // A register's total changed in the model card.
    let register = first.entry.register.to_string();
    let total: u64 = record
        .contributions
        .iter()
        .filter(|k| k.entry.register == first.entry.register)
        .map(|k| k.tokens_trained)
        .sum();
    let stages = case("misreported", "README.md", &|t: String| {
        t.replacen(&format!("| {register} | {total} |"), &format!("| {register} | {} |", total + 1), 1)
    });
    named(&stages, "model card", &cid);

    // A conventional run's directory keeps nothing: every stage after eligibility erases all.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    std::fs::copy(out.join("adapter_model.safetensors"), plain.join("adapter_model.safetensors"))
        .expect("copy");
    let stages = audit::per(&plain, &c.dir).expect("audit");
    assert!(stages[1..].iter().all(|s| s.rate() == 1.0), "{stages:?}");
}

/// The commons' state folded from its log, every deposit in memory (a ledger holds them in its
/// tables).
fn whole_state(dir: &substrate_store::DataDir) -> substrate_core::state::State {
    substrate_store::replay::fold_to(dir, None, |_, _, _| {}).expect("the log folds")
}
