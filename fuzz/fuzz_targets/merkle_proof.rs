//! RFC 6962 inclusion and consistency proofs as a peer or a receipt hands them over: sizes,
//! indices and hashes chosen by someone else, checked by `verify_inclusion` and
//! `verify_consistency` against a tree of 1000 leaves.
//!
//! Input: a mode byte (bit 0: consistency rather than inclusion; bit 1: the two numbers taken
//! modulo the tree size, so they land in range), two little-endian u64s (index and size, or old
//! and new size), then the proof's hashes, 32 bytes each.
//!
//! Without a SHA-256 collision there is one valid proof for each question: any proof that
//! verifies against this tree's roots is the one the tree makes.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use substrate_tlog::{Hash, Tree, leaf_hash, verify_consistency, verify_inclusion};

/// The tree: leaf i is the 8 big-endian bytes of i.
pub static TREE: LazyLock<Tree> =
    LazyLock::new(|| Tree::from_leaf_hashes((0u64..1000).map(|i| leaf_hash(&i.to_be_bytes()))));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((numbers, hashes)) = rest.split_at_checked(16) else { return };
    let number = |i: usize| u64::from_le_bytes(numbers[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let (mut a, mut b) = (number(0), number(1));
    let size = TREE.size();
    if mode & 2 != 0 {
        (a, b) = (a % (size + 1), b % (size + 1));
    }
    let proof: Vec<Hash> = hashes.chunks_exact(32).map(|h| h.try_into().unwrap_or_default()).collect();
    let root = |n: u64| TREE.root_at(n).unwrap_or([0xaa; 32]);

    if mode & 1 == 0 {
        let (index, tree_size) = (a, b);
        let leaf = TREE.leaf(index).unwrap_or([0x55; 32]);
        if verify_inclusion(&leaf, index, tree_size, &proof, &root(tree_size)).is_ok() {
            assert!(index < tree_size && tree_size <= size);
            assert_eq!(
                TREE.inclusion_proof(index, tree_size).as_ref(),
                Ok(&proof),
                "a second inclusion proof"
            );
        }
    } else {
        let (old, new) = (a, b);
        if verify_consistency(old, new, &root(old), &root(new), &proof).is_ok() && new <= size {
            assert!(old <= new);
            if old > 0 {
                assert_eq!(
                    TREE.consistency_proof(old, new).as_ref(),
                    Ok(&proof),
                    "a second consistency proof"
                );
            } else {
                assert!(proof.is_empty());
            }
        }
    }
});
