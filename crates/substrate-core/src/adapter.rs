//! Publishing an adapter in the log: a registered node says which adapter it trained, on which
//! decided mixture and which snapshot, and the fold recomputes that snapshot's root from the log
//! before it accepts the claim.

use std::collections::BTreeSet;

use crate::event::SignedEvent;
use crate::governance::book::{AdapterRecord, Governance, Record};
use crate::register::Register;
use crate::snapshot::{in_snapshot, snapshot_root};
use crate::state::{Change, DepositRecord, Rejection, State};

/// The most characters an adapter's name may have.
pub const MAX_ADAPTER_NAME: usize = 100;

/// A node publishes an adapter it trained. The statement's subject is the adapter weights file,
/// named `name`, with its sha256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdapterPublication {
    /// A name for people (the adapter directory's name).
    pub name: String,
    /// sha256 (hex) of the adapter weights file (`adapter_model.safetensors`).
    pub adapter: String,
    /// sha256 (hex) of the provenance attestation (`provenance.intoto.json`), which names every
    /// file of the adapter and every deposit it was trained on.
    pub provenance: String,
    /// sha256 (hex) of the base model file.
    pub base_model: String,
    /// The log index of the decision whose mixture the run followed.
    pub decision: u64,
    /// The run's snapshot: taken over the first `snapshot_size` entries of the log.
    pub snapshot_size: u64,
    /// The snapshot's RFC 6962 root (hex), which the fold recomputes.
    pub snapshot_root: String,
    /// How many deposits the snapshot holds.
    pub deposits: u64,
    pub requested: String,
}

/// Whether `text` is a sha256 digest in lowercase hex.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The deposits of `adapter`'s snapshot that are gone since (withdrawn by their depositor or
/// removed by the commons), among `gone`: the deposits gone now. The adapter was trained before;
/// this marks it, and retraining on today's snapshot leaves them out. Nothing claims unlearning.
pub fn gone_since<'a>(
    governance: &Governance,
    adapter: &AdapterRecord,
    gone: impl IntoIterator<Item = &'a DepositRecord>,
) -> Vec<&'a DepositRecord> {
    let Some(registers) = governance.weighted_registers(adapter.decision) else { return Vec::new() };
    let disputed = governance.disputed_at(adapter.snapshot_size);
    let mut found: Vec<&DepositRecord> = gone
        .into_iter()
        .filter(|d| d.status.is_gone() && in_snapshot(d, adapter.snapshot_size, &registers, &disputed))
        .collect();
    found.sort_by_key(|d| (d.status.gone_at(), d.log_index));
    found
}

impl Governance {
    /// The registers a decided mixture gives weight to: the ones its snapshot is taken over.
    pub fn weighted_registers(&self, decision: u64) -> Option<BTreeSet<Register>> {
        let mixture = self.mixture_decided_at(decision)?;
        Some(mixture.weights.iter().filter(|(_, w)| **w > 0.0).map(|(r, _)| r.clone()).collect())
    }
}

impl State {
    /// The registers a decided mixture gives weight to: the ones its snapshot is taken over.
    pub fn weighted_registers(&self, decision: u64) -> Option<BTreeSet<Register>> {
        self.governance.weighted_registers(decision)
    }

    /// The changes publishing `a` makes as entry `index` at `time`.
    pub(crate) fn publish_adapter(
        &self,
        index: u64,
        time: u64,
        signed: &SignedEvent,
        a: &AdapterPublication,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        let node =
            g.node(&signed.signer).ok_or_else(|| Rejection::UnregisteredNode(signed.signer.clone()))?;
        if !g.is_verified(&node.operator, time) {
            return Err(Rejection::NotMember(node.operator.clone()));
        }
        if let Some(existing) = g.adapters().find(|x| x.adapter == a.adapter) {
            return Err(Rejection::AdapterPublished { adapter: a.adapter.clone(), id: existing.id });
        }
        let registers =
            self.weighted_registers(a.decision).ok_or(Rejection::NotAMixtureDecision(a.decision))?;
        if a.snapshot_size <= a.decision || a.snapshot_size > index {
            return Err(Rejection::SnapshotSize { size: a.snapshot_size, decision: a.decision, index });
        }
        let entries = self.snapshot_at(a.snapshot_size, &registers);
        let recomputed = hex::encode(snapshot_root(&entries));
        if recomputed != a.snapshot_root || entries.len() as u64 != a.deposits {
            return Err(Rejection::SnapshotMismatch {
                size: a.snapshot_size,
                stated: format!("{} ({} deposits)", a.snapshot_root, a.deposits),
                recomputed: format!("{recomputed} ({} deposits)", entries.len()),
            });
        }
        Ok(vec![Change::Record(Record::Adapter(AdapterRecord {
            id: index,
            node: node.node.clone(),
            operator: node.operator.clone(),
            adapter: a.adapter.clone(),
            provenance: a.provenance.clone(),
            base_model: a.base_model.clone(),
            decision: a.decision,
            snapshot_size: a.snapshot_size,
            snapshot_root: a.snapshot_root.clone(),
            deposits: a.deposits,
            name: a.name.clone(),
            published_at: time,
        }))])
    }
}
