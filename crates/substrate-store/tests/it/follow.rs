//! A mirror's ledger: a range opened before the range it follows is kept goes in only after it,
//! and an entry whose signature does not verify is named in the words of the single check the
//! sequencer makes, though the mirror checks signatures in batches.

use ed25519_dalek::{Signer, SigningKey};
use substrate_core::envelope::{Envelope, PAYLOAD_TYPE, pae};
use substrate_core::{ConsentTier, LogEntry, SignedEvent};
use substrate_store::ledger::STATE_EXTENSION;
use substrate_store::{DataDir, FollowError, Ledger, OpenedRange, Reader};
use substrate_tlog::{Checkpoint, NoteSigner, Tree};

use crate::{deposit, found};

/// A sequencer's commons with `batches` batches of deposits after its genesis, and its reader.
fn commons(dir: &std::path::Path, batches: &[std::ops::RangeInclusive<u32>]) -> (Ledger, Reader) {
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let bob = SigningKey::from_bytes(&[2u8; 32]);
    let mut ledger = found(dir);
    for (n, batch) in batches.iter().enumerate() {
        let submissions = batch
            .clone()
            .map(|n| deposit(if n % 2 == 0 { &alice } else { &bob }, n, ConsentTier::Public))
            .collect();
        ledger.append_batch(submissions, 2_000 + n as u64).expect("append");
    }
    let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    (ledger, reader)
}

fn leaves(reader: &Reader, start: u64, end: u64) -> Vec<Vec<u8>> {
    reader.entries(start, end - start).expect("entries").iter().map(LogEntry::leaf).collect()
}

fn mirror(dir: &std::path::Path, sequencer: &Ledger) -> Ledger {
    Ledger::follow(&DataDir::new(dir), &sequencer.verifier().to_vkey()).expect("follow")
}

#[test]
fn a_range_opened_ahead_is_kept_only_after_the_range_it_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Checkpoints at sizes 1 (the genesis), 6 and 11.
    let (sequencer, reader) = commons(dir.path(), &[1..=5, 6..=10]);
    let verifier = sequencer.verifier();
    let (first, second) = (reader.checkpoint_at(6).expect("note"), reader.checkpoint_at(11).expect("note"));
    let first_root = Checkpoint::open(&first, &verifier).expect("signed").root;
    let proof = reader.consistency_hashes(6, 11).expect("proof");
    let open_first = || {
        OpenedRange::open(&verifier, (0, substrate_tlog::empty_root()), &first, leaves(&reader, 0, 6), &[])
    };
    // Proven to extend the first range's checkpoint before the mirror holds it.
    let open_second =
        || OpenedRange::open(&verifier, (6, first_root), &second, leaves(&reader, 6, 11), &proof);

    let mirror_dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = mirror(mirror_dir.path(), &sequencer);
    let early = mirror.keep(open_second().expect("opens")).expect_err("it does not follow the log held");
    assert_eq!(early, FollowError::WrongSize { got: 5, expected: 11 });
    assert_eq!(mirror.checkpoint_note().expect("read"), None, "nothing is kept");
    mirror.keep(open_first().expect("opens")).expect("the first range is kept");
    mirror.keep(open_second().expect("opens")).expect("then the second");
    assert_eq!(mirror.checkpoint_note().expect("read").map(|(size, _)| size), Some(11));
}

/// Entry `index`'s envelope signed by another key over the same payload, under the signer's keyid.
fn signed_by_another_key(leaves: &mut [Vec<u8>], index: usize) {
    let mut envelope: Envelope = serde_json::from_slice(&leaves[index][8..]).expect("envelope");
    let other = SigningKey::from_bytes(&[3u8; 32]);
    envelope.signatures[0].sig = other.sign(&pae(PAYLOAD_TYPE, &envelope.payload)).to_bytes().to_vec();
    leaves[index].truncate(8);
    leaves[index].extend_from_slice(&envelope.to_bytes());
}

#[test]
fn a_wrong_signature_in_a_range_is_named_at_its_entry_as_the_single_check_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // More than two batches of signatures.
    let (sequencer, reader) = commons(dir.path(), &[1..=600]);
    let mut damaged = leaves(&reader, 0, 601);
    signed_by_another_key(&mut damaged, 300);
    signed_by_another_key(&mut damaged, 260);
    let expected = SignedEvent::open_bytes(&damaged[260][8..]).expect_err("refused alone").to_string();
    // The log key signs the damaged leaves, as a sequencer that stopped checking would.
    let mut tree = Tree::new();
    damaged.iter().for_each(|leaf| tree.push(substrate_tlog::leaf_hash(leaf)));
    let log_key = NoteSigner::new("test.example/commons", SigningKey::from_bytes(&[42u8; 32])).expect("key");
    assert_eq!(log_key.verifier().to_vkey(), sequencer.verifier().to_vkey());
    let note = Checkpoint {
        origin: "test.example/commons".into(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![format!("{STATE_EXTENSION} {}", "A".repeat(44))],
    }
    .sign(&log_key)
    .expect("sign");

    let mirror_dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = mirror(mirror_dir.path(), &sequencer);
    let error = mirror.extend(&note, damaged, &[]).expect_err("refused");
    assert_eq!(error, FollowError::UnopenableEntry { index: 260, detail: expected });
    assert_eq!(mirror.checkpoint_note().expect("read"), None, "nothing is kept");
}

#[test]
fn entries_integrated_past_the_mirror_s_clock_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = SigningKey::from_bytes(&[1u8; 32]);
    let mut sequencer = found(dir.path());
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    // A sequencer whose clock ran a day ahead.
    let tomorrow = now + 24 * 3600 * 1000;
    sequencer.append_batch(vec![deposit(&alice, 1, ConsentTier::Public)], tomorrow).expect("append");
    let reader =
        Reader::new(sequencer.dir(), sequencer.tree(), sequencer.verifier(), sequencer.blobs().clone());
    let (size, note) = reader.checkpoint().expect("checkpoint");

    let mirror_dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = mirror(mirror_dir.path(), &sequencer);
    let error = mirror.extend(&note, leaves(&reader, 0, size), &[]).expect_err("refused");
    let FollowError::FromTheFuture { index, time, ahead_ms } = error else { panic!("{error:?}") };
    assert_eq!((index, time), (1, tomorrow));
    assert!(ahead_ms > 23 * 3600 * 1000, "{ahead_ms}");
    assert_eq!(mirror.checkpoint_note().expect("read"), None, "nothing is kept");
}
