//! The adapter registry of a node: the files of each adapter published in the log, under
//! `DATA_DIR/registry/<id>/`, accepted one by one only when they are what the log and the
//! attestation say. Uploads need no credentials because nothing unproven is kept: the attestation
//! must hash to the digest the log recorded and be signed by the publishing node, every other
//! file must be one of its subjects with the same sha256, and the model-signing signature comes
//! last and must verify over the complete directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use substrate_core::governance::book::AdapterRecord;
use substrate_store::DataDir;

use crate::provenance::{self, PROVENANCE_FILE};
use crate::run::{SIGNATURE_FILE, SIGNING_KEY_FILE};
use crate::signing;

/// The largest file the registry accepts (an adapter's weights, uncompressed).
pub const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;

/// Uploads are rare; one at a time per process keeps the checks and the writes together.
static ACCEPTING: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "'{0}' is not a file of this adapter; its files are {PROVENANCE_FILE}, the subjects it names, and {SIGNATURE_FILE}"
    )]
    NotAFile(String),
    #[error("upload {PROVENANCE_FILE} first: the other files are checked against it")]
    ProvenanceFirst,
    #[error("{SIGNATURE_FILE} comes last: {0} is still missing")]
    SignatureLast(String),
    #[error("{name} has sha256 {actual}, but {stated}; send the adapter's own file")]
    Digest { name: String, stated: String, actual: String },
    #[error("the attestation: {0}")]
    Provenance(#[from] provenance::ProvenanceError),
    #[error("the model-signing signature does not verify over the adapter: {0}")]
    Signature(String),
    #[error("{0} is already stored with other content; a published file never changes")]
    Conflict(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.display().to_string(), source }
}

/// Where the files of adapter `id` are kept.
pub fn dir(data: &DataDir, id: u64) -> PathBuf {
    data.root().join("registry").join(id.to_string())
}

/// One stored file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the registry holds of one adapter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Holding {
    pub files: Vec<StoredFile>,
    /// Files the attestation names that are not stored yet (all of them before it is).
    pub missing: Vec<String>,
    pub complete: bool,
}

/// The subjects (name, sha256) of the stored attestation of `record`, if it is stored.
fn subjects(dir: &Path, record: &AdapterRecord) -> Result<Option<Vec<(String, String)>>, RegistryError> {
    let path = dir.join(PROVENANCE_FILE);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(io(&path))?,
    };
    let statement = provenance::open(&bytes, &record.node)?;
    Ok(Some(
        statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((s["name"].as_str()?.to_owned(), s["digest"]["sha256"].as_str()?.to_owned()))
            })
            .collect(),
    ))
}

/// What is stored of `record`. The digests are the ones each file was accepted against (the
/// attestation's subjects, the log's record of the attestation); only the small signature is
/// hashed again.
pub fn holding(data: &DataDir, record: &AdapterRecord) -> Result<Holding, RegistryError> {
    let dir = dir(data, record.id);
    let expected = subjects(&dir, record)?;
    let mut digests: BTreeMap<String, Option<String>> =
        expected.iter().flatten().map(|(name, sha256)| (name.clone(), Some(sha256.clone()))).collect();
    digests.insert(PROVENANCE_FILE.to_owned(), Some(record.provenance.clone()));
    digests.insert(SIGNATURE_FILE.to_owned(), None);
    let (mut files, mut missing) = (Vec::new(), Vec::new());
    for (name, sha256) in digests {
        let path = dir.join(&name);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let sha256 = match sha256 {
                    Some(known) => known,
                    None => hex::encode(Sha256::digest(std::fs::read(&path).map_err(io(&path))?)),
                };
                files.push(StoredFile { name, bytes: meta.len(), sha256 });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(name),
            Err(e) => return Err(io(&path)(e)),
        }
    }
    let complete = expected.is_some() && missing.is_empty();
    Ok(Holding { files, missing, complete })
}

/// Whether every file of `record` is stored: the signature is kept only once it verifies over
/// all the others, so its presence says so without reading anything.
pub fn is_complete(data: &DataDir, record: &AdapterRecord) -> bool {
    dir(data, record.id).join(SIGNATURE_FILE).is_file()
}

/// The content of stored file `name` of adapter `record`, if it is stored.
pub fn read(data: &DataDir, record: &AdapterRecord, name: &str) -> Result<Option<Vec<u8>>, RegistryError> {
    if !plain_name(name) {
        return Err(RegistryError::NotAFile(name.to_owned()));
    }
    let path = dir(data, record.id).join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Whether the upload stored the file or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    Stored,
    AlreadyStored,
}

/// Checks `bytes` as file `name` of adapter `record` and stores it.
pub fn accept(
    data: &DataDir,
    record: &AdapterRecord,
    name: &str,
    bytes: &[u8],
) -> Result<Accepted, RegistryError> {
    if !plain_name(name) {
        return Err(RegistryError::NotAFile(name.to_owned()));
    }
    let _one_at_a_time = ACCEPTING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir(data, record.id);
    let target = dir.join(name);
    let actual = hex::encode(Sha256::digest(bytes));
    match std::fs::read(&target) {
        Ok(existing) if existing == bytes => return Ok(Accepted::AlreadyStored),
        Ok(_) => return Err(RegistryError::Conflict(name.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&target)(e)),
    }
    if name == PROVENANCE_FILE {
        if actual != record.provenance {
            return Err(RegistryError::Digest {
                name: name.to_owned(),
                stated: format!("the log records {}", record.provenance),
                actual,
            });
        }
        let statement = provenance::open(bytes, &record.node)?;
        let weights = statement["subject"].as_array().into_iter().flatten().find(|s| {
            s["name"] == substrate_models::lora::WEIGHTS_FILE
                && s["digest"]["sha256"] == record.adapter.as_str()
        });
        if weights.is_none() {
            return Err(RegistryError::Provenance(provenance::ProvenanceError::Malformed(format!(
                "it does not name {} with the sha256 the log records ({})",
                substrate_models::lora::WEIGHTS_FILE,
                record.adapter
            ))));
        }
        return store(&dir, &target, bytes).map(|()| Accepted::Stored);
    }
    let subjects = subjects(&dir, record)?.ok_or(RegistryError::ProvenanceFirst)?;
    if name == SIGNATURE_FILE {
        if let Some((missing, _)) = subjects.iter().find(|(n, _)| !dir.join(n).is_file()) {
            return Err(RegistryError::SignatureLast(missing.clone()));
        }
        let key =
            std::fs::read_to_string(dir.join(SIGNING_KEY_FILE)).map_err(io(&dir.join(SIGNING_KEY_FILE)))?;
        store(&dir, &target, bytes)?;
        if let Err(e) = signing::verify_directory(&dir, SIGNATURE_FILE, &key) {
            std::fs::remove_file(&target).map_err(io(&target))?;
            return Err(RegistryError::Signature(e.to_string()));
        }
        return Ok(Accepted::Stored);
    }
    let Some((_, stated)) = subjects.iter().find(|(n, _)| n == name) else {
        return Err(RegistryError::NotAFile(name.to_owned()));
    };
    if *stated != actual {
        return Err(RegistryError::Digest {
            name: name.to_owned(),
            stated: format!("the attestation states {stated}"),
            actual,
        });
    }
    store(&dir, &target, bytes).map(|()| Accepted::Stored)
}

/// A file name without any path in it.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
        && name.len() <= 255
}

/// Writes `bytes` to `target` in `dir` durably: a temporary file beside the directory, synced,
/// renamed into place, and the directory synced.
fn store(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let incoming = dir.with_extension("incoming");
    std::fs::create_dir_all(&incoming).map_err(io(&incoming))?;
    let temporary = incoming.join(target.file_name().unwrap_or_default());
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, target).map_err(io(target))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[derive(Debug, thiserror::Error)]
pub enum PublicationError {
    #[error("{0}: not an adapter directory that `substrate train` wrote ({1})")]
    NotAnAdapter(String, String),
    #[error(
        "the run followed no decided mixture (every register weighed the same), so the log cannot record it; train again once the commons has decided a mixture"
    )]
    Undecided,
    #[error(transparent)]
    Provenance(#[from] provenance::ProvenanceError),
}

/// The `adapter` event that publishes the adapter directory `adapter_dir` in the log.
pub fn publication(
    adapter_dir: &Path,
    requested: String,
) -> Result<(crate::RunRecord, substrate_core::adapter::AdapterPublication), PublicationError> {
    let path = adapter_dir.join(crate::record::RUN_FILE);
    let record: crate::RunRecord = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .map_err(|e| PublicationError::NotAnAdapter(adapter_dir.display().to_string(), e))?;
    let decision = record.decision.as_ref().ok_or(PublicationError::Undecided)?;
    let name = adapter_dir
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(substrate_core::adapter::MAX_ADAPTER_NAME).collect())
        .unwrap_or_else(|| "adapter".to_owned());
    let publication = substrate_core::adapter::AdapterPublication {
        name,
        adapter: provenance::file_sha256(&adapter_dir.join(substrate_models::lora::WEIGHTS_FILE))?,
        provenance: provenance::file_sha256(&adapter_dir.join(PROVENANCE_FILE))?,
        base_model: record.base_model.sha256.clone(),
        decision: decision.index,
        snapshot_size: record.log_size,
        snapshot_root: record.snapshot_root.clone(),
        deposits: record.contributions.len() as u64,
        requested,
    };
    Ok((record, publication))
}

/// The files of an adapter directory in the order the registry accepts them: the attestation,
/// its subjects, then the signature.
pub fn upload_order(adapter_dir: &Path) -> Result<Vec<String>, PublicationError> {
    let bytes = std::fs::read(adapter_dir.join(PROVENANCE_FILE))
        .map_err(|e| PublicationError::NotAnAdapter(adapter_dir.display().to_string(), e.to_string()))?;
    let envelope: substrate_core::Envelope =
        serde_json::from_slice(&bytes).map_err(|e| provenance::ProvenanceError::Malformed(e.to_string()))?;
    let statement: serde_json::Value = serde_json::from_slice(&envelope.payload)
        .map_err(|e| provenance::ProvenanceError::Malformed(e.to_string()))?;
    let mut names = vec![PROVENANCE_FILE.to_owned()];
    names.extend(
        statement["subject"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned)),
    );
    names.push(SIGNATURE_FILE.to_owned());
    Ok(names)
}
