//! A withdrawn text leaves nothing of itself on the node's disk: not its blob, not a row, not a
//! frame of the SQLite write-ahead log, once the next checkpoint of the withdrawal has run; on a
//! node that keeps a search index, not a word of it in the index either.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use substrate_core::event::{Event, Withdrawal};
use substrate_core::{Cid, SignedEvent};

use crate::util::{Commons, Daemon, envelope_json, new_key, signed_deposit, text};

/// Every file under `dir` (if it exists) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_withdrawn_text_leaves_no_bytes_on_disk_after_the_next_checkpoint() {
    withdraw_and_search_the_disk(&[]);
}

#[test]
fn a_withdrawn_text_leaves_no_word_in_the_search_index() {
    withdraw_and_search_the_disk(&["--search"]);
}

fn withdraw_and_search_the_disk(flags: &[&str]) {
    let commons = Commons::init("withdrawals");
    let daemon = Daemon::start_with(&commons.data, commons.file("logs").parent().expect("tmp"), flags);
    let http = daemon.http();
    let alice = new_key();
    let marker = b"MARKER-a-grandmother's-recipe-7f3e9c";
    let mut secret = marker.to_vec();
    secret.extend_from_slice(&text(" for the family only", 900));
    let deposit = signed_deposit(&alice, &secret);
    http.deposit(&deposit, &secret);
    // More deposits after it, so the log's write-ahead file holds the secret's frames among many.
    let bob = new_key();
    for n in 0..60 {
        let other = text(&format!("another text {n}"), 900);
        http.deposit(&signed_deposit(&bob, &other), &other);
    }
    assert!(!files_holding(&commons.data, marker).is_empty(), "the text is on disk before its withdrawal");
    if flags.contains(&"--search") {
        // Indexed: found by its word, and the word is in the index's files.
        let started = Instant::now();
        while http.get("/v1/search?q=7f3e9c").json()["hits"].as_array().is_none_or(Vec::is_empty) {
            assert!(started.elapsed() < Duration::from_secs(20), "the text was never indexed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The index keeps its words (compressed) and its CID beside them: while the CID is in the
    // index's files, so is the document.
    let index = commons.data.join("search");
    let cid = Cid::of(&secret).to_string();
    assert_eq!(
        files_holding(&index, cid.as_bytes()).is_empty(),
        !flags.contains(&"--search"),
        "the index holds the text's document"
    );

    let withdrawal = SignedEvent::sign(
        Event::Withdrawal(Withdrawal {
            cid: Some(Cid::of(&secret)),
            reason: Some("my family asked me to".into()),
            requested: "2026-01-02T00:00:00.000Z".into(),
        }),
        &alice,
    );
    let reply =
        http.post_json("/v1/events", &serde_json::json!({ "envelope": envelope_json(&withdrawal.envelope) }));
    assert_eq!(reply.status, 201, "{}", reply.body);

    // The checkpointer runs twice a second, and the index merges away a deleted document on its
    // next step; both give way while the node is busy, so under a loaded machine (the whole test
    // suite on two cores) this takes longer than the few rounds it takes alone.
    let started = Instant::now();
    loop {
        let mut holding = files_holding(&commons.data, marker);
        holding.extend(files_holding(&index, cid.as_bytes()));
        if holding.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the withdrawn text is still in {holding:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The node goes on: deposits and reads work, and the withdrawal is on record.
    let later = text("a text after the withdrawal", 300);
    http.deposit(&signed_deposit(&bob, &later), &later);
    http.get(&format!("/v1/deposits/{}/content", Cid::of(&secret))).error(410, "withdrawn");
}
