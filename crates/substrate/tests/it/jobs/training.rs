//! The governed training run as a job, end to end with real processes: a member asks for a
//! LoRA run on the decided mixture, a worker of one operator trains it in the sandbox on the
//! snapshot (its `training-only` texts sent to it by the sequencer for the job alone) and a
//! worker of another operator re-executes it; the node whose output stands records the adapter,
//! which the sequencer fetches from it. A run whose snapshot holds `local` texts runs on the
//! node that holds them and nowhere else. Afterwards no worker's disk holds a text it was not
//! allowed to keep.

use super::*;
use crate::mesh::contains;

const TRAIN: &str = "train-lora@1";
const EVALUATE: &str = "evaluate@1";
/// What the job asks for: a short run of the tiny model.
const SHAPE: [&str; 8] = ["--steps", "4", "--batch", "2", "--seq-len", "32", "--rank", "4"];

const PUBLIC: [&str; 3] = [
    "We told the story of the flood at the kitchen table, every winter.",
    "My grandmother sang while the bread rose, and we learned the words.",
    "The boats went out at dawn and the whole village waited on the quay.",
];
const TRAINING_ONLY: [&str; 2] = [
    "A lullaby my family keeps for itself, lent to the commons for training only.",
    "The way we say grace at home, which nobody should read but a model may learn.",
];
const LOCAL: &str = "A story that never leaves the node it was told to: only aggregates go out.";

impl Site {
    /// Approves `train-lora@1` and `evaluate@1` pinned to the tiny model (and this `substrate`,
    /// which `propose` pins), decides a mixture weighing only narrative texts, and returns the
    /// decision's index.
    fn approve_training(&self) -> u64 {
        let seq = self.seq();
        let workload = format!("{TRAIN}={}", path(&self.llama));
        let evaluation = format!("{EVALUATE}={}", path(&self.llama));
        let voters: Vec<&Path> = std::iter::once(self.steward.as_path())
            .chain(self.operators.iter().map(PathBuf::as_path))
            .collect();
        let propose = |actions: &[&str]| {
            let mut args = vec!["propose", "--title", "Train on the commons"];
            args.extend_from_slice(actions);
            args.extend(["--key", path(&self.steward), "--node", &seq.base]);
            ok(&args).0.split_whitespace().nth(1).expect("proposal id").to_owned()
        };
        let approval = propose(&["--approve-workload", &workload, "--approve-workload", &evaluation]);
        let mixture = propose(&["--set-mixture", "narrative=1"]);
        pass(&seq, &[&approval, &mixture], &voters);
        let governance = seq.get("/v1/governance").json();
        governance["mixture"]["decision"].as_u64().expect("a decided mixture")
    }

    /// The steward deposits `text` as a narrative text with `consent`.
    fn deposit_text(&self, name: &str, text: &str, consent: &str) {
        let seq = self.seq();
        let file = self.dir(&format!("{name}.txt"));
        std::fs::write(&file, text).expect("write");
        let receipt = self.dir(&format!("{name}.receipt.json"));
        ok(&[
            "deposit",
            path(&file),
            "--register",
            "narrative",
            "--consent",
            consent,
            "--title",
            name,
            "--lang",
            "en",
            "--license",
            "CC-BY-4.0",
            "--key",
            path(&self.steward),
            "--node",
            &seq.base,
            "--receipt",
            path(&receipt),
        ]);
    }

    /// Waits until `count` nodes offer training.
    fn offer_training(&self, count: usize) {
        let seq = self.seq();
        until(&format!("{count} nodes to offer {TRAIN}"), Duration::from_secs(60), || {
            let view = seq.get("/v1/workers").json();
            let ready = view["workers"].as_array().map_or(0, |w| {
                w.iter()
                    .filter(|w| {
                        w["offer"]["workloads"].as_array().is_some_and(|l| l.iter().any(|x| x == TRAIN))
                    })
                    .count()
            });
            if ready >= count { Ok(()) } else { Err(view.to_string()) }
        });
    }

    /// Asks for a training run and waits for it to end; the job's view.
    fn train(&self, budget: &str) -> Value {
        let seq = self.seq();
        let mut args = vec!["job", "submit", TRAIN];
        args.extend_from_slice(&SHAPE);
        args.extend(["--budget", budget, "--deadline", "300", "--wait", "--key", path(&self.steward)]);
        args.extend(["--node", &seq.base]);
        let (out, _) = ok(&args);
        let id: u64 = out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).expect("job id");
        assert!(out.contains("adapter: weights sha256"), "{out}");
        self.job(id)
    }

    /// Waits until the sequencer's registry holds every file of the adapter whose weights are
    /// `weights`; its record.
    fn adapter_with(&self, weights: &str) -> Value {
        let seq = self.seq();
        until("the adapter to be published and its files fetched", Duration::from_secs(60), || {
            let listed = seq.get("/v1/adapters").json();
            let found = listed["adapters"].as_array().into_iter().flatten().find(|a| a["adapter"] == weights);
            match found {
                Some(a) if a["filesComplete"] == true => Ok(a.clone()),
                _ => Err(listed.to_string()),
            }
        })
    }
}

/// The output that stands for a done job, read from the log.
fn standing_output(seq: &Http, job: &Value) -> Value {
    let view = seq.get(&format!("/v1/jobs/{}", job["id"])).json();
    view["output"].clone()
}

/// The node whose result stands.
fn standing_node(job: &Value) -> String {
    let result = job["status"]["result"].as_u64().expect("a result stands");
    let runs = job["runs"].as_array().expect("runs");
    let run = runs.iter().find(|r| r["result"] == result).expect("the standing run");
    run["node"].as_str().expect("node").to_owned()
}

/// Files under `dir` holding any of `texts`; files and directories that go away while they are
/// read (a worker deleting a job's directory) are passed over.
fn holding(dir: &Path, texts: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && texts.iter().any(|t| contains(&bytes, t.as_bytes()))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_training_job_is_checked_by_another_operator_and_its_training_only_texts_leave_no_trace() {
    let site = Site::found(2, &["jobs.check-ppm=1000000"]);
    let seq = site.seq();
    let decision = site.approve_training();
    for (i, text) in PUBLIC.iter().enumerate() {
        site.deposit_text(&format!("public-{i}"), text, "public");
    }
    for (i, text) in TRAINING_ONLY.iter().enumerate() {
        site.deposit_text(&format!("training-only-{i}"), text, "training-only");
    }
    let w1 = site.worker(1, &[]);
    let w2 = site.worker(2, &[]);
    site.offer_training(2);

    // Refusals, each with its reason: a decision that set no mixture, an unapproved version, a
    // run out of bounds.
    let key = key_of(&site.steward);
    let bad = |input: Value, workload: &str| {
        let template = Event::JobRequest(substrate_core::governance::jobs::JobRequest {
            workload: workload.into(),
            input: serde_json::from_value(input).expect("an input"),
            budget: 5,
            deadline_seconds: None,
            requested: "2026-12-07T00:00:00Z".into(),
        });
        post(&seq, &sign_statement(&crate::util::statement(&template), &key))
    };
    let shape = |decision: u64, steps: u32| json!({"kind": "train-lora", "decision": decision, "steps": steps, "batch": 2, "seqLen": 32, "rank": 4});
    let reply = bad(shape(decision - 1, 4), TRAIN).error(400, "job_input");
    assert!(reply.contains("not a decision that set the mixture"), "{reply}");
    bad(shape(decision, 4), "train-lora@2").error(403, "job_workload_not_approved");
    // A shape out of bounds is refused before it reaches the fold, as every malformed event is.
    let reply = bad(shape(decision, 0), TRAIN).error(400, "invalid_event");
    assert!(reply.contains("steps runs from 1"), "{reply}");

    // The run: one worker trains, the other re-executes it (every result is checked here).
    let job = site.train("30");
    assert_eq!(job["status"]["state"], "done", "{job}");
    assert_eq!(job["status"]["verdict"], "passed", "two honest runs agree: {job}");
    let roles: Vec<&str> =
        job["runs"].as_array().unwrap().iter().filter_map(|r| r["role"].as_str()).collect();
    assert_eq!(roles, ["run", "check"], "{job}");
    let output = standing_output(&seq, &job);
    assert_eq!(output["kind"], "train-lora", "{output}");
    assert_eq!(output["losses"].as_array().map(Vec::len), Some(4), "{output}");

    // The node whose output stands records the adapter; the sequencer fetches its files from it,
    // and they verify against the log with others' tools' formats as any adapter does.
    let weights = output["weights"].as_str().expect("weights").to_owned();
    let adapter = site.adapter_with(&weights);
    assert_eq!(adapter["node"].as_str(), Some(standing_node(&job).as_str()), "{adapter}");
    assert_eq!(adapter["decision"].as_u64(), Some(decision), "{adapter}");
    assert_eq!(adapter["snapshotRoot"], output["snapshotRoot"], "{adapter}");
    assert_eq!(adapter["deposits"].as_u64(), Some((PUBLIC.len() + TRAINING_ONLY.len()) as u64), "{adapter}");
    let pulled = site.dir("pulled");
    let id = adapter["id"].as_u64().expect("id").to_string();
    let (out, _) = ok(&["adapters", "pull", &id, "--out", path(&pulled), "--node", &seq.base]);
    assert!(out.contains("signature and attestation verified"), "{out}");
    let (out, _) = ok(&["adapters", "verify", path(&pulled), "--data-dir", path(&site.dir("sequencer"))]);
    assert!(out.contains("the snapshot root is the log's"), "{out}");
    let run: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("run.json")).expect("run.json")).expect("json");
    assert_eq!(run["tokens_trained"], output["tokens"], "{run}");

    // The adapter and the base model evaluated on the same snapshot, each checked by the other
    // worker: once both workers hold the adapter's files.
    for worker in [&w1, &w2] {
        let http = worker.http();
        until("a worker to hold the adapter's files", Duration::from_secs(60), || {
            let listed = http.get("/v1/adapters").json();
            let complete = listed["adapters"].as_array().into_iter().flatten().any(|a| {
                a["id"].as_u64().map(|i| i.to_string()) == Some(id.clone()) && a["filesComplete"] == true
            });
            if complete { Ok(()) } else { Err(listed.to_string()) }
        });
    }
    let evaluate = |adapter: Option<&str>| {
        let mut args = vec!["job", "submit", EVALUATE, "--windows", "4", "--seq-len", "32", "--budget", "5"];
        if let Some(adapter) = adapter {
            args.extend(["--adapter", adapter]);
        }
        args.extend(["--wait", "--key", path(&site.steward), "--node", &seq.base]);
        let (out, _) = ok(&args);
        assert!(out.contains("narrative"), "{out}");
        let id: u64 = out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).expect("job id");
        let job = site.job(id);
        assert_eq!(job["status"]["verdict"], "passed", "{job}");
        standing_output(&seq, &job)
    };
    let tuned = evaluate(Some(&id));
    let base = evaluate(None);
    assert_eq!(tuned["snapshotRoot"], base["snapshotRoot"]);
    let (tuned, base) = (&tuned["registers"][0], &base["registers"][0]);
    assert_eq!(tuned["register"], "narrative", "{tuned}");
    assert_eq!(tuned["texts"].as_u64(), Some((PUBLIC.len() + TRAINING_ONLY.len()) as u64), "{tuned}");
    assert!(
        tuned["tokens"].as_u64().is_some_and(|t| t > 0) && tuned["tokens"] == base["tokens"],
        "{tuned} {base}"
    );
    assert_ne!(tuned["loss"], base["loss"], "the adapter changes what the model predicts");

    // Both workers were sent the training-only texts for their assignment and kept none of
    // them: not in the blob store, not in the database, not in the jobs' scratch directories.
    // The public texts did replicate.
    drop((w1, w2));
    for n in 1..=2 {
        let data = site.dir(&format!("worker-{n}"));
        let kept = holding(&data, &TRAINING_ONLY);
        assert!(kept.is_empty(), "worker {n} kept training-only texts in {kept:?}");
        assert!(!holding(&data, &PUBLIC[..1]).is_empty(), "worker {n} holds no public text");
        let scratch = data.join("jobs");
        assert!(
            std::fs::read_dir(&scratch).map_or(true, |mut d| d.next().is_none()),
            "{scratch:?} is not empty"
        );
    }
    // The checker's adapter was dropped once the run's output stood, and the publisher's staged
    // copy once its registry held the files.
    let staged: Vec<PathBuf> = (1..=2)
        .filter_map(|n| std::fs::read_dir(site.dir(&format!("worker-{n}")).join("adapters")).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect();
    assert!(staged.is_empty(), "staged adapters left behind: {staged:?}");
}

#[test]
fn a_training_job_on_local_texts_runs_only_on_the_node_that_holds_them() {
    let site = Site::found_with(1, &["jobs.check-ppm=1000000"], &["--work", "--worker-models", "{models}"]);
    let seq = site.seq();
    // The sequencer's own node takes jobs: the steward registers it.
    let node_key = site.dir("sequencer").join("node.key");
    ok(&["node-register", "--node-key", path(&node_key), "--key", path(&site.steward), "--node", &seq.base]);
    let holder = did_of(&node_key);
    site.approve_training();
    for (i, text) in PUBLIC.iter().enumerate() {
        site.deposit_text(&format!("public-{i}"), text, "public");
    }
    site.deposit_text("local", LOCAL, "local");
    let w1 = site.worker(1, &[]);
    site.offer_training(2);

    let job = site.train("30");
    assert_eq!(job["status"]["state"], "done", "{job}");
    let runs = job["runs"].as_array().expect("runs");
    assert!(runs.iter().all(|r| r["node"] == holder.as_str()), "only the holder runs it: {job}");
    // Drawn for a check, but no other operator may read the local text: it stands unchecked.
    assert_eq!(job["status"]["verdict"], "unchecked", "{job}");
    let output = standing_output(&seq, &job);
    let adapter = site.adapter_with(output["weights"].as_str().expect("weights"));
    assert_eq!(adapter["node"].as_str(), Some(holder.as_str()), "{adapter}");
    assert_eq!(
        adapter["deposits"].as_u64(),
        Some(PUBLIC.len() as u64 + 1),
        "the local text is in it: {adapter}"
    );

    drop(w1);
    let kept = holding(&site.dir("worker-1"), &[LOCAL]);
    assert!(kept.is_empty(), "the worker holds the local text in {kept:?}");
}

#[test]
fn a_worker_killed_while_it_trains_keeps_no_text_and_the_job_goes_to_another() {
    let site = Site::found(2, &["jobs.check-ppm=0"]);
    let seq = site.seq();
    site.approve_training();
    for (i, text) in PUBLIC.iter().enumerate() {
        site.deposit_text(&format!("public-{i}"), text, "public");
    }
    for (i, text) in TRAINING_ONLY.iter().enumerate() {
        site.deposit_text(&format!("training-only-{i}"), text, "training-only");
    }
    let mut workers = vec![Some(site.worker(1, &[])), Some(site.worker(2, &[]))];
    site.offer_training(2);

    // A long run, so that it is caught in the middle; one attempt may take 20 seconds.
    let (out, _) = ok(&[
        "job",
        "submit",
        TRAIN,
        "--steps",
        "2000",
        "--batch",
        "2",
        "--seq-len",
        "32",
        "--rank",
        "4",
        "--budget",
        "30",
        "--deadline",
        "20",
        "--key",
        path(&site.steward),
        "--node",
        &seq.base,
    ]);
    let id: u64 = out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).expect("job id");
    let first = until("the job to be assigned", Duration::from_secs(30), || {
        let job = site.job(id);
        job["runs"][0]["node"].as_str().map(str::to_owned).ok_or_else(|| job.to_string())
    });
    let n = if first == site.nodes[0] { 1 } else { 2 };
    let data = site.dir(&format!("worker-{n}"));
    // The texts it was sent are in the job's scratch directory while it trains, and only there.
    until("the worker to hold the job's texts", Duration::from_secs(30), || {
        let held = holding(&data.join("jobs"), &TRAINING_ONLY);
        if held.len() == TRAINING_ONLY.len() { Ok(()) } else { Err(format!("{held:?}")) }
    });
    workers[n - 1].take().expect("the worker runs").kill();
    assert!(!holding(&data.join("jobs"), &TRAINING_ONLY).is_empty(), "killed, it could not clean up");

    // Past the deadline the job goes to the other worker, and ends there.
    let job = until("the job to end", Duration::from_secs(180), || {
        let job = site.job(id);
        if job["status"]["state"] == "done" { Ok(job) } else { Err(job.to_string()) }
    });
    let runs = job["runs"].as_array().expect("runs");
    assert!(runs.len() == 2 && runs[0]["missed"] == true, "the first attempt lapsed: {job}");
    assert_ne!(runs[1]["node"], first.as_str(), "{job}");

    // Started again, the killed worker empties its scratch directory before anything else.
    let _again = site.worker(n, &[]);
    until("the restarted worker to empty its scratch directory", Duration::from_secs(30), || {
        let held = holding(&data, &TRAINING_ONLY);
        if held.is_empty() { Ok(()) } else { Err(format!("{held:?}")) }
    });
    drop(workers);
    for n in 1..=2 {
        let kept = holding(&site.dir(&format!("worker-{n}")), &TRAINING_ONLY);
        assert!(kept.is_empty(), "worker {n} kept training-only texts in {kept:?}");
    }
}

#[test]
fn a_worker_with_two_slots_runs_two_jobs_at_once() {
    let site = Site::found(1, &["jobs.check-ppm=0"]);
    let seq = site.seq();
    site.approve_training();
    for (i, text) in PUBLIC.iter().enumerate() {
        site.deposit_text(&format!("public-{i}"), text, "public");
    }
    let _worker = site.worker(1, &["--worker-slots", "2"]);
    site.offer_training(1);
    let submit = || {
        let (out, _) = ok(&[
            "job",
            "submit",
            TRAIN,
            "--steps",
            "1500",
            "--batch",
            "2",
            "--seq-len",
            "32",
            "--rank",
            "4",
            "--budget",
            "10",
            "--key",
            path(&site.steward),
            "--node",
            &seq.base,
        ]);
        out.split_whitespace().nth(1).and_then(|id| id.parse::<u64>().ok()).expect("job id")
    };
    let jobs = [submit(), submit()];
    // Both run at once: each in its own directory of the scratch space, at the same moment.
    let scratch = site.dir("worker-1").join("jobs");
    until("two jobs to run at once", Duration::from_secs(60), || {
        let running = std::fs::read_dir(&scratch).map_or(0, |d| d.flatten().count());
        if running == 2 { Ok(()) } else { Err(format!("{running} running")) }
    });
    for id in jobs {
        until("each job to end", Duration::from_secs(120), || {
            let job = site.job(id);
            if job["status"]["state"] == "done" { Ok(()) } else { Err(job.to_string()) }
        });
    }
}
