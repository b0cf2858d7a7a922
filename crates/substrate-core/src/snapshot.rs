//! The training snapshot: the deposits a training run may use at a point of the log, and the root
//! that names that set, so that anyone holding the log recomputes it.
//!
//! A deposit is in the snapshot over a set of registers at a log size when, as of that size, it
//! was deposited, active (not withdrawn, not removed) and not under an open dispute, and its
//! primary register is one of them. Every consent tier allows training; `local` texts train only
//! on the node that holds them, which the run's cards say. The snapshot is sorted by CID and
//! identified by the RFC 6962 root over its entries' leaves ([`SnapshotEntry::leaf`]).
//!
//! Every field of a leaf is fixed once the deposit is made, and every change of status keeps the
//! log index it happened at, so the snapshot at an earlier size is recomputed from today's state:
//! the fold checks a published adapter's snapshot that way. Consent can narrow after the
//! snapshot, so it is reported beside each entry but is not part of its leaf.

use std::collections::{BTreeSet, HashSet};

use crate::cid::Cid;
use crate::register::{ConsentTier, Register};
use crate::state::{DepositRecord, State};

/// What the first field of every snapshot leaf says: the leaf format and its version.
pub const LEAF_FORMAT: &str = "substrate/snapshot-entry/v2";

/// One deposit of a snapshot, as the log records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotEntry {
    pub cid: Cid,
    pub handle: String,
    pub register: Register,
    pub depositor: String,
    /// The deposit's consent tier when the snapshot was read (not part of the leaf).
    pub consent: ConsentTier,
    /// The text's size in bytes.
    pub bytes: u64,
}

impl SnapshotEntry {
    fn of(record: &DepositRecord) -> SnapshotEntry {
        SnapshotEntry {
            cid: record.cid.clone(),
            handle: record.handle.clone(),
            register: record.register.clone(),
            depositor: record.depositor.clone(),
            consent: record.consent,
            bytes: record.size,
        }
    }

    /// The leaf this entry contributes to the snapshot root: six netstrings
    /// (`<byte length in decimal>:<bytes>,`), in this order: [`LEAF_FORMAT`], the CID, the
    /// handle, the register, the depositor's did:key, the size in decimal.
    pub fn leaf(&self) -> Vec<u8> {
        let size = self.bytes.to_string();
        let fields = [
            LEAF_FORMAT,
            &self.cid.to_string(),
            &self.handle,
            self.register.as_str(),
            &self.depositor,
            &size,
        ];
        let mut leaf = Vec::with_capacity(fields.iter().map(|f| f.len() + 8).sum());
        for field in fields {
            leaf.extend_from_slice(field.len().to_string().as_bytes());
            leaf.push(b':');
            leaf.extend_from_slice(field.as_bytes());
            leaf.push(b',');
        }
        leaf
    }
}

/// The RFC 6962 root over the entries' leaves, in the order given (a snapshot is sorted by CID).
pub fn snapshot_root(entries: &[SnapshotEntry]) -> [u8; 32] {
    let tree =
        substrate_tlog::Tree::from_leaf_hashes(entries.iter().map(|e| substrate_tlog::leaf_hash(&e.leaf())));
    tree.root()
}

impl State {
    /// The snapshot over `registers` as of the entries folded so far, sorted by CID.
    pub fn snapshot(&self, registers: &BTreeSet<Register>) -> Vec<SnapshotEntry> {
        self.snapshot_at(self.size(), registers)
    }

    /// The snapshot over `registers` as of the log's first `size` entries (at most the entries
    /// folded so far), sorted by CID: recomputed from today's records, which keep the log index
    /// of every withdrawal, removal, dispute and ruling.
    pub fn snapshot_at(&self, size: u64, registers: &BTreeSet<Register>) -> Vec<SnapshotEntry> {
        let disputed = self.governance().disputed_at(size);
        let mut entries: Vec<SnapshotEntry> = self
            .deposits()
            .filter(|d| in_snapshot(d, size, registers, &disputed))
            .map(SnapshotEntry::of)
            .collect();
        entries.sort_by_cached_key(|e| e.cid.to_string());
        entries
    }
}

/// Whether `deposit` is in the snapshot over `registers` of the log's first `size` entries, given
/// the deposits under an open dispute then (`Governance::disputed_at`).
pub fn in_snapshot(
    deposit: &DepositRecord,
    size: u64,
    registers: &BTreeSet<Register>,
    disputed: &HashSet<&Cid>,
) -> bool {
    deposit.log_index < size
        && registers.contains(&deposit.register)
        && deposit.status.gone_at().is_none_or(|gone| gone >= size)
        && !disputed.contains(&deposit.cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, register: &str) -> SnapshotEntry {
        SnapshotEntry {
            cid: Cid::of(text.as_bytes()),
            handle: format!("tag:example.org,2026:c/{}", text.len()),
            register: Register::new(register).expect("register"),
            depositor: "did:key:z6MkexampleDepositor".into(),
            consent: ConsentTier::Commons,
            bytes: text.len() as u64,
        }
    }

    #[test]
    fn a_leaf_is_six_netstrings_in_a_fixed_order() {
        let e = entry("bread", "oral");
        let leaf = String::from_utf8(e.leaf()).expect("utf-8");
        let expected = format!(
            "27:substrate/snapshot-entry/v2,{}:{},24:tag:example.org,2026:c/5,4:oral,28:did:key:z6MkexampleDepositor,1:5,",
            e.cid.to_string().len(),
            e.cid
        );
        assert_eq!(leaf, expected);
    }

    #[test]
    fn the_root_is_rfc6962_over_the_leaves_and_changes_with_any_field() {
        let entries = vec![entry("bread", "oral"), entry("salt", "sacred"), entry("water", "narrative")];
        let root = snapshot_root(&entries);
        let mut by_hand = substrate_tlog::Tree::new();
        for e in &entries {
            by_hand.push(substrate_tlog::leaf_hash(&e.leaf()));
        }
        assert_eq!(root, by_hand.root());
        assert_eq!(snapshot_root(&[]), substrate_tlog::empty_root());
        let mut swapped = entries.clone();
        swapped[1].depositor = "did:key:z6MkanotherDepositor".into();
        assert_ne!(snapshot_root(&swapped), root);
        let mut dropped = entries.clone();
        dropped.remove(2);
        assert_ne!(snapshot_root(&dropped), root);
    }
}
