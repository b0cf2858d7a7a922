//! A worker: the part of a node that takes the jobs the sequencer assigns to it. It offers what
//! it can run (the approved workloads whose pinned model files it holds), watches its own copy of
//! the state for assignments to its node key, runs each in a [`Sandbox`] by re-executing a
//! workload program (its own binary, `… workload --input … --output … --model …`), and signs the
//! output, or why there is none, as a `JobResult` it submits like any other event.
//!
//! A training job is prepared, signed and published around its sandbox by [`crate::training`].
//!
//! Invariant: a worker never decides what runs; it runs what the log assigned to it, of a
//! workload the chambers approved, on model files whose sha256 the approval pins.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use substrate_core::SignedEvent;
use substrate_core::event::{Event, MAX_ENVELOPE_BYTES};
use substrate_core::governance::book::Governance;
use substrate_core::governance::jobs::{
    JobInput, JobOutput, JobRecord, JobResult, NodeOffer, OFFER_RENEWAL_MS, RUNNABLE_KINDS, Run, check_output,
};
use substrate_store::{DataDir, Reader};

use crate::sandbox::{Limits, Sandbox, Strength};
use crate::training::{self, FetchTexts};
use crate::workload::{Invocation, TrainingFiles};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where the model files are: every file under it (three levels deep) is known by its sha256.
    pub models: Vec<PathBuf>,
    /// The program that runs workloads, called as `PROGRAM workload --input … --output …`.
    pub program: PathBuf,
    /// Where each job's input and output live while it runs (one directory per assignment);
    /// emptied when the worker starts.
    pub scratch: PathBuf,
    /// The node's data directory: a training job's snapshot and texts are read from it, and its
    /// adapter is kept and registered there.
    pub data: DataDir,
    pub cores: u32,
    pub memory_mib: u64,
    pub strength: Strength,
    /// How often the state is looked at for new assignments.
    pub poll: Duration,
    /// How many jobs run at once, each in its own sandbox (at least one).
    pub slots: usize,
}

/// The worker's view of its model files: sha256 → path.
#[derive(Debug, Clone, Default)]
pub struct ModelFiles(BTreeMap<String, PathBuf>);

impl ModelFiles {
    /// Hashes every file under `roots`, three directory levels deep.
    pub fn scan(roots: &[PathBuf]) -> ModelFiles {
        let mut files = BTreeMap::new();
        for root in roots {
            let root = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            walk(&root, 3, &mut |path| {
                if let Ok(digest) = substrate_models::fetch::file_sha256(path) {
                    files.entry(digest).or_insert_with(|| path.to_path_buf());
                }
            });
        }
        ModelFiles(files)
    }

    pub fn digests(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// The files with these digests, if every one is here.
    pub fn paths(&self, digests: &[String]) -> Option<Vec<PathBuf>> {
        digests.iter().map(|d| self.0.get(d).cloned()).collect()
    }

    /// Counts `program` among the files held, by its digest, which it returns.
    pub fn hold_program(&mut self, program: &Path) -> Option<String> {
        let path = std::path::absolute(program).unwrap_or_else(|_| program.to_path_buf());
        let digest = substrate_models::fetch::file_sha256(&path).ok()?;
        self.0.insert(digest.clone(), path);
        Some(digest)
    }
}

fn walk(path: &Path, depth: usize, visit: &mut impl FnMut(&Path)) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_file() {
        visit(path);
    } else if meta.is_dir() && depth > 0 {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            walk(&child, depth - 1, visit);
        }
    }
}

/// What the worker offers now: the approved, runnable workloads whose pinned files it holds,
/// among them `program` (the sha256 of the program that runs workloads here). A workload whose
/// approval does not pin this very program is not offered: the chambers approved some other
/// program, or none, and this node runs only what they approved.
pub fn offer_for(
    governance: &Governance,
    node: &str,
    files: &ModelFiles,
    program: Option<&str>,
    config: &WorkerConfig,
) -> NodeOffer {
    let workloads: Vec<String> = governance
        .workloads()
        .filter(|w| RUNNABLE_KINDS.contains(&w.kind.as_str()) && files.paths(&w.models).is_some())
        .filter(|w| program.is_some_and(|p| w.models.iter().any(|m| m == p)))
        .map(|w| format!("{}@{}", w.kind, w.version))
        .collect();
    let pinned: BTreeSet<&String> = governance.workloads().flat_map(|w| &w.models).collect();
    NodeOffer {
        node: node.to_owned(),
        cores: config.cores,
        memory_mib: config.memory_mib,
        // The files the commons pins, not every file the operator happens to hold.
        models: files.digests().filter(|d| pinned.contains(d)).cloned().collect(),
        workloads,
        requested: now_rfc3339(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    substrate_core::timestamp::rfc3339(now_ms())
}

/// How the worker hands a signed event to the log (the node's own sequencer, or the mesh that
/// forwards to it): the entry's index, or why it was not taken.
pub type Submit = Box<dyn Fn(SignedEvent) -> Result<u64, String> + Send>;

/// A running worker; dropping it stops the loop after the job in hand.
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker loop on a thread of its own; it reads the state through `reader`, sends
    /// what it signs through `submit`, and asks the sequencer for a training job's texts through
    /// `fetch` (`None` on the sequencer's own node, which holds them all).
    pub fn start(
        config: WorkerConfig,
        key: SigningKey,
        reader: Reader,
        submit: Submit,
        fetch: Option<FetchTexts>,
    ) -> std::io::Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // A job's texts live in its scratch directory only while it runs: a worker killed in
        // the middle of one leaves them, and they go now.
        if let Err(error) = std::fs::remove_dir_all(&config.scratch)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(%error, scratch = %config.scratch.display(), "cannot empty the jobs' scratch directory");
        }
        let thread = std::thread::Builder::new().name("worker".into()).spawn(move || {
            let mut files = ModelFiles::scan(&config.models);
            let program = files.hold_program(&config.program);
            match &program {
                Some(digest) => tracing::info!(
                    models = files.0.len(),
                    program = %digest,
                    slots = config.slots.max(1),
                    "worker started; it offers the approved workloads that pin this program"
                ),
                None => tracing::error!(
                    program = %config.program.display(),
                    "the worker cannot read its own program to know its digest; it offers nothing"
                ),
            }
            let runner = Runner {
                config,
                key,
                submit: Mutex::new(submit),
                fetch: fetch.map(Mutex::new),
                files,
                program,
            };
            let mut worker = Loop {
                runner: Arc::new(runner),
                reader,
                explained: BTreeSet::new(),
                done: BTreeSet::new(),
                offered: None,
                settled: None,
                adapters_done: BTreeSet::new(),
                adapters_retry: BTreeMap::new(),
                running: Vec::new(),
            };
            while !flag.load(Ordering::Relaxed) {
                // After starting a job, look again at once: the next assignment may be there.
                if !worker.step() {
                    std::thread::sleep(worker.runner.config.poll);
                }
            }
            // Stopping: the jobs in hand finish and their results are sent.
            for job in worker.running.drain(..) {
                let _ = job.join();
            }
        })?;
        Ok(Worker { stop, thread: Some(thread) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What runs assignments: shared by the loop and the threads of the jobs it starts.
struct Runner {
    config: WorkerConfig,
    key: SigningKey,
    submit: Mutex<Submit>,
    fetch: Option<Mutex<FetchTexts>>,
    files: ModelFiles,
    /// The sha256 of the program that runs workloads: an approval must pin it.
    program: Option<String>,
}

struct Loop {
    runner: Arc<Runner>,
    reader: Reader,
    /// The approved workloads whose absence from the offer was explained in the log already.
    explained: BTreeSet<String>,
    /// Assignments already answered (or being answered) by this process.
    done: BTreeSet<u64>,
    /// The last offer submitted, and when: offered again only when it changes.
    offered: Option<(NodeOffer, std::time::Instant)>,
    /// When the staged adapters were last looked at.
    settled: Option<std::time::Instant>,
    /// Adapter directories seen through: published and registered, or not adapters.
    adapters_done: BTreeSet<PathBuf>,
    /// Adapter directories whose publication or registration failed: when to try again, and
    /// the wait before that.
    adapters_retry: BTreeMap<PathBuf, (std::time::Instant, Duration)>,
    /// The threads of the jobs running now.
    running: Vec<std::thread::JoinHandle<()>>,
}

impl Loop {
    fn node(&self) -> String {
        self.runner.node()
    }

    /// One look at the state: renews the offer, settles staged adapters and starts this node's
    /// new assignments in free slots; whether it started any.
    fn step(&mut self) -> bool {
        let governance = match self.reader.governance() {
            Ok(g) => g,
            Err(error) => {
                tracing::warn!(%error, "the worker cannot read the state; trying again");
                return false;
            }
        };
        let node = self.node();
        if governance.node(&node).is_none() {
            return false;
        }
        self.keep_offer(&governance, &node);
        self.settle_adapters(&governance, &node);
        self.running.retain(|job| !job.is_finished());
        let mut mine: Vec<(JobRecord, Run)> = governance
            .jobs()
            .values()
            .filter(|job| job.is_open())
            .filter_map(|job| job.live_run().filter(|r| r.node == node).map(|r| (job.clone(), r.clone())))
            .filter(|(_, run)| !self.done.contains(&run.assignment))
            .collect();
        // The earliest assignments first, as many as there are free slots; the rest wait.
        mine.sort_by_key(|(_, run)| run.assignment);
        let free = self.runner.config.slots.max(1).saturating_sub(self.running.len());
        let mut started = false;
        for (job, run) in mine.into_iter().take(free) {
            self.done.insert(run.assignment);
            let (runner, governance) = (Arc::clone(&self.runner), Arc::clone(&governance));
            let spawned = std::thread::Builder::new()
                .name(format!("job-{}", job.id))
                .spawn(move || runner.answer(&governance, &job, &run));
            match spawned {
                Ok(thread) => {
                    self.running.push(thread);
                    started = true;
                }
                Err(error) => tracing::error!(%error, "cannot start a thread for a job; it is not taken"),
            }
        }
        started
    }

    fn keep_offer(&mut self, governance: &Governance, node: &str) {
        let offer = offer_for(
            governance,
            node,
            &self.runner.files,
            self.runner.program.as_deref(),
            &self.runner.config,
        );
        // Say once why an approved workload is not offered: an operator who rebuilt the binary
        // after the approval otherwise sees only that no job comes.
        for workload in governance.workloads().filter(|w| RUNNABLE_KINDS.contains(&w.kind.as_str())) {
            let id = format!("{}@{}", workload.kind, workload.version);
            if offer.workloads.contains(&id) || !self.explained.insert(id.clone()) {
                continue;
            }
            let program = self.runner.program.as_deref().unwrap_or("unknown");
            if !self.runner.program.as_ref().is_some_and(|p| workload.models.contains(p)) {
                tracing::warn!(
                    workload = %id,
                    program,
                    "not offered: the approval does not pin this node's workload program; the chambers approve the program's sha256 (`propose --approve-workload … --workload-program FILE`)"
                );
            } else {
                tracing::warn!(
                    workload = %id,
                    "not offered: this node does not hold every model file the approval pins (see `--worker-models`)"
                );
            }
        }
        let same = |a: &NodeOffer, b_models: &[String], b_workloads: &[String], cores: u32, memory: u64| {
            a.models == b_models && a.workloads == b_workloads && a.cores == cores && a.memory_mib == memory
        };
        let standing = governance.offers().get(node);
        // Where offers lapse, the same offer is renewed before it does.
        let fresh = |at: u64| !governance.later_job_rules() || now_ms().saturating_sub(at) < OFFER_RENEWAL_MS;
        if standing
            .is_some_and(|s| same(&offer, &s.models, &s.workloads, s.cores, s.memory_mib) && fresh(s.at))
        {
            return;
        }
        if standing.is_none() && offer.workloads.is_empty() {
            return;
        }
        // Wait for the last offer to land before sending another.
        if let Some((last, at)) = &self.offered
            && same(last, &offer.models, &offer.workloads, offer.cores, offer.memory_mib)
            && at.elapsed() < Duration::from_secs(10)
        {
            return;
        }
        self.offered = Some((offer.clone(), std::time::Instant::now()));
        let what = format!("the offer of {}", offer.workloads.join(", "));
        self.runner.submit(SignedEvent::sign(Event::NodeOffer(offer), &self.runner.key), &what);
    }

    /// Publishes the adapters of training jobs whose output from this node stands, registers
    /// their files, and drops those whose job went another way; every few seconds.
    fn settle_adapters(&mut self, governance: &Governance, node: &str) {
        if self.settled.is_some_and(|at| at.elapsed() < Duration::from_secs(2)) {
            return;
        }
        self.settled = Some(std::time::Instant::now());
        let now = std::time::Instant::now();
        let skip = |dir: &Path| {
            self.adapters_done.contains(dir) || self.adapters_retry.get(dir).is_some_and(|(at, _)| *at > now)
        };
        let next = training::settle(&self.runner.config.data, governance, node, skip);
        for (dir, next) in next {
            let what = format!("the adapter in {}", dir.display());
            let id = match next {
                training::Next::Done => {
                    self.adapters_done.insert(dir);
                    continue;
                }
                training::Next::Register(id) => id,
                training::Next::Publish(event) => {
                    match self.runner.send(SignedEvent::sign(*event, &self.runner.key)) {
                        Ok(id) => {
                            tracing::info!(id, "{what} is recorded in the log");
                            id
                        }
                        Err(error) => {
                            let wait = self.retry_later(&dir);
                            tracing::warn!(%error, "{what} was not recorded in the log; it is tried again in {} s", wait.as_secs());
                            continue;
                        }
                    }
                }
            };
            // The files go to the registry once this node's copy of the log holds the record.
            let registered = (0..100).find_map(|_| {
                let g = self.reader.governance().ok()?;
                match g.adapter(id) {
                    Some(_) => Some(training::register(&self.runner.config.data, &g, id, &dir)),
                    None => {
                        std::thread::sleep(Duration::from_millis(100));
                        None
                    }
                }
            });
            match registered {
                Some(Ok(())) => {
                    // The registry holds the files now: the staged copy goes.
                    tracing::info!(id, "the adapter's files are in this node's registry");
                    self.adapters_retry.remove(&dir);
                    let _ = std::fs::remove_dir_all(&dir);
                    self.adapters_done.insert(dir);
                }
                Some(Err(error)) => {
                    let wait = self.retry_later(&dir);
                    tracing::warn!(id, %error, "the adapter's files were not registered; tried again in {} s", wait.as_secs());
                }
                None => tracing::warn!(
                    id,
                    "this node's log does not show the adapter yet; its files are registered on a later look"
                ),
            }
        }
    }

    /// When to try `dir` again after a failure: 2 s after the first, doubling to 10 minutes.
    fn retry_later(&mut self, dir: &Path) -> Duration {
        let wait = self
            .adapters_retry
            .get(dir)
            .map_or(Duration::from_secs(2), |(_, w)| (*w * 2).min(Duration::from_secs(600)));
        self.adapters_retry.insert(dir.to_path_buf(), (std::time::Instant::now() + wait, wait));
        wait
    }
}

impl Runner {
    fn node(&self) -> String {
        substrate_core::identity::did_of(&self.key.verifying_key())
    }

    /// Hands a signed event to the log.
    fn send(&self, event: SignedEvent) -> Result<u64, String> {
        (self.submit.lock().unwrap_or_else(|e| e.into_inner()))(event)
    }

    /// Runs one assignment and sends its signed result (or why there is none).
    fn answer(&self, governance: &Governance, job: &JobRecord, run: &Run) {
        let node = self.node();
        let result = self.run(governance, job, run);
        let event = SignedEvent::sign(Event::JobResult(result), &self.key);
        let event = if event.envelope.to_bytes().len() > MAX_ENVELOPE_BYTES {
            let too_large = JobResult {
                job: job.id,
                assignment: run.assignment,
                node,
                output: None,
                failure: Some(format!("the output does not fit a log entry ({MAX_ENVELOPE_BYTES} bytes)")),
                cpu_ms: 0,
                requested: now_rfc3339(),
            };
            SignedEvent::sign(Event::JobResult(too_large), &self.key)
        } else {
            event
        };
        self.submit(event, &format!("the result of job {} (assignment {})", job.id, run.assignment));
    }

    /// Asks the sequencer for texts of job `job`, one request at a time.
    fn fetch_texts(&self, job: u64, cids: Vec<String>) -> training::Fetched {
        match &self.fetch {
            Some(fetch) => (fetch.lock().unwrap_or_else(|e| e.into_inner()))(job, cids),
            None => Err("this node asks nobody for texts: it holds every text it may read".into()),
        }
    }

    fn submit(&self, event: SignedEvent, what: &str) {
        match self.send(event) {
            Ok(index) => tracing::info!(index, "{what} is in the log"),
            Err(error) => tracing::warn!(%error, "{what} was not taken"),
        }
    }

    /// Runs one assignment in the sandbox and says what came of it.
    fn run(&self, governance: &Governance, job: &JobRecord, run: &Run) -> JobResult {
        let node = self.node();
        let mut result = JobResult {
            job: job.id,
            assignment: run.assignment,
            node,
            output: None,
            failure: None,
            cpu_ms: 0,
            requested: String::new(),
        };
        match self.execute(governance, job, run) {
            Ok((output, cpu_ms)) => {
                result.output = Some(output);
                result.cpu_ms = cpu_ms;
            }
            Err((failure, cpu_ms)) => {
                tracing::warn!(job = job.id, %failure, "the job failed here");
                result.failure = Some(failure.chars().take(1000).collect());
                result.cpu_ms = cpu_ms;
            }
        }
        result.requested = now_rfc3339();
        result
    }

    fn execute(
        &self,
        governance: &Governance,
        job: &JobRecord,
        run: &Run,
    ) -> Result<(JobOutput, u64), (String, u64)> {
        let fail = |text: String| Err((text, 0));
        let Some(input) = &job.input else { return fail("the job's input is not in the state".into()) };
        let Some(workload) = governance.workload(&job.workload) else {
            return fail(format!("{} is not approved here", job.workload));
        };
        if !self.program.as_ref().is_some_and(|p| workload.models.contains(p)) {
            return fail(format!(
                "{} does not pin this node's workload program (sha256 {}); it runs only the program the chambers approved",
                job.workload,
                self.program.as_deref().unwrap_or("unknown")
            ));
        }
        let pinned: Vec<String> =
            workload.models.iter().filter(|m| Some(*m) != self.program.as_ref()).cloned().collect();
        let Some(models) = self.files.paths(&pinned) else {
            return fail(format!("this node does not hold the model files {} pins", job.workload));
        };
        // Absolute: the job's process runs in its output directory, not in the worker's.
        let scratch =
            std::path::absolute(&self.config.scratch).unwrap_or_else(|_| self.config.scratch.clone());
        let dir = scratch.join(format!("{:020}", run.assignment));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.join("out");
        let input_file = dir.join("input.json");
        if let Err(error) = std::fs::create_dir_all(&out)
            .and_then(|()| std::fs::write(&input_file, serde_json::to_vec(input).unwrap_or_default()))
        {
            return fail(format!("preparing the job's directory {}: {error}", dir.display()));
        }
        // A training or evaluation job: its snapshot, texts and context beside the input (and
        // the adapter an evaluation reads, from this node's registry).
        let training = match input.snapshot_decision() {
            Some(decision) => {
                // The files came by their pinned digests, so the base model's is known already.
                let Some((base, base_sha256)) =
                    models.iter().zip(&pinned).find(|(m, _)| m.extension().is_some_and(|e| e == "gguf"))
                else {
                    return fail(format!("{} pins no base model (a .gguf file)", job.workload));
                };
                let adapter = match input {
                    JobInput::Evaluate { adapter: Some(id), .. } => {
                        match training::adapter_files(&self.config.data, governance, *id) {
                            Ok(dir) => Some(dir),
                            Err(error) => return fail(error),
                        }
                    }
                    _ => None,
                };
                let fetch = |job: u64, cids: Vec<String>| self.fetch_texts(job, cids);
                let context =
                    training::context(&self.node(), self.program.as_deref(), base, base_sha256, adapter);
                let prepared = training::prepare(
                    &self.config.data,
                    job,
                    decision,
                    &dir,
                    &context,
                    self.fetch.as_ref().map(|_| &fetch as &training::Fetch<'_>),
                )
                .map(|snapshot| (snapshot, context));
                match prepared {
                    Ok(prepared) => Some(prepared),
                    Err(error) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        return fail(error);
                    }
                }
            }
            None => None,
        };
        let trains = matches!(input, JobInput::TrainLora { .. });
        let invocation =
            Invocation { input: input_file.clone(), output: out.join("output.json"), models: models.clone() };
        let left = run.deadline.saturating_sub(now_ms()).max(1000);
        let limits = Limits {
            cpu_seconds: (left / 1000 + 1) * u64::from(self.config.cores.max(1)),
            // Each slot's share of the memory.
            memory_bytes: ((self.config.memory_mib / self.config.slots.max(1) as u64).max(512) << 20)
                .min(16 << 30),
            open_files: 256,
            // A training run writes its adapter and optimizer checkpoint.
            file_bytes: if trains { 1 << 30 } else { 64 << 20 },
            deadline: Duration::from_millis(left),
        };
        let mut sandbox = Sandbox::new(&self.config.program, &out)
            .arg("workload")
            .args(invocation.args())
            .input(&input_file)
            .limits(limits)
            .strength(self.config.strength);
        if let Some((_, context)) = &training {
            for name in [TrainingFiles::CORPUS, TrainingFiles::CONTEXT, TrainingFiles::TEXTS] {
                sandbox = sandbox.input(dir.join(name));
            }
            if let Some(adapter) = &context.adapter {
                sandbox = sandbox.input(adapter);
            }
        }
        for model in &models {
            sandbox = sandbox.input(model);
            // An embedding model is its directory's files; the loader reads them by name.
            if let Some(parent) =
                model.parent().filter(|_| model.file_name().is_some_and(|n| n == "model.safetensors"))
            {
                sandbox = sandbox.input(parent);
            }
        }
        let report = sandbox.run();
        let result = match report {
            Err(error) => Err((format!("the sandbox refused to run the job: {error}"), 0)),
            Ok(report) => {
                let cpu_ms = report.cpu.as_millis() as u64;
                if !report.succeeded() {
                    let stderr = String::from_utf8_lossy(&report.stderr);
                    // The error and its causes: the last lines the workload wrote.
                    let lines: Vec<&str> = stderr.trim().lines().map(str::trim).collect();
                    let tail: String =
                        lines[lines.len().saturating_sub(3)..].join(" / ").chars().take(600).collect();
                    Err((format!("the workload {}: {tail}", report.ended), cpu_ms))
                } else {
                    match std::fs::read(&invocation.output).map_err(|e| e.to_string()).and_then(|bytes| {
                        serde_json::from_slice::<JobOutput>(&bytes).map_err(|e| e.to_string())
                    }) {
                        Ok(output) => match check_output(input, &output) {
                            Ok(()) => match training.as_ref().filter(|_| trains) {
                                // The adapter is signed and kept until the job's output stands.
                                Some((snapshot, _)) => {
                                    training::seal(&self.config.data, &self.key, job, run.assignment, &out, snapshot)
                                        .map(|kept| {
                                            tracing::info!(job = job.id, role = ?run.role, dir = %kept.display(), "the adapter is kept until the job's output stands");
                                            (output, cpu_ms)
                                        })
                                        .map_err(|e| (format!("signing the adapter: {e}"), cpu_ms))
                                }
                                None => Ok((output, cpu_ms)),
                            },
                            Err(e) => {
                                Err((format!("the workload's output does not fit the job: {e}"), cpu_ms))
                            }
                        },
                        Err(e) => Err((format!("the workload wrote no readable output: {e}"), cpu_ms)),
                    }
                }
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}
