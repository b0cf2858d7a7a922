//! A mirror's copy of the log, and the check a fetched range must pass before it is kept.
//!
//! First step: the copy lives in memory ([`MemoryLog`]: a [`Tree`] and the raw leaves). It does
//! not persist, does not replay the fold and does not recompute the state root yet; the next step
//! is a persistent mirror ledger in substrate-store that does all three.

use substrate_core::LogEntry;
use substrate_tlog::{Checkpoint, Hash, Tree, leaf_hash};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MirrorError {
    #[error("leaf {index} is not a log entry (8-byte time and an envelope)")]
    MalformedLeaf { index: u64 },
    #[error("the range would give {got} entries but the checkpoint is for {expected}")]
    WrongSize { got: u64, expected: u64 },
    #[error("the leaves give root {got} but the checkpoint for size {size} says {expected}")]
    RootMismatch { size: u64, got: String, expected: String },
    #[error(
        "the checkpoint for size {size} has root {announced} but this log's prefix has {held}: a split view"
    )]
    SplitView { size: u64, announced: String, held: String },
}

/// The leaves and Merkle tree a mirror holds, plus the signed checkpoint that vouches for them.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    tree: Tree,
    leaves: Vec<Vec<u8>>,
    checkpoint: Option<String>,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The signed checkpoint note for exactly this size, once a range has been accepted.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Up to `limit` leaves from `start`.
    pub fn leaves(&self, start: u64, limit: u64) -> &[Vec<u8>] {
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.leaves.len());
        let end = start.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX)).min(self.leaves.len());
        &self.leaves[start..end]
    }

    /// Whether an opened checkpoint no larger than this log agrees with it; `Err` is a split view.
    pub fn agrees_with(&self, checkpoint: &Checkpoint) -> Result<(), MirrorError> {
        let held = self.tree.root_at(checkpoint.size).unwrap_or_default();
        if held == checkpoint.root {
            Ok(())
        } else {
            Err(MirrorError::SplitView {
                size: checkpoint.size,
                announced: hex(&checkpoint.root),
                held: hex(&held),
            })
        }
    }

    /// Appends `leaves` (which follow this log's last entry) if, with every leaf held before,
    /// they give exactly the tree `checkpoint` commits to; otherwise keeps nothing.
    ///
    /// Recomputing the RFC 6962 root over all leaves also proves the new tree extends the old one,
    /// so no separate consistency proof is needed when the whole range is in hand.
    pub fn extend(
        &mut self,
        checkpoint: &Checkpoint,
        note: &str,
        leaves: Vec<Vec<u8>>,
    ) -> Result<(), MirrorError> {
        let got = self.size() + leaves.len() as u64;
        if got != checkpoint.size {
            return Err(MirrorError::WrongSize { got, expected: checkpoint.size });
        }
        // First step: the candidate tree is a copy, O(n) in the log size. A tree that can drop
        // its last pushes, or a persistent one, removes the copy.
        let mut tree = self.tree.clone();
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = self.size() + offset as u64;
            LogEntry::from_leaf(index, leaf).map_err(|_| MirrorError::MalformedLeaf { index })?;
            tree.push(leaf_hash(leaf));
        }
        if tree.root() != checkpoint.root {
            return Err(MirrorError::RootMismatch {
                size: checkpoint.size,
                got: hex(&tree.root()),
                expected: hex(&checkpoint.root),
            });
        }
        self.tree = tree;
        self.leaves.extend(leaves);
        self.checkpoint = Some(note.to_owned());
        Ok(())
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u64) -> Vec<u8> {
        let mut leaf = n.to_be_bytes().to_vec();
        leaf.extend_from_slice(format!("{{\"n\":{n}}}").as_bytes());
        leaf
    }

    fn checkpoint_of(leaves: &[Vec<u8>]) -> Checkpoint {
        let tree = Tree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
        Checkpoint { origin: "test".into(), size: tree.size(), root: tree.root(), extensions: vec![] }
    }

    #[test]
    fn ranges_that_match_the_checkpoint_are_kept_and_others_are_not() {
        let all: Vec<Vec<u8>> = (0..10).map(leaf).collect();
        let mut log = MemoryLog::new();
        log.extend(&checkpoint_of(&all[..4]), "note 4", all[..4].to_vec()).expect("first range");
        log.extend(&checkpoint_of(&all), "note 10", all[4..].to_vec()).expect("second range");
        assert_eq!(
            (log.size(), log.root(), log.checkpoint()),
            (10, checkpoint_of(&all).root, Some("note 10"))
        );

        let mut tampered = all.clone();
        tampered.push(leaf(10));
        let target = checkpoint_of(&tampered);
        tampered[10] = leaf(11);
        let refused = log.extend(&target, "note 11", tampered[10..].to_vec());
        assert!(matches!(refused, Err(MirrorError::RootMismatch { size: 11, .. })), "{refused:?}");
        assert_eq!(log.size(), 10, "nothing of a refused range is kept");

        assert_eq!(log.agrees_with(&checkpoint_of(&all[..7])), Ok(()));
        let mut fork = all[..7].to_vec();
        fork[6] = leaf(99);
        assert!(matches!(
            log.agrees_with(&checkpoint_of(&fork)),
            Err(MirrorError::SplitView { size: 7, .. })
        ));
    }
}
