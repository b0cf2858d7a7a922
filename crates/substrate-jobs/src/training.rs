//! A worker's side of a training job (and of an evaluation, which reads the same snapshot),
//! outside the sandbox: before the run it takes the job's
//! snapshot from its own copy of the log and gathers the texts (its own store for what replicates
//! or was deposited here, the sequencer for `training-only` texts, which are sent only to the node
//! assigned the job); after the run it signs the staged adapter with the node's keys and keeps it
//! under `DATA_DIR/adapters/job-ID-ASSIGNMENT`, and once the job's output stands it records the
//! adapter in the log and in the node's registry.
//!
//! Invariant: a job's texts live only in its scratch directory, which is deleted when the job
//! ends here and when the worker starts; they never enter the node's blob store.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use substrate_core::governance::book::Governance;
use substrate_core::governance::jobs::{JobRecord, JobStatus};
use substrate_core::{ConsentTier, event::Event};
use substrate_store::{DataDir, TextReader};
use substrate_training::RunRecord;
use substrate_training::record::Builder;
use substrate_training::run::{self, Snapshot};
use substrate_training::signing::ModelSigningKey;

use crate::workload::{TrainingContext, TrainingFiles};

/// What the sequencer answered for a job's texts: each CID with its text (checked against the
/// CID) or why it was not sent; or why nothing came.
pub type Fetched = Result<Vec<(String, Result<Vec<u8>, String>)>, String>;

/// How a worker asks the sequencer for texts of a job the log assigned to it.
pub type FetchTexts = Box<dyn Fn(u64, Vec<String>) -> Fetched + Send>;

/// How the preparation of a job asks for texts it does not hold (see [`FetchTexts`]).
pub(crate) type Fetch<'a> = dyn Fn(u64, Vec<String>) -> Fetched + 'a;

/// Most texts asked for in one request (the mesh's limit per request).
const FETCH_BATCH: usize = 64;

/// Where a job's adapters wait for the job's output to stand, and stay once published.
fn staged_dir(data: &DataDir, job: u64, assignment: u64) -> PathBuf {
    data.root().join("adapters").join(format!("job-{job}-{assignment}"))
}

/// Writes the job's snapshot, its texts and the record's context into `dir`, beside the input:
/// the snapshot of the log's first `job.id` entries by the mixture the request names, read from
/// `data`. Its `local` texts must be here (they never travel: such a job runs on the node they
/// were deposited to); the others are read here or asked of the sequencer.
pub(crate) fn prepare(
    data: &DataDir,
    job: &JobRecord,
    decision: u64,
    dir: &Path,
    context: &TrainingContext,
    fetch: Option<&Fetch<'_>>,
) -> Result<Snapshot, String> {
    let snapshot = run::snapshot(data, Some(decision), Some(job.id))
        .map_err(|e| format!("taking the job's snapshot: {e}"))?;
    if snapshot.log_size != job.id {
        return Err(format!(
            "this node holds {} entries, not the {} of the job's snapshot yet",
            snapshot.log_size, job.id
        ));
    }
    if snapshot.entries.is_empty() {
        return Err("the snapshot holds no text in a register the mixture weighs".into());
    }
    let texts_dir = dir.join(TrainingFiles::TEXTS);
    std::fs::create_dir_all(&texts_dir).map_err(|e| format!("{}: {e}", texts_dir.display()))?;
    let reader = TextReader::open(data).map_err(|e| format!("reading this node's texts: {e}"))?;
    let mut wanted: Vec<(usize, String)> = Vec::new();
    let mut local_missing = 0;
    for (position, entry) in snapshot.entries.iter().enumerate() {
        match reader.text(&entry.cid).map_err(|e| e.to_string())? {
            Some(bytes) if substrate_core::Cid::of(&bytes) == entry.cid => {
                write_text(&texts_dir, position, &bytes)?;
            }
            _ if entry.consent == ConsentTier::Local => local_missing += 1,
            _ => wanted.push((position, entry.cid.to_string())),
        }
    }
    if local_missing > 0 {
        return Err(format!(
            "{local_missing} of the snapshot's texts are local and not on this node; they never leave the node they were deposited to, so the job runs there"
        ));
    }
    if !wanted.is_empty() {
        let Some(fetch) = fetch else {
            return Err(format!("this node does not hold {} of the snapshot's texts", wanted.len()));
        };
        for batch in wanted.chunks(FETCH_BATCH) {
            let cids: Vec<String> = batch.iter().map(|(_, cid)| cid.clone()).collect();
            let answer = fetch(job.id, cids)?;
            for ((position, cid), (sent, text)) in batch.iter().zip(answer) {
                match text {
                    Ok(bytes) if sent == *cid => write_text(&texts_dir, *position, &bytes)?,
                    Ok(_) => return Err(format!("the sequencer answered {sent} for {cid}")),
                    Err(why) => return Err(format!("the sequencer did not send {cid}: {why}")),
                }
            }
        }
    }
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(TrainingFiles::CORPUS, serde_json::to_vec(&snapshot.corpus()).unwrap_or_default())?;
    write(TrainingFiles::CONTEXT, serde_json::to_vec(context).unwrap_or_default())?;
    Ok(snapshot)
}

fn write_text(dir: &Path, position: usize, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(TrainingFiles::text_name(position));
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the record names of the program and node that run the job, and the adapter directory
/// an evaluation reads.
pub(crate) fn context(
    node: &str,
    program: Option<&str>,
    base: &Path,
    base_sha256: &str,
    adapter: Option<PathBuf>,
) -> TrainingContext {
    TrainingContext {
        adapter,
        builder: Builder {
            name: "substrate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            sha256: program.unwrap_or_default().to_owned(),
        },
        node: node.to_owned(),
        base_name: base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        base_sha256: base_sha256.to_owned(),
    }
}

/// The directory of adapter `id` in this node's registry, when it holds every file of it.
pub(crate) fn adapter_files(data: &DataDir, governance: &Governance, id: u64) -> Result<PathBuf, String> {
    let record =
        governance.adapter(id).ok_or_else(|| format!("the log this node holds publishes no adapter {id}"))?;
    if !substrate_training::registry::is_complete(data, record) {
        return Err(format!(
            "this node does not hold every file of adapter {id} yet (it fetches them from the node that published it)"
        ));
    }
    Ok(std::path::absolute(substrate_training::registry::dir(data, id))
        .unwrap_or_else(|_| substrate_training::registry::dir(data, id)))
}

/// Signs the adapter the workload staged in `out` (the model card, the attestation by the node
/// key, the model-signing signature) and moves it to where it waits for the job's output to
/// stand.
pub(crate) fn seal(
    data: &DataDir,
    key: &SigningKey,
    job: &JobRecord,
    assignment: u64,
    out: &Path,
    snapshot: &Snapshot,
) -> Result<PathBuf, String> {
    let record_path = out.join(TrainingFiles::RECORD);
    let record: RunRecord = std::fs::read(&record_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("the workload's run record {}: {e}", record_path.display()))?;
    let staging = out.join(TrainingFiles::ADAPTER);
    let signing_path = data.root().join("model-signing.key");
    let signing_key = ModelSigningKey::load_or_create(&signing_path)
        .map_err(|e| format!("the model-signing key {}: {e}", signing_path.display()))?;
    run::seal(&staging, &record, key, &signing_key, &snapshot.state).map_err(|e| e.to_string())?;
    let target = staged_dir(data, job.id, assignment);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target)
        .map_err(|e| format!("keeping the adapter in {}: {e}", target.display()))?;
    Ok(target)
}

/// What to do next with an adapter a training job left on this node.
pub(crate) enum Next {
    /// Record it in the log (the publication to sign), then put its files in the registry.
    Publish(Box<Event>),
    /// It is in the log as this id; its files are not all in the registry yet.
    Register(u64),
    /// Nothing more: published and registered.
    Done,
}

/// What to do with the adapters staged by this node's training runs, now that the log says
/// what came of their jobs: publish the ones whose output stands, register the files of those
/// published before the node stopped, drop the others. Directories `skip` names (seen through,
/// or waiting to be tried again) are not looked at.
pub(crate) fn settle(
    data: &DataDir,
    governance: &Governance,
    node: &str,
    skip: impl Fn(&Path) -> bool,
) -> Vec<(PathBuf, Next)> {
    let Ok(entries) = std::fs::read_dir(data.root().join("adapters")) else { return Vec::new() };
    let mut next = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        if skip(&dir) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((job, assignment)) = name
            .strip_prefix("job-")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(j, a)| Some((j.parse::<u64>().ok()?, a.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let Some(record) = governance.jobs().get(&job) else { continue };
        // A done job its node's catch re-opens is not settled until its check is.
        if record.awaits_recheck() {
            continue;
        }
        let stands = match &record.status {
            JobStatus::Done { result, .. } => record
                .runs
                .iter()
                .any(|r| r.assignment == assignment && r.node == node && r.result == Some(*result)),
            JobStatus::Failed { .. } => false,
            // Still open (drawing, checked): wait.
            _ => continue,
        };
        if !stands {
            tracing::info!(job, dir = %dir.display(), "the job's standing output is not this node's: its adapter is dropped");
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        let Ok((_, publication)) =
            substrate_training::registry::publication(&dir, substrate_core::timestamp::rfc3339(now_ms()))
        else {
            tracing::warn!(job, dir = %dir.display(), "the staged adapter is not a complete adapter directory; it is left alone");
            next.push((dir, Next::Done));
            continue;
        };
        let step = match governance.adapters().find(|a| a.adapter == publication.adapter) {
            None => Next::Publish(Box::new(Event::Adapter(publication))),
            // The same weights are published once: an earlier run on the same snapshot made them.
            Some(a) if a.provenance != publication.provenance => {
                tracing::info!(job, adapter = a.id, dir = %dir.display(), "these weights are already in the log as another run's adapter; this copy is dropped");
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            Some(a) if substrate_training::registry::is_complete(data, a) => Next::Done,
            Some(a) => Next::Register(a.id),
        };
        next.push((dir, step));
    }
    next
}

/// Puts the files of the adapter in `dir`, recorded in the log as `id`, into the node's registry:
/// what the sequencer and mirrors fetch from. Whether every file was kept.
pub(crate) fn register(data: &DataDir, governance: &Governance, id: u64, dir: &Path) -> Result<(), String> {
    let record =
        governance.adapter(id).ok_or_else(|| format!("adapter {id} is not in this node's log yet"))?;
    for name in substrate_training::registry::upload_order(dir).map_err(|e| e.to_string())? {
        let bytes = std::fs::read(dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        substrate_training::registry::accept(data, record, &name, &bytes)
            .map_err(|e| format!("the registry refused {name}: {e}"))?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
