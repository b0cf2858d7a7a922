//! Crash safety: a daemon SIGKILLed under concurrent load keeps every deposit it acknowledged,
//! each acknowledged receipt still verifies against the commons' key, the crashed data directory
//! replays cleanly, and a deposit whose answer was lost in the crash can simply be sent again.
//! Also: `replay --check` alongside a node that is writing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand_core::RngCore;
use substrate_core::receipt::Receipt;
use substrate_core::{Cid, SignedEvent};

use crate::util::{Commons, Http, deposit_body, new_key, path, signed_deposit, text};

const ROUNDS: usize = 5;
const CLIENTS: usize = 8;
const TEXT_BYTES: usize = 1024;

/// A deposit the node answered 201 (or, for a retry, 200) for.
struct Acked {
    text: Vec<u8>,
    receipt: Receipt,
}

/// A deposit sent when the node died: its fate is unknown to the client.
struct InFlight {
    event: SignedEvent,
    text: Vec<u8>,
}

struct ClientRun {
    acked: Vec<Acked>,
    in_flight: Option<InFlight>,
    error: Option<String>,
}

/// One client: posts distinct signed deposits until the node stops answering or `stop` is set.
/// Any answer other than 201 from a live node is an error.
fn client(http: Http, round: usize, client: usize, stop: Arc<AtomicBool>) -> ClientRun {
    let key = new_key();
    let nonce = rand_core::OsRng.next_u64();
    let mut run = ClientRun { acked: Vec::new(), in_flight: None, error: None };
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let text =
            text(&format!("crash round {round} client {client} deposit {n} nonce {nonce:016x}"), TEXT_BYTES);
        let event = signed_deposit(&key, &text);
        let body = serde_json::to_vec(&deposit_body(&event.envelope, &text)).expect("json");
        match http.try_post("/v1/deposits", &body) {
            // The node is gone (killed): what was in flight is not acknowledged.
            Err(_) => {
                run.in_flight = Some(InFlight { event, text });
                break;
            }
            Ok(reply) if reply.status == 201 => match serde_json::from_str::<Receipt>(&reply.body) {
                Ok(receipt) => run.acked.push(Acked { text, receipt }),
                Err(e) => {
                    run.error = Some(format!("a 201 without a receipt ({e}): {}", reply.body));
                    break;
                }
            },
            Ok(reply) => {
                run.error = Some(format!("answered {}: {}", reply.status, reply.body));
                break;
            }
        }
    }
    run
}

/// Sends again each deposit whose answer the crash swallowed: it was either logged (200, its
/// receipt) or not (201, logged now). Either way it is acknowledged afterwards.
fn retry(http: &Http, in_flight: Vec<InFlight>, acked: &mut Vec<Acked>) {
    let (mut logged, mut lost) = (0, 0);
    for InFlight { event, text } in in_flight {
        let reply = http.post_json("/v1/deposits", &deposit_body(&event.envelope, &text));
        match reply.status {
            200 => logged += 1,
            201 => lost += 1,
            _ => panic!("a deposit retried after the crash was refused: {} {}", reply.status, reply.body),
        }
        let receipt: Receipt = serde_json::from_str(&reply.body).expect("receipt");
        acked.push(Acked { text, receipt });
    }
    eprintln!("  retried in-flight deposits: {logged} had been logged, {lost} had not");
}

/// Every acknowledged deposit is in the restarted node at its log index, with the same receipt,
/// and that receipt verifies offline with the commons' key and the text.
fn check_all(http: &Http, acked: &[Acked], log: &substrate_tlog::NoteVerifier) {
    let size = http.log_size();
    if let Some(max) = acked.iter().map(|a| a.receipt.log_index).max() {
        assert!(size > max, "the log has {size} entries but entry {max} was acknowledged");
    }
    let per = acked.len().div_ceil(CLIENTS).max(1);
    std::thread::scope(|scope| {
        for part in acked.chunks(per) {
            scope.spawn(move || {
                for a in part {
                    let cid = Cid::of(&a.text).to_string();
                    let shown = http.get(&format!("/v1/deposits/{cid}"));
                    assert_eq!(shown.status, 200, "acknowledged deposit {cid} is lost: {}", shown.body);
                    let shown = shown.json();
                    assert_eq!(shown["deposit"]["log_index"], a.receipt.log_index, "{cid} moved");
                    let served: Receipt = serde_json::from_value(shown["receipt"].clone()).expect("receipt");
                    assert_eq!(served, a.receipt, "the node now serves another receipt for {cid}");
                    a.receipt
                        .verify(log, Some(&a.text))
                        .unwrap_or_else(|e| panic!("the acknowledged receipt of {cid} does not verify: {e}"));
                }
            });
        }
    });
}

fn assert_replays(commons: &Commons, when: &str) -> String {
    let out = commons.replay("--check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay --check {when} failed on {}:\n{stdout}{}",
        path(&commons.data),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn acknowledged_deposits_survive_sigkill() {
    let started = Instant::now();
    let commons = Commons::init("crash commons");
    let log = commons.verifier();
    let mut acked: Vec<Acked> = Vec::new();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut daemon = commons.start();
    for round in 0..ROUNDS {
        let http = daemon.http();
        retry(&http, std::mem::take(&mut in_flight), &mut acked);
        check_all(&http, &acked, &log);

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (http, stop) = (Http::new(&http.base), Arc::clone(&stop));
                std::thread::spawn(move || client(http, round, c, stop))
            })
            .collect();
        // Let the load run for a random while, then kill the daemon mid-flight.
        let load = Duration::from_millis(200 + rand_core::OsRng.next_u64() % 601);
        std::thread::sleep(load);
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        let before = acked.len();
        for handle in clients {
            let run = handle.join().expect("client thread");
            acked.extend(run.acked);
            in_flight.extend(run.in_flight);
            if let Some(error) = run.error {
                panic!("round {round}: a live node refused a valid deposit: {error}");
            }
        }
        let this_round = acked.len() - before;
        eprintln!(
            "round {round}: killed after {load:?}, {this_round} deposits acknowledged, {} in flight",
            in_flight.len()
        );
        assert!(this_round > 0, "round {round}: nothing was acknowledged in {load:?}");

        // The crashed directory is consistent as it is, before any node reopens it.
        assert_replays(&commons, &format!("after crash {round}"));
        daemon = commons.start();
    }
    let http = daemon.http();
    retry(&http, std::mem::take(&mut in_flight), &mut acked);
    check_all(&http, &acked, &log);
    let size = http.log_size();
    daemon.stop();

    let stdout = assert_replays(&commons, "at the end");
    assert!(stdout.starts_with(&format!("replay ok: {size} entries")), "{stdout}");
    let deposits = acked.len();
    assert!(
        stdout.contains(&format!("{deposits} deposits (0 withdrawn, 0 removed)")),
        "every deposit logged was acknowledged: {stdout}"
    );
    eprintln!(
        "{deposits} deposits acknowledged over {ROUNDS} crashes; log size {size}; took {:?}",
        started.elapsed()
    );
}

/// `replay --check` on a node that is serving (SQLite WAL lets it read alongside the writer) must
/// judge one consistent snapshot, not report the deposits written meanwhile as tampering.
#[test]
fn replay_check_passes_while_the_node_takes_deposits() {
    let commons = Commons::init("busy commons");
    let daemon = commons.start();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|c| {
            let (http, stop) = (daemon.http(), Arc::clone(&stop));
            std::thread::spawn(move || client(http, 0, c, stop))
        })
        .collect();
    let mut failures = Vec::new();
    for attempt in 0..30 {
        let out = commons.replay("--check");
        if !out.status.success() {
            failures.push(format!("attempt {attempt}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for handle in writers {
        let run = handle.join().expect("writer");
        assert!(run.error.is_none() && run.in_flight.is_none(), "{:?}", run.error);
        written += run.acked.len();
    }
    assert!(written > 0, "no deposits were written during the replays");
    eprintln!("{written} deposits written during 30 replays");
    assert!(
        failures.is_empty(),
        "replay --check failed on a live, untampered node:\n{}",
        failures.join("\n")
    );
    daemon.stop();
    assert_replays(&commons, "after the load");
}
