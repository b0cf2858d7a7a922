//! Replay verifies the members' signatures in batches, and still names the first entry whose
//! signature does not verify, in the words of the single check the sequencer makes.

use ed25519_dalek::{Signer, SigningKey};
use rusqlite::{Connection, params};
use substrate_core::envelope::{Envelope, PAYLOAD_TYPE, pae};
use substrate_core::{ConsentTier, SignedEvent};
use substrate_store::{DataDir, ReplayMode};

use crate::{deposit, found};

/// Deposits in the log after its genesis: more than two batches of signatures.
const DEPOSITS: u32 = 600;

/// A stopped commons of the genesis and [`DEPOSITS`] deposits by two depositors.
fn commons() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let bob = SigningKey::from_bytes(&[2u8; 32]);
    let mut ledger = found(dir.path());
    let submissions = (1..=DEPOSITS)
        .map(|n| deposit(if n % 2 == 0 { &alice } else { &bob }, n, ConsentTier::Public))
        .collect();
    ledger.append_batch(submissions, 2_000).expect("append");
    drop(ledger);
    let data = DataDir::new(dir.path());
    (dir, data)
}

/// Changes entry `index`'s envelope with `damage`, and its stored leaf hash to match, so that
/// only the signature check notices. Returns the error single verification finds in it.
fn damage(data: &DataDir, index: u64, damage: fn(&mut Envelope)) -> String {
    let conn = Connection::open(data.database()).expect("open");
    let leaf: Vec<u8> =
        conn.query_row("SELECT leaf FROM entries WHERE idx = ?1", [index], |r| r.get(0)).expect("leaf");
    let mut envelope: Envelope = serde_json::from_slice(&leaf[8..]).expect("envelope");
    damage(&mut envelope);
    let mut damaged = leaf[..8].to_vec();
    damaged.extend_from_slice(&envelope.to_bytes());
    let hash = substrate_tlog::leaf_hash(&damaged);
    conn.execute(
        "UPDATE entries SET leaf = ?1, leaf_hash = ?2 WHERE idx = ?3",
        params![damaged, hash.as_slice(), index],
    )
    .expect("rewrite");
    let error = SignedEvent::open_bytes(&damaged[8..]).expect_err("the damage is a refusal");
    format!("entry {index}: its signed event does not verify: {error}")
}

/// The signature of another key over the same payload, under the signer's keyid.
fn signed_by_another_key(envelope: &mut Envelope) {
    let other = SigningKey::from_bytes(&[3u8; 32]);
    envelope.signatures[0].sig = other.sign(&pae(PAYLOAD_TYPE, &envelope.payload)).to_bytes().to_vec();
}

/// One bit of the signature's nonce point flipped.
fn flipped_bit(envelope: &mut Envelope) {
    envelope.signatures[0].sig[5] ^= 0x01;
}

/// One bit of the signature's scalar flipped.
fn flipped_scalar_bit(envelope: &mut Envelope) {
    envelope.signatures[0].sig[40] ^= 0x01;
}

/// A signature one byte short: refused before any batch.
fn short(envelope: &mut Envelope) {
    envelope.signatures[0].sig.pop();
}

/// An entry and what is done to its envelope.
type Damage = (u64, fn(&mut Envelope));

#[test]
fn a_wrong_signature_is_reported_at_its_entry() {
    // (what, the entries damaged and how, the entry reported)
    let cases: &[(&str, &[Damage], u64)] = &[
        ("signed by another key", &[(300, signed_by_another_key)], 300),
        ("the first deposit", &[(1, flipped_bit)], 1),
        ("the last entry, in a short batch", &[(600, flipped_scalar_bit)], 600),
        ("two close together", &[(270, flipped_bit), (260, signed_by_another_key)], 260),
        ("two far apart", &[(520, signed_by_another_key), (100, flipped_scalar_bit)], 100),
        ("a short signature before a wrong one", &[(50, short), (40, signed_by_another_key)], 40),
        ("a wrong signature before a short one", &[(50, signed_by_another_key), (60, short)], 50),
    ];
    for (what, damages, reported) in cases {
        let (_dir, data) = commons();
        let mut expected = None;
        for (index, how) in *damages {
            let error = damage(&data, *index, *how);
            if index == reported {
                expected = Some(error);
            }
        }
        let expected = expected.expect("the reported entry is damaged");
        assert!(expected.contains("signature"), "{what}: {expected}");
        let error = substrate_store::replay::replay(&data, ReplayMode::Check, None).expect_err(what);
        assert_eq!(error.to_string(), expected, "{what}");
    }
}

#[test]
fn an_undamaged_log_of_several_batches_replays() {
    let (_dir, data) = commons();
    let report = substrate_store::replay::replay(&data, ReplayMode::Check, None).expect("replays");
    assert_eq!(report.entries, u64::from(DEPOSITS) + 1);
    assert_eq!(report.deposits, u64::from(DEPOSITS));
}
