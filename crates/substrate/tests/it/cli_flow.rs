//! The whole flow through the command line against a real daemon: init, serve, id, deposit,
//! verify, show, withdraw, consent, ledger reads and replay.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::util::{Commons, fails, field, ok, ok_stdin, path, text};

const TITLE: &str = "The dough that breathes";

fn deposit_args<'a>(key: &'a str, node: &'a str, receipt: &'a str) -> Vec<&'a str> {
    vec![
        "deposit",
        "--register",
        "narrative",
        "--consent",
        "public",
        "--title",
        TITLE,
        "--lang",
        "en",
        "--license",
        "CC-BY-4.0",
        "--key",
        key,
        "--node",
        node,
        "--receipt",
        receipt,
    ]
}

/// Flips one bit of the first hash of a receipt's tlog-proof.
fn flip_proof_hash(receipt: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(receipt).expect("receipt json");
    let proof = json["proof"].as_str().expect("proof text").to_owned();
    let mut lines: Vec<String> = proof.split('\n').map(str::to_owned).collect();
    assert!(lines[0].starts_with("c2sp.org/tlog-proof@v1"), "{proof}");
    assert!(lines[1].starts_with("index "), "{proof}");
    let mut hash = STANDARD.decode(&lines[2]).unwrap_or_else(|e| panic!("no proof hash ({e}) in:\n{proof}"));
    assert_eq!(hash.len(), 32, "{proof}");
    hash[7] ^= 0x01;
    lines[2] = STANDARD.encode(&hash);
    json["proof"] = lines.join("\n").into();
    serde_json::to_string_pretty(&json).expect("json")
}

#[test]
fn the_cli_flow_from_init_to_replay() {
    let commons = Commons::init("e2e commons");
    assert!(commons.vkey.starts_with("substrate.local/e2e-commons+"), "{}", commons.vkey);
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    assert_eq!(http.log_size(), 1, "a new commons holds only its genesis");

    // Identities.
    let key_file = commons.file("alice.json");
    let key = path(&key_file);
    let (did, _) = ok(&["id", "new", "--key", key]);
    let did = did.trim().to_owned();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    assert_eq!(ok(&["id", "show", "--key", key]).0.trim(), did);
    let mallory_file = commons.file("mallory.json");
    ok(&["id", "new", "--key", path(&mallory_file)]);

    // Deposit from a file.
    let story_path = commons.file("story.txt");
    let story = text("My grandmother kept the recipe in her head, not on paper.", 600);
    std::fs::write(&story_path, &story).expect("write story");
    let receipt_path = commons.file("story.receipt.json");
    let mut args = deposit_args(key, node, path(&receipt_path));
    args.push(path(&story_path));
    let (out, _) = ok(&args);
    assert!(out.starts_with("deposited\n"), "{out}");
    let cid = field(&out, "cid:");
    let handle = field(&out, "handle:");
    assert!(cid.starts_with("bafkrei"), "{cid}");
    assert!(handle.ends_with("/1"), "the first deposit is entry 1: {handle}");
    assert_eq!(field(&out, "log index:"), "1");
    assert_eq!(field(&out, "signer:"), did);
    let receipt = std::fs::read_to_string(&receipt_path).expect("receipt saved");

    // The same text again (a new statement: its time differs): refused, naming the handle.
    let again_path = commons.file("again.receipt.json");
    let mut args = deposit_args(key, node, path(&again_path));
    args.push(path(&story_path));
    let err = fails(&args);
    assert!(err.contains("409 already_deposited") && err.contains(&handle), "{err}");
    assert!(!again_path.exists(), "no receipt is saved for a refused deposit");
    assert_eq!(http.log_size(), 2);

    // Deposit from stdin.
    let dialogue = text("Teacher: What makes a good question?", 300);
    let dialogue_receipt = commons.file("dialogue.receipt.json");
    let (out, _) = ok_stdin(&deposit_args(key, node, path(&dialogue_receipt)), Some(&dialogue));
    assert!(out.starts_with("deposited\n"), "{out}");
    let dialogue_cid = field(&out, "cid:");
    assert_eq!(field(&out, "log index:"), "2");
    assert!(dialogue_receipt.exists());
    assert_eq!(http.log_size(), 3);

    // Offline verification.
    let vkey = commons.vkey.as_str();
    let (out, _) =
        ok(&["verify", path(&receipt_path), "--commons-key", vkey, "--content", path(&story_path)]);
    assert!(out.starts_with("receipt verifies\n"), "{out}");
    assert!(out.contains(&format!("content:    ok, the file is {cid}")), "{out}");
    let (out, _) = ok(&["verify", path(&dialogue_receipt), "--commons-key", vkey]);
    assert!(out.starts_with("receipt verifies\n"), "{out}");

    let forged_path = commons.file("forged.receipt.json");
    std::fs::write(&forged_path, flip_proof_hash(&receipt)).expect("write forged receipt");
    let err = fails(&["verify", path(&forged_path), "--commons-key", vkey]);
    assert!(err.contains("does NOT verify") && err.contains("inclusion proof"), "{err}");

    let other = Commons::init("another commons");
    let err = fails(&["verify", path(&receipt_path), "--commons-key", &other.vkey]);
    assert!(err.contains("does NOT verify") && err.contains("checkpoint"), "{err}");

    let wrong_content = commons.file("not-the-story.txt");
    std::fs::write(&wrong_content, "a different text\n").expect("write");
    let err =
        fails(&["verify", path(&receipt_path), "--commons-key", vkey, "--content", path(&wrong_content)]);
    assert!(err.contains("does NOT verify") && err.contains("content") && err.contains("sha256"), "{err}");

    // Show by CID, by handle, as JSON and as DataCite.
    let (by_cid, _) = ok(&["show", &cid, "--node", node]);
    assert!(by_cid.starts_with(TITLE), "{by_cid}");
    assert_eq!(field(&by_cid, "cid:"), cid);
    assert_eq!(field(&by_cid, "handle:"), handle);
    assert_eq!(field(&by_cid, "consent:"), "public");
    assert_eq!(field(&by_cid, "depositor:"), did);
    assert_eq!(field(&by_cid, "status:"), "active");
    let (by_handle, _) = ok(&["show", &handle, "--node", node]);
    assert_eq!(by_handle, by_cid);
    let (raw, _) = ok(&["show", &handle, "--json", "--node", node]);
    let raw: serde_json::Value = serde_json::from_str(&raw).expect("show --json is JSON");
    assert_eq!(raw["deposit"]["cid"], cid.as_str());
    assert_eq!(raw["deposit"]["log_index"], 1);
    let saved: serde_json::Value = serde_json::from_str(&receipt).expect("json");
    assert_eq!(raw["receipt"], saved, "the node serves the receipt the depositor got");
    let (datacite, _) = ok(&["show", &cid, "--datacite", "--node", node]);
    let datacite: serde_json::Value = serde_json::from_str(&datacite).expect("datacite is JSON");
    assert_eq!(datacite.to_string().matches(TITLE).count(), 1, "{datacite}");
    assert!(datacite.to_string().contains(&handle), "{datacite}");
    let err = fails(&["show", "tag:nowhere,2026:none/9", "--node", node]);
    assert!(err.contains("404") && err.contains("no deposit"), "{err}");

    let content = http.get(&format!("/v1/deposits/{cid}/content"));
    assert_eq!(content.status, 200);
    assert_eq!(content.body.as_bytes(), story.as_slice());

    // Only the depositor may withdraw.
    let err = fails(&["withdraw", &cid, "--key", path(&mallory_file), "--node", node]);
    assert!(err.contains("403 not_depositor") && err.contains(&did), "{err}");
    assert_eq!(http.log_size(), 3);

    // Withdraw: a tombstone stays, the text is gone.
    let (out, _) = ok(&["withdraw", &cid, "--reason", "changed my mind", "--key", key, "--node", node]);
    assert!(out.starts_with("withdrawn"), "{out}");
    assert_eq!(field(&out, "log index:"), "3");
    let (shown, _) = ok(&["show", &cid, "--node", node]);
    assert!(field(&shown, "status:").starts_with("withdrawn at entry 3"), "{shown}");
    http.get(&format!("/v1/deposits/{cid}/content")).error(410, "withdrawn");
    let err = fails(&["withdraw", &cid, "--key", key, "--node", node]);
    assert!(err.contains("410"), "withdrawing twice: {err}");
    // The tombstone's receipt still verifies offline.
    let (out, _) = ok(&["verify", path(&receipt_path), "--commons-key", vkey]);
    assert!(out.starts_with("receipt verifies\n"), "{out}");

    // Consent narrows, never widens.
    let (out, _) = ok(&["consent", &dialogue_cid, "--narrow", "training-only", "--key", key, "--node", node]);
    assert!(out.starts_with("consent narrowed to training-only"), "{out}");
    assert_eq!(field(&out, "log index:"), "4");
    let err = fails(&["consent", &dialogue_cid, "--narrow", "commons", "--key", key, "--node", node]);
    assert!(err.contains("409 consent_widening") && err.contains("training-only → commons"), "{err}");
    let (shown, _) = ok(&["show", &dialogue_cid, "--node", node]);
    assert_eq!(field(&shown, "consent:"), "training-only");
    http.get(&format!("/v1/deposits/{dialogue_cid}/content")).error(403, "consent");
    assert_eq!(http.log_size(), 5);

    // Ledger reads.
    // Ledger reads check what the node signed against the key the user names, never the node's
    // own statement of it.
    let err = fails(&["ledger", "checkpoint", "--node", node]);
    assert!(err.contains("--commons-key") && err.contains("cannot vouch"), "{err}");
    for command in
        [&["ledger", "checkpoint"][..], &["ledger", "prove", "1"], &["ledger", "consistency", "2", "5"]]
    {
        let mut args = command.to_vec();
        args.extend(["--node", node, "--commons-key", &other.vkey]);
        let err = fails(&args);
        assert!(err.contains("not the commons key you named") && err.contains(&other.vkey), "{err}");
    }
    let (_, note) = ok(&["ledger", "checkpoint", "--node", node, "--trust-node-key"]);
    assert!(note.contains("agrees with itself"), "{note}");
    let (checkpoint, _) = ok(&["ledger", "checkpoint", "--node", node, "--commons-key", vkey]);
    let mut lines = checkpoint.lines();
    assert_eq!(lines.next(), Some("substrate.local/e2e-commons"), "{checkpoint}");
    assert_eq!(lines.next(), Some("5"), "{checkpoint}");
    assert!(checkpoint.contains("\n\n— substrate.local/e2e-commons "), "a signed note: {checkpoint}");

    let (entries, _) = ok(&["ledger", "entries", "--node", node]);
    let kinds: Vec<&str> = entries.lines().map(|l| l.split_whitespace().nth(2).unwrap_or("")).collect();
    assert_eq!(kinds, ["genesis", "deposit", "deposit", "withdrawal", "consent-change"], "{entries}");
    let (page, _) = ok(&["ledger", "entries", "--start", "3", "--limit", "1", "--node", node]);
    assert_eq!(page.lines().count(), 1, "{page}");
    assert!(page.trim_start().starts_with("3 ") && page.contains(&did), "{page}");

    let (proof, ok_line) = ok(&["ledger", "prove", "1", "--node", node, "--commons-key", vkey]);
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nindex 1\n"), "{proof}");
    assert!(
        ok_line.contains("ok: entry 1 (deposit") && ok_line.contains("checkpoint of size 5"),
        "{ok_line}"
    );
    let err = fails(&["ledger", "prove", "5", "--node", node, "--commons-key", vkey]);
    assert!(err.contains("not in the log"), "{err}");

    let (consistency, ok_line) =
        ok(&["ledger", "consistency", "2", "5", "--node", node, "--commons-key", vkey]);
    let consistency: serde_json::Value = serde_json::from_str(&consistency).expect("consistency JSON");
    assert!(consistency["proof"].as_array().is_some_and(|p| !p.is_empty()), "{consistency}");
    assert!(ok_line.contains("ok: the tree of size 2 is a prefix of the tree of size 5"), "{ok_line}");
    let err = fails(&["ledger", "consistency", "5", "2", "--node", node, "--commons-key", vkey]);
    assert!(err.contains("400") && err.contains("larger"), "{err}");

    // Replay while the daemon runs (WAL readers), then after a clean stop.
    let (out, _) = ok(&["ledger", "replay", "--check", "--data-dir", path(&commons.data)]);
    assert!(out.starts_with("replay ok: 5 entries, 5 checkpoints"), "{out}");
    daemon.stop();
    let (out, _) = ok(&["ledger", "replay", "--check", "--data-dir", path(&commons.data)]);
    assert!(out.starts_with("replay ok: 5 entries, 5 checkpoints"), "{out}");
    assert!(out.contains("2 deposits (1 withdrawn, 0 removed)"), "{out}");
    assert!(out.contains("materialised tables match the fold"), "{out}");
}

#[test]
fn a_corpus_is_imported_whole_or_not_at_all_and_again_without_duplicates() {
    let commons = Commons::init("imported commons");
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let key = commons.file("me.json");
    ok(&["id", "new", "--key", path(&key)]);
    let line = |text: &str, register: &str| {
        serde_json::json!({"text": text, "register": register, "title": "A line", "license": "CC0-1.0", "language": "en", "source": "test"})
            .to_string()
    };
    // A bad line anywhere means nothing is sent: the error names the line and what is wrong.
    let corpus = commons.file("corpus.jsonl");
    let good: Vec<String> =
        (0..20).map(|n| line(&format!("Text number {n} of a small corpus."), "oral")).collect();
    let mut bad = good.clone();
    bad.insert(7, line("A text in no register of this commons.", "poetry"));
    std::fs::write(&corpus, bad.join("\n")).unwrap();
    let err = fails(&["import", path(&corpus), "--key", path(&key), "--node", node]);
    assert!(err.contains("line 8") && err.contains("poetry"), "{err}");
    bad[7] = "{\"text\": \"no register\"}".into();
    std::fs::write(&corpus, bad.join("\n")).unwrap();
    let err = fails(&["import", path(&corpus), "--key", path(&key), "--node", node]);
    assert!(err.contains("line 8: not a corpus line") && err.contains("\"register\""), "{err}");
    assert_eq!(daemon.http().log_size(), 1, "a refused import deposited something");

    // A good corpus goes in whole, with a receipt per text; a second run adds nothing.
    std::fs::write(&corpus, good.join("\n") + "\n").unwrap();
    let receipts = commons.file("receipts");
    let (out, _) =
        ok(&["import", path(&corpus), "--key", path(&key), "--node", node, "--receipts", path(&receipts)]);
    assert!(out.starts_with("imported 20 texts") && out.contains("(0 were already in the commons)"), "{out}");
    assert_eq!(std::fs::read_dir(&receipts).unwrap().count(), 20);
    let (out, _) =
        ok(&["import", path(&corpus), "--key", path(&key), "--node", node, "--consent", "commons"]);
    assert!(out.starts_with("imported 0 texts") && out.contains("(20 were already in the commons)"), "{out}");
    assert_eq!(daemon.http().log_size(), 21);
}
