//! Tampering with a stopped node's database: `substrate ledger replay --check` must notice and
//! say where; `--rebuild` repairs the materialised state (not the log).

use std::process::Output;

use rusqlite::{Connection, params};
use serde_json::Value;
use substrate_core::Cid;

use crate::util::{Commons, field, new_key, signed_deposit, text};

/// A stopped commons holding three deposits (entries 1, 2 and 3, one checkpoint each).
fn populated() -> (Commons, Vec<Cid>) {
    let commons = Commons::init("tamper commons");
    let daemon = commons.start();
    let http = daemon.http();
    let key = new_key();
    let cids = (1..=3)
        .map(|n| {
            let story = text(&format!("tamper story {n}"), 400);
            let receipt = http.deposit(&signed_deposit(&key, &story), &story);
            assert_eq!(receipt["log_index"], n);
            Cid::of(&story)
        })
        .collect();
    daemon.stop();
    assert_replay_ok(&commons.replay("--check"));
    (commons, cids)
}

fn db(commons: &Commons) -> Connection {
    Connection::open(commons.database()).expect("open ledger.sqlite")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_replay_ok(out: &Output) {
    assert!(out.status.success(), "replay failed:\n{}{}", stdout(out), stderr(out));
    assert!(stdout(out).starts_with("replay ok: 4 entries, 4 checkpoints"), "{}", stdout(out));
}

/// Requires a failed replay; returns its stderr.
fn assert_replay_fails(out: &Output) -> String {
    assert!(!out.status.success(), "replay passed over a tampered database:\n{}", stdout(out));
    let err = stderr(out);
    assert!(err.contains("FAILED"), "{err}");
    err
}

fn deposit_record(conn: &Connection, cid: &Cid) -> Value {
    let json: String = conn
        .query_row("SELECT record FROM deposits WHERE cid = ?1", [cid.to_string()], |r| r.get(0))
        .expect("deposit row");
    serde_json::from_str(&json).expect("record json")
}

#[test]
fn a_flipped_byte_in_an_entry_is_caught_and_named() {
    let (commons, _) = populated();
    {
        let conn = db(&commons);
        let mut leaf: Vec<u8> =
            conn.query_row("SELECT leaf FROM entries WHERE idx = 1", [], |r| r.get(0)).expect("leaf");
        let middle = leaf.len() / 2;
        leaf[middle] ^= 0x20;
        let changed =
            conn.execute("UPDATE entries SET leaf = ?1 WHERE idx = 1", params![leaf]).expect("update");
        assert_eq!(changed, 1);
    }
    let err = assert_replay_fails(&commons.replay("--check"));
    assert!(err.contains("entry 1:") && err.contains("tampered"), "{err}");
    // The log itself cannot be rebuilt from the log.
    let err = assert_replay_fails(&commons.replay("--rebuild"));
    assert!(err.contains("entry 1:"), "{err}");
}

#[test]
fn a_rewritten_entry_with_a_matching_leaf_hash_is_caught_by_its_checkpoint() {
    let (commons, _) = populated();
    {
        let conn = db(&commons);
        let mut leaf: Vec<u8> =
            conn.query_row("SELECT leaf FROM entries WHERE idx = 1", [], |r| r.get(0)).expect("leaf");
        // Back-date the integrated time by 1 ms, and make the stored leaf hash agree.
        let time = u64::from_be_bytes(leaf[..8].try_into().expect("8 bytes")) - 1;
        leaf[..8].copy_from_slice(&time.to_be_bytes());
        let hash = substrate_tlog::leaf_hash(&leaf);
        conn.execute(
            "UPDATE entries SET leaf = ?1, leaf_hash = ?2 WHERE idx = 1",
            params![leaf, hash.as_slice()],
        )
        .expect("update");
    }
    let err = assert_replay_fails(&commons.replay("--check"));
    assert!(err.contains("checkpoint at size 2") && err.contains("tree root"), "{err}");
}

#[test]
fn a_tampered_deposit_record_is_caught_then_rebuilt() {
    let (commons, cids) = populated();
    let original = deposit_record(&db(&commons), &cids[1]);
    {
        let conn = db(&commons);
        let mut record = original.clone();
        assert_eq!(record["title"], "A test text");
        record["title"] = "A title nobody signed".into();
        record["consent"] = "local".into();
        let changed = conn
            .execute(
                "UPDATE deposits SET record = ?1 WHERE cid = ?2",
                params![record.to_string(), cids[1].to_string()],
            )
            .expect("update");
        assert_eq!(changed, 1);
    }
    let err = assert_replay_fails(&commons.replay("--check"));
    assert!(
        err.contains("materialised state differs") && err.contains(&format!("deposit {}", cids[1])),
        "the failure should name the deposit: {err}"
    );
    assert!(err.contains("--rebuild"), "the failure should say how to repair: {err}");

    let out = commons.replay("--rebuild");
    assert!(out.status.success(), "rebuild failed:\n{}{}", stdout(&out), stderr(&out));
    // The commons row, three deposit rows, and the governance records (parameters, board, credits).
    let rebuilt: u64 =
        field(&stdout(&out), "rebuilt").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(rebuilt >= 4, "{}", stdout(&out));
    assert_replay_ok(&commons.replay("--check"));
    assert_eq!(deposit_record(&db(&commons), &cids[1]), original);

    // The restarted node serves the signed metadata again.
    let daemon = commons.start();
    let shown = daemon.http().get(&format!("/v1/deposits/{}", cids[1])).json();
    assert_eq!(shown["deposit"]["title"], "A test text");
    assert_eq!(shown["deposit"]["consent"], "public");
}

#[test]
fn a_deleted_deposit_row_is_caught_then_rebuilt() {
    let (commons, cids) = populated();
    db(&commons).execute("DELETE FROM deposits WHERE cid = ?1", [cids[2].to_string()]).expect("delete");
    let err = assert_replay_fails(&commons.replay("--check"));
    assert!(
        err.contains("materialised state differs") && err.contains("2 deposit rows, the fold has 3"),
        "{err}"
    );
    let out = commons.replay("--rebuild");
    assert!(out.status.success(), "rebuild failed:\n{}{}", stdout(&out), stderr(&out));
    assert_replay_ok(&commons.replay("--check"));
}

/// The `handle` column resolves handles (`show <handle>`) and names the handle in receipts, so
/// it is materialised state that replay must check like the record.
#[test]
fn a_tampered_handle_column_is_caught_by_replay() {
    let (commons, cids) = populated();
    let handle_of = |conn: &Connection, cid: &Cid| -> String {
        conn.query_row("SELECT handle FROM deposits WHERE cid = ?1", [cid.to_string()], |r| r.get(0))
            .expect("handle")
    };
    let (first, second) = {
        let conn = db(&commons);
        let (first, second) = (handle_of(&conn, &cids[0]), handle_of(&conn, &cids[1]));
        // Swap the two handles (through a placeholder: the column is UNIQUE).
        conn.execute_batch("BEGIN").expect("begin");
        conn.execute("UPDATE deposits SET handle = 'swapping' WHERE cid = ?1", [cids[0].to_string()])
            .expect("update");
        conn.execute("UPDATE deposits SET handle = ?1 WHERE cid = ?2", params![first, cids[1].to_string()])
            .expect("update");
        conn.execute("UPDATE deposits SET handle = ?1 WHERE cid = ?2", params![second, cids[0].to_string()])
            .expect("update");
        conn.execute_batch("COMMIT").expect("commit");
        (first, second)
    };
    // The swap matters: the node now resolves the first deposit's handle to the second deposit.
    {
        let daemon = commons.start();
        let shown = daemon.http().get(&format!("/v1/deposits/{}", crate::util::segment(&first))).json();
        assert_eq!(shown["deposit"]["cid"], cids[1].to_string(), "handle {first} now resolves elsewhere");
        assert_eq!(shown["deposit"]["handle"], second);
        daemon.stop();
    }
    let err = assert_replay_fails(&commons.replay("--check"));
    assert!(err.contains("materialised state differs"), "{err}");
    let out = commons.replay("--rebuild");
    assert!(out.status.success(), "rebuild failed:\n{}{}", stdout(&out), stderr(&out));
    assert_replay_ok(&commons.replay("--check"));
    assert_eq!(handle_of(&db(&commons), &cids[0]), first);
}
