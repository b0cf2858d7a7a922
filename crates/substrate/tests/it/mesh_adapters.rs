//! Published adapters replicate to mirrors: an adapter trained and uploaded to the sequencer
//! reaches a mirror's registry over the mesh, file by file, each accepted only as the log and the
//! attestation say, and the mirror serves it to `adapters pull` as the sequencer would. Files that
//! reach the sequencer after the log publishes their adapter are asked for again, not in a loop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use substrate_core::{ConsentTier, SignedEvent};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Daemon, deposit_event, field, new_key, ok, path};

/// How long the mirror may take to hold the whole adapter. A file still on its way to the
/// sequencer when the mirror first asks for it is asked for again a few seconds later.
const DEADLINE: Duration = Duration::from_secs(120);

/// Waits until `probe` gives `Ok`, polling; fails with `what` and the last error after `DEADLINE`.
fn until<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("timed out waiting for {what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The files directly in `dir`, by name, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_adapter_published_on_the_sequencer_replicates_to_a_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path();
    let steward = tmp.path().join("steward.json");
    let (did, _) = ok(&["id", "new", "--key", path(&steward)]);
    let steward = path(&steward);
    let dir = |node: &str| -> PathBuf { tmp.path().join(node) };
    let (out, _) = ok(&[
        "init",
        "--data-dir",
        path(&dir("sequencer")),
        "--name",
        "Adapter Mesh",
        "--voting-window",
        "3s",
        "--steward",
        did.trim(),
    ]);
    let vkey = field(&out, "log key:");
    ok(&["init", "--data-dir", path(&dir("mirror")), "--mirror-of", &vkey]);
    for node in ["sequencer", "mirror"] {
        ok(&["id", "new", "--kind", "node", "--key", path(&dir(node).join("node.key"))]);
    }
    let model = tiny::llama(tmp.path(), 7, GgmlDType::F32).unwrap().path;

    let (sequencer, sequencer_p2p) = Daemon::start_mesh(&dir("sequencer"), logs, &[]);
    let seq = sequencer.http();
    for node in ["sequencer", "mirror"] {
        let key = dir(node).join("node.key");
        ok(&["node-register", "--node-key", path(&key), "--key", steward, "--node", &seq.base]);
    }
    let (mirror, _) = Daemon::start_mesh(&dir("mirror"), logs, &[&sequencer_p2p]);
    let m = mirror.http();

    // Texts in two registers, and a decided mixture over them.
    for (n, register) in ["narrative", "oral"].iter().cycle().take(6).enumerate() {
        let text = format!("Text {n} of the {register} kind: the mill wheel turned while we sang.");
        let event =
            SignedEvent::sign(deposit_event(text.as_bytes(), register, ConsentTier::Public), &new_key());
        seq.deposit(&event, text.as_bytes());
    }
    let (proposed, _) = ok(&[
        "propose",
        "--title",
        "Told and sung",
        "--set-mixture",
        "narrative=0.5,oral=0.5",
        "--key",
        steward,
        "--node",
        &seq.base,
    ]);
    let proposal = proposed.split_whitespace().nth(1).unwrap().to_owned();
    ok(&["vote", &proposal, "yes", "--key", steward, "--node", &seq.base]);
    until("the mixture to be decided", || {
        let mixture = seq.get("/v1/mixture").json();
        if mixture["current"].is_null() { Err(mixture.to_string()) } else { Ok(()) }
    });

    // Trained on the sequencer's data, recorded in its log and uploaded to it.
    let sequencer_data = dir("sequencer");
    let train = |out: &Path, steps: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data-dir",
            path(&sequencer_data),
            "--model",
            path(&model),
            "--out",
            path(out),
            "--steps",
            steps,
            "--node",
            &seq.base,
            "--batch",
            "2",
            "--seq-len",
            "32",
            "--save-every",
            "4",
            "--rank",
            "4",
        ];
        args.extend(extra);
        ok(&args).0
    };
    let trained = tmp.path().join("adapter");
    let started = Instant::now();
    let stdout = train(&trained, "8", &[]);
    let id: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("adapter ")?.split_once(": recorded in the log")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no publication in:\n{stdout}"));
    assert!(stdout.contains("complete"), "the sequencer holds only part of the adapter:\n{stdout}");
    eprintln!("trained and published adapter {id} in {:?}", started.elapsed());

    // The mirror fetches every file from the sequencer and its registry accepts each.
    let replicated = Instant::now();
    let shown = until(&format!("the mirror to hold adapter {id} whole"), || {
        let reply = m.get(&format!("/v1/adapters/{id}"));
        let body = if reply.status == 200 { reply.json() } else { return Err(reply.body) };
        if body["filesComplete"] == true { Ok(body) } else { Err(body.to_string()) }
    });
    eprintln!("the mirror held adapter {id} whole {:?} after it was published", replicated.elapsed());
    assert_eq!(shown["id"].as_u64(), Some(id), "{shown}");
    let stored = |node: &str, id: u64| files(&dir(node).join("registry").join(id.to_string()));
    let (on_sequencer, on_mirror) = (stored("sequencer", id), stored("mirror", id));
    assert!(on_sequencer.len() > 3, "{:?}", on_sequencer.iter().map(|(n, _)| n).collect::<Vec<_>>());
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&on_mirror), names(&on_sequencer));
    for ((name, mirrored), (_, original)) in on_mirror.iter().zip(&on_sequencer) {
        assert!(mirrored == original, "{name} on the mirror differs from the sequencer's");
    }
    let metrics = m.get("/metrics").body;
    let kept = metrics
        .lines()
        .find_map(|l| l.strip_prefix("substrate_adapter_files_kept_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no substrate_adapter_files_kept_total:\n{metrics}"));
    assert_eq!(kept as usize, on_mirror.len(), "{metrics}");

    // Pulled from the mirror, the adapter verifies, against the mirror's own log too.
    let pulled = tmp.path().join("pulled");
    let (stdout, _) = ok(&["adapters", "pull", &id.to_string(), "--node", &m.base, "--out", path(&pulled)]);
    assert!(stdout.contains("signature and attestation verified"), "{stdout}");
    ok(&["adapters", "verify", path(&pulled)]);
    ok(&["adapters", "verify", path(&pulled), "--data-dir", path(&dir("mirror"))]);
    assert_eq!(names(&files(&pulled)), names(&on_sequencer));
    for (name, bytes) in files(&pulled) {
        assert!(bytes == std::fs::read(trained.join(&name)).unwrap(), "{name} differs from what was trained");
    }

    // An adapter in the log whose files reach the sequencer only later: the mirror is refused,
    // asks again a few seconds later rather than in a loop, and then holds it too.
    let refusal = "an adapter file was not sent";
    let refused_before = mirror.log_text().matches(refusal).count();
    let late = tmp.path().join("late");
    let stdout = train(&late, "4", &["--no-publish"]);
    assert!(stdout.contains("not published (--no-publish)"), "{stdout}");
    let node_key = std::fs::read_to_string(dir("sequencer").join("node.key")).unwrap();
    let (_, node_key) = substrate_core::identity::KeyFile::parse(&node_key).unwrap();
    let (_, publication) = substrate_training::registry::publication(&late, "later".into()).unwrap();
    let signed = SignedEvent::sign(substrate_core::event::Event::Adapter(publication), &node_key);
    let logged = seq.post_json("/v1/events", &serde_json::json!({"envelope": signed.envelope}));
    assert_eq!(logged.status, 201, "{}", logged.body);
    let late_id = logged.json()["log_index"].as_u64().unwrap();
    until("the mirror to be refused the late adapter's attestation", || {
        let refused = mirror.log_text().matches(refusal).count();
        if refused > refused_before { Ok(()) } else { Err("no refusal logged yet".into()) }
    });
    let shown = m.get(&format!("/v1/adapters/{late_id}")).json();
    assert_eq!(shown["filesComplete"], false, "{shown}");
    let key = dir("sequencer").join("node.key");
    let (stdout, _) =
        ok(&["adapters", "publish", path(&late), "--node-key", path(&key), "--node", &seq.base]);
    assert!(stdout.contains("complete"), "{stdout}");
    let uploaded = Instant::now();
    until(&format!("the mirror to hold adapter {late_id} whole"), || {
        let body = m.get(&format!("/v1/adapters/{late_id}")).json();
        if body["filesComplete"] == true { Ok(()) } else { Err(body.to_string()) }
    });
    eprintln!("the mirror held adapter {late_id} whole {:?} after its upload", uploaded.elapsed());
    let (on_sequencer, on_mirror) = (stored("sequencer", late_id), stored("mirror", late_id));
    assert_eq!(names(&on_mirror), names(&on_sequencer));
    assert!(on_mirror == on_sequencer, "the late adapter's files on the mirror differ from the sequencer's");
    let refusals = mirror.log_text().matches(refusal).count() - refused_before;
    assert!(refusals <= 3, "the mirror asked {refusals} times for a file its source did not hold");
}
