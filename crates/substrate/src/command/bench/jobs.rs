//! `bench jobs`: a stream of small embedding jobs through worker nodes on 127.0.0.1, each a real
//! `substrate serve --role worker` of its own operator, with every stage's latency read back from
//! the integrated times the log itself gave the request, the assignment, the result and the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use substrate_core::governance::acts::{Action, Attestation, NodeRegistration, Proposal, VoteCast};
use substrate_core::governance::jobs::{DEFAULT_CHECK_PPM, JobInput, JobRecord, JobRequest, JobStatus, Role};
use substrate_core::governance::tally::{ProposalClass, Vote};
use substrate_core::identity::ActorKind;

use super::*;

/// How long the stream may go without a job ending before the benchmark gives up.
const STALL: Duration = Duration::from_secs(300);

/// How long the workers may take to join the mesh, catch up and offer the workload.
const READY: Duration = Duration::from_secs(120);

/// Single jobs requested one at a time before the stream, to time their assignment by the wall
/// clock.
const PROBES: usize = 20;

pub(super) fn bench_jobs(
    jobs: usize,
    workers: usize,
    check_ppm: u32,
    clients: usize,
    model_dir: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(jobs > 0, "--jobs must be at least 1");
    anyhow::ensure!(workers > 0, "--workers must be at least 1");
    anyhow::ensure!(
        workers >= 2 || check_ppm == 0,
        "a drawn job is checked by a worker of another operator: give --workers 2 or more, or --check-ppm 0"
    );
    let clients = clients.clamp(1, jobs);
    let load_before = load_average();
    let tmp = tempfile::tempdir()?;

    // The model embed@1 is pinned to: every file of its directory, as `propose --approve-workload`
    // pins a directory.
    let (model, models_root, model_name) = match model_dir {
        Some(dir) => {
            anyhow::ensure!(
                dir.join("model.safetensors").is_file(),
                "{} holds no model.safetensors: give an embedding model's directory (all-MiniLM-L6-v2, say)",
                dir.display()
            );
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (dir.to_path_buf(), dir.to_path_buf(), name)
        }
        None => {
            let root = tmp.path().join("models");
            let dir = substrate_models::tiny::bert(&root, 1)?;
            (dir, root, "a tiny BERT (2 layers, 32 wide)".to_owned())
        }
    };
    let (nodes, requester) = found(tmp.path(), workers, jobs + PROBES, check_ppm, &model_digests(&model)?)?;
    let (seq, running, ready) = start_nodes(tmp.path(), workers, &models_root)?;
    let client = crate::client::Client::new(&seq.url);
    let requester_did = substrate_core::identity::did_of(&requester.verifying_key());
    let credits: serde_json::Value = client.get(&format!("/v1/credits/{requester_did}"))?.json()?;
    println!(
        "jobs on the mesh, 127.0.0.1: a sequencer and {workers} workers of {workers} operators, each a `substrate serve` process; embed@1 pinned to {model_name}; check rate {check_ppm} ppm; the requester holds {} credits; data in {}",
        credits["balance"],
        tmp.path().display()
    );
    println!(
        "  the workers offered embed@1 {:.1} s after they started; load average before: {load_before}",
        ready.as_secs_f64()
    );

    // One or two short texts a job, each request signed before it is timed.
    let body = |n: usize| {
        let mut texts = vec![String::from_utf8_lossy(&prose(n, 40)).into_owned()];
        if n % 2 == 1 {
            texts.push(String::from_utf8_lossy(&prose(n + jobs + PROBES, 24)).into_owned());
        }
        let request = JobRequest {
            workload: "embed@1".into(),
            input: JobInput::Embed { texts },
            budget: 1,
            deadline_seconds: None,
            requested: substrate_core::timestamp::rfc3339(crate::command::now_ms()),
        };
        json!({"envelope": SignedEvent::sign(Event::JobRequest(request), &requester).envelope})
    };
    let probe_ids = probe(&client, (jobs..jobs + PROBES).map(body).collect())?;

    // The stream: every request signed before the clock starts, posted by `clients` threads.
    let bodies: Vec<serde_json::Value> = (0..jobs).map(body).collect();
    let load_at_start = load_average();
    let cpu_before = Usage::read(&seq, &running);
    let started = Instant::now();
    let ids = post_all(&client, &bodies, clients)?;
    wait_for_the_end(&client, jobs, started, &seq, &running)?;
    let wall = started.elapsed();
    let cpu_after = Usage::read(&seq, &running);
    let load_after = load_average();

    // What the log says of each job.
    let (records, probed): (Vec<JobRecord>, Vec<JobRecord>) =
        read_jobs(&client)?.into_iter().partition(|j| ids.contains(&j.id));
    anyhow::ensure!(records.len() == jobs, "the sequencer lists {} of the {jobs} jobs", records.len());
    let times = entry_times(&client, probe_ids.first().copied().unwrap_or_default())?;
    let at = |index: u64| times.get(&index).copied();
    let probed: Vec<JobRecord> = probed.into_iter().filter(|j| probe_ids.contains(&j.id)).collect();
    Report::of(&probed, at).latencies(&format!(
        "the {} single jobs, one at a time on idle workers, from the log's integrated times (ms):",
        probed.len()
    ));
    let name: BTreeMap<&str, String> =
        nodes.iter().enumerate().map(|(n, node)| (node.as_str(), format!("worker {}", n + 1))).collect();
    Report::of(&records, at).print(jobs, wall, &name);
    cpu_after.print_since(&cpu_before, wall);
    println!("  load average at the start of the stream: {load_at_start}; at the end: {load_after}");
    Ok(())
}

/// Starts the sequencer of the commons founded in `root`, then its `workers` workers, each a
/// `substrate serve` of this binary, and waits until every worker offers embed@1: the nodes, and
/// how long the workers took.
fn start_nodes(root: &Path, workers: usize, models: &Path) -> anyhow::Result<(Serve, Vec<Serve>, Duration)> {
    let exe = std::env::current_exe().context("locating the substrate binary")?;
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs)?;
    let seq = Serve::start(
        &exe,
        &root.join("sequencer"),
        &["--p2p-listen", "/ip4/127.0.0.1/tcp/0"],
        &logs.join("sequencer.log"),
    )?;
    let models = models.display().to_string();
    let mut running = Vec::new();
    for n in 1..=workers {
        let args = [
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            &seq.p2p,
            "--role",
            "worker",
            "--worker-models",
            &models,
        ];
        let log = logs.join(format!("worker-{n}.log"));
        running.push(Serve::start(&exe, &root.join(format!("worker-{n}")), &args, &log)?);
    }
    let client = crate::client::Client::new(&seq.url);
    let started = Instant::now();
    loop {
        let view: serde_json::Value = client.get("/v1/workers")?.json()?;
        let offering = view["workers"].as_array().map_or(0, |list| {
            let offers = |w: &&serde_json::Value| {
                w["offer"]["workloads"].as_array().is_some_and(|l| l.iter().any(|w| w == "embed@1"))
            };
            list.iter().filter(offers).count()
        });
        if offering == workers {
            return Ok((seq, running, started.elapsed()));
        }
        if started.elapsed() > READY {
            let tails: Vec<String> = running.iter().map(Serve::log_tail).collect();
            anyhow::bail!(
                "{offering} of {workers} workers offered embed@1 within {} s:\n{}",
                READY.as_secs(),
                tails.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Requests the `probes` one at a time, each after the one before has ended, and prints how long
/// the assignment took by the wall clock: the log stamps an assignment with the clock reading of
/// the sequencer's round that carried the request, so its times cannot show it. Returns the
/// probes' job ids.
fn probe(
    client: &crate::client::Client,
    probes: Vec<serde_json::Value>,
) -> anyhow::Result<std::collections::BTreeSet<u64>> {
    let (mut to_receipt, mut to_assignment) = (Vec::new(), Vec::new());
    let mut ids = std::collections::BTreeSet::new();
    for probe in &probes {
        let sent = Instant::now();
        let receipt: serde_json::Value = client.post("/v1/events", probe)?.json()?;
        let received = sent.elapsed();
        let id = receipt["log_index"].as_u64().context("a receipt without log_index")?;
        ids.insert(id);
        let mut assigned = None;
        loop {
            let view: serde_json::Value = client.get(&format!("/v1/jobs/{id}"))?.json()?;
            if assigned.is_none() && view["job"]["runs"].as_array().is_some_and(|runs| !runs.is_empty()) {
                assigned = Some(sent.elapsed());
            }
            if view["state"] != "open" {
                break;
            }
            anyhow::ensure!(sent.elapsed() < Duration::from_secs(60), "probe job {id} did not end in 60 s");
            // Asked as fast as the node answers until the assignment shows, then at ease.
            if assigned.is_some() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let assigned = assigned.context("a probe job ended without an assignment")?;
        to_receipt.push(received.as_secs_f64() * 1e3);
        to_assignment.push((assigned - received).as_secs_f64() * 1e3);
    }
    println!(
        "  {} single jobs one at a time on idle workers, by the wall clock: POST /v1/events → receipt p50 {:.1} ms, max {:.1} ms; receipt → the assignment readable p50 {:.1} ms, max {:.1} ms",
        probes.len(),
        quantile(&mut to_receipt, 0.5),
        quantile(&mut to_receipt, 1.0),
        quantile(&mut to_assignment, 0.5),
        quantile(&mut to_assignment, 1.0)
    );
    Ok(ids)
}

/// Posts every request from `clients` threads, each its share in turn, and prints how fast the
/// node took them: the jobs' ids.
fn post_all(
    client: &crate::client::Client,
    bodies: &[serde_json::Value],
    clients: usize,
) -> anyhow::Result<std::collections::BTreeSet<u64>> {
    let started = Instant::now();
    let posted: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..clients)
            .map(|lane| {
                let client = client.clone();
                scope.spawn(move || -> anyhow::Result<Vec<(u64, Duration)>> {
                    let mut answers = Vec::new();
                    for body in bodies.iter().skip(lane).step_by(clients) {
                        let sent = Instant::now();
                        let answer = client.post("/v1/events", body).context("requesting a job")?;
                        let took = sent.elapsed();
                        anyhow::ensure!(answer.status == 201, "a request was answered {}", answer.status);
                        let receipt: serde_json::Value = answer.json()?;
                        let id = receipt["log_index"].as_u64().context("a receipt without log_index")?;
                        answers.push((id, took));
                    }
                    Ok(answers)
                })
            })
            .collect();
        let mut all = Vec::new();
        for lane in lanes {
            all.extend(lane.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let posting = started.elapsed();
    let mut round_trips: Vec<f64> = posted.iter().map(|(_, took)| took.as_secs_f64() * 1e3).collect();
    println!(
        "  {} embedding jobs (one or two texts of 24–40 bytes each, budget 1) posted as signed JobRequest events to POST /v1/events by {clients} client threads in {:.2} s ({:.0} /s); round trip p50 {:.1} ms, p99 {:.1} ms",
        bodies.len(),
        posting.as_secs_f64(),
        bodies.len() as f64 / posting.as_secs_f64(),
        quantile(&mut round_trips, 0.5),
        quantile(&mut round_trips, 0.99)
    );
    let ids: std::collections::BTreeSet<u64> = posted.iter().map(|(id, _)| *id).collect();
    anyhow::ensure!(ids.len() == bodies.len(), "{} distinct jobs for {} requests", ids.len(), bodies.len());
    Ok(ids)
}

/// Waits until the `jobs` of the stream have ended, done or failed, as the sequencer's metrics
/// count them (the probes before them ended already); gives up when none ends for [`STALL`].
fn wait_for_the_end(
    client: &crate::client::Client,
    jobs: usize,
    started: Instant,
    seq: &Serve,
    running: &[Serve],
) -> anyhow::Result<()> {
    let mut last = (0u64, Instant::now());
    let mut shown = Instant::now();
    loop {
        let metrics = client.get("/metrics")?.body;
        let ended = (metric(&metrics, "substrate_jobs_done") + metric(&metrics, "substrate_jobs_failed"))
            .saturating_sub(PROBES as u64);
        if ended >= jobs as u64 {
            return Ok(());
        }
        if ended > last.0 {
            last = (ended, Instant::now());
        } else if last.1.elapsed() > STALL {
            let tails: Vec<String> = running.iter().map(Serve::log_tail).collect();
            anyhow::bail!(
                "no job ended for {} s, {ended} of {jobs} ended:\n{}\n{}",
                STALL.as_secs(),
                seq.log_tail(),
                tails.join("\n")
            );
        }
        if shown.elapsed() > Duration::from_secs(10) {
            println!("  {ended} of {jobs} jobs ended after {:.0} s", started.elapsed().as_secs_f64());
            shown = Instant::now();
        }
        // The end is read from the log; this only decides when to read it.
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The bench commons' worker nodes (did:key) and the requester's key.
type Founded = (Vec<String>, SigningKey);

/// Founds the commons in `root`/sequencer and prepares `workers` mirrors beside it: a steward,
/// a requester with credits from deposits, `workers` operators each with a registered node, and
/// embed@1 (and the check rate, when not the default) approved by every member's vote.
fn found(
    root: &Path,
    workers: usize,
    jobs: usize,
    check_ppm: u32,
    pins: &[String],
) -> anyhow::Result<Founded> {
    use substrate_core::governance::params::Windows;
    let now = crate::command::now_ms;
    let requested = || substrate_core::timestamp::rfc3339(now());
    let did = |key: &SigningKey| substrate_core::identity::did_of(&key.verifying_key());
    let steward = crate::keys::generate();
    let requester = crate::keys::generate();
    let operators: Vec<SigningKey> = (0..workers).map(|_| crate::keys::generate()).collect();
    let seq_dir = root.join("sequencer");
    // Windows of one second, the least a commons takes: the approval passes as soon as it can.
    let mut ledger = Ledger::init(
        &DataDir::new(&seq_dir),
        crate::keys::generate(),
        InitOptions {
            name: "bench".into(),
            origin: "substrate.local/bench".into(),
            handle_prefix: "tag:substrate.local,2026:bench/".into(),
            registers: Register::defaults(),
            stewards: vec![did(&steward)],
            windows: Some(Windows { ordinary: 1000, resource: 1000, constitutional: 2000 }),
            now: now(),
        },
    )?;
    crate::keys::create(&seq_dir.join("node.key"), ActorKind::Node, false)?;
    let origin = ledger.state().commons().map(|c| c.origin.clone()).unwrap_or_default();
    let vkey = ledger.verifier().to_vkey();
    let mut nodes = Vec::new();
    let mut node_keys = Vec::new();
    for n in 0..workers {
        let dir = root.join(format!("worker-{}", n + 1));
        drop(Ledger::follow(&DataDir::new(&dir), &vkey)?);
        crate::keys::create(&dir.join("node.key"), ActorKind::Node, false)?;
        let (file, key) = crate::keys::load(&dir.join("node.key"))?;
        nodes.push(file.did);
        node_keys.push(key);
    }

    let append = |ledger: &mut Ledger, events: Vec<SignedEvent>, contents: Vec<Option<Vec<u8>>>| {
        let submissions =
            events.into_iter().zip(contents).map(|(event, content)| Submission { event, content }).collect();
        let mut indexes = Vec::new();
        for outcome in ledger.append_batch(submissions, now())? {
            match outcome {
                substrate_store::ledger::Outcome::Appended(receipt) => indexes.push(receipt.log_index),
                other => anyhow::bail!("founding the bench commons: {other:?}"),
            }
        }
        Ok::<_, anyhow::Error>(indexes)
    };
    let members: Vec<&SigningKey> = std::iter::once(&requester).chain(&operators).collect();
    let attestations: Vec<SignedEvent> = members
        .iter()
        .map(|key| {
            let attest = Attestation { person: did(key), days: None, note: None, requested: requested() };
            SignedEvent::sign(Event::Attestation(attest), &steward)
        })
        .collect();
    let none = |n: usize| vec![None; n];
    append(&mut ledger, attestations, none(members.len()))?;

    // Each operator registers its node; the requester deposits for the credits the stream
    // reserves: 1 a job, while each deposit earns 10 less the stability pool's tenth.
    let mut events = Vec::new();
    let mut contents = Vec::new();
    for ((operator, node), key) in operators.iter().zip(&nodes).zip(&node_keys) {
        let binding =
            key.sign(&substrate_core::governance::acts::node_binding_message(&origin, &did(operator)));
        let registration = NodeRegistration {
            node: node.clone(),
            binding: STANDARD.encode(binding.to_bytes()),
            requested: requested(),
        };
        events.push(SignedEvent::sign(Event::NodeRegistration(registration), operator));
        contents.push(None);
    }
    for n in 0..jobs.div_ceil(9) + 1 {
        let (event, text) = sample_deposit(&requester, n, 256, ConsentTier::ALL[n % 4]);
        events.push(event);
        contents.push(Some(text));
    }
    append(&mut ledger, events, contents)?;

    let mut proposals = vec![Proposal {
        title: "Run embeddings".into(),
        summary: None,
        class: ProposalClass::Resource,
        actions: vec![Action::ApproveWorkload {
            kind: "embed".into(),
            version: "1".into(),
            models: pins.to_vec(),
        }],
        requested: requested(),
    }];
    if check_ppm != DEFAULT_CHECK_PPM {
        proposals.push(Proposal {
            title: format!("Check {check_ppm} results in a million"),
            summary: None,
            class: ProposalClass::Resource,
            actions: vec![Action::SetParameter { key: "jobs.check-ppm".into(), value: json!(check_ppm) }],
            requested: requested(),
        });
    }
    let count = proposals.len();
    let opened = proposals.into_iter().map(|p| SignedEvent::sign(Event::Proposal(p), &steward)).collect();
    let ids = append(&mut ledger, opened, none(count))?;
    let voters: Vec<&SigningKey> = std::iter::once(&steward).chain(members.iter().copied()).collect();
    let votes: Vec<SignedEvent> = ids
        .iter()
        .flat_map(|&proposal| {
            voters.iter().map(move |key| {
                let cast = VoteCast {
                    proposal,
                    choice: Vote::Yes,
                    mixture: None,
                    ranking: None,
                    requested: requested(),
                };
                SignedEvent::sign(Event::Vote(cast), key)
            })
        })
        .collect();
    let count = votes.len();
    append(&mut ledger, votes, none(count))?;

    // The windows close a second after the proposals opened; the ledger decides them then.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.state().governance().next_close().is_some() {
        anyhow::ensure!(Instant::now() < deadline, "the bench proposals were not decided within 30 s");
        std::thread::sleep(Duration::from_millis(50));
        ledger.decide_due(now())?;
    }
    let g = ledger.state().governance();
    anyhow::ensure!(
        g.workload("embed@1").is_some() && g.check_ppm() == check_ppm,
        "the bench proposals did not pass: {:?}",
        ids.iter().map(|id| g.proposal(*id).map(|p| format!("{:?}", p.status))).collect::<Vec<_>>()
    );
    Ok((nodes, requester))
}

/// sha256 of every file in the model directory and of this program, sorted, as
/// `propose --approve-workload KIND@VERSION=DIR` pins them.
fn model_digests(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the model directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut digests = files
        .iter()
        .map(|f| substrate_models::fetch::file_sha256(f).with_context(|| format!("hashing {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The workers run workloads as this program, which the approval pins beside the model.
    digests.push(super::super::govern::this_program_digest()?);
    digests.sort();
    digests.dedup();
    Ok(digests)
}

/// A `substrate serve` child process, killed on drop: its API address and its mesh address.
struct Serve {
    child: Child,
    url: String,
    p2p: String,
    log: PathBuf,
    /// Kept open: the node's stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Serve {
    fn start(exe: &Path, dir: &Path, args: &[&str], log: &Path) -> anyhow::Result<Serve> {
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting `substrate serve`")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let (mut first, mut second) = (String::new(), String::new());
        stdout.read_line(&mut first)?;
        stdout.read_line(&mut second)?;
        let url = first.trim().strip_prefix("listening on ").map(str::to_owned);
        let p2p = second.trim().split_once(" at ").map(|(_, address)| address.to_owned());
        let mut serve = Serve {
            child,
            url: url.clone().unwrap_or_default(),
            p2p: p2p.clone().unwrap_or_default(),
            log: log.to_path_buf(),
            _stdout: stdout,
        };
        if url.is_none() || p2p.is_none() {
            let _ = serve.child.kill();
            let _ = serve.child.wait();
            anyhow::bail!("`substrate serve` in {} did not start:\n{}", dir.display(), serve.log_tail());
        }
        Ok(serve)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the node's log, to say why something went wrong.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("{}:\n{}", self.log.display(), lines[lines.len().saturating_sub(20)..].join("\n"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds used so far: by the sequencer and each worker, by this process, and by the whole
/// machine.
struct Usage {
    /// The sequencer, then the workers.
    processes: Vec<ProcessCpu>,
    this: f64,
    machine: f64,
}

impl Usage {
    fn read(sequencer: &Serve, workers: &[Serve]) -> Usage {
        Usage {
            processes: std::iter::once(sequencer).chain(workers).map(|s| ProcessCpu::read(s.pid())).collect(),
            this: ProcessCpu::read(std::process::id()).own,
            machine: machine_cpu(),
        }
    }

    /// Prints what each process used since `before`, over `wall` of wall time.
    fn print_since(&self, before: &Usage, wall: Duration) {
        println!(
            "CPU seconds during the stream (user + system, from /proc; {:.1} s of wall time):",
            wall.as_secs_f64()
        );
        let mut accounted = 0.0;
        for (n, (after, before)) in self.processes.iter().zip(&before.processes).enumerate() {
            let (own, children, threads) = after.since(before);
            accounted += own + children;
            let threads: Vec<String> = threads.iter().map(|(name, cpu)| format!("{name} {cpu:.1}")).collect();
            let (label, workloads) = match n {
                0 => ("sequencer".to_owned(), String::new()),
                n => (format!("worker {n}"), format!(", its workload processes {children:.1}")),
            };
            println!("  {label:<12} {own:>6.1}{workloads}; by thread: {}", threads.join(", "));
        }
        let own = self.this - before.this;
        let machine = self.machine - before.machine;
        println!("  {:<12} {own:>6.1} (clients, polling)", "this process");
        println!(
            "  {:<12} {machine:>6.1} of the {:.1} its {} cores had; {:.1} outside these processes",
            "the machine",
            wall.as_secs_f64() * cores() as f64,
            cores(),
            machine - accounted - own
        );
    }
}

/// What one process has used: itself, the children it waited for, and each of its threads by
/// name, from /proc/PID/stat and /proc/PID/task/*/stat (ticks of USER_HZ, 100 on Linux).
struct ProcessCpu {
    own: f64,
    children: f64,
    threads: BTreeMap<String, f64>,
}

impl ProcessCpu {
    fn read(pid: u32) -> ProcessCpu {
        let (own, children, _) = stat_cpu(&format!("/proc/{pid}/stat"));
        let mut threads = BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let (cpu, _, name) = stat_cpu(&task.path().join("stat").display().to_string());
            *threads.entry(name).or_insert(0.0) += cpu;
        }
        ProcessCpu { own, children, threads }
    }

    /// What was used between `before` and this reading; threads by name, the busiest first (a
    /// thread that ended in between is missing from both).
    fn since(&self, before: &ProcessCpu) -> (f64, f64, Vec<(String, f64)>) {
        let mut threads: Vec<(String, f64)> = self
            .threads
            .iter()
            .map(|(name, cpu)| (name.clone(), cpu - before.threads.get(name).copied().unwrap_or(0.0)))
            .filter(|(_, cpu)| *cpu >= 0.05)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        (self.own - before.own, self.children - before.children, threads)
    }
}

/// User + system CPU seconds in a stat file, those of the children waited for, and the name.
fn stat_cpu(path: &str) -> (f64, f64, String) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let name = stat.split_once('(').and_then(|(_, rest)| rest.rsplit_once(')')).map_or("", |(n, _)| n);
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    match fields.as_slice() {
        [user, system, child_user, child_system] => {
            ((user + system) / 100.0, (child_user + child_system) / 100.0, name.to_owned())
        }
        _ => (0.0, 0.0, name.to_owned()),
    }
}

/// CPU seconds every core of the machine spent busy (all but idle and iowait), from /proc/stat.
fn machine_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .map(|line| line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum::<f64>() / 100.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A gauge's value in the Prometheus text the node serves.
fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

/// Every job the sequencer holds, page by page.
fn read_jobs(client: &crate::client::Client) -> anyhow::Result<Vec<JobRecord>> {
    let mut jobs = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(id) => format!("/v1/jobs?limit=1000&after={id}"),
            None => "/v1/jobs?limit=1000".to_owned(),
        };
        let page: serde_json::Value = client.get(&path)?.json()?;
        let list: Vec<JobRecord> = serde_json::from_value(page["jobs"].clone())
            .context("GET /v1/jobs listed something else than jobs")?;
        jobs.extend(list);
        match page["next"].as_u64() {
            Some(id) => after = Some(id),
            None => return Ok(jobs),
        }
    }
}

/// The integrated time (ms) of every log entry from `start` on, from `GET /v1/log/entries`.
fn entry_times(client: &crate::client::Client, start: u64) -> anyhow::Result<BTreeMap<u64, u64>> {
    let mut times = BTreeMap::new();
    let mut next = start;
    loop {
        let page: serde_json::Value =
            client.get(&format!("/v1/log/entries?start={next}&limit=1000"))?.json()?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            return Ok(times);
        }
        for entry in &entries {
            let index = entry["index"].as_u64().context("an entry without its index")?;
            let time = entry["integrated_time"].as_str().and_then(parse_rfc3339).with_context(|| {
                format!("entry {index}'s integrated_time {} is not RFC 3339", entry["integrated_time"])
            })?;
            times.insert(index, time);
            next = index + 1;
        }
    }
}

/// Milliseconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the log writes its times.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let millis = if text.as_bytes().get(19) == Some(&b'.') { number(20..23)? } else { 0 };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(((days * 24 + hour) * 60 + minute) * 60 + second).ok().map(|s| s * 1000 + millis as u64)
}

/// The `q` quantile of `values` (sorted in place): the nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// One worker's answered assignment: when it was assigned and answered, its role, its CPU.
struct Answered {
    assigned: u64,
    answered: u64,
    role: Role,
    cpu_ms: u64,
}

/// What the log says of the stream.
#[derive(Default)]
struct Report {
    /// Per job (ms): request → its first run assignment, that run's assignment → result,
    /// result → draw, request → done.
    scheduling: Vec<f64>,
    running: Vec<f64>,
    drawing: Vec<f64>,
    ending: Vec<f64>,
    /// Of the checked jobs: draw → check assignment, check assignment → check result.
    check_scheduling: Vec<f64>,
    check_running: Vec<f64>,
    verdicts: BTreeMap<String, usize>,
    failed: Vec<String>,
    /// Jobs the draw selected for a check.
    drawn: usize,
    missed: usize,
    failed_runs: usize,
    first_request: u64,
    last_request: u64,
    last_end: u64,
    by_node: BTreeMap<String, Vec<Answered>>,
}

impl Report {
    fn of(records: &[JobRecord], at: impl Fn(u64) -> Option<u64>) -> Report {
        let mut r = Report { first_request: u64::MAX, ..Report::default() };
        let gap = |from: u64, to: u64| to.saturating_sub(from) as f64;
        for job in records {
            r.first_request = r.first_request.min(job.requested_at);
            r.last_request = r.last_request.max(job.requested_at);
            r.missed += job.runs.iter().filter(|run| run.missed).count();
            r.drawn += usize::from(job.drawn == Some(true));
            r.failed_runs += job.runs.iter().filter(|run| run.failure.is_some()).count();
            if let Some(first) = job.runs.iter().find(|run| run.role == Role::Run) {
                r.scheduling.push(gap(job.requested_at, first.assigned_at));
            }
            let answered = |role: Role| {
                job.runs.iter().find(|run| run.role == role && run.result.is_some() && run.failure.is_none())
            };
            let result_at = |run: &substrate_core::governance::jobs::Run| run.result.and_then(&at);
            let ran = answered(Role::Run).and_then(|run| Some((run.assigned_at, result_at(run)?)));
            if let Some((assigned, result)) = ran {
                r.running.push(gap(assigned, result));
                if let Some(draw) = job.draw.and_then(&at) {
                    r.drawing.push(gap(result, draw));
                    let check = job.runs.iter().find(|run| run.role == Role::Check);
                    if let Some(check) = check {
                        r.check_scheduling.push(gap(draw, check.assigned_at));
                        if let Some(result) = result_at(check) {
                            r.check_running.push(gap(check.assigned_at, result));
                        }
                    }
                }
            }
            for run in job.runs.iter().filter(|run| run.failure.is_none()) {
                if let Some(answered) = result_at(run) {
                    r.by_node.entry(run.node.clone()).or_default().push(Answered {
                        assigned: run.assigned_at,
                        answered,
                        role: run.role,
                        cpu_ms: run.cpu_ms,
                    });
                }
            }
            match &job.status {
                JobStatus::Done { verdict, at: end, .. } => {
                    r.ending.push(gap(job.requested_at, *end));
                    r.last_end = r.last_end.max(*end);
                    let verdict =
                        serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(str::to_owned));
                    *r.verdicts.entry(verdict.unwrap_or_default()).or_default() += 1;
                }
                JobStatus::Failed { reason, at: end } => {
                    r.last_end = r.last_end.max(*end);
                    r.failed.push(format!("job {}: {reason}", job.id));
                }
                JobStatus::Open { .. } | JobStatus::Drawing => {
                    r.failed.push(format!("job {} is still open", job.id))
                }
            }
        }
        r
    }

    fn print(&mut self, jobs: usize, wall: Duration, name: &BTreeMap<&str, String>) {
        let span = self.last_end.saturating_sub(self.first_request) as f64 / 1000.0;
        println!(
            "  the log integrated the {jobs} requests over {:.2} s; the last job ended {span:.2} s after the first request: {:.1} jobs/s ({:.1} jobs/s by this process's clock, first post to the last end seen, {:.2} s)",
            self.last_request.saturating_sub(self.first_request) as f64 / 1000.0,
            jobs as f64 / span,
            jobs as f64 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
        let verdicts: Vec<String> = self.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        println!(
            "  drawn for a check (re-executed by a worker of another operator): {}; verdicts: {}; jobs failed: {}; runs failed: {}; assignments that lapsed and went to another worker: {}",
            self.drawn,
            verdicts.join(", "),
            self.failed.len(),
            self.failed_runs,
            self.missed
        );
        for line in self.failed.iter().take(5) {
            println!("    {line}");
        }
        self.latencies("per job of the stream, from the log's integrated times (ms):");
        self.workers(name);
    }

    /// The table of each stage's latency over the jobs.
    fn latencies(&mut self, title: &str) {
        println!("{title}");
        println!("  {:<58} {:>6} {:>8} {:>8} {:>8}", "", "jobs", "p50", "p99", "max");
        let rows: [(&str, &mut Vec<f64>); 6] = [
            ("request → run assigned (scheduling)", &mut self.scheduling),
            ("run assigned → result (poll, sandbox, workload, forward)", &mut self.running),
            ("result → draw", &mut self.drawing),
            ("draw → check assigned (checked jobs)", &mut self.check_scheduling),
            ("check assigned → check result", &mut self.check_running),
            ("request → done", &mut self.ending),
        ];
        for (label, values) in rows {
            let n = values.len();
            println!(
                "  {label:<58} {n:>6} {:>8.0} {:>8.0} {:>8.0}",
                quantile(values, 0.5),
                quantile(values, 0.99),
                quantile(values, 1.0)
            );
        }
    }

    /// The table of what each worker answered, and how long each answer took it.
    fn workers(&mut self, name: &BTreeMap<&str, String>) {
        println!(
            "per worker (ms): an answer's service time is from the later of its assignment and the worker's previous answer to this answer; from idle, the worker had answered everything before the assignment"
        );
        println!(
            "  {:<10} {:>6} {:>7} {:>14} {:>14} {:>16} {:>20}",
            "", "runs", "checks", "service p50", "service p99", "from idle: n, p50", "workload CPU p50, sum"
        );
        for (node, answers) in &mut self.by_node {
            answers.sort_by_key(|a| a.answered);
            let (mut busy, mut idle) = (Vec::new(), Vec::new());
            let mut previous = 0;
            for answer in answers.iter() {
                let from = answer.assigned.max(previous);
                let service = answer.answered.saturating_sub(from) as f64;
                if answer.assigned >= previous {
                    idle.push(service)
                } else {
                    busy.push(service)
                }
                previous = answer.answered;
            }
            let mut all: Vec<f64> = busy.iter().chain(&idle).copied().collect();
            let mut cpu: Vec<f64> = answers.iter().map(|a| a.cpu_ms as f64).collect();
            let cpu_sum = cpu.iter().sum::<f64>() / 1000.0;
            println!(
                "  {:<10} {:>6} {:>7} {:>14.0} {:>14.0} {:>9}, {:>5.0} {:>11.0}, {cpu_sum:>6.1} s",
                name.get(node.as_str()).cloned().unwrap_or_else(|| node.clone()),
                answers.iter().filter(|a| a.role == Role::Run).count(),
                answers.iter().filter(|a| a.role != Role::Run).count(),
                quantile(&mut all, 0.5),
                quantile(&mut all, 0.99),
                idle.len(),
                quantile(&mut idle, 0.5),
                quantile(&mut cpu, 0.5),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_logs_times_back() {
        for ms in [0, 1_767_225_600_123, 1_798_761_599_999, 951_782_400_000] {
            assert_eq!(super::parse_rfc3339(&substrate_core::timestamp::rfc3339(ms)), Some(ms));
        }
    }
}
