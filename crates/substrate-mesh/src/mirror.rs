//! A mirror's copy of the log, and the checks a fetched range must pass before it is kept.
//!
//! The copy lives in memory ([`MemoryLog`]: a [`Tree`], the raw leaves, the folded [`State`] and
//! the checkpoint last accepted). A range is kept only if the announced checkpoint is consistent
//! with the held one (an RFC 6962 consistency proof), the leaves give exactly its root, every entry
//! opens and folds, and the fold gives exactly its `substrate-state` line. It does not persist yet.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use substrate_core::{LogEntry, SignedEvent, State};
use substrate_store::ledger::STATE_EXTENSION;
use substrate_tlog::{Checkpoint, Hash, ProofError, Tree, verify_consistency};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MirrorError {
    #[error("leaf {index} is not a log entry (8-byte time and an envelope)")]
    MalformedLeaf { index: u64 },
    #[error("the range would give {got} entries but the checkpoint is for {expected}")]
    WrongSize { got: u64, expected: u64 },
    #[error("no consistency proof from size {old} to {new}: {detail}")]
    NoProof { old: u64, new: u64, detail: String },
    #[error("the checkpoint for size {new} is not consistent with the one held for size {old}: {detail}")]
    Inconsistent { old: u64, new: u64, detail: String },
    #[error("the leaves give root {got} but the checkpoint for size {size} says {expected}")]
    RootMismatch { size: u64, got: String, expected: String },
    #[error("entry {index} goes back in time ({time} after {previous})")]
    TimeGoesBack { index: u64, time: u64, previous: u64 },
    #[error("entry {index} does not open: {detail}")]
    UnopenableEntry { index: u64, detail: String },
    #[error("entry {index} is refused by the fold: {detail}")]
    FoldRefused { index: u64, detail: String },
    #[error("the checkpoint for size {size} carries no '{STATE_EXTENSION}' line")]
    NoStateLine { size: u64 },
    #[error("the fold gives state root {got} but the checkpoint for size {size} says {expected}")]
    StateMismatch { size: u64, got: String, expected: String },
    #[error(
        "the checkpoint for size {size} has root {announced} but this log's prefix has {held}: a split view"
    )]
    SplitView { size: u64, announced: String, held: String },
}

/// The leaves, Merkle tree and folded state a mirror holds, plus the checkpoint that vouches for them.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    tree: Tree,
    leaves: Vec<Vec<u8>>,
    state: State,
    /// Integrated time of the last entry held.
    last_time: u64,
    /// The checkpoint accepted last (exactly this log's size) and its signed note.
    checkpoint: Option<(Checkpoint, String)>,
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

    /// The state folded from every entry held.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The signed checkpoint note for exactly this size, once a range has been accepted.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_ref().map(|(_, note)| note.as_str())
    }

    /// Up to `limit` leaves from `start`.
    pub fn leaves(&self, start: u64, limit: u64) -> &[Vec<u8>] {
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(self.leaves.len());
        let end = start.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX)).min(self.leaves.len());
        &self.leaves[start..end]
    }

    /// A consistency proof between two sizes this log holds, to serve to another mirror.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.tree.consistency_proof(old, new)
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

    /// Appends `leaves` (which follow this log's last entry) if `proof` shows `checkpoint` extends
    /// the checkpoint held, the leaves give exactly its root, and folding them gives exactly its
    /// state root; otherwise keeps nothing and says which check failed.
    ///
    /// The proof is checked against the held root before any leaf is looked at: it is the log's
    /// (or a peer's) claim that the new tree extends the old, checked independently of the leaves.
    pub fn extend(
        &mut self,
        checkpoint: &Checkpoint,
        note: &str,
        leaves: Vec<Vec<u8>>,
        proof: &[Hash],
    ) -> Result<(), MirrorError> {
        let old = self.size();
        let got = old + leaves.len() as u64;
        if got != checkpoint.size {
            return Err(MirrorError::WrongSize { got, expected: checkpoint.size });
        }
        verify_consistency(old, checkpoint.size, &self.root(), &checkpoint.root, proof)
            .map_err(|e| MirrorError::Inconsistent { old, new: checkpoint.size, detail: e.to_string() })?;
        let entries = leaves
            .iter()
            .enumerate()
            .map(|(offset, leaf)| {
                let index = old + offset as u64;
                LogEntry::from_leaf(index, leaf).map_err(|_| MirrorError::MalformedLeaf { index })
            })
            .collect::<Result<Vec<_>, _>>()?;

        // Push onto the held tree and take the pushes back if anything below fails: no copy.
        for entry in &entries {
            self.tree.push(entry.leaf_hash());
        }
        match self.fold(checkpoint, &entries) {
            Ok((state, last_time)) => {
                self.state = state;
                self.last_time = last_time;
                self.leaves.extend(leaves);
                self.checkpoint = Some((checkpoint.clone(), note.to_owned()));
                Ok(())
            }
            Err(e) => {
                self.tree.truncate(old);
                Err(e)
            }
        }
    }

    /// Checks the pushed tree against the checkpoint, then folds the entries into a candidate state
    /// and checks its root against the checkpoint's state line.
    fn fold(&self, checkpoint: &Checkpoint, entries: &[LogEntry]) -> Result<(State, u64), MirrorError> {
        if self.tree.root() != checkpoint.root {
            return Err(MirrorError::RootMismatch {
                size: checkpoint.size,
                got: hex(&self.tree.root()),
                expected: hex(&checkpoint.root),
            });
        }
        let stated = checkpoint
            .extension(STATE_EXTENSION)
            .ok_or(MirrorError::NoStateLine { size: checkpoint.size })?;
        // First step: the candidate state is a copy, O(state). A persistent mirror ledger folds
        // inside a transaction instead.
        let mut state = self.state.clone();
        let mut last_time = self.last_time;
        for entry in entries {
            let index = entry.index;
            if entry.integrated_time < last_time {
                return Err(MirrorError::TimeGoesBack {
                    index,
                    time: entry.integrated_time,
                    previous: last_time,
                });
            }
            last_time = entry.integrated_time;
            let event = SignedEvent::open_bytes(&entry.envelope)
                .map_err(|e| MirrorError::UnopenableEntry { index, detail: e.to_string() })?;
            state
                .apply(index, entry.integrated_time, &event)
                .map_err(|e| MirrorError::FoldRefused { index, detail: e.to_string() })?;
        }
        let replayed = BASE64.encode(state.root());
        if stated != replayed {
            return Err(MirrorError::StateMismatch {
                size: checkpoint.size,
                got: replayed,
                expected: stated.to_owned(),
            });
        }
        Ok((state, last_time))
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use substrate_tlog::leaf_hash;

    fn leaf(n: u64) -> Vec<u8> {
        let mut leaf = n.to_be_bytes().to_vec();
        leaf.extend_from_slice(format!("{{\"n\":{n}}}").as_bytes());
        leaf
    }

    fn checkpoint_of(leaves: &[Vec<u8>]) -> Checkpoint {
        let tree = Tree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
        Checkpoint { origin: "test".into(), size: tree.size(), root: tree.root(), extensions: vec![] }
    }

    /// Ranges that fail a check leave nothing behind; whole accepted ranges (real entries that
    /// fold) are exercised in `tests/it`.
    #[test]
    fn a_range_that_fails_any_check_is_not_kept() {
        let all: Vec<Vec<u8>> = (0..10).map(leaf).collect();
        let mut log = MemoryLog::new();
        let empty = (log.size(), log.root());

        let no_state = log.extend(&checkpoint_of(&all), "note 10", all.clone(), &[]);
        assert_eq!(no_state, Err(MirrorError::NoStateLine { size: 10 }));
        assert_eq!((log.size(), log.root()), empty, "the pushed leaves were taken back");

        let target = checkpoint_of(&all);
        let mut tampered = all.clone();
        tampered[3] = leaf(99);
        let refused = log.extend(&target, "note 10", tampered, &[]);
        assert!(matches!(refused, Err(MirrorError::RootMismatch { size: 10, .. })), "{refused:?}");
        assert_eq!((log.size(), log.root()), empty);

        let short = log.extend(&target, "note 10", all[..9].to_vec(), &[]);
        assert_eq!(short, Err(MirrorError::WrongSize { got: 9, expected: 10 }));
        let proof_from_nothing = log.extend(&target, "note 10", all.clone(), &[[0; 32]]);
        assert!(matches!(proof_from_nothing, Err(MirrorError::Inconsistent { old: 0, new: 10, .. })));

        let mut fork = all[..7].to_vec();
        fork[6] = leaf(99);
        assert!(matches!(
            log.agrees_with(&checkpoint_of(&fork)),
            Err(MirrorError::SplitView { size: 7, .. })
        ));
    }
}
