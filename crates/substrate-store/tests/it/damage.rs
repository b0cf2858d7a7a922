//! A damaged store says what is damaged, as a variant a caller can match, and sends its operator
//! to `substrate ledger replay --check`.

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use substrate_core::ConsentTier;
use substrate_store::ledger::Table;
use substrate_store::{DataDir, Ledger, LedgerError, ReadError, Reader};

use crate::{deposit, found};

/// A stopped commons of genesis and three deposits (entries 1 to 3), with its database open.
fn damaged(damage: &str) -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let mut ledger = found(dir.path());
    ledger
        .append_batch((1..=3).map(|n| deposit(&alice, n, ConsentTier::Public)).collect(), 2_000)
        .expect("append");
    drop(ledger);
    let data = DataDir::new(dir.path());
    Connection::open(data.database()).expect("open").execute_batch(damage).expect("damage");
    (dir, data)
}

fn open_fails(damage: &str) -> LedgerError {
    let (_dir, data) = damaged(damage);
    let error = Ledger::open(&data).err().expect("a damaged store does not open");
    assert!(error.is_damage(), "{error}");
    assert!(error.to_string().ends_with("run `substrate ledger replay --check` for details"), "{error}");
    error
}

#[test]
fn a_gap_in_the_log_names_the_missing_entry() {
    let error = open_fails("DELETE FROM entries WHERE idx = 2");
    assert!(matches!(error, LedgerError::MissingEntry { index: 2 }), "{error:?}");
}

#[test]
fn a_lost_last_entry_is_a_checkpoint_that_does_not_match_the_log() {
    let error = open_fails("DELETE FROM entries WHERE idx = 3");
    assert!(
        matches!(error, LedgerError::CheckpointMismatch { checkpoint_size: 4, log_size: 3, .. }),
        "{error:?}"
    );
}

#[test]
fn a_record_that_does_not_parse_names_its_table() {
    for (damage, table) in [
        ("UPDATE commons SET record = 'not json'", Table::Commons),
        ("UPDATE records SET record = '[]' WHERE kind != 'vote'", Table::Records),
    ] {
        let error = open_fails(damage);
        assert!(matches!(error, LedgerError::UnparsableRecord { table: t, .. } if t == table), "{error:?}");
    }
}

#[test]
fn a_deposit_row_that_does_not_parse_is_named_when_an_act_reads_it() {
    // Deposits stay in their table when the ledger opens; a withdrawal of the damaged one reads it.
    let (_dir, data) = damaged("UPDATE deposits SET record = '{' WHERE log_index = 2");
    let mut ledger = Ledger::open(&data).expect("deposits are not read at open");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let withdrawal = substrate_core::SignedEvent::sign(
        substrate_core::event::Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(crate::cid_of(2)),
            reason: None,
            requested: "2026-11-22T00:00:03.000Z".into(),
        }),
        &alice,
    );
    let error = ledger
        .append_batch(vec![substrate_store::Submission { event: withdrawal, content: None }], 3_000)
        .expect_err("the damaged row");
    assert!(matches!(error, LedgerError::UnparsableRecord { table: Table::Deposits, .. }), "{error:?}");
    assert!(error.is_damage(), "{error}");
    assert_eq!(ledger.state().size(), 4, "nothing was appended");
}

#[test]
fn a_short_leaf_hash_names_its_entry() {
    let error = open_fails("UPDATE entries SET leaf_hash = x'0102' WHERE idx = 1");
    assert!(matches!(error, LedgerError::MalformedHash { index: 1, len: 2, .. }), "{error:?}");
}

#[test]
fn readers_tell_a_missing_entry_from_a_damaged_one() {
    let (_dir, data) = damaged("UPDATE entries SET leaf = x'00' WHERE idx = 2");
    // The ledger keeps leaf hashes, not leaves, in memory: it opens.
    let ledger = Ledger::open(&data).expect("open");
    let reader = Reader::new(&data, ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    assert!(matches!(reader.receipt(9), Err(ReadError::NotFound(_))));
    assert!(reader.receipt(1).is_ok());
    for result in [reader.receipt(2).map(drop), reader.entries(0, 10).map(drop)] {
        assert!(
            matches!(result, Err(ReadError::Ledger(LedgerError::MalformedLeaf { index: 2, .. }))),
            "{result:?}"
        );
    }
}
