//! Integration tests of the store: reopening, batching, replay and the sequencer.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use substrate_core::event::{ConsentChange, Deposit, Event, Withdrawal};
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_store::ledger::Outcome;
use substrate_store::{DataDir, InitOptions, Ledger, ReplayMode, SequencerHandle, Submission};

mod damage;
mod follow;
mod replay;

fn found(dir: &std::path::Path) -> Ledger {
    Ledger::init(
        &DataDir::new(dir),
        SigningKey::from_bytes(&[42u8; 32]),
        InitOptions {
            name: "test".into(),
            origin: "test.example/commons".into(),
            handle_prefix: "tag:test.example,2026:t/".into(),
            registers: Register::defaults(),
            stewards: Vec::new(),
            windows: None,
            now: 1_000,
        },
    )
    .expect("init")
}

fn deposit(key: &SigningKey, n: u32, consent: ConsentTier) -> Submission {
    let text = format!("text number {n}").into_bytes();
    let event = Event::Deposit(Deposit {
        cid: Some(Cid::of(&text)),
        register: Register::defaults()[n as usize % 8].clone(),
        secondary_registers: vec![],
        consent,
        title: format!("text {n}"),
        language: "en".into(),
        license: "CC0-1.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2026-01-01T00:00:00.000Z".into(),
    });
    Submission { event: SignedEvent::sign(event, key), content: Some(text) }
}

fn cid_of(n: u32) -> Cid {
    Cid::of(format!("text number {n}").as_bytes())
}

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    Deposit(u32, usize),
    Withdraw(u32, bool),
    Narrow(u32, usize),
}

fn submission(step: &Step, alice: &SigningKey, bob: &SigningKey, nonce: usize) -> Submission {
    match step {
        Step::Deposit(n, tier) => deposit(alice, *n, ConsentTier::ALL[*tier]),
        Step::Withdraw(n, by_alice) => {
            let event = Event::Withdrawal(Withdrawal {
                cid: Some(cid_of(*n)),
                reason: None,
                requested: nonce.to_string(),
            });
            Submission { event: SignedEvent::sign(event, if *by_alice { alice } else { bob }), content: None }
        }
        Step::Narrow(n, tier) => {
            let event = Event::ConsentChange(ConsentChange {
                cid: Some(cid_of(*n)),
                consent: ConsentTier::ALL[*tier],
                requested: nonce.to_string(),
            });
            Submission { event: SignedEvent::sign(event, alice), content: None }
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..6, 0usize..4).prop_map(|(n, t)| Step::Deposit(n, t)),
        (0u32..6, any::<bool>()).prop_map(|(n, a)| Step::Withdraw(n, a)),
        (0u32..6, 0usize..4).prop_map(|(n, t)| Step::Narrow(n, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// However a history is cut into batches, the log and the state come out the same, replay
    /// reproduces them, and reopening restores them.
    #[test]
    fn batching_does_not_change_the_outcome(steps in proptest::collection::vec(step(), 1..24), cut in 1usize..6) {
        let alice = SigningKey::from_bytes(&[1u8; 32]);
        let bob = SigningKey::from_bytes(&[2u8; 32]);
        let submissions = || -> Vec<Submission> {
            steps.iter().enumerate().map(|(i, s)| submission(s, &alice, &bob, i)).collect()
        };

        let one = tempfile::tempdir().expect("tempdir");
        let mut whole = found(one.path());
        let outcomes = whole.append_batch(submissions(), 5_000).expect("append");
        prop_assert_eq!(outcomes.len(), steps.len());

        let many = tempfile::tempdir().expect("tempdir");
        let mut pieces = found(many.path());
        let mut all = submissions();
        while !all.is_empty() {
            let rest = all.split_off(cut.min(all.len()));
            pieces.append_batch(all, 5_000).expect("append");
            all = rest;
        }
        prop_assert_eq!(whole.state().root(), pieces.state().root());
        prop_assert_eq!(whole.state().size(), pieces.state().size());
        let root = whole.tree().read().expect("tree").root();
        prop_assert_eq!(root, pieces.tree().read().expect("tree").root());

        let state_root = pieces.state().root();
        drop(pieces);
        let report = substrate_store::replay::replay(&DataDir::new(many.path()), ReplayMode::Check, None)
            .expect("replay");
        prop_assert_eq!(report.state_root, state_root);
        prop_assert_eq!(report.tree_root, root);
        let mut reopened = Ledger::open(&DataDir::new(many.path())).expect("reopen");
        prop_assert_eq!(reopened.state().root(), state_root);
        reopened.flush_texts().expect("flush texts");

        // Withdrawn texts are gone from the blob store; active ones are there. The reopened
        // ledger holds no deposits in memory: the fold of its log lists them.
        prop_assert!(reopened.state().is_partial() && reopened.state().deposits().next().is_none());
        let folded = substrate_store::replay::fold_to(&DataDir::new(many.path()), None, |_, _, _| {})
            .expect("fold");
        prop_assert_eq!(folded.root(), state_root);
        for record in folded.deposits() {
            let withdrawn = matches!(record.status, substrate_core::state::DepositStatus::Withdrawn { .. });
            prop_assert_eq!(reopened.blobs().contains(&record.cid), !withdrawn);
        }
    }
}

#[test]
fn duplicates_in_one_batch_get_one_entry_and_the_same_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = found(dir.path());
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let one = || deposit(&alice, 1, ConsentTier::Public);
    let outcomes = ledger.append_batch(vec![one(), one()], 2_000).expect("append");
    let (Outcome::Appended(first), Outcome::Duplicate(second)) = (&outcomes[0], &outcomes[1]) else {
        panic!("expected appended then duplicate, got {outcomes:?}");
    };
    assert_eq!(first, second);
    let later = ledger.append_batch(vec![one()], 3_000).expect("append");
    assert!(matches!(&later[0], Outcome::Duplicate(r) if r == first));
    assert_eq!(ledger.state().size(), 2);
}

#[test]
fn integrated_time_never_goes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = found(dir.path());
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    ledger.append_batch(vec![deposit(&alice, 1, ConsentTier::Public)], 9_000).expect("append");
    let outcomes = ledger.append_batch(vec![deposit(&alice, 2, ConsentTier::Public)], 4_000).expect("append");
    let Outcome::Appended(receipt) = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(receipt.integrated_time, substrate_core::timestamp::rfc3339(9_000));
}

#[test]
fn init_refuses_an_existing_commons_and_open_an_empty_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(found(dir.path()));
    let again = Ledger::init(
        &DataDir::new(dir.path()),
        SigningKey::from_bytes(&[1u8; 32]),
        InitOptions {
            name: "x".into(),
            origin: "x".into(),
            handle_prefix: "x/".into(),
            registers: Register::defaults(),
            stewards: Vec::new(),
            windows: None,
            now: 0,
        },
    );
    assert!(again.err().is_some_and(|e| e.to_string().contains("already holds a commons")));
    let empty = tempfile::tempdir().expect("tempdir");
    let opened = Ledger::open(&DataDir::new(empty.path()));
    assert!(opened.err().is_some_and(|e| e.to_string().contains("run `substrate init` first")));
}

#[test]
fn a_forward_jump_of_the_wall_clock_is_caught_up_with_slowly_not_followed() {
    use std::sync::atomic::{AtomicU64, Ordering};
    const DAY: u64 = 24 * 3600 * 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = found(dir.path());
    let start = 1_790_000_000_000;
    let wall = std::sync::Arc::new(AtomicU64::new(start));
    let clock = std::sync::Arc::clone(&wall);
    let (sequencer, thread) =
        SequencerHandle::spawn_with_clock(ledger, move || clock.load(Ordering::SeqCst)).expect("spawn");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let submit = |n: u32| {
        runtime
            .block_on(sequencer.submit(deposit(&alice, n, ConsentTier::Public)))
            .expect("accepted")
            .receipt
            .log_index
    };
    let first = submit(0);
    let real = std::time::Instant::now();
    // The wall clock jumps a year ahead (an NTP step, a mistyped date).
    wall.fetch_add(365 * DAY, Ordering::SeqCst);
    let second = submit(1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let third = submit(2);
    let passed = real.elapsed().as_millis() as u64;
    // An operator sets the clock right again: integrated time does not go back either.
    wall.store(start + passed, Ordering::SeqCst);
    let fourth = submit(3);
    drop(sequencer);
    thread.join().expect("the sequencer stops");

    let conn = rusqlite::Connection::open(DataDir::new(dir.path()).database()).expect("open");
    let time = |index: u64| {
        let leaf: Vec<u8> = conn
            .query_row("SELECT leaf FROM entries WHERE idx = ?1", [index], |row| row.get(0))
            .expect("entry");
        substrate_core::LogEntry::from_leaf(index, &leaf).expect("entry").integrated_time
    };
    let (t1, t2, t3, t4) = (time(first), time(second), time(third), time(fourth));
    assert!(t1 >= start && t1 < start + 60_000, "{t1}");
    // At most a tenth faster than the real time that passed, plus the tolerance for a slow batch.
    let most = t1 + passed + passed / 10 + 2_000;
    assert!(t2 <= most && t3 <= most, "the jump was followed: {t1} {t2} {t3} (at most {most})");
    assert!(t1 <= t2 && t2 <= t3 && t3 <= t4, "time went back: {t1} {t2} {t3} {t4}");
    assert!(t4 < start + DAY, "{t4}");
}

#[test]
fn the_sequencer_answers_concurrent_submissions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = found(dir.path());
    let (sequencer, thread) = SequencerHandle::spawn(ledger).expect("spawn the sequencer");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let sequencer = sequencer.clone();
                let submission = deposit(&alice, n, ConsentTier::Commons);
                tokio::spawn(async move { sequencer.submit(submission).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        results
    });
    let mut indices: Vec<u64> = results.into_iter().map(|r| r.expect("accepted").receipt.log_index).collect();
    indices.sort();
    assert_eq!(indices, (1..=200).collect::<Vec<u64>>());
    drop(sequencer);
    thread.join().expect("sequencer stops when its handles are gone");
    let report =
        substrate_store::replay::replay(&DataDir::new(dir.path()), ReplayMode::Check, None).expect("replay");
    assert_eq!(report.entries, 201);
}

#[test]
fn the_same_statement_from_another_signer_is_never_given_the_first_signers_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = found(dir.path());
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let bob = SigningKey::from_bytes(&[2u8; 32]);
    // The same deposit statement, signed by two people, in one batch and then in another.
    let outcomes = ledger
        .append_batch(
            vec![deposit(&alice, 7, ConsentTier::Public), deposit(&bob, 7, ConsentTier::Public)],
            2_000,
        )
        .expect("append");
    assert!(matches!(&outcomes[0], Outcome::Appended(_)), "{outcomes:?}");
    assert!(
        matches!(&outcomes[1], Outcome::Refused(substrate_core::state::Rejection::AlreadyDeposited { .. })),
        "{outcomes:?}"
    );
    let later = ledger.append_batch(vec![deposit(&bob, 7, ConsentTier::Public)], 3_000).expect("append");
    assert!(
        matches!(&later[0], Outcome::Refused(substrate_core::state::Rejection::AlreadyDeposited { .. })),
        "{later:?}"
    );
    assert_eq!(ledger.state().size(), 2);
}

/// A commons with five of alice's deposits, closed; its state root.
fn five_deposits(dir: &std::path::Path) -> (SigningKey, [u8; 32]) {
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let mut ledger = found(dir);
    ledger
        .append_batch((0..5).map(|n| deposit(&alice, n, ConsentTier::Public)).collect(), 2_000)
        .expect("append");
    (alice, ledger.state().root())
}

#[test]
fn a_ledger_keyed_by_statement_is_upgraded_to_acts_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, root) = five_deposits(dir.path());
    // Turn the database back into the earlier schema: entries keyed by their statement digest.
    let database = DataDir::new(dir.path()).database();
    {
        let conn = rusqlite::Connection::open(&database).expect("open");
        conn.execute_batch("ALTER TABLE entries RENAME COLUMN act TO statement; PRAGMA user_version = 0;")
            .expect("downgrade");
        let leaves: Vec<(u64, Vec<u8>)> = conn
            .prepare("SELECT idx, leaf FROM entries")
            .expect("select")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (index, leaf) in leaves {
            let entry = substrate_core::LogEntry::from_leaf(index, &leaf).expect("leaf");
            let event = SignedEvent::open_bytes(&entry.envelope).expect("envelope");
            conn.execute(
                "UPDATE entries SET statement = ?1 WHERE idx = ?2",
                rusqlite::params![event.statement_digest.as_slice(), index],
            )
            .expect("update");
        }
    }
    let mut ledger = Ledger::open(&DataDir::new(dir.path())).expect("the old schema opens");
    assert_eq!(ledger.state().root(), root);
    // Replayed envelopes still get their receipts; the log did not grow.
    let again = ledger.append_batch(vec![deposit(&alice, 3, ConsentTier::Public)], 3_000).expect("append");
    assert!(matches!(&again[0], Outcome::Duplicate(r) if r.log_index == 4), "{again:?}");
    assert_eq!(ledger.state().size(), 6);
    let conn = rusqlite::Connection::open(&database).expect("open");
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("version");
    assert_eq!(version, substrate_store::schema::VERSION);
    let report = substrate_store::replay::replay(&DataDir::new(dir.path()), ReplayMode::Check, None);
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn opening_reads_the_leaves_from_their_own_index_not_the_envelopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, root) = five_deposits(dir.path());
    let database = DataDir::new(dir.path()).database();
    let conn = rusqlite::Connection::open(&database).expect("open");
    // A ledger of the previous schema, without the index, gets it when opened.
    conn.execute_batch("DROP INDEX entries_leaves; PRAGMA user_version = 3;").expect("downgrade");
    drop(conn);
    let ledger = Ledger::open(&DataDir::new(dir.path())).expect("opens");
    assert_eq!(ledger.state().root(), root);
    assert_eq!(ledger.state().size(), 6);
    let conn = rusqlite::Connection::open(&database).expect("open");
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT idx, leaf_hash FROM entries ORDER BY idx")
        .expect("plan")
        .query_map([], |row| row.get(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert!(plan.iter().any(|step| step.contains("COVERING INDEX entries_leaves")), "{plan:?}");
}

#[test]
fn texts_waiting_under_the_earlier_schema_are_kept_by_log_index_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    {
        let mut ledger = found(dir.path());
        ledger
            .append_batch((0..4).map(|n| deposit(&alice, n, ConsentTier::Public)).collect(), 2_000)
            .expect("append");
    }
    // Schema version 2 kept the texts waiting for the blob directory by CID.
    let data = DataDir::new(dir.path());
    {
        let conn = rusqlite::Connection::open(data.database()).expect("open");
        conn.execute_batch(
            "CREATE TABLE by_cid (cid TEXT PRIMARY KEY, content BLOB NOT NULL);
             INSERT INTO by_cid SELECT cid, content FROM pending_texts;
             DROP TABLE pending_texts;
             ALTER TABLE by_cid RENAME TO pending_texts;
             PRAGMA user_version = 2;",
        )
        .expect("downgrade");
    }
    let mut ledger = Ledger::open(&data).expect("the old schema opens");
    let texts = substrate_store::TextReader::open(&data).expect("text reader");
    for n in 0..4 {
        assert_eq!(texts.text(&cid_of(n)).expect("read"), Some(format!("text number {n}").into_bytes()));
    }
    // A withdrawal deletes its waiting text in its own commit; the others move to the blobs.
    let withdrawal = submission(&Step::Withdraw(1, true), &alice, &alice, 0);
    let outcomes = ledger.append_batch(vec![withdrawal], 3_000).expect("withdraw");
    assert!(matches!(&outcomes[0], Outcome::Appended(_)), "{outcomes:?}");
    assert_eq!(texts.text(&cid_of(1)).expect("read"), None);
    assert_eq!(ledger.flush_texts().expect("flush"), 3);
    for n in [0, 2, 3] {
        assert!(ledger.blobs().contains(&cid_of(n)), "text {n} moved to the blob directory");
    }
    let conn = rusqlite::Connection::open(data.database()).expect("open");
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("version");
    assert_eq!(version, substrate_store::schema::VERSION);
}

#[test]
fn records_from_before_the_mixture_history_are_rebuilt_from_the_log_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let root = {
        let mut ledger = found(dir.path());
        ledger
            .append_batch((0..3).map(|n| deposit(&alice, n, ConsentTier::Public)).collect(), 2_000)
            .expect("append");
        ledger.state().root()
    };
    // The earlier layout kept only the mixture in force, under an empty key; this one is stale.
    let database = DataDir::new(dir.path()).database();
    {
        let conn = rusqlite::Connection::open(&database).expect("open");
        let stale = r#"{"kind":"mixture","record":{"weights":{"oral":1.0},"decision":1,"proposal":1,"ballots":1,"at":0}}"#;
        conn.execute("INSERT INTO records (kind, key, record) VALUES ('mixture', '', ?1)", [stale])
            .expect("insert");
    }
    let ledger = Ledger::open(&DataDir::new(dir.path())).expect("opens, rebuilding its records");
    assert_eq!(ledger.state().root(), root);
    assert!(ledger.state().governance().mixture().is_none(), "the log decided no mixture");
    let conn = rusqlite::Connection::open(&database).expect("open");
    assert!(!substrate_store::schema::records_predate_history(&conn).expect("query"));
    let report = substrate_store::replay::replay(&DataDir::new(dir.path()), ReplayMode::Check, None);
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn fold_to_trusts_entries_only_as_far_as_the_log_keys_checkpoint_vouches_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let mallory = SigningKey::from_bytes(&[9u8; 32]);
    let root = {
        let mut ledger = found(dir.path());
        ledger
            .append_batch((0..4).map(|n| deposit(&alice, n, ConsentTier::Public)).collect(), 2_000)
            .expect("append");
        ledger.state().root()
    };
    let data = DataDir::new(dir.path());
    let state = substrate_store::replay::fold_to(&data, None, |_, _, _| {}).expect("folds");
    assert_eq!(state.root(), root);
    assert_eq!(substrate_store::replay::fold_to(&data, Some(3), |_, _, _| {}).expect("a prefix").size(), 3);
    // Someone with the database rewrites entry 2 as a deposit signed by another key, and its
    // stored leaf hash to match: the signature is valid, but the log key never signed that tree.
    let conn = rusqlite::Connection::open(data.database()).expect("open");
    let Submission { event, .. } = deposit(&mallory, 77, ConsentTier::Public);
    let time: Vec<u8> =
        conn.query_row("SELECT leaf FROM entries WHERE idx = 2", [], |r| r.get(0)).expect("leaf");
    let mut leaf = time[..8].to_vec();
    leaf.extend_from_slice(&event.envelope.to_bytes());
    let hash = substrate_tlog::leaf_hash(&leaf);
    conn.execute(
        "UPDATE entries SET leaf = ?1, leaf_hash = ?2 WHERE idx = 2",
        rusqlite::params![leaf, hash.as_slice()],
    )
    .expect("rewrite");
    let err = substrate_store::replay::fold_to(&data, None, |_, _, _| {}).expect_err("refused");
    assert!(err.to_string().contains("do not have the root the log key signed"), "{err}");
    let err = substrate_store::replay::fold_to(&data, Some(3), |_, _, _| {}).expect_err("a prefix too");
    assert!(err.to_string().contains("do not have the root the log key signed"), "{err}");
}
