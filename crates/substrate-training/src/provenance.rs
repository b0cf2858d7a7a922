//! The adapter's provenance: an in-toto Statement v1 with the SLSA Provenance v1 predicate, in a
//! DSSE envelope signed by the node key that ran the training. Its subjects are the adapter
//! directory's files; its resolved dependencies are the base model, the program, the snapshot and
//! every deposit of the snapshot, each annotated with what the run made of it.

use std::path::Path;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use substrate_core::Envelope;

use crate::record::RunRecord;

/// The attestation's file name in the adapter directory.
pub const PROVENANCE_FILE: &str = "provenance.intoto.json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is: a LoRA training run over a governed snapshot.
pub const BUILD_TYPE: &str = "https://substrate.commons/build/train-lora/v1";
/// The digest algorithm name of a snapshot root (RFC 6962 over the snapshot's leaves).
pub const SNAPSHOT_DIGEST: &str = "rfc6962-sha256";

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the attestation is not a DSSE envelope of an in-toto statement: {0}")]
    Malformed(String),
    #[error("the attestation's signature does not verify: {0}")]
    Signature(String),
    #[error("the attestation is signed by {signer}, not by the node that ran the training ({node})")]
    Signer { signer: String, node: String },
    #[error(
        "{file} is not what the attestation says (sha256 {stated}, the file has {actual}); the adapter was changed after it was signed"
    )]
    Changed { file: String, stated: String, actual: String },
    #[error("{0} is in the attestation but not in the adapter directory")]
    Missing(String),
}

/// The SHA-256 of a file, streamed, in lowercase hex.
pub fn file_sha256(path: &Path) -> Result<String, ProvenanceError> {
    let io = |source| ProvenanceError::Io { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The statement for `record`, whose adapter files are `subjects` (name, sha256 hex).
pub fn statement(record: &RunRecord, subjects: &[(String, String)]) -> Value {
    let mut dependencies = vec![
        json!({
            "uri": format!("file:{}", record.base_model.name),
            "name": record.base_model.name,
            "digest": {"sha256": record.base_model.sha256},
            "annotations": {"role": "base-model"},
        }),
        json!({
            "uri": format!("pkg:cargo/{}@{}", record.builder.name, record.builder.version),
            "name": record.builder.name,
            "digest": {"sha256": record.builder.sha256},
            "annotations": {"role": "program"},
        }),
        json!({
            "uri": format!("{}/snapshot/{}", record.commons.origin, record.snapshot_root),
            "name": "snapshot",
            "digest": {SNAPSHOT_DIGEST: record.snapshot_root},
            "annotations": {
                "role": "snapshot",
                "logSize": record.log_size,
                "deposits": record.contributions.len(),
            },
        }),
    ];
    for c in &record.contributions {
        dependencies.push(json!({
            "uri": c.entry.handle,
            "name": c.entry.cid.to_string(),
            "digest": {"sha256": c.entry.cid.digest_hex()},
            "annotations": {
                "role": "deposit",
                "register": c.entry.register.as_str(),
                "depositor": c.entry.depositor,
                "consent": c.entry.consent.as_str(),
                "license": c.license,
                "weight": record.mixture.get(c.entry.register.as_str()).copied().unwrap_or(0.0),
                "tokens": c.tokens,
                "tokensTrained": c.tokens_trained,
                "windows": c.windows,
                "heldOut": c.held_out,
            },
        }));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects
            .iter()
            .map(|(name, sha256)| json!({"name": name, "digest": {"sha256": sha256}}))
            .collect::<Vec<_>>(),
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "commons": {"origin": record.commons.origin, "logKey": record.commons.log_key},
                    "decision": record.decision.as_ref().map(|d| json!({
                        "logIndex": d.index,
                        "proposal": d.proposal,
                        "statementSha256": d.statement_sha256,
                    })),
                    "logSize": record.log_size,
                    "mixture": record.mixture,
                    "hyperparameters": record.hyperparameters,
                    "seed": record.hyperparameters.seed,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": record.node,
                    "version": {record.builder.name.as_str(): record.builder.version},
                },
                "metadata": {
                    "invocationId": format!("{}/snapshot/{}", record.commons.origin, record.snapshot_root),
                    "startedOn": record.started,
                    "finishedOn": record.finished,
                },
            },
        },
    })
}

/// Signs the statement with the node key: the DSSE envelope, as the JSON bytes to write.
pub fn sign(statement: &Value, node_key: &SigningKey) -> Vec<u8> {
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    Envelope::sign(payload, node_key).to_bytes()
}

/// Opens an attestation: checks its signature and that `node` signed it; returns the statement.
pub fn open(bytes: &[u8], node: &str) -> Result<Value, ProvenanceError> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| ProvenanceError::Malformed(e.to_string()))?;
    let signers = envelope.verify_all().map_err(|e| ProvenanceError::Signature(e.to_string()))?;
    if signers.first().map(String::as_str) != Some(node) {
        return Err(ProvenanceError::Signer { signer: signers.join(", "), node: node.to_owned() });
    }
    let statement: Value =
        serde_json::from_slice(&envelope.payload).map_err(|e| ProvenanceError::Malformed(e.to_string()))?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != SLSA_PROVENANCE {
        return Err(ProvenanceError::Malformed(format!(
            "expected an in-toto statement v1 with the SLSA provenance v1 predicate, got {} / {}",
            statement["_type"], statement["predicateType"]
        )));
    }
    Ok(statement)
}

/// Checks every subject of `statement` against the files in `dir`, naming the first that differs.
pub fn check_subjects(statement: &Value, dir: &Path) -> Result<usize, ProvenanceError> {
    let subjects = statement["subject"].as_array().cloned().unwrap_or_default();
    for subject in &subjects {
        let name = subject["name"].as_str().unwrap_or_default();
        let stated = subject["digest"]["sha256"].as_str().unwrap_or_default();
        let path = dir.join(name);
        if name.is_empty() || name.contains("..") || !path.is_file() {
            return Err(ProvenanceError::Missing(name.to_owned()));
        }
        let actual = file_sha256(&path)?;
        if actual != stated {
            return Err(ProvenanceError::Changed {
                file: name.to_owned(),
                stated: stated.to_owned(),
                actual,
            });
        }
    }
    Ok(subjects.len())
}
