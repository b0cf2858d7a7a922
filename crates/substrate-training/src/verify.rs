//! Checking a published adapter directory without trusting whoever handed it over: the
//! model-signing signature over every file, the node's attestation against the files and the
//! record, the record's own sums, and (given the log) the snapshot root and the node's
//! registration.

use std::path::Path;

use substrate_core::snapshot::snapshot_root;
use substrate_core::{Cid, Register};
use substrate_store::DataDir;

use crate::provenance::{self, PROVENANCE_FILE};
use crate::record::{RUN_FILE, RunRecord};
use crate::run::{SIGNATURE_FILE, SIGNING_KEY_FILE};
use crate::signing;

/// What a verification established.
#[derive(Debug)]
pub struct Verified {
    pub record: RunRecord,
    /// Files covered by the model-signing signature.
    pub files: usize,
    /// Subjects of the attestation, each matched against its file.
    pub subjects: usize,
    /// Whether the snapshot root and the node were checked against a log.
    pub log_checked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterVerifyError {
    #[error("{file}: {detail}")]
    Unreadable { file: String, detail: String },
    // The causes are part of the message, not a source, so a printed chain says each once.
    #[error("the model-signing signature: {0}")]
    Signature(signing::VerifyError),
    #[error("the attestation: {0}")]
    Provenance(provenance::ProvenanceError),
    #[error("{PROVENANCE_FILE} does not cover {0}; the attestation and the directory disagree")]
    Uncovered(String),
    #[error("run.json is inconsistent: {0}")]
    Record(String),
    #[error("reading the log: {0}")]
    Log(substrate_store::ReplayError),
    #[error(
        "the snapshot root in run.json ({stated}) is not the log's at entry {log_size} ({recomputed}); the adapter does not come from this commons' log as it claims"
    )]
    SnapshotRoot { stated: String, recomputed: String, log_size: u64 },
    #[error("the node {0} that signed the attestation is not registered in this commons' log")]
    UnregisteredNode(String),
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, AdapterVerifyError> {
    std::fs::read(dir.join(name))
        .map_err(|e| AdapterVerifyError::Unreadable { file: name.to_owned(), detail: e.to_string() })
}

/// Verifies the adapter directory `dir`, and against the log in `log` when given.
pub fn verify(dir: &Path, log: Option<&DataDir>) -> Result<Verified, AdapterVerifyError> {
    let record: RunRecord = serde_json::from_slice(&read(dir, RUN_FILE)?)
        .map_err(|e| AdapterVerifyError::Unreadable { file: RUN_FILE.into(), detail: e.to_string() })?;
    let public = String::from_utf8_lossy(&read(dir, SIGNING_KEY_FILE)?).into_owned();
    let signed =
        signing::verify_directory(dir, SIGNATURE_FILE, &public).map_err(AdapterVerifyError::Signature)?;

    // The node's attestation covers every file but itself and the signature, the signing key
    // included: so the node vouches for the P-256 key, and the P-256 signature for the files.
    let statement = provenance::open(&read(dir, PROVENANCE_FILE)?, &record.node)
        .map_err(AdapterVerifyError::Provenance)?;
    let subjects = provenance::check_subjects(&statement, dir).map_err(AdapterVerifyError::Provenance)?;
    let covered: Vec<&str> =
        statement["subject"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    for file in &signed.files {
        if file.name != PROVENANCE_FILE && !covered.contains(&file.name.as_str()) {
            return Err(AdapterVerifyError::Uncovered(file.name.clone()));
        }
    }
    let external = &statement["predicate"]["buildDefinition"]["externalParameters"];
    if external["logSize"].as_u64() != Some(record.log_size) {
        return Err(AdapterVerifyError::Record("the attestation's logSize differs from run.json's".into()));
    }

    // The record's own arithmetic.
    let trained: u64 = record.contributions.iter().map(|c| c.tokens_trained).sum();
    let windows: u64 = record.contributions.iter().map(|c| c.windows).sum();
    if trained != record.tokens_trained || windows != record.windows {
        return Err(AdapterVerifyError::Record(format!(
            "its deposits add up to {trained} tokens in {windows} windows, but it states {} in {}",
            record.tokens_trained, record.windows
        )));
    }
    let entries: Vec<_> = record.contributions.iter().map(|c| c.entry.clone()).collect();
    let root = hex::encode(snapshot_root(&entries));
    if root != record.snapshot_root {
        return Err(AdapterVerifyError::Record(format!(
            "its deposits give the snapshot root {root}, but it states {}",
            record.snapshot_root
        )));
    }

    let log_checked = match log {
        None => false,
        Some(data) => {
            let state = substrate_store::replay::fold_to(data, Some(record.log_size), |_, _, _| {})
                .map_err(AdapterVerifyError::Log)?;
            let registers = record
                .mixture
                .iter()
                .filter(|(_, w)| **w > 0.0)
                .filter_map(|(r, _)| Register::new(r).ok())
                .collect();
            let recomputed = hex::encode(snapshot_root(&state.snapshot(&registers)));
            if recomputed != record.snapshot_root {
                return Err(AdapterVerifyError::SnapshotRoot {
                    stated: record.snapshot_root.clone(),
                    recomputed,
                    log_size: record.log_size,
                });
            }
            if state.governance().nodes().all(|n| n.node != record.node) {
                return Err(AdapterVerifyError::UnregisteredNode(record.node.clone()));
            }
            true
        }
    };
    // Every deposit named is a well-formed CID (a record that survived the checks above but
    // names garbage would still be a lie about whose texts made it).
    for c in &record.contributions {
        Cid::parse(&c.entry.cid.to_string())
            .map_err(|e| AdapterVerifyError::Record(format!("{}: {e}", c.entry.cid)))?;
    }
    Ok(Verified { record, files: signed.files.len(), subjects, log_checked })
}
