//! The mesh end to end: three real `substrate` processes (one sequencer, two mirrors) on
//! 127.0.0.1. Mirrors follow the log, forward what they are sent, cosign what they verify, hold
//! only the texts consent lets leave the sequencer, and survive being killed mid-sync; the
//! sequencer survives SIGKILL under load without losing an acknowledged entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_core::ConsentTier;
use substrate_core::receipt::Receipt;

use crate::util::{
    Daemon, Http, deposit_body, deposit_event, field, new_key, ok, path, signed_deposit, text,
};

/// How long replication may take before a test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `probe` gives `Some`, polling; fails with `what` and the last value after
/// [`DEADLINE`].
fn until<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("timed out waiting for {what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// A commons with a steward, its sequencer's data directory and two prepared mirrors, each with
/// a registered node key. Nothing is served until a test starts the nodes.
struct Mesh {
    tmp: tempfile::TempDir,
    steward: PathBuf,
    vkey: String,
}

impl Mesh {
    fn dir(&self, node: &str) -> PathBuf {
        self.tmp.path().join(node)
    }

    fn logs(&self) -> &Path {
        self.tmp.path()
    }

    fn found() -> Mesh {
        let tmp = tempfile::tempdir().expect("tempdir");
        let steward = tmp.path().join("steward.json");
        let (did, _) = ok(&["id", "new", "--key", path(&steward)]);
        let sequencer = tmp.path().join("sequencer");
        let (out, _) =
            ok(&["init", "--data-dir", path(&sequencer), "--name", "Mesh Test", "--steward", did.trim()]);
        let vkey = field(&out, "log key:");
        let mesh = Mesh { tmp, steward, vkey };
        for mirror in ["mirror-1", "mirror-2"] {
            let (out, _) = ok(&["init", "--data-dir", path(&mesh.dir(mirror)), "--mirror-of", &mesh.vkey]);
            assert!(out.starts_with("prepared a mirror in "), "{out}");
        }
        for node in ["sequencer", "mirror-1", "mirror-2"] {
            let key = mesh.dir(node).join("node.key");
            let (did, _) = ok(&["id", "new", "--kind", "node", "--key", path(&key)]);
            assert!(did.trim().starts_with("did:key:z6Mk"), "{did}");
        }
        mesh
    }

    /// Registers every node key with the steward as operator, through `node`.
    fn register_nodes(&self, node: &str) {
        for name in ["sequencer", "mirror-1", "mirror-2"] {
            let key = self.dir(name).join("node.key");
            ok(&["node-register", "--node-key", path(&key), "--key", path(&self.steward), "--node", node]);
        }
    }

    fn start(&self, node: &str, bootstrap: &[&str]) -> (Daemon, String) {
        Daemon::start_mesh(&self.dir(node), self.logs(), bootstrap)
    }
}

/// `GET /v1/peers` of a node.
fn peers(http: &Http) -> Value {
    let reply = http.get("/v1/peers");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Waits until the node at `http` is connected to the sequencer and knows it as such (identify),
/// which is when it can forward what it is sent.
fn reaches_sequencer(http: &Http) {
    until(&format!("{} to reach the sequencer", http.base), || {
        let view = peers(http);
        let sequencers =
            view["peers"].as_array().map_or(0, |p| p.iter().filter(|p| p["role"] == "sequencer").count());
        if sequencers == 1 { Ok(()) } else { Err(view.to_string()) }
    });
}

/// Waits until the node at `http` holds the log up to `size`.
fn holds(http: &Http, size: u64) {
    until(&format!("{} to hold {size} entries", http.base), || {
        let held = http.log_size();
        if held >= size { Ok(()) } else { Err(format!("holds {held}")) }
    });
}

/// The cosigners the sequencer kept for exactly `size`.
fn cosigners_at(http: &Http, size: u64) -> Vec<String> {
    let body = http.get("/v1/log/cosignatures").json();
    body["cosignatures"]
        .as_array()
        .expect("cosignatures")
        .iter()
        .filter(|c| c["size"] == size)
        .map(|c| c["cosigner"].as_str().expect("cosigner").to_owned())
        .collect()
}

fn did_of_key(file: &Path) -> String {
    ok(&["id", "show", "--key", path(file)]).0.trim().to_owned()
}

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    files
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn three_nodes_replicate_forward_cosign_and_keep_consent() {
    let mesh = Mesh::found();
    let (sequencer, sequencer_p2p) = mesh.start("sequencer", &[]);
    let seq = sequencer.http();
    mesh.register_nodes(&seq.base);
    let (mirror_1, _) = mesh.start("mirror-1", &[&sequencer_p2p]);
    let (mirror_2, _) = mesh.start("mirror-2", &[&sequencer_p2p]);
    let (m1, m2) = (mirror_1.http(), mirror_2.http());
    reaches_sequencer(&m1);

    // A deposit sent to a mirror is forwarded; the receipt comes back through it and verifies
    // offline against the commons' key.
    let story = mesh.tmp.path().join("story.txt");
    std::fs::write(&story, b"The bread rose overnight while we told the old stories.\n").expect("write");
    let receipt = mesh.tmp.path().join("story.receipt.json");
    let (out, _) = ok(&[
        "deposit",
        path(&story),
        "--register",
        "oral",
        "--consent",
        "public",
        "--title",
        "Overnight",
        "--lang",
        "en",
        "--license",
        "CC-BY-4.0",
        "--key",
        path(&mesh.steward),
        "--node",
        &m1.base,
        "--receipt",
        path(&receipt),
    ]);
    let index: u64 = field(&out, "log index:").parse().expect("index");
    let (out, _) = ok(&["verify", path(&receipt), "--commons-key", &mesh.vkey, "--content", path(&story)]);
    assert!(out.starts_with("receipt verifies"), "{out}");

    // Texts under each tier, straight to the sequencer.
    let key = new_key();
    let public = text("a public text that replicates", 300);
    let commons = text("a commons text for member mirrors", 300);
    let training = text("a TRAINING-ONLY secret 5f3c0a that never replicates", 300);
    let local = text("a LOCAL secret 91d2be that never leaves its node", 300);
    for (body, consent) in [
        (&public, ConsentTier::Public),
        (&commons, ConsentTier::Commons),
        (&training, ConsentTier::TrainingOnly),
        (&local, ConsentTier::Local),
    ] {
        let event = substrate_core::SignedEvent::sign(deposit_event(body, "narrative", consent), &key);
        seq.deposit(&event, body);
    }
    let size = seq.log_size();
    assert!(size > index + 4, "log size {size}");

    // Both mirrors hold the whole log, verified, and cosign its checkpoint.
    holds(&m1, size);
    holds(&m2, size);
    let mirror_dids = [
        did_of_key(&mesh.dir("mirror-1").join("node.key")),
        did_of_key(&mesh.dir("mirror-2").join("node.key")),
    ];
    until("both mirrors to cosign the final checkpoint", || {
        let cosigners = cosigners_at(&seq, size);
        if mirror_dids.iter().all(|d| cosigners.contains(d)) { Ok(()) } else { Err(format!("{cosigners:?}")) }
    });
    let (out, err) = ok(&["ledger", "checkpoint", "--node", &seq.base, "--commons-key", &mesh.vkey]);
    for did in &mirror_dids {
        assert!(out.contains(&format!("— {did} ")), "no cosignature line for {did}:\n{out}");
        assert!(err.contains(did.as_str()), "{did} not listed as a cosigner:\n{err}");
    }
    let cosigned = mesh.tmp.path().join("cosigned.note");
    std::fs::write(&cosigned, &out).expect("write");

    // A receipt witnessed by both mirrors: its proof leads to a checkpoint carrying their
    // cosignatures, which `verify` checks offline against the witnesses named.
    let (witnessed, _) = ok(&["receipt", &index.to_string(), "--witnessed", "--node", &seq.base]);
    let witnessed_path = mesh.tmp.path().join("witnessed.json");
    std::fs::write(&witnessed_path, &witnessed).expect("write");
    fn verify<'a>(file: &'a Path, vkey: &'a str, witnesses: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["verify", path(file), "--commons-key", vkey];
        args.extend(witnesses.iter().flat_map(|w| ["--witness", *w]));
        args
    }
    let both = [mirror_dids[0].as_str(), mirror_dids[1].as_str()];
    let (out, _) = ok(&verify(&witnessed_path, &mesh.vkey, &both));
    assert!(out.contains("witnesses:  ok, cosigned by 2 of 2 named"), "{out}");
    let err =
        crate::util::fails(&[verify(&witnessed_path, &mesh.vkey, &both), vec!["--witnesses", "3"]].concat());
    assert!(err.contains("asks for more witnesses"), "{err}");
    // A witness that did not cosign, and a receipt fetched without its witnesses, fall short.
    let stranger = substrate_core::identity::did_of(&new_key().verifying_key());
    let err = crate::util::fails(&verify(&witnessed_path, &mesh.vkey, &[&stranger]));
    assert!(err.contains("cosigned by 0 of the witnesses named"), "{err}");
    let err = crate::util::fails(&verify(&receipt, &mesh.vkey, &both[..1]));
    assert!(err.contains("does NOT verify") && err.contains("--witnessed"), "{err}");
    // Tampering with a cosignature line is caught.
    let line = format!("\u{2014} {} ", mirror_dids[0]);
    let forged = witnessed.replacen(&line, &format!("{line}A"), 1);
    assert_ne!(forged, witnessed, "no cosignature line by {} in:\n{witnessed}", mirror_dids[0]);
    let forged_path = mesh.tmp.path().join("forged-witness.json");
    std::fs::write(&forged_path, &forged).expect("write");
    let _ = crate::util::fails(&verify(&forged_path, &mesh.vkey, &both));

    // A mirror serves reads of everything it holds: the same checkpoint, entries and receipts.
    let checkpoint = |http: &Http| http.get("/v1/log/checkpoint").body;
    until("the mirror to hold the same checkpoint", || {
        let (a, b) = (checkpoint(&m1), checkpoint(&seq));
        if a == b { Ok(()) } else { Err(format!("mirror {a:?} vs sequencer {b:?}")) }
    });
    let from_mirror: Receipt = m2.get(&format!("/v1/receipts/{index}")).json_as();
    assert_eq!(from_mirror.log_index, index);

    // Texts: public and commons replicate to member mirrors; training-only and local never do,
    // not as a blob, not in the database, not anywhere on the mirror's disk.
    for http in [&m1, &m2] {
        for (body, name) in [(&public, "public"), (&commons, "commons")] {
            let cid = substrate_core::Cid::of(body).to_string();
            until(&format!("the {name} text on {}", http.base), || {
                let dir = if http.base == m1.base { mesh.dir("mirror-1") } else { mesh.dir("mirror-2") };
                if every_file(&dir).iter().any(|(_, bytes)| contains(bytes, body)) {
                    Ok(())
                } else {
                    Err(format!("{cid} not on disk yet"))
                }
            });
        }
    }
    // …and serves the public one as the sequencer does.
    let content = m2.get(&format!("/v1/deposits/{}/content", substrate_core::Cid::of(&public)));
    assert_eq!(content.status, 200, "{}", content.body);
    assert_eq!(content.body.as_bytes(), &public[..]);
    // A mirror that holds an entry without its text (not fetched yet) says so: 404, not a 500.
    let (blob, _) = every_file(&mesh.dir("mirror-2"))
        .into_iter()
        .find(|(path, bytes)| bytes[..] == public[..] && path.components().any(|c| c.as_os_str() == "blobs"))
        .expect("the public text as a blob on mirror-2");
    std::fs::remove_file(&blob).expect("remove the blob");
    let missing = m2.get(&format!("/v1/deposits/{}/content", substrate_core::Cid::of(&public)));
    let detail = missing.error(404, "not_replicated");
    assert!(detail.contains("not here yet"), "{detail}");
    std::fs::write(&blob, &public).expect("put the blob back");
    for mirror in ["mirror-1", "mirror-2"] {
        for (path, bytes) in every_file(&mesh.dir(mirror)) {
            for secret in [&training[..], &local[..], b"5f3c0a", b"91d2be"] {
                assert!(!contains(&bytes, secret), "{} holds a text that must not replicate", path.display());
            }
        }
    }

    // `peers` on a mirror names the sequencer, its height and its lag.
    let view = peers(&m1);
    assert_eq!(view["role"], "mirror", "{view}");
    assert_eq!(view["height"], size, "{view}");
    let (out, _) = ok(&["peers", "--node", &m1.base]);
    assert!(out.starts_with("this node: mirror "), "{out}");
    let sequencer_id = peers(&seq)["peerId"].as_str().expect("peer id").to_owned();
    let line = out.lines().find(|l| l.starts_with(&sequencer_id)).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("sequencer"), "{line}");
    let view = peers(&seq);
    assert_eq!(view["peers"].as_array().expect("peers").len(), 2, "{view}");

    // Metrics in the Prometheus text format: ours, libp2p's and gossipsub's.
    let metrics = m1.get("/metrics");
    assert_eq!(metrics.status, 200);
    for name in [
        "substrate_log_height",
        "substrate_replication_lag",
        "substrate_entries_verified_total",
        "substrate_checkpoints_cosigned_total",
        "libp2p_gossipsub",
        "libp2p_identify",
    ] {
        assert!(metrics.body.contains(name), "no {name} in /metrics:\n{}", metrics.body);
    }
    // A healthy start is quiet: no range refused and no peer's message dropped on any node (a
    // cosignature by a node registered in entries not kept yet is not tampering).
    for (name, http) in [("sequencer", &seq), ("mirror-1", &m1), ("mirror-2", &m2)] {
        let body = http.get("/metrics").body;
        let rejected = body
            .lines()
            .find_map(|l| l.strip_prefix("substrate_ranges_rejected_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(rejected, Some(0.0), "{name} counted rejections on a healthy start:\n{body}");
    }
    let served = seq.get("/metrics").body;
    let bytes_served = served
        .lines()
        .find_map(|l| l.strip_prefix("substrate_bytes_served_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no substrate_bytes_served_total:\n{served}"));
    assert!(bytes_served > 0.0, "{served}");

    // A mirror's own ledger replays to the same state the checkpoints commit to.
    drop(mirror_1);
    let out =
        crate::util::run(&["ledger", "replay", "--check", "--data-dir", path(&mesh.dir("mirror-1"))], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(mirror_2);
    drop(sequencer);
}

trait JsonAs {
    fn json_as<T: serde::de::DeserializeOwned>(&self) -> T;
}

impl JsonAs for crate::util::Reply {
    fn json_as<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("unexpected body ({e}): {}", self.body))
    }
}

/// Posts distinct public deposits to `http` from one client until `stop`; returns the receipts it
/// got, and stops at the first failure (the node was killed).
fn load(http: Http, stop: Arc<AtomicBool>, tag: usize) -> Vec<(Vec<u8>, Receipt)> {
    let key = new_key();
    let mut acked = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let body = text(&format!("load {tag} deposit {n} {}", rand_tag()), 256);
        let event = signed_deposit(&key, &body);
        let request = serde_json::to_vec(&deposit_body(&event.envelope, &body)).expect("json");
        match http.try_post("/v1/deposits", &request) {
            Ok(reply) if reply.status == 201 => acked.push((body, reply.json_as())),
            _ => break,
        }
    }
    acked
}

fn rand_tag() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

#[test]
fn a_mirror_killed_mid_sync_and_a_sequencer_killed_under_load_lose_nothing() {
    let mesh = Mesh::found();
    let (sequencer, sequencer_p2p) = mesh.start("sequencer", &[]);
    let seq = sequencer.http();
    mesh.register_nodes(&seq.base);

    // A log long enough that a fresh mirror takes several ranges to catch up.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|tag| {
            let (http, stop) = (seq.clone(), Arc::clone(&stop));
            std::thread::spawn(move || load(http, stop, tag))
        })
        .collect();
    until("the log to pass 3,000 entries", || {
        let size = seq.log_size();
        if size >= 3_000 { Ok(()) } else { Err(format!("{size}")) }
    });
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<_> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    let size = seq.log_size();

    // The mirror is killed as soon as it holds part of the log, then restarted: it resumes from
    // what it kept and catches up. Small steps make "part of the log" a wide window.
    let config = mesh.dir("mirror-1").join("substrate.toml");
    let text = std::fs::read_to_string(&config).expect("the mirror's config");
    assert!(text.contains("\n[mesh]\n"), "{text}");
    std::fs::write(&config, text.replace("\n[mesh]\n", "\n[mesh]\nsync_step = 256\n")).expect("write config");
    let (mirror, _) = mesh.start("mirror-1", &[&sequencer_p2p]);
    let m1 = mirror.http();
    // Polled without pause: a whole sync of this log takes well under a second.
    let deadline = Instant::now() + DEADLINE;
    let partial = loop {
        let held = m1.log_size();
        if held > 1 {
            break held;
        }
        assert!(Instant::now() < deadline, "the mirror never started to sync:\n{}", mirror.log_text());
    };
    mirror.kill();
    assert!(partial < size, "the mirror had caught up ({partial} entries) before it could be killed");
    eprintln!("the mirror was killed holding {partial} of {size} entries");
    let (mirror, _) = mesh.start("mirror-1", &[&sequencer_p2p]);
    let m1 = mirror.http();
    let resumed = m1.log_size();
    assert!(resumed >= partial, "the mirror kept {partial} entries before SIGKILL but holds {resumed}");
    holds(&m1, size);

    // The sequencer is SIGKILLed under load, through the mirror too (forwarded deposits).
    reaches_sequencer(&m1);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|tag| {
            let http = if tag % 2 == 0 { seq.clone() } else { m1.clone() };
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || load(http, stop, 10 + tag))
        })
        .collect();
    until("more deposits under load", || {
        let now = seq.log_size();
        if now >= size + 200 { Ok(()) } else { Err(format!("{now}")) }
    });
    sequencer.kill();
    stop.store(true, Ordering::Relaxed);
    acked.extend(clients.into_iter().flat_map(|c| c.join().expect("client")));

    // Restarted on the same address the mirror dials, it holds every entry it acknowledged.
    let port = sequencer_p2p.split('/').nth(4).expect("port").to_owned();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let sequencer = Daemon::start_with(&mesh.dir("sequencer"), mesh.logs(), &["--p2p-listen", &listen]);
    let seq = sequencer.http();
    let size = seq.log_size();
    for (body, receipt) in &acked {
        assert!(
            receipt.log_index < size,
            "acknowledged entry {} is gone (log size {size})",
            receipt.log_index
        );
        let cid = substrate_core::Cid::of(body).to_string();
        let reply = seq.get(&format!("/v1/deposits/{cid}"));
        assert_eq!(reply.status, 200, "acknowledged deposit {cid} is gone: {}", reply.body);
    }
    // The mirror resumes and converges on the restarted sequencer's log.
    holds(&m1, size);
    let mirror_did = did_of_key(&mesh.dir("mirror-1").join("node.key"));
    until("the mirror to cosign the sequencer's head after the crash", || {
        let size = seq.log_size();
        let cosigners = cosigners_at(&seq, size);
        if cosigners.contains(&mirror_did) { Ok(()) } else { Err(format!("{cosigners:?} at {size}")) }
    });
}
