//! `bench open` and `bench reads`: opening a large commons, and reading a proposal while clients
//! deposit.

use super::*;

/// Opens the commons in `data` and reports the time `Ledger::open` took and this process's memory
/// (peak and current resident set, from /proc/self/status).
pub(super) fn bench_open(data: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let ledger = Ledger::open(&DataDir::new(data))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "opened a commons of {} entries in {seconds:.2} s; peak resident memory {:.0} MiB, now {:.0} MiB",
        ledger.state().size(),
        status_kib("VmHWM:") as f64 / 1024.0,
        status_kib("VmRSS:") as f64 / 1024.0
    );
    Ok(())
}

/// Opens the commons in `dir` in a child process (`bench open`), so its memory is its own.
fn open_in_child(dir: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the substrate binary")?;
    let output = Command::new(exe).args(["bench", "open", "--data"]).arg(dir).output()?;
    anyhow::ensure!(
        output.status.success(),
        "bench open failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}

pub(super) fn bench_reads(
    voters: usize,
    proposals: usize,
    clients: usize,
    seconds: u64,
    keep: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = keep.unwrap_or(tmp.path());
    let steward = SigningKey::from_bytes(&[7u8; 32]);
    if DataDir::new(dir).database().exists() {
        println!("reading the commons already in {}", dir.display());
    } else {
        build_votes(dir, &steward, voters, proposals)?;
    }
    open_in_child(dir)?;

    let daemon = Daemon::start(dir)?;
    let first_proposal = {
        let body: serde_json::Value =
            ureq::get(&format!("{}/v1/proposals?open=true", daemon.url)).call()?.into_json()?;
        let ids: Vec<u64> = body["proposals"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["proposal"]["id"].as_u64())
            .collect();
        anyhow::ensure!(!ids.is_empty(), "the commons has no open proposal");
        ids
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let deposited = AtomicUsize::new(0);
    let url = daemon.url.clone();
    let keys: Vec<SigningKey> = (0..clients).map(|_| crate::keys::generate()).collect();
    // Texts this commons has not seen: a kept commons holds the texts of earlier runs, and a
    // text deposited again is refused (409) without being counted.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as usize;
    let first_text = run.saturating_mul(1_000_000_000);
    type Latencies = (Vec<Duration>, Vec<Duration>, Vec<Duration>);
    let (latencies, elapsed) = std::thread::scope(|scope| -> anyhow::Result<(Latencies, f64)> {
        for (c, key) in keys.iter().enumerate() {
            let (stop, deposited, url) = (&stop, &deposited, &url);
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (event, text) =
                        sample_deposit(key, first_text + c * 10_000_000 + n, 1024, ConsentTier::Public);
                    let body =
                        json!({"envelope": event.envelope, "content": STANDARD.encode(text)}).to_string();
                    if agent
                        .post(&format!("{url}/v1/deposits"))
                        .set("content-type", "application/json")
                        .send_string(&body)
                        .is_ok()
                    {
                        deposited.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            });
        }
        let agent = ureq::AgentBuilder::new().build();
        let started = Instant::now();
        // In turn: the whole view (every vote listed) and the tallies alone (`votes=false`).
        let mut latencies = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0usize;
        while started.elapsed() < Duration::from_secs(seconds) {
            let id = first_proposal[(i / 2) % first_proposal.len()];
            let bare = i % 2 == 1;
            let query = if bare { "?votes=false" } else { "" };
            // A read's latency is the response's, to its last byte; the client's own parse of
            // the JSON is timed apart.
            let t = Instant::now();
            let mut bytes = Vec::new();
            agent
                .get(&format!("{url}/v1/proposals/{id}{query}"))
                .call()?
                .into_reader()
                .read_to_end(&mut bytes)?;
            let took = t.elapsed();
            let t = Instant::now();
            let body: serde_json::Value = serde_json::from_slice(&bytes)?;
            let parsed = t.elapsed();
            if bare {
                latencies.1.push(took)
            } else {
                latencies.0.push(took);
                latencies.2.push(parsed);
            }
            anyhow::ensure!(
                body["tally"]["votes"].as_u64() == Some(voters as u64),
                "proposal {id}: {}",
                body["tally"]
            );
            anyhow::ensure!(
                bare || body["votes"].as_array().map(Vec::len) == Some(voters),
                "proposal {id}: the whole view does not list every vote"
            );
            i += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        Ok((latencies, elapsed))
    })?;
    println!(
        "GET /v1/proposals/{{id}} ({voters} votes each, {} votes on record) while {clients} clients deposited {:.0}/s:",
        voters * proposals,
        deposited.load(Ordering::Relaxed) as f64 / elapsed
    );
    for (what, mut sorted) in [
        ("every vote listed", latencies.0),
        ("votes=false", latencies.1),
        ("the client's parse of the whole view", latencies.2),
    ] {
        sorted.sort();
        let pct = |p: f64| {
            sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "  {what}: {} reads, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            sorted.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    Ok(())
}

/// A commons in `dir` whose steward attests `voters` members, one of whom opens `proposals`
/// ordinary proposals (open for the default 7 days), and every member votes on every proposal.
fn build_votes(
    dir: &std::path::Path,
    steward: &SigningKey,
    voters: usize,
    proposals: usize,
) -> anyhow::Result<()> {
    use substrate_core::governance::acts::{Action, Attestation, Proposal, VoteCast};
    use substrate_core::governance::tally::{ProposalClass, Vote};
    let started = Instant::now();
    let steward_did = substrate_core::identity::did_of(&steward.verifying_key());
    let mut ledger = init_commons_with(dir, vec![steward_did])?;
    let requested = || substrate_core::timestamp::rfc3339(crate::command::now_ms());
    let members: Vec<SigningKey> = (0..voters).map(|_| crate::keys::generate()).collect();
    let append = |ledger: &mut Ledger, events: Vec<SignedEvent>| -> anyhow::Result<()> {
        for chunk in events.chunks(4096) {
            let outcomes = ledger.append_batch(
                chunk.iter().map(|event| Submission { event: event.clone(), content: None }).collect(),
                crate::command::now_ms(),
            )?;
            for outcome in outcomes {
                anyhow::ensure!(
                    matches!(outcome, substrate_store::ledger::Outcome::Appended(_)),
                    "{outcome:?}"
                );
            }
        }
        Ok(())
    };
    let attestations = members
        .iter()
        .map(|key| {
            let person = substrate_core::identity::did_of(&key.verifying_key());
            SignedEvent::sign(
                Event::Attestation(Attestation { person, days: None, note: None, requested: requested() }),
                steward,
            )
        })
        .collect();
    append(&mut ledger, attestations)?;
    let first = ledger.state().size();
    let opened = (0..proposals)
        .map(|p| {
            SignedEvent::sign(
                Event::Proposal(Proposal {
                    title: format!("bench proposal {p}"),
                    summary: None,
                    class: ProposalClass::Ordinary,
                    actions: vec![Action::SetParameter {
                        key: "mixture.cap.sacred".into(),
                        value: json!(0.5),
                    }],
                    requested: requested(),
                }),
                &members[p % voters],
            )
        })
        .collect();
    append(&mut ledger, opened)?;
    for p in 0..proposals {
        let proposal = first + p as u64;
        // Signed on two threads: signing is the slow part.
        let votes: Vec<SignedEvent> = std::thread::scope(|scope| {
            let sign = |keys: &[SigningKey]| {
                let keys = keys.to_vec();
                scope.spawn(move || {
                    keys.iter()
                        .enumerate()
                        .map(|(v, key)| {
                            let choice = [Vote::Yes, Vote::No, Vote::Abstain][(v + p) % 3];
                            let cast = VoteCast {
                                proposal,
                                choice,
                                mixture: None,
                                ranking: None,
                                requested: requested(),
                            };
                            SignedEvent::sign(Event::Vote(cast), key)
                        })
                        .collect::<Vec<_>>()
                })
            };
            let (a, b) = members.split_at(voters / 2);
            let (a, b) = (sign(a), sign(b));
            let mut all = a.join().unwrap_or_default();
            all.extend(b.join().unwrap_or_default());
            all
        });
        append(&mut ledger, votes)?;
    }
    println!(
        "built a commons of {voters} members, {proposals} open proposals and {} votes ({} entries) in {:.1} s",
        voters * proposals,
        ledger.state().size(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
