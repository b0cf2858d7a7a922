//! `substrate bench`: durable deposit throughput over HTTP against a separately started daemon,
//! replay speed over a large log, governance decisions, replication over the mesh, and search,
//! each beside the machine's own bounds measured in the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use serde_json::json;
use substrate_core::event::{Deposit, Event};
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_store::{DataDir, InitOptions, Ledger, ReplayMode, Submission};

use crate::cli::BenchCommand;

mod jobs;
mod mesh;
mod ngram;
mod reads;
mod sandbox;
mod search;

use jobs::bench_jobs;
use mesh::bench_mesh;
use ngram::bench_ngram;
use reads::{bench_open, bench_reads};
use sandbox::bench_sandbox;
use search::bench_search;

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Deposits { clients, deposits, size } => bench_deposits(clients, deposits, size),
        BenchCommand::Replay { entries, keep } => bench_replay(entries, keep.as_deref()),
        BenchCommand::Open { data } => bench_open(&data),
        BenchCommand::Sandbox { runs, embed, models } => bench_sandbox(runs, embed.as_deref(), &models),
        BenchCommand::Reads { voters, proposals, clients, seconds, keep } => {
            bench_reads(voters, proposals, clients, seconds, keep.as_deref())
        }
        BenchCommand::Training { deposits, size, models } => bench_training(deposits, size, &models),
        BenchCommand::Governance { voters, proposals } => bench_governance(voters, proposals),
        BenchCommand::Mesh { entries, mirrors, submitters, size, consent } => {
            bench_mesh(entries, mirrors, submitters, size, consent)
        }
        BenchCommand::Jobs { jobs, workers, check_ppm, clients, model_dir } => {
            bench_jobs(jobs, workers, check_ppm, clients, model_dir.as_deref())
        }
        BenchCommand::Ngram { texts, size, language, arpa, tokens_out, models } => {
            bench_ngram(texts, size, &language, arpa.as_deref(), tokens_out.as_deref(), &models)
        }
        BenchCommand::Search { deposits, queries, size, vectors, models } => {
            bench_search(deposits, queries, size, vectors, &models)
        }
    }
}

/// The daemon as a child process, killed on drop.
struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(dir: &std::path::Path) -> anyhow::Result<Daemon> {
        let exe = std::env::current_exe().context("locating the substrate binary")?;
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .spawn()
            .context("starting `substrate serve`")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url =
            line.trim().strip_prefix("listening on ").context("the daemon did not report its address")?;
        Ok(Daemon { url: url.to_owned(), child })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn init_commons(dir: &std::path::Path) -> anyhow::Result<Ledger> {
    init_commons_with(dir, Vec::new())
}

/// A bench commons in `dir` whose first board is `stewards`.
fn init_commons_with(dir: &std::path::Path, stewards: Vec<String>) -> anyhow::Result<Ledger> {
    Ok(Ledger::init(
        &DataDir::new(dir),
        crate::keys::generate(),
        InitOptions {
            name: "bench".into(),
            origin: "substrate.local/bench".into(),
            handle_prefix: "tag:substrate.local,2026:bench/".into(),
            registers: Register::defaults(),
            stewards,
            windows: None,
            now: super::now_ms(),
        },
    )?)
}

/// A signed deposit of a distinct `size`-byte text, and the text.
fn sample_deposit(key: &SigningKey, n: usize, size: usize, consent: ConsentTier) -> (SignedEvent, Vec<u8>) {
    let mut text = format!("deposit {n}: ").into_bytes();
    text.resize(size.max(text.len()), b'a' + (n % 26) as u8);
    (sign_sample(key, n, &text, consent), text)
}

/// The signed deposit of `text` as sample `n`: the eight default registers in turn, titled
/// "bench text N".
fn sign_sample(key: &SigningKey, n: usize, text: &[u8], consent: ConsentTier) -> SignedEvent {
    let event = Event::Deposit(Deposit {
        cid: Some(Cid::of(text)),
        register: Register::defaults()[n % 8].clone(),
        secondary_registers: vec![],
        consent,
        title: format!("bench text {n}"),
        language: "en".into(),
        license: "CC0-1.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2026-01-01T00:00:00.000Z".into(),
    });
    SignedEvent::sign(event, key)
}

/// A commons in `dir` of `deposits` texts, `text(i)` each in consent tier `consent(i)`, signed by
/// 64 keys in turn and appended 4096 at a time, every text then moved into the blob directory.
fn fill_commons(
    dir: &std::path::Path,
    deposits: usize,
    text: impl Fn(usize) -> Vec<u8>,
    consent: impl Fn(usize) -> ConsentTier,
) -> anyhow::Result<Ledger> {
    let mut ledger = init_commons(dir)?;
    let keys: Vec<SigningKey> = (0..64).map(|_| crate::keys::generate()).collect();
    let mut made = 0;
    while made < deposits {
        let n = 4096.min(deposits - made);
        let submissions: Vec<Submission> = (made..made + n)
            .map(|i| {
                let text = text(i);
                let event = sign_sample(&keys[i % keys.len()], i, &text, consent(i));
                Submission { event, content: Some(text) }
            })
            .collect();
        ledger.append_batch(submissions, super::now_ms())?;
        made += n;
    }
    ledger.flush_texts()?;
    Ok(ledger)
}

/// A field of this process's /proc/self/status in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`), 0 where
/// it cannot be read.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The consent of sample deposit `n`: `fixed`, or else the four tiers in turn.
fn sample_consent(n: usize, fixed: Option<ConsentTier>) -> ConsentTier {
    fixed.unwrap_or(ConsentTier::ALL[n % 4])
}

/// Deposits `range` by the keys in turn, signed on two threads: signing is the slow part of
/// building a log.
fn sample_deposits(
    keys: &[SigningKey],
    range: std::ops::Range<usize>,
    size: usize,
    consent: Option<ConsentTier>,
) -> Vec<(SignedEvent, Vec<u8>)> {
    let middle = range.start + range.len() / 2;
    std::thread::scope(|scope| {
        let sign = |part: std::ops::Range<usize>| {
            scope.spawn(move || {
                part.map(|i| sample_deposit(&keys[i % keys.len()], i, size, sample_consent(i, consent)))
                    .collect::<Vec<_>>()
            })
        };
        let (a, b) = (sign(range.start..middle), sign(middle..range.end));
        let mut all = a.join().unwrap_or_default();
        all.extend(b.join().unwrap_or_default());
        all
    })
}

fn bench_deposits(clients: usize, count: usize, size: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    drop(init_commons(tmp.path())?);
    let daemon = Daemon::start(tmp.path())?;
    println!("daemon: {} (data in {})", daemon.url, tmp.path().display());

    let keys: Vec<SigningKey> = (0..clients).map(|_| crate::keys::generate()).collect();
    let warmup = 256.min(count);
    let bodies: Vec<String> = (0..count + warmup)
        .map(|n| {
            let (event, text) = sample_deposit(&keys[n % clients], n, size, ConsentTier::ALL[n % 4]);
            json!({"envelope": event.envelope, "content": STANDARD.encode(text)}).to_string()
        })
        .collect();
    let url = format!("{}/v1/deposits", daemon.url);
    // Each client reads its receipt whole, as a depositor keeps it; that also returns the
    // connection to the client's pool, so every client posts over one kept-alive connection.
    let post = |agent: &ureq::Agent, body: &str| -> anyhow::Result<()> {
        let response = agent.post(&url).set("content-type", "application/json").send_string(body)?;
        anyhow::ensure!(response.status() == 201, "unexpected status {}", response.status());
        let receipt = response.into_string()?;
        anyhow::ensure!(receipt.contains("\"log_index\""), "the answer is not a receipt: {receipt}");
        Ok(())
    };
    let agent = ureq::AgentBuilder::new().max_idle_connections(clients * 2).build();
    for body in &bodies[count..] {
        post(&agent, body)?;
    }

    // CPU seconds (user + system) of a process, and of every process on the machine, from /proc
    // (ticks of USER_HZ, 100 on Linux): the clients and the node share these cores, so the run
    // says how much of them each took.
    fn cpu_seconds(pid: &str) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<f64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect()
            })
            .unwrap_or_default();
        fields.iter().sum::<f64>() / 100.0
    }
    fn machine_busy_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .map(|line| line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect())
            .unwrap_or_default();
        // user, nice, system, irq, softirq, steal: everything but idle and iowait.
        [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum::<f64>() / 100.0
    }
    // The node's CPU seconds by thread name (the sequencer, the HTTP workers, the maintenance).
    fn cpu_by_thread(pid: &str) -> std::collections::BTreeMap<String, f64> {
        let mut by_name = std::collections::BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let name = stat.split_once('(').and_then(|(_, rest)| rest.rsplit_once(')')).map(|(n, _)| n);
            let tid = task.file_name().to_string_lossy().into_owned();
            *by_name.entry(name.unwrap_or("?").to_owned()).or_default() +=
                cpu_seconds(&format!("{pid}/task/{tid}"));
        }
        by_name
    }
    let server_pid = daemon.child.id().to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let threads_before = cpu_by_thread(&server_pid);
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&server_pid), machine_busy_seconds());

    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<Duration>> {
                    let agent = ureq::AgentBuilder::new().build();
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            return Ok(mine);
                        }
                        let t = Instant::now();
                        post(&agent, &bodies[n])?;
                        mine.push(t.elapsed());
                    }
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            all.extend(worker.join().map_err(|_| anyhow::anyhow!("a client panicked"))??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let clients_cpu = cpu_seconds("self") - cpu_before.0;
    let server_cpu = cpu_seconds(&server_pid) - cpu_before.1;
    let others_cpu = machine_busy_seconds() - cpu_before.2 - clients_cpu - server_cpu;
    let threads: Vec<String> = cpu_by_thread(&server_pid)
        .into_iter()
        .map(|(name, after)| (after - threads_before.get(&name).copied().unwrap_or(0.0), name))
        .filter(|(seconds, _)| *seconds >= 0.05)
        .map(|(seconds, name)| format!("{name} {seconds:.1} s"))
        .collect();
    // Texts are durable in SQLite at receipt time; the move into the blob directory runs at low
    // priority behind the deposits. Measure how far it lagged and how long it takes to drain.
    let health = |agent: &ureq::Agent| -> anyhow::Result<u64> {
        let body: serde_json::Value = agent.get(&format!("{}/health", daemon.url)).call()?.into_json()?;
        body["texts_pending"].as_u64().context("no texts_pending in /health")
    };
    let pending_at_end = health(&agent)?;
    let drain_started = Instant::now();
    while health(&agent)? > 0 && drain_started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drained = drain_started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let mut sorted = latencies;
    sorted.sort();
    let pct =
        |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0;
    drop(daemon);

    let verifies = ed25519_verifies_per_second();
    let fsyncs = fsyncs_per_second(tmp.path())?;
    println!("durable deposits over HTTP: {count} texts of {size} B, {clients} concurrent clients");
    println!("  throughput:        {:.0} deposits/s", count as f64 / elapsed);
    println!("  latency p50:       {:.1} ms", pct(0.50));
    println!("  latency p99:       {:.1} ms", pct(0.99));
    println!("  latency max:       {:.1} ms", pct(1.0));
    println!(
        "  texts still waiting for the blob directory at the end: {pending_at_end} (drained {drained:.1} s later)"
    );
    println!("  including that drain: {:.0} deposits/s", count as f64 / (elapsed + drained));
    println!(
        "  CPU while posting:  node {server_cpu:.1} s, clients {clients_cpu:.1} s, other processes {:.1} s, of {:.1} s ({elapsed:.1} s x {} cores)",
        others_cpu.max(0.0),
        elapsed * cores as f64,
        cores
    );
    println!("  node CPU by thread: {}", threads.join(", "));
    println!(
        "  node CPU per deposit: {:.0} us; load average before the run {}",
        server_cpu / count as f64 * 1e6,
        load.split_whitespace().next().unwrap_or("?")
    );
    println!("machine bounds measured in the same run:");
    println!("  ed25519 verify:    {verifies:.0} /s on one core");
    println!("  fsync (4 KiB):     {fsyncs:.0} /s");
    Ok(())
}

fn ed25519_verifies_per_second() -> f64 {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let message = vec![b'x'; 900];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            let _ = std::hint::black_box(public.verify(std::hint::black_box(&message), &signature));
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Signatures verified per second on one core in batches of `batch`, each over its own message
/// with its own key, as replay verifies them.
fn ed25519_batch_verifies_per_second(batch: usize) -> f64 {
    let keys: Vec<SigningKey> = (0..batch).map(|n| SigningKey::from_bytes(&[n as u8; 32])).collect();
    let messages: Vec<Vec<u8>> = (0..batch).map(|n| format!("{n:0>900}").into_bytes()).collect();
    let signatures: Vec<_> = keys.iter().zip(&messages).map(|(key, message)| key.sign(message)).collect();
    let public: Vec<_> = keys.iter().map(SigningKey::verifying_key).collect();
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        let _ = std::hint::black_box(ed25519_dalek::verify_batch(
            std::hint::black_box(&messages),
            &signatures,
            &public,
        ));
        n += batch as u64;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn fsyncs_per_second(dir: &std::path::Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    std::fs::remove_file(&path)?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn bench_replay(entries: u64, keep: Option<&std::path::Path>) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = keep.unwrap_or(tmp.path());
    if DataDir::new(dir).database().exists() {
        println!("replaying the log already in {}", dir.display());
    } else {
        build_log(dir, entries)?;
    }
    let report = substrate_store::replay::replay(&DataDir::new(dir), ReplayMode::Check, None)?;
    anyhow::ensure!(
        report.entries == entries,
        "the log in {} holds {} entries, not {entries}",
        dir.display(),
        report.entries
    );
    let db = std::fs::metadata(DataDir::new(dir).database()).map(|m| m.len()).unwrap_or(0);
    println!(
        "replay --check of {} entries ({} checkpoints, {:.0} MiB database): {:.1}s ({:.0} entries/s)",
        report.entries,
        report.checkpoints,
        db as f64 / 1048576.0,
        report.seconds,
        report.entries as f64 / report.seconds
    );
    println!(
        "machine bound: ed25519 verify {:.0} /s on one core, {:.0} /s in batches of {}",
        ed25519_verifies_per_second(),
        ed25519_batch_verifies_per_second(substrate_store::replay::BATCH),
        substrate_store::replay::BATCH
    );
    Ok(())
}

/// A commons in `dir` of `entries` entries: the genesis, then signed 1 KiB deposits in batches.
fn build_log(dir: &std::path::Path, entries: u64) -> anyhow::Result<()> {
    let mut ledger = init_commons(dir)?;
    let keys: Vec<SigningKey> = (0..64).map(|_| crate::keys::generate()).collect();
    let started = Instant::now();
    let batch = 4096u64;
    let mut made = 1u64;
    while made < entries {
        let n = batch.min(entries - made);
        let first = made as usize;
        let events = sample_deposits(&keys, first..first + n as usize, 1024, None);
        // The replay reads only the log, so these deposits are appended without their blobs.
        let submissions = events.into_iter().map(|(event, _)| Submission { event, content: None }).collect();
        ledger.append_batch(submissions, super::now_ms())?;
        made += n;
    }
    println!(
        "built a log of {entries} entries (1 KiB deposits, no blobs) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A text of about `size` bytes of ordinary words, distinct for each `n`.
fn prose(n: usize, size: usize) -> Vec<u8> {
    drawn_words(n, size, |draw, text| text.push_str(PROSE_WORDS[(draw % PROSE_WORDS.len() as u64) as usize]))
}

/// A text of about `size` bytes, distinct for each `n`: after "text N:", `word` appends a word for
/// each draw of a xorshift generator seeded by `n`.
fn drawn_words(n: usize, size: usize, mut word: impl FnMut(u64, &mut String)) -> Vec<u8> {
    let mut text = format!("text {n}:");
    let mut state = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while text.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push(' ');
        word(state, &mut text);
    }
    text.into_bytes()
}

/// The words of [`prose`].
const PROSE_WORDS: [&str; 24] = [
    "bread",
    "river",
    "song",
    "prayer",
    "grandmother",
    "stone",
    "light",
    "table",
    "story",
    "voice",
    "morning",
    "field",
    "the",
    "and",
    "of",
    "we",
    "told",
    "again",
    "under",
    "winter",
    "salt",
    "kept",
    "door",
    "lamp",
];

fn bench_training(deposits: usize, size: usize, models: &crate::cli::ModelArgs) -> anyhow::Result<()> {
    use substrate_training::run::{self, Phase, TrainOptions};
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("commons");
    let started = Instant::now();
    drop(fill_commons(&dir, deposits, |i| prose(i, size), |i| ConsentTier::ALL[i % 3])?);
    println!(
        "built a commons of {deposits} deposits of {size} bytes in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let node_key = dir.join("node.key");
    crate::keys::create(&node_key, substrate_core::identity::ActorKind::Node, false)?;
    let (_, node_key) = crate::keys::load(&node_key)?;
    let path = super::models::model_path(models, &substrate_models::fetch::GENERATION);
    let path = match path.exists() {
        true => path,
        false => {
            println!("the default base model is not fetched: a tiny model's tokenizer and pass stand in");
            substrate_models::tiny::llama(tmp.path(), 1, substrate_models::tiny::GgmlDType::F32)?.path
        }
    };
    let mut model = substrate_models::Llama::load(&path, substrate_models::Weights::Dense)?;
    let options = TrainOptions {
        data_dir: DataDir::new(&dir),
        decision: None,
        out: tmp.path().join("adapter"),
        base_name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        base_sha256: substrate_models::fetch::file_sha256(&path)?,
        lora: substrate_models::LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: vec![substrate_models::Target::Q, substrate_models::Target::V],
        },
        steps: 1,
        batch: 1,
        seq_len: 16,
        lr: 1e-3,
        save_every: 1,
        node_key,
        signing_key: substrate_training::signing::ModelSigningKey::generate(),
        builder: substrate_training::record::Builder {
            name: "substrate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            sha256: "0".repeat(64),
        },
        now: || substrate_core::timestamp::rfc3339(super::now_ms()),
    };
    let mut marks: Vec<(&str, Instant)> = vec![("start", Instant::now())];
    let record = run::train(&mut model, &options, |phase| {
        let name = match phase {
            Phase::Snapshot { .. } => "fold the log and take the snapshot",
            Phase::Tokenising { .. } => "read the texts from the blob directory",
            Phase::Planned { .. } => "tokenise every text, hold out, plan the windows",
            Phase::Step(_) => "one training step of 16 tokens",
            Phase::Signing => "attribute every window, build the record",
            Phase::Published { .. } => "write manifest, cards, attestation, model-signing; publish",
        };
        marks.push((name, Instant::now()));
    })?;
    println!(
        "training run over {} deposits ({} tokens in the snapshot):",
        record.contributions.len(),
        record.contributions.iter().map(|c| c.tokens).sum::<u64>()
    );
    for pair in marks.windows(2) {
        println!("  {:>8.2}s  {}", (pair[1].1 - pair[0].1).as_secs_f64(), pair[1].0);
    }
    let total = marks.last().map(|m| m.1 - marks[0].1).unwrap_or_default().as_secs_f64();
    println!("  {total:>8.2}s  in all");
    let audit = Instant::now();
    let stages = substrate_training::audit::per(&options.out, &DataDir::new(&dir))?;
    println!(
        "audit per: {:.2}s, every stage at {:?}",
        audit.elapsed().as_secs_f64(),
        stages.iter().map(|s| s.rate()).collect::<Vec<_>>()
    );
    Ok(())
}

fn bench_governance(voters: usize, proposals: usize) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use substrate_core::governance::acts::Action;
    use substrate_core::governance::book::*;
    use substrate_core::governance::params::Parameters;
    use substrate_core::governance::tally::{Chamber, Outcome, ProposalClass, Vote};
    use substrate_core::state::{Commons, State};

    let registers = Register::defaults();
    // A deterministic spread of ballots, votes and compute: no randomness needed to time a tally.
    let ballot = |voter: usize, proposal: usize| -> BTreeMap<Register, f64> {
        let raw: Vec<f64> =
            (0..registers.len()).map(|j| ((voter * 31 + proposal * 17 + j * 7) % 13) as f64).collect();
        let total: f64 = raw.iter().sum::<f64>().max(1.0);
        registers.iter().cloned().zip(raw.iter().map(|r| r / total)).collect()
    };
    let vote = |voter: usize, proposal: usize| match (voter * 7 + proposal * 3) % 5 {
        0..=2 => Vote::Yes,
        3 => Vote::No,
        _ => Vote::Abstain,
    };
    let day = 24 * 3_600_000u64;
    let close = 400 * day;
    let people: Vec<String> = (0..voters).map(|v| format!("did:key:person-{v}")).collect();
    let operators = (voters / 20).max(1);

    // The governance records exactly as a node restores them from its materialised tables.
    let mut records = vec![
        Record::Parameters(Parameters::new(registers.clone())),
        Record::Board(Board { members: vec![people[0].clone()], elected_by: None }),
    ];
    records.extend(people.iter().map(|person| {
        Record::Member(Member {
            person: person.clone(),
            status: MemberStatus::Verified,
            expires_at: close + 365 * day,
            attested_by: vec![people[0].clone()],
            vouches: Vec::new(),
            may_vouch: true,
            history: vec![1],
        })
    }));
    for i in 0..operators * 3 {
        let node = format!("did:key:node-{i}");
        let operator = people[i % operators].clone();
        records.push(Record::Node(NodeRecord {
            node: node.clone(),
            operator: operator.clone(),
            log_index: 2,
            registered_at: 0,
        }));
        records.push(Record::Compute(ComputeGrant {
            receipt: 10 + i as u64,
            job: format!("job-{i}"),
            workload: "embed".into(),
            node,
            operator,
            verifiers: Vec::new(),
            units: (1 + i % 97) as u64,
            at: (i as u64) * 3_600_000,
        }));
    }
    let first = 1_000_000u64;
    for p in 0..proposals {
        let id = first + p as u64;
        records.push(Record::Proposal(ProposalRecord {
            id,
            proposer: people[p % voters].clone(),
            title: format!("mixture {p}"),
            summary: None,
            class: ProposalClass::Ordinary,
            lead: Chamber::Contributor,
            actions: vec![Action::SetMixture { ballot: ballot(p, p) }],
            opened_at: 0,
            closes_at: close,
            status: ProposalStatus::Open,
        }));
        records.extend(people.iter().enumerate().map(|(v, voter)| {
            Record::Vote(VoteRecord {
                proposal: id,
                voter: voter.clone(),
                choice: vote(v, p),
                mixture: Some(ballot(v, p)),
                ranking: None,
                log_index: id + 1,
                at: 1,
            })
        }));
    }
    // Once in the fixed-point arithmetic of a commons founded now, once in the f64 of the commons
    // founded before state encoding 3.
    for (encoding, arithmetic) in [(substrate_core::canonical::VERSION, "fixed point"), (2, "f64")] {
        let commons = Commons {
            name: "bench".into(),
            origin: "bench.example/log".into(),
            log_key: String::new(),
            log_did: String::new(),
            handle_prefix: "tag:bench.example,2026:d/".into(),
            founded_at: 0,
            state_encoding: encoding,
        };
        let state = State::restore(Some(commons), records.clone(), 0, [0; 32]);
        let started = Instant::now();
        let mut passed = 0;
        for p in 0..proposals {
            let decision = state.decision(first + p as u64)?;
            if decision.outcome == Outcome::Passed {
                passed += 1;
            }
            std::hint::black_box(&decision);
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{arithmetic}: decided {proposals} open proposals x {voters} voters (both chambers, {operators} node operators, and an {}-register Independent Markets mixture each) in {:.3} s; {passed} passed",
            registers.len(),
            seconds
        );
        // The same tallies without the mixtures, to show where the time goes.
        let tallied = Instant::now();
        for p in 0..proposals {
            std::hint::black_box(state.governance().tally(first + p as u64, close));
        }
        println!(
            "  the two chambers' tallies alone, without the mixtures, take {:.3} s",
            tallied.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
