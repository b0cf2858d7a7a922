//! Interop with a libp2p written by others: a js-libp2p peer (`.ci/interop/js-libp2p/peer.mjs`,
//! its packages and a Node 22 from the npm registry, installed by the `install` script beside it)
//! holding a registered node key dials a real sequencer on 127.0.0.1 over TCP + Noise + Yamux,
//! runs identify and ping, and hears the log key's checkpoints over gossipsub; a peer whose key
//! the ledger does not register gets no session.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_tlog::{Checkpoint, NoteVerifier};

use crate::util::{Daemon, Http, field, new_key, ok, path, signed_deposit};

/// How long one run of the peer may take, its own retries and timeouts included.
const PEER_DEADLINE: Duration = Duration::from_secs(45);

/// The installed peer: the Node 22 binary and the directory holding `peer.mjs` and its packages.
struct JsPeer {
    node: PathBuf,
    dir: PathBuf,
}

/// Runs the (idempotent, cached) install script. `None` only when it says npm or Node 22 cannot be
/// had on this machine (exit status 2); any other failure fails the test.
fn install() -> Option<JsPeer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/interop/js-libp2p/install");
    let out = Command::new("bash").arg(&script).stdin(Stdio::null()).output().expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        eprintln!("skipped: the js-libp2p peer cannot be installed here (npm or Node 22 missing):\n{stderr}");
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} failed ({}):\n{stdout}{stderr}", script.display(), out.status);
    Some(JsPeer { node: field(&stdout, "node:").into(), dir: field(&stdout, "peer:").into() })
}

/// A commons with a steward and the sequencer's node key, and one more node key for the JS peer.
struct Interop {
    tmp: tempfile::TempDir,
    steward: PathBuf,
    data: PathBuf,
    verifier: NoteVerifier,
    js_key: PathBuf,
    /// The libp2p PeerId the JS peer must have: the one of `js_key`'s did:key.
    js_peer: String,
}

impl Interop {
    fn found() -> Interop {
        let tmp = tempfile::tempdir().expect("tempdir");
        let steward = tmp.path().join("steward.json");
        let (did, _) = ok(&["id", "new", "--key", path(&steward)]);
        let data = tmp.path().join("sequencer");
        let (out, _) = ok(&["init", "--data-dir", path(&data), "--name", "Interop", "--steward", did.trim()]);
        let verifier = NoteVerifier::from_vkey(&field(&out, "log key:")).expect("log key");
        ok(&["id", "new", "--kind", "node", "--key", path(&data.join("node.key"))]);
        let js_key = tmp.path().join("js.key");
        let (js_did, _) = ok(&["id", "new", "--kind", "node", "--key", path(&js_key)]);
        let js_peer = substrate_mesh::peer_id_of(js_did.trim()).expect("an Ed25519 did:key").to_string();
        Interop { tmp, steward, data, verifier, js_key, js_peer }
    }

    /// The gossipsub topic of this commons' checkpoints: named by the log key's origin.
    fn topic(&self) -> String {
        format!("/substrate/checkpoints/1/{}", self.verifier.name())
    }

    fn register(&self, node_key: &Path, node: &Http) {
        ok(&[
            "node-register",
            "--node-key",
            path(node_key),
            "--key",
            path(&self.steward),
            "--node",
            &node.base,
        ]);
    }
}

/// The node's latest checkpoint, verified with the log key.
fn checkpoint(http: &Http, verifier: &NoteVerifier) -> Checkpoint {
    let reply = http.get("/v1/log/checkpoint");
    assert_eq!(reply.status, 200, "{}", reply.body);
    Checkpoint::open(&reply.body, verifier).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

/// The JS peer as a child process; killed when dropped.
struct PeerProcess(Child);

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one run of the peer printed: its JSON line, whether it exited successfully, its stderr.
struct PeerRun {
    report: Value,
    success: bool,
    stderr: String,
}

/// Runs `peer.mjs ARGS` with the installed Node, calling `on_progress` with each line it writes
/// to stderr as it goes (so the test can act once the peer reached a step).
fn run_peer(js: &JsPeer, args: &[&str], mut on_progress: impl FnMut(&str)) -> PeerRun {
    let child = Command::new(&js.node)
        .arg("peer.mjs")
        .args(args)
        .current_dir(&js.dir)
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the js-libp2p peer");
    let mut child = PeerProcess(child);
    let mut stdout = child.0.stdout.take().expect("stdout pipe");
    let stderr = BufReader::new(child.0.stderr.take().expect("stderr pipe"));
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PEER_DEADLINE;
    let mut progress = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                on_progress(&line);
                progress.push_str(&line);
                progress.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the js-libp2p peer did not finish within {PEER_DEADLINE:?}:\n{progress}")
            }
        }
    }
    let status = child.0.wait().expect("wait for the js-libp2p peer");
    let stdout = reader.join().expect("stdout reader").expect("read the peer's stdout");
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the peer printed no JSON line ({e}): {stdout:?}\n{progress}"));
    PeerRun { report, success: status.success(), stderr: progress }
}

/// The checkpoint note in a message the peer received, opened with the log key.
fn opened(message: &Value, verifier: &NoteVerifier) -> Checkpoint {
    let note = message["text"].as_str().unwrap_or_else(|| panic!("no text in {message}"));
    Checkpoint::open(note, verifier)
        .unwrap_or_else(|e| panic!("not a checkpoint the log key signed ({e}): {note:?}"))
}

#[test]
fn a_js_libp2p_peer_identifies_pings_and_hears_the_checkpoints() {
    let Some(js) = install() else { return };
    let interop = Interop::found();
    let (daemon, address) = Daemon::start_mesh(&interop.data, interop.tmp.path(), &[]);
    let http = daemon.http();
    let (_, sequencer_peer) = address.rsplit_once("/p2p/").expect("a /p2p/ address");
    interop.register(&interop.js_key, &http);
    let before = checkpoint(&http, &interop.verifier);

    // The first message is the head the node re-announces when the peer subscribes; once it has
    // arrived, a deposit makes the node announce the next one.
    let mut deposited = None;
    let run = run_peer(
        &js,
        &["--addr", &address, "--topic", &interop.topic(), "--key", path(&interop.js_key), "--messages", "2"],
        |line| {
            if line.starts_with("peer: message 1 on") {
                let text = b"A story told to a peer written by others.\n";
                let receipt = http.deposit(&signed_deposit(&new_key(), text), text);
                deposited = Some(receipt);
            }
        },
    );
    let report = &run.report;
    assert!(run.success && report["ok"] == true, "the peer failed: {report}\n{}", run.stderr);
    eprintln!("js-libp2p peer observed: {report}");
    assert!(deposited.is_some(), "the peer never reported its first message:\n{}", run.stderr);

    // Identify: who answered, and what it speaks; and the JS side took the node key's identity.
    assert_eq!(report["local_peer"], interop.js_peer.as_str(), "{report}");
    assert_eq!(report["remote_peer"], sequencer_peer, "{report}");
    let agent = report["identify"]["agent_version"].as_str().unwrap_or_default();
    assert!(agent.starts_with("substrate/") && agent.ends_with(" sequencer"), "agent version {agent:?}");
    assert_eq!(report["identify"]["protocol_version"], "/substrate/1", "{report}");
    let protocols: Vec<&str> = report["identify"]["protocols"]
        .as_array()
        .unwrap_or_else(|| panic!("no protocols: {report}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in
        ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/meshsub/1.1.0", "/substrate/log/1", "/substrate/submit/1"]
    {
        assert!(protocols.contains(&wanted), "{wanted} not in the identified protocols {protocols:?}");
    }

    // Ping.
    let rtt = report["ping_rtt_ms"].as_f64().unwrap_or_else(|| panic!("no ping RTT: {report}"));
    assert!((0.0..5000.0).contains(&rtt), "ping RTT {rtt} ms");

    // Gossipsub: both messages signed by the sequencer's libp2p key, each carrying a checkpoint
    // the log key signed: first the head at subscription, then the one after the deposit.
    let messages = report["messages"].as_array().unwrap_or_else(|| panic!("no messages: {report}"));
    assert_eq!(messages.len(), 2, "{report}");
    for message in messages {
        assert_eq!(message["signed"], true, "{message}");
        assert_eq!(message["from"], sequencer_peer, "{message}");
    }
    assert_eq!(report["message"], messages[0]["text"], "{report}");
    let (first, second) = (opened(&messages[0], &interop.verifier), opened(&messages[1], &interop.verifier));
    assert!(
        first.size >= before.size,
        "announced {} but the node held {} when the peer dialled",
        first.size,
        before.size
    );
    let now = checkpoint(&http, &interop.verifier);
    assert!(
        second.size > first.size,
        "the second checkpoint ({}) does not grow the first ({})",
        second.size,
        first.size
    );
    assert_eq!((second.size, second.root), (now.size, now.root), "the announced head is not the node's");
}

#[test]
fn a_js_libp2p_peer_whose_key_is_not_registered_gets_no_session() {
    let Some(js) = install() else { return };
    let interop = Interop::found();
    let (daemon, address) = Daemon::start_mesh(&interop.data, interop.tmp.path(), &[]);
    // Something is registered, so the allow-list has been computed from the ledger at least once
    // by the time the peer gives up; the JS key is not among it.
    let other = interop.tmp.path().join("other.key");
    ok(&["id", "new", "--kind", "node", "--key", path(&other)]);
    interop.register(&other, &daemon.http());

    let run = run_peer(
        &js,
        &[
            "--addr",
            &address,
            "--topic",
            &interop.topic(),
            "--key",
            path(&interop.js_key),
            "--connect-ms",
            "5000",
            "--timeout-ms",
            "1000",
        ],
        |_| {},
    );
    let report = &run.report;
    assert!(!run.success, "an unregistered peer completed a session: {report}\n{}", run.stderr);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["stage"], "session", "it failed for another reason: {report}\n{}", run.stderr);
}
