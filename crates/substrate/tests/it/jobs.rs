//! Jobs on the mesh end to end: a sequencer and three workers of three operators, each a real
//! `substrate serve` process on 127.0.0.1, running embedding and generation jobs in the sandbox on
//! tiny models the chambers approved by digest. One worker runs a cheating workload program that
//! embeds half of each text and generates half the tokens; the spot checks catch it, its
//! reputation falls, its jobs go elsewhere, and the dispute is in the log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::governance::jobs::{JobOutput, JobResult, decode_vector};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Daemon, Http, Reply, field, ok, path, sign_statement};

/// How long the job stream may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(180);

fn until<T>(what: &str, patience: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("timed out waiting for {what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The test-only workload program that cuts corners, built beside `substrate`.
fn cheating_workload() -> PathBuf {
    let program = Path::new(env!("CARGO_BIN_EXE_substrate")).with_file_name("cheating-workload");
    assert!(
        program.exists(),
        "{} is missing: build it with `cargo build -p substrate-jobs --bins` (cargo test --workspace does)",
        program.display()
    );
    program
}

fn key_of(file: &Path) -> ed25519_dalek::SigningKey {
    let text = std::fs::read_to_string(file).expect("read the key file");
    substrate_core::identity::KeyFile::parse(&text).expect("a usable key file").1
}

fn post(http: &Http, envelope: &substrate_core::Envelope) -> Reply {
    http.post_json("/v1/events", &json!({ "envelope": envelope }))
}

/// A job request statement as a client other than the CLI would send it, signed by `key`.
fn request(http: &Http, predicate: Value, key: &ed25519_dalek::SigningKey) -> Reply {
    let template = Event::JobRequest(substrate_core::governance::jobs::JobRequest {
        workload: "embed@1".into(),
        input: substrate_core::governance::jobs::JobInput::Embed { texts: vec!["x".into()] },
        budget: 1,
        deadline_seconds: None,
        requested: "2026-12-07T00:00:00Z".into(),
    });
    let mut statement = crate::util::statement(&template);
    statement["predicate"] = predicate;
    post(http, &sign_statement(&statement, key))
}

fn did_of(key: &Path) -> String {
    ok(&["id", "show", "--key", path(key)]).0.trim().to_owned()
}

fn jobs(http: &Http, query: &str) -> Vec<Value> {
    let reply = http.get(&format!("/v1/jobs?limit=1000{query}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["jobs"].as_array().cloned().unwrap_or_default()
}

fn balance(http: &Http, who: &str) -> f64 {
    let reply = http.get(&format!("/v1/credits/{}", crate::util::segment(who)));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["balance"].as_f64().expect("balance")
}

/// Votes yes on every proposal of `ids` with every key, then waits for the sequencer's decisions.
fn pass(seq: &Http, ids: &[&str], voters: &[&Path]) {
    for id in ids {
        for voter in voters {
            ok(&["vote", id, "yes", "--key", path(voter), "--node", &seq.base]);
        }
    }
    for id in ids {
        passed(seq, id);
    }
}

fn passed(seq: &Http, id: &str) {
    until(&format!("proposal {id} to pass"), Duration::from_secs(30), || {
        let view = seq.get(&format!("/v1/proposals/{id}")).json();
        match view["proposal"]["status"]["outcome"]["outcome"].as_str() {
            Some("passed") => Ok(()),
            Some(other) => panic!("proposal {id} {other}: {view}"),
            None => Err(view["proposal"]["status"].to_string()),
        }
    });
}

/// A commons founded for jobs: a steward, a sequencer joined to the mesh, `workers` operators
/// each verified with a registered worker node (prepared, not started), tiny models in the real
/// formats, and `embed@1` and `generate@1` approved pinned to their digests (with `settings`
/// decided alongside, e.g. `jobs.check-ppm=500000`).
struct Site {
    tmp: tempfile::TempDir,
    steward: PathBuf,
    steward_did: String,
    sequencer: Option<Daemon>,
    p2p: String,
    operators: Vec<PathBuf>,
    nodes: Vec<String>,
    models: PathBuf,
    bert: PathBuf,
    llama: PathBuf,
}

impl Site {
    fn found(workers: usize, settings: &[&str]) -> Site {
        Site::found_with(workers, settings, &[])
    }

    /// [`Site::found`] with the sequencer started with `sequencer` arguments after the mesh's.
    fn found_with(workers: usize, settings: &[&str], sequencer: &[&str]) -> Site {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = |name: &str| tmp.path().join(name);
        // Tiny models in the real formats, made before any node starts looking for them.
        let models = dir("models");
        std::fs::create_dir_all(&models).expect("models dir");
        let bert = tiny::bert(&models, 1).expect("tiny bert");
        let llama = tiny::llama(&models, 1, GgmlDType::Q8_0).expect("tiny llama");
        let programs = models.join("programs");
        std::fs::create_dir_all(&programs).expect("programs dir");
        let cheat = cheating_workload();
        for program in [Path::new(env!("CARGO_BIN_EXE_substrate")), cheat.as_path()] {
            let name = program.file_name().expect("a file name");
            std::os::unix::fs::symlink(program, programs.join(name)).expect("link the program");
        }
        let steward = dir("steward.json");
        let steward_did = ok(&["id", "new", "--key", path(&steward)]).0.trim().to_owned();
        let (out, _) = ok(&[
            "init",
            "--data-dir",
            path(&dir("sequencer")),
            "--name",
            "Jobs Test",
            "--steward",
            &steward_did,
            "--voting-window",
            "5s",
        ]);
        let vkey = field(&out, "log key:");
        ok(&["id", "new", "--kind", "node", "--key", path(&dir("sequencer").join("node.key"))]);
        let sequencer_args: Vec<String> =
            sequencer.iter().map(|a| a.replace("{models}", path(&models))).collect();
        let sequencer_args: Vec<&str> = sequencer_args.iter().map(String::as_str).collect();
        let (sequencer, p2p) = Daemon::start_mesh_with(&dir("sequencer"), tmp.path(), &[], &sequencer_args);
        let seq = sequencer.http();

        // Operators, each verified by the steward, each with a worker node of their own.
        let mut operators = Vec::new();
        let mut nodes = Vec::new();
        for n in 1..=workers {
            let operator = dir(&format!("operator-{n}.json"));
            let did = ok(&["id", "new", "--key", path(&operator)]).0.trim().to_owned();
            ok(&["member", "attest", &did, "--key", path(&steward), "--node", &seq.base]);
            let data = dir(&format!("worker-{n}"));
            ok(&["init", "--data-dir", path(&data), "--mirror-of", &vkey]);
            let key = data.join("node.key");
            ok(&["id", "new", "--kind", "node", "--key", path(&key)]);
            ok(&["node-register", "--node-key", path(&key), "--key", path(&operator), "--node", &seq.base]);
            nodes.push(did_of(&key));
            operators.push(operator);
        }

        // The chambers approve the workloads pinned to the tiny models' digests and to two builds
        // of the workload program: `substrate` itself, which `propose` pins, and a build that cuts
        // corners, as a build with a bug would. A worker runs only a program an approval pins and
        // must hold every pinned file, so each holds both builds (linked into its models
        // directory) and runs one.
        let approve = [
            format!("embed@1={},{}", path(&bert), path(&cheat)),
            format!("generate@1={},{}", path(&llama.path), path(&cheat)),
        ];
        let propose = |title: &str, actions: &[&str]| {
            let mut args = vec!["propose", "--title", title];
            args.extend_from_slice(actions);
            args.extend(["--key", path(&steward), "--node", &seq.base]);
            ok(&args).0.split_whitespace().nth(1).expect("proposal id").to_owned()
        };
        let mut proposals = vec![propose(
            "Run embeddings and generation",
            &["--approve-workload", &approve[0], "--approve-workload", &approve[1]],
        )];
        for setting in settings {
            proposals.push(propose("Jobs settings", &["--set", setting]));
        }
        let voters: Vec<&Path> =
            std::iter::once(steward.as_path()).chain(operators.iter().map(PathBuf::as_path)).collect();
        let ids: Vec<&str> = proposals.iter().map(String::as_str).collect();
        pass(&seq, &ids, &voters);
        Site {
            tmp,
            steward,
            steward_did,
            sequencer: Some(sequencer),
            p2p,
            operators,
            nodes,
            models,
            bert,
            llama: llama.path,
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn seq(&self) -> Http {
        self.sequencer.as_ref().expect("the sequencer runs").http()
    }

    /// Starts worker `n` (from 1) with `extra` arguments.
    fn worker(&self, n: usize, extra: &[&str]) -> Daemon {
        let mut args = vec!["--role", "worker", "--worker-models", path(&self.models)];
        args.extend_from_slice(extra);
        Daemon::start_mesh_with(&self.dir(&format!("worker-{n}")), self.tmp.path(), &[&self.p2p], &args).0
    }

    /// Waits until `count` workers offer both workloads.
    fn offered(&self, count: usize) {
        let seq = self.seq();
        until(&format!("{count} workers to offer both workloads"), Duration::from_secs(60), || {
            let view = seq.get("/v1/workers").json();
            let ready = view["workers"].as_array().map_or(0, |w| {
                w.iter().filter(|w| w["offer"]["workloads"].as_array().is_some_and(|l| l.len() == 2)).count()
            });
            if ready >= count { Ok(()) } else { Err(view.to_string()) }
        });
    }

    /// The steward deposits `count` texts, earning the credits jobs are paid from.
    fn earn(&self, count: usize) {
        let seq = self.seq();
        for i in 0..count {
            let story = self.dir(&format!("story-{i}.txt"));
            std::fs::write(
                &story,
                format!("We told the story of the flood, the {i} time, at the kitchen table.\n"),
            )
            .expect("write");
            let receipt = self.dir(&format!("story-{i}.receipt.json"));
            ok(&[
                "deposit",
                path(&story),
                "--register",
                "oral",
                "--consent",
                "public",
                "--title",
                "The flood",
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
    }

    /// Asks for an embedding of `text` (one attempt may take `deadline` seconds); the job's id.
    fn embed(&self, text: &str, deadline: &str) -> u64 {
        let seq = self.seq();
        let (out, _) = ok(&[
            "job",
            "submit",
            "embed@1",
            "--text",
            text,
            "--text",
            "and a second text",
            "--budget",
            "1",
            "--deadline",
            deadline,
            "--key",
            path(&self.steward),
            "--node",
            &seq.base,
        ]);
        out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).expect("job id")
    }

    fn job(&self, id: u64) -> Value {
        self.seq().get(&format!("/v1/jobs/{id}")).json()["job"].clone()
    }
}

#[test]
fn three_workers_run_jobs_checked_by_reexecution_and_a_cheater_is_caught() {
    let site = Site::found(3, &["jobs.check-ppm=500000"]);
    let seq = site.seq();
    let governance = seq.get("/v1/governance").json();
    assert!(governance.to_string().contains("embed"), "{governance}");
    let (steward, steward_did, nodes, operators, bert) =
        (&site.steward, &site.steward_did, &site.nodes, &site.operators, &site.bert);

    // Workers 1 and 2 are honest; worker 3 runs the cheating program.
    let cheat = cheating_workload();
    let _w1 = site.worker(1, &[]);
    let _w2 = site.worker(2, &[]);
    let _w3 = site.worker(3, &["--workload-program", path(&cheat)]);
    site.offered(3);

    // The requester earns credits by depositing, then asks for a stream of jobs.
    site.earn(8);
    let before = balance(&seq, steward_did);
    let cheater = nodes[2].clone();
    let honest = [&nodes[0], &nodes[1]];
    // Jobs go out in waves of twelve until a check has caught the cheater. It runs about a third
    // of the jobs, and each of its runs is drawn for a check at 50%, or it is caught checking an
    // honest run: the expected number of its outputs that stand unchecked before it is caught is
    // about one, and five waves leave it uncaught with a chance under one in a million.
    let mut submitted = Vec::new();
    for wave in 0..5 {
        for i in 0..12 {
            let n = wave * 12 + i;
            let (out, _) = if n % 3 == 2 {
                let prompt = format!("tell the story number {n}");
                ok(&[
                    "job",
                    "submit",
                    "generate@1",
                    "--prompt",
                    &prompt,
                    "--max-tokens",
                    "12",
                    "--budget",
                    "1",
                    "--key",
                    path(steward),
                    "--node",
                    &seq.base,
                ])
            } else {
                let text = format!(
                    "{} ({n})",
                    ["the bread rose overnight", "we sing at dawn", "a lesson on fractions"][n % 3]
                );
                ok(&[
                    "job",
                    "submit",
                    "embed@1",
                    "--text",
                    &text,
                    "--text",
                    "and a second text",
                    "--budget",
                    "1",
                    "--key",
                    path(steward),
                    "--node",
                    &seq.base,
                ])
            };
            let id: u64 = out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).expect("job id");
            submitted.push(id);
        }
        // Every job ends: none is lost, none stays open, none waits to be checked after all.
        until("every job to end", PATIENCE, || {
            let open = jobs(&seq, "&state=open");
            let waiting = jobs(&seq, "")
                .into_iter()
                .filter(|j| j["recheck"].is_object() && j["recheck"]["started"] == false)
                .count();
            if open.is_empty() && waiting == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} open: {:?}",
                    open.len(),
                    open.iter().map(|j| &j["status"]).collect::<Vec<_>>()
                ))
            }
        });
        if jobs(&seq, "").iter().any(|j| j.get("dispute").is_some_and(|d| !d.is_null())) {
            break;
        }
    }
    let all = jobs(&seq, "");
    assert_eq!(all.len(), submitted.len(), "{all:?}");
    let disputes: Vec<&Value> =
        all.iter().filter(|j| j.get("dispute").is_some_and(|d| !d.is_null())).collect();
    assert!(!disputes.is_empty(), "no check caught the cheater in {} jobs: {all:?}", all.len());
    // When the first check caught it: the arbiter's result.
    let first_caught =
        disputes.iter().map(|d| d["dispute"]["arbiter"].as_u64().expect("arbiter result")).min().unwrap();
    let mut rechecked = 0;
    for job in &all {
        let status = &job["status"];
        assert_eq!(status["state"], "done", "job {} did not finish: {job}", job["id"]);
        // No output of the cheater stands: a result drawn on after the catch is re-executed
        // whatever the rate, and one that stood unchecked before it is checked after all, found
        // out of line and replaced by the check's output.
        let result = status["result"].as_u64().expect("result");
        let standing =
            job["runs"].as_array().unwrap().iter().find(|r| r["result"] == result).expect("the standing run");
        assert_ne!(standing["node"], cheater.as_str(), "an output of the cheater stands: {job}");
        if job["recheck"].is_object() {
            assert_eq!(status["verdict"], "overturned", "{job}");
            assert_eq!(status["paid"], 0, "the requester is paid back: {job}");
            rechecked += 1;
        }
    }
    eprintln!(
        "{} jobs; the cheater was caught at entry {first_caught}; {rechecked} of its earlier outputs checked after all",
        all.len()
    );

    // The cheater was caught: a dispute names it, its reputation fell, and no run went to it after.
    assert!(!disputes.is_empty(), "no check caught the cheater: {all:?}");
    for dispute in &disputes {
        let finding = dispute["dispute"]["finding"].as_str().unwrap_or_default();
        assert!(finding.contains(cheater.as_str()), "{dispute}");
        assert!(
            ["upheld", "overturned"].contains(&dispute["status"]["verdict"].as_str().unwrap_or_default()),
            "{dispute}"
        );
    }
    let workers = seq.get("/v1/workers").json();
    let entry = |node: &str| {
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["offer"]["node"] == node)
            .cloned()
            .expect("worker")
    };
    let caught = entry(&cheater);
    assert!(caught["reputation"]["failed"].as_u64().unwrap_or(0) >= 1, "{caught}");
    assert_eq!(caught["shunned"], true, "{caught}");
    for node in honest {
        assert_eq!(entry(node)["reputation"]["failed"], 0, "an honest worker failed a check: {workers}");
    }
    let later_runs: Vec<&Value> = all
        .iter()
        .flat_map(|j| j["runs"].as_array().unwrap())
        .filter(|r| r["assignment"].as_u64().unwrap() > first_caught && r["node"] == cheater.as_str())
        .collect();
    assert!(later_runs.is_empty(), "the cheater was still assigned after it was caught: {later_runs:?}");

    // The outputs are the model's: a done embedding job holds what `substrate embed` gives here.
    let standing_node = |job: &Value| {
        let result = &job["status"]["result"];
        job["runs"].as_array().unwrap().iter().find(|r| &r["result"] == result).map(|r| r["node"].clone())
    };
    let embedded = all
        .iter()
        .find(|j| j["workload"] == "embed@1" && standing_node(j).is_some_and(|n| n != cheater.as_str()))
        .expect("an embed job an honest worker ran");
    let view = seq.get(&format!("/v1/jobs/{}", embedded["id"])).json();
    let Ok(JobOutput::Embed { vectors }) = serde_json::from_value::<JobOutput>(view["output"].clone()) else {
        panic!("no embedding output: {view}")
    };
    let texts = embedded_texts(&seq, embedded["id"].as_u64().expect("id"));
    let (local, _) =
        crate::util::ok_stdin(&["embed", "--model", path(bert)], Some(texts.join("\n").as_bytes()));
    let local: Vec<Vec<f32>> = local.lines().map(|l| serde_json::from_str(l).expect("vector")).collect();
    let got: Vec<Vec<f32>> = vectors.iter().map(|v| decode_vector(v).expect("vector")).collect();
    assert_eq!(got, local, "the job's vectors are not what the model gives");

    // Credits: the requester paid for what ran, from the day's commons floor first (the pool the
    // deposits fed funds it), and got the rest back; operators earned.
    let milli = |v: &Value| v.as_u64().unwrap_or(0);
    let paid: u64 = all.iter().map(|j| milli(&j["status"]["paid"])).sum();
    let from_floor: u64 = all.iter().map(|j| milli(&j["status"]["paid"]).min(milli(&j["floor"]))).sum();
    let after = balance(&seq, steward_did);
    assert!(paid > 0 && from_floor > 0, "paid {paid}, of it from the floor {from_floor}: {all:?}");
    // A job whose output was undone pays its requester back, into the balance, all it paid
    // then: what came from that day's floor is the balance's gain.
    let refunded_floor: u64 = all
        .iter()
        .filter(|j| j["recheck"].is_object() && j["status"]["verdict"] == "overturned")
        .map(|j| milli(&j["recheck"]["paid"]).min(milli(&j["floor"])))
        .sum();
    let from_balance = (paid - from_floor) as f64 / 1000.0 - refunded_floor as f64 / 1000.0;
    assert!(
        (before - from_balance - after).abs() < 0.01,
        "before {before}, paid {paid} of which {from_floor} from the floor, {refunded_floor} of the floor refunded, after {after}"
    );
    for (n, operator) in operators.iter().take(2).enumerate() {
        assert!(balance(&seq, &did_of(operator)) > 0.0, "operator {} earned nothing", n + 1);
    }

    // The metrics count what happened.
    let metrics = seq.get("/metrics").body;
    let done = format!("substrate_jobs_done {}", all.len());
    for line in [done.as_str(), "substrate_jobs_queued 0", "substrate_jobs_running 0"] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert!(!metrics.contains("substrate_jobs_mismatched 0"), "{metrics}");

    // Refusals: each says why, and nothing changes.
    let size = seq.log_size();
    let stranger = crate::util::new_key();
    let job = all[0]["id"].as_u64().unwrap();
    let assignment = all[0]["runs"][0]["assignment"].as_u64().unwrap();
    let forged = JobResult {
        job,
        assignment,
        node: crate::util::did(&stranger),
        output: None,
        failure: Some("nothing".into()),
        cpu_ms: 1,
        requested: "2026-12-07T00:00:00Z".into(),
    };
    let reply = post(&seq, &SignedEvent::sign(Event::JobResult(forged), &stranger).envelope);
    reply.error(409, "job_ended");
    let ask = |workload: &str, budget: u64| json!({"workload": workload, "input": {"kind": "embed", "texts": ["x"]}, "budget": budget, "requested": "2026-12-07T00:00:00Z"});
    request(&seq, ask("train-lora@1", 1), &key_of(steward)).error(403, "job_workload_not_approved");
    request(&seq, ask("embed@2", 1), &key_of(steward)).error(403, "job_workload_not_approved");
    request(&seq, ask("embed@1", 1), &stranger).error(403, "not_member");
    request(&seq, ask("embed@1", 0), &key_of(steward)).error(400, "job_budget");
    request(&seq, ask("embed@1", 100_000), &key_of(steward)).error(402, "job_credits");
    let mut wrong = ask("generate@1", 1);
    wrong["input"] = json!({"kind": "generate", "prompt": "x", "maxTokens": 100_000});
    request(&seq, wrong, &key_of(steward)).error(400, "invalid_event");
    assert_eq!(seq.log_size(), size, "a refusal changed the log");
}

/// The texts job `id` asked to embed, from its request's log entry.
fn embedded_texts(http: &Http, id: u64) -> Vec<String> {
    let page = http.get(&format!("/v1/log/entries?start={id}&limit=1")).json();
    let envelope: substrate_core::Envelope =
        serde_json::from_value(page["entries"][0]["envelope"].clone()).expect("an envelope");
    let signed = SignedEvent::open(envelope).expect("a signed event");
    match signed.event {
        Event::JobRequest(request) => match request.input {
            substrate_core::governance::jobs::JobInput::Embed { texts } => texts,
            other => panic!("job {id} is not an embedding: {other:?}"),
        },
        other => panic!("entry {id} is not a job request: {other:?}"),
    }
}

#[test]
fn a_silent_worker_loses_its_job_and_a_killed_sequencer_loses_none() {
    let site = Site::found(2, &[]);
    site.earn(2);

    // Worker 1 offers, then dies by SIGKILL: its offer stands, so the next job is assigned to it.
    let w1 = site.worker(1, &[]);
    site.offered(1);
    w1.kill();
    let first = site.embed("the bread rose overnight", "3");
    let assigned = until("the job to be assigned", Duration::from_secs(30), || {
        let job = site.job(first);
        job["runs"][0]["node"].as_str().map(str::to_owned).ok_or_else(|| job.to_string())
    });
    assert_eq!(assigned, site.nodes[0], "only worker 1 offered");

    // Worker 2 comes up; past the deadline the job goes to it, and it ends once.
    let _w2 = site.worker(2, &[]);
    let job = until("the job to move to worker 2 and end", Duration::from_secs(60), || {
        let job = site.job(first);
        if job["status"]["state"] == "done" { Ok(job) } else { Err(job.to_string()) }
    });
    let runs = job["runs"].as_array().expect("runs");
    assert_eq!(runs[0]["node"], site.nodes[0].as_str(), "{job}");
    assert_eq!(runs[0]["missed"], true, "{job}");
    assert!(runs[0].get("result").is_none_or(Value::is_null), "{job}");
    let standing = runs.iter().find(|r| r["result"] == job["status"]["result"]).expect("the standing run");
    assert_eq!(standing["node"], site.nodes[1].as_str(), "{job}");
    let workers = site.seq().get("/v1/workers").json();
    let silent =
        workers["workers"].as_array().unwrap().iter().find(|w| w["offer"]["node"] == site.nodes[0].as_str());
    // Its offer stands while it is dead, so when the job is drawn for a check (another operator's)
    // the check may go to it too and lapse as well: every lapse counts, and only lapses.
    let lapsed = runs.iter().filter(|r| r["node"] == site.nodes[0].as_str() && r["missed"] == true).count();
    assert!(lapsed >= 1, "{job}");
    assert_eq!(silent.expect("worker 1")["reputation"]["missed"], lapsed, "{workers}\n{job}");

    // The sequencer dies by SIGKILL just after acknowledging a job: the job is in the log, and
    // once the sequencer is back (same data, same mesh port) it is scheduled and ends.
    let second = site.embed("we sing at dawn", "3");
    let mut site = site;
    site.sequencer.take().expect("the sequencer").kill();
    let port = site.p2p.split('/').nth(4).expect("the sequencer's port").to_owned();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    site.sequencer =
        Some(Daemon::start_with(&site.dir("sequencer"), site.tmp.path(), &["--p2p-listen", &listen]));
    let job = until("the job sent before the kill to end", Duration::from_secs(90), || {
        let job = site.job(second);
        if job["status"]["state"] == "done" { Ok(job) } else { Err(job.to_string()) }
    });
    let answered = job["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("result").is_some_and(|r| !r.is_null()))
        .count();
    assert!(answered >= 1, "{job}");
    assert!(job["status"]["paid"].as_u64().is_some_and(|p| p > 0), "paid once: {job}");

    // Worker 1 comes back: its lapsed assignment is not live, so it answers nothing of it.
    let size = site.seq().log_size();
    let _w1 = site.worker(1, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let page = site.seq().get(&format!("/v1/log/entries?start={size}&limit=100")).json();
    let late = page["entries"].as_array().into_iter().flatten().filter(|e| e["kind"] == "job-result").count();
    assert_eq!(late, 0, "a lapsed assignment was answered: {page}");
    assert_eq!(site.job(first)["status"]["state"], "done");
}

mod training;
