//! `substrate bench`: durable deposit throughput over HTTP against a separately started daemon,
//! and replay speed over a large log, each beside the machine's own bounds measured in the same run.

use std::io::{BufRead, BufReader, Write};
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

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Deposits { clients, deposits, size } => bench_deposits(clients, deposits, size),
        BenchCommand::Replay { entries } => bench_replay(entries),
        BenchCommand::Governance { voters, proposals } => bench_governance(voters, proposals),
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
    Ok(Ledger::init(
        &DataDir::new(dir),
        crate::keys::generate(),
        InitOptions {
            name: "bench".into(),
            origin: "substrate.local/bench".into(),
            handle_prefix: "tag:substrate.local,2026:bench/".into(),
            registers: Register::defaults(),
            stewards: Vec::new(),
            windows: None,
            now: super::now_ms(),
        },
    )?)
}

/// A signed deposit of a distinct `size`-byte text, and the text.
fn sample_deposit(key: &SigningKey, n: usize, size: usize) -> (SignedEvent, Vec<u8>) {
    let mut text = format!("deposit {n}: ").into_bytes();
    text.resize(size.max(text.len()), b'a' + (n % 26) as u8);
    let event = Event::Deposit(Deposit {
        cid: Some(Cid::of(&text)),
        register: Register::defaults()[n % 8].clone(),
        secondary_registers: vec![],
        consent: ConsentTier::ALL[n % 4],
        title: format!("bench text {n}"),
        language: "en".into(),
        license: "CC0-1.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2026-01-01T00:00:00.000Z".into(),
    });
    (SignedEvent::sign(event, key), text)
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
            let (event, text) = sample_deposit(&keys[n % clients], n, size);
            json!({"envelope": event.envelope, "content": STANDARD.encode(text)}).to_string()
        })
        .collect();
    let url = format!("{}/v1/deposits", daemon.url);
    let post = |agent: &ureq::Agent, body: &str| -> anyhow::Result<()> {
        let response = agent.post(&url).set("content-type", "application/json").send_string(body)?;
        anyhow::ensure!(response.status() == 201, "unexpected status {}", response.status());
        Ok(())
    };
    let agent = ureq::AgentBuilder::new().max_idle_connections(clients * 2).build();
    for body in &bodies[count..] {
        post(&agent, body)?;
    }

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

fn bench_replay(entries: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut ledger = init_commons(tmp.path())?;
    let keys: Vec<SigningKey> = (0..64).map(|_| crate::keys::generate()).collect();
    let started = Instant::now();
    let batch = 4096u64;
    let mut made = 1u64;
    while made < entries {
        let n = batch.min(entries - made);
        let first = made as usize;
        // Signing is the slow part of building the log: spread it over the cores.
        let events: Vec<SignedEvent> = std::thread::scope(|scope| {
            let half = n as usize / 2;
            let keys = &keys;
            let a = scope.spawn(move || {
                (first..first + half).map(|i| sample_deposit(&keys[i % 64], i, 1024).0).collect::<Vec<_>>()
            });
            let b = scope.spawn(move || {
                (first + half..first + n as usize)
                    .map(|i| sample_deposit(&keys[i % 64], i, 1024).0)
                    .collect::<Vec<_>>()
            });
            let mut all = a.join().unwrap_or_default();
            all.extend(b.join().unwrap_or_default());
            all
        });
        // The replay reads only the log, so these deposits are appended without their blobs.
        let submissions = events.into_iter().map(|event| Submission { event, content: None }).collect();
        ledger.append_batch(submissions, super::now_ms())?;
        made += n;
    }
    drop(ledger);
    println!(
        "built a log of {entries} entries (1 KiB deposits, no blobs) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let report = substrate_store::replay::replay(&DataDir::new(tmp.path()), ReplayMode::Check, None)?;
    let db = std::fs::metadata(DataDir::new(tmp.path()).database()).map(|m| m.len()).unwrap_or(0);
    println!(
        "replay --check of {} entries ({} checkpoints, {:.0} MiB database): {:.1}s ({:.0} entries/s)",
        report.entries,
        report.checkpoints,
        db as f64 / 1048576.0,
        report.seconds,
        report.entries as f64 / report.seconds
    );
    println!("machine bound: ed25519 verify {:.0} /s on one core", ed25519_verifies_per_second());
    Ok(())
}

fn bench_governance(voters: usize, proposals: usize) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use substrate_core::governance::acts::Action;
    use substrate_core::governance::book::*;
    use substrate_core::governance::params::Parameters;
    use substrate_core::governance::tally::{Chamber, Outcome, ProposalClass, Vote};
    use substrate_core::state::State;

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
    let state = State::restore(None, Vec::new(), records, Vec::new(), 0, [0; 32]);

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
        "decided {proposals} open proposals x {voters} voters (both chambers, {operators} node operators, and an {}-register Independent Markets mixture each) in {:.3} s; {passed} passed",
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
    Ok(())
}
