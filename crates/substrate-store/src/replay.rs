//! Replay: recompute the whole state from the log alone, checking every signature, every stored
//! leaf hash, every checkpoint's tree root and state root, and finally the materialised tables.
//! `Check` reports the first divergence; `Rebuild` rewrites the materialised tables from the fold.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use rusqlite::{Connection, OptionalExtension};
use substrate_core::envelope::SignatureCheck;
use substrate_core::state::{Change, DepositRecord, State};
use substrate_core::{Cid, LogEntry, SignedEvent};
use substrate_tlog::{Checkpoint, NoteSigner, NoteVerifier, Tree};

use crate::DataDir;
use crate::ledger::{STATE_EXTENSION, materialise};
use crate::schema;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayMode {
    Check,
    Rebuild,
}

#[derive(Clone, Debug)]
pub struct ReplayReport {
    pub entries: u64,
    pub checkpoints: u64,
    pub deposits: u64,
    pub withdrawn: u64,
    /// Deposits removed by a ruling or a decision.
    pub removed: u64,
    /// Decisions recomputed from the log and found identical to the sequencer's.
    pub decisions: u64,
    pub members: u64,
    pub tree_root: [u8; 32],
    pub state_root: [u8; 32],
    pub seconds: f64,
    /// Materialised rows rewritten (rebuild) or found to differ (check; then the replay fails).
    pub rows_rebuilt: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {index}: {detail}")]
    Entry { index: u64, detail: String },
    #[error("checkpoint at size {size}: {detail}")]
    Checkpoint { size: u64, detail: String },
    #[error(
        "materialised state differs from the fold: {0}; `substrate ledger replay --rebuild` rewrites it from the log"
    )]
    Materialised(String),
    #[error("the log key: {0}")]
    LogKey(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Entries are read, parsed and signature-checked in chunks of this many, in parallel; one chunk
/// is checked while the one before it is folded.
const CHUNK: u64 = 8192;

/// Chunks handed to the opening thread ahead of the fold: the one it opens while a chunk is
/// folded, and the next, read in time for it to go straight on to.
const AHEAD: usize = 2;

/// Entries whose signatures are verified in one Ed25519 batch. Larger batches cost less per
/// signature (256 entries: 513 points in one multiscalar multiplication); a batch that fails is
/// verified again one signature at a time.
pub const BATCH: usize = 256;

/// Replays the log in `dir`. Checkpoints are checked against `verifier`, or the node's own log
/// key when none is given.
pub fn replay(
    dir: &DataDir,
    mode: ReplayMode,
    verifier: Option<NoteVerifier>,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let verifier = match verifier {
        Some(v) => v,
        None => log_verifier(dir)?,
    };
    let mut conn = schema::open(&dir.database())?;
    // One snapshot for the whole replay, so a node appending meanwhile cannot make the log and
    // the materialised tables look inconsistent; a rebuild also holds off writers until done.
    let behavior = match mode {
        ReplayMode::Check => rusqlite::TransactionBehavior::Deferred,
        ReplayMode::Rebuild => rusqlite::TransactionBehavior::Immediate,
    };
    let tx = conn.transaction_with_behavior(behavior)?;
    let conn: &Connection = &tx;
    let checkpoints = load_checkpoints(conn, &verifier)?;

    let mut tree = Tree::new();
    let mut state = State::new();
    let mut last_time = 0u64;
    let mut checked = 0u64;
    pipeline(conn, None, open_verified, |(index, leaf, stored_hash), event| {
        let fail = |detail: String| ReplayError::Entry { index, detail };
        if index != tree.size() {
            return Err(fail(format!("expected entry {} next; the log has a gap", tree.size())));
        }
        let entry = LogEntry::from_leaf(index, &leaf).map_err(|e| fail(e.to_string()))?;
        let hash = entry.leaf_hash();
        if stored_hash != hash {
            return Err(fail("its bytes no longer match the stored leaf hash (tampered entry)".into()));
        }
        if entry.integrated_time < last_time {
            return Err(fail(format!(
                "integrated time {} goes back from {last_time}",
                entry.integrated_time
            )));
        }
        last_time = entry.integrated_time;
        let event = event.map_err(fail)?;
        state
            .apply(index, entry.integrated_time, &event)
            .map_err(|e| fail(format!("the fold refuses it: {e}")))?;
        tree.push(hash);
        if let Some(checkpoint) = checkpoints.get(&tree.size()) {
            check_checkpoint(checkpoint, &tree, &state)?;
            checked += 1;
        }
        Ok(())
    })?;
    if let Some(size) = checkpoints.keys().copied().find(|size| *size > tree.size()) {
        return Err(ReplayError::Checkpoint {
            size,
            detail: format!("signed for a size beyond the log's {} entries (entries were lost)", tree.size()),
        });
    }
    if checked != checkpoints.len() as u64 {
        return Err(ReplayError::Checkpoint {
            size: 0,
            detail: "a checkpoint of size 0 is not allowed".into(),
        });
    }
    if let Some(commons) = state.commons()
        && commons.log_key != verifier.to_vkey()
    {
        return Err(ReplayError::LogKey(format!(
            "the genesis declares log key {} but checkpoints were checked with {}",
            commons.log_key,
            verifier.to_vkey()
        )));
    }

    let rows_rebuilt = match mode {
        ReplayMode::Check => {
            compare_materialised(conn, &state)?;
            0
        }
        ReplayMode::Rebuild => rebuild(conn, &state)?,
    };
    tx.commit()?;
    let withdrawn = state
        .deposits()
        .filter(|d| matches!(d.status, substrate_core::state::DepositStatus::Withdrawn { .. }))
        .count() as u64;
    let governance = state.governance();
    Ok(ReplayReport {
        entries: tree.size(),
        checkpoints: checked,
        deposits: state.deposits().count() as u64,
        withdrawn,
        removed: state.deposits().filter(|d| d.status.is_gone()).count() as u64 - withdrawn,
        decisions: governance
            .proposals()
            .filter(|p| matches!(p.status, substrate_core::governance::book::ProposalStatus::Closed { .. }))
            .count() as u64,
        members: governance.members().count() as u64,
        tree_root: tree.root(),
        state_root: state.root(),
        seconds: started.elapsed().as_secs_f64(),
        rows_rebuilt,
    })
}

/// The state after the first `size` entries of the log in `dir` (all of them when `None`), folded
/// from the log alone in one read snapshot. The log key vouches for the entries: each entry's
/// bytes must hash to its stored leaf hash, the tree over the leaves must have the root of the
/// first checkpoint the log key signed at or beyond `size`, and when that checkpoint is at `size`
/// the folded state must have its state root. The members' signatures, which the sequencer
/// checked when it appended each entry and which the leaf hashes cover, are not checked again
/// (`replay` checks them). `on_entry` sees each entry as it is folded. Returns the state; its
/// `size()` says how many entries it holds.
pub fn fold_to(
    dir: &DataDir,
    size: Option<u64>,
    mut on_entry: impl FnMut(u64, u64, &SignedEvent),
) -> Result<State, ReplayError> {
    let verifier = log_verifier(dir)?;
    let mut conn = schema::open(&dir.database())?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let conn: &Connection = &tx;
    let held: u64 = conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
    let size = size.unwrap_or(held);
    if size > held {
        return Err(ReplayError::Entry {
            index: size,
            detail: format!("the log holds {held} entries; choose a size of at most {held}"),
        });
    }
    let checkpoint = match conn
        .query_row("SELECT size, note FROM checkpoints WHERE size >= ?1 ORDER BY size LIMIT 1", [size], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?
    {
        Some((at, note)) => Some(
            Checkpoint::open(&note, &verifier)
                .map_err(|e| ReplayError::Checkpoint { size: at, detail: e.to_string() })?,
        ),
        // An empty log has no checkpoint.
        None if size == 0 => None,
        None => {
            return Err(ReplayError::Checkpoint {
                size,
                detail: "no checkpoint signed by the log key covers it".into(),
            });
        }
    };
    let mut state = State::new();
    let mut tree = Tree::new();
    pipeline(conn, Some(size), open_logged, |(index, leaf, stored_hash), event| {
        let fail = |detail: String| ReplayError::Entry { index, detail };
        let entry = LogEntry::from_leaf(index, &leaf).map_err(|e| fail(e.to_string()))?;
        if stored_hash != entry.leaf_hash() {
            return Err(fail("its bytes no longer match the stored leaf hash (tampered entry)".into()));
        }
        tree.push(stored_hash);
        let event = event.map_err(fail)?;
        state
            .apply(index, entry.integrated_time, &event)
            .map_err(|e| fail(format!("the fold refuses it: {e}")))?;
        on_entry(index, entry.integrated_time, &event);
        Ok(())
    })?;
    if let Some(checkpoint) = checkpoint {
        // The leaves after `size` up to the checkpoint count only by their hashes.
        let mut stmt =
            conn.prepare("SELECT leaf_hash, idx FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?;
        let mut rows = stmt.query([size, checkpoint.size])?;
        while let Some(row) = rows.next()? {
            let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let index: u64 = row.get(1)?;
            tree.push(<[u8; 32]>::try_from(bytes).map_err(|_| ReplayError::Checkpoint {
                size: checkpoint.size,
                detail: format!("the stored leaf hash of entry {index} is {} bytes, not 32", bytes.len()),
            })?);
        }
        if tree.size() != checkpoint.size || tree.root() != checkpoint.root {
            return Err(ReplayError::Checkpoint {
                size: checkpoint.size,
                detail:
                    "the log's entries do not have the root the log key signed (tampered or lost entries)"
                        .into(),
            });
        }
        if checkpoint.size == size {
            check_state_root(&checkpoint, &state)?;
        }
    }
    tx.commit()?;
    Ok(state)
}

/// The log key's verifier: from the secret key a sequencer holds, or the public key a mirror does.
fn log_verifier(dir: &DataDir) -> Result<NoteVerifier, ReplayError> {
    match std::fs::read_to_string(dir.log_key()) {
        Ok(skey) => {
            Ok(NoteSigner::from_skey(skey.trim()).map_err(|e| ReplayError::LogKey(e.to_string()))?.verifier())
        }
        // A mirror holds only the public key.
        Err(_) => {
            let vkey = std::fs::read_to_string(dir.log_public_key()).map_err(|e| {
                ReplayError::LogKey(format!(
                    "neither {} nor {}: {e}",
                    dir.log_key().display(),
                    dir.log_public_key().display()
                ))
            })?;
            NoteVerifier::from_vkey(vkey.trim()).map_err(|e| ReplayError::LogKey(e.to_string()))
        }
    }
}

fn load_checkpoints(
    conn: &Connection,
    verifier: &NoteVerifier,
) -> Result<HashMap<u64, Checkpoint>, ReplayError> {
    let mut stmt = conn.prepare("SELECT size, note FROM checkpoints")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?)))?;
    let mut checkpoints = HashMap::new();
    for row in rows {
        let (size, note) = row?;
        let checkpoint = Checkpoint::open(&note, verifier)
            .map_err(|e| ReplayError::Checkpoint { size, detail: e.to_string() })?;
        if checkpoint.size != size {
            return Err(ReplayError::Checkpoint {
                size,
                detail: format!("the note says size {}", checkpoint.size),
            });
        }
        checkpoints.insert(size, checkpoint);
    }
    Ok(checkpoints)
}

type Row = (u64, Vec<u8>, [u8; 32]);

/// An entry opened into its event, or why it does not open.
type Opened = Result<SignedEvent, String>;

/// Reads a chunk of entries from index `start` on, at most `limit` of them.
fn read_chunk(conn: &Connection, start: u64, limit: u64) -> Result<Vec<Row>, ReplayError> {
    let mut stmt = conn
        .prepare_cached("SELECT idx, leaf, leaf_hash FROM entries WHERE idx >= ?1 ORDER BY idx LIMIT ?2")?;
    let rows = stmt.query_map([start, CHUNK.min(limit)], |r| {
        let hash: Vec<u8> = r.get(2)?;
        Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?, hash.try_into().unwrap_or([0u8; 32])))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Hands the log's entries from the first on (the first `size` when given) to `fold` in order,
/// each with its event as `open` opens it. Opening is most of the work and spreads over every
/// core, while folding is sequential; so a thread of its own opens the chunk after the one being
/// folded. At most two chunks are held: the one being folded and the next, being opened (the one
/// after is read between two folds). The first error wins, as in a sequential replay:
/// `fold`'s at an entry before a chunk that could not be read, then the reading's.
fn pipeline(
    conn: &Connection,
    size: Option<u64>,
    open: fn(&[Row]) -> Vec<Opened>,
    mut fold: impl FnMut(Row, Opened) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    std::thread::scope(|scope| {
        // Both channels' ends on this side drop when this closure returns, early or not, which
        // ends the opening thread before the scope waits for it.
        let (to_open, unopened) = mpsc::sync_channel::<Vec<Row>>(1);
        let (to_fold, opened) = mpsc::sync_channel::<(Vec<Row>, Vec<Opened>)>(1);
        scope.spawn(move || {
            for rows in unopened {
                let events = open_parallel(&rows, workers, open);
                if to_fold.send((rows, events)).is_err() {
                    break;
                }
            }
        });
        let stopped =
            |index| ReplayError::Entry { index, detail: "the thread opening entries stopped".into() };
        let (mut next, mut read, mut in_flight) = (0u64, 0u64, 0usize);
        // Why the reading ended early: a chunk that could not be read, or entries missing.
        let mut ended: Option<ReplayError> = None;
        let mut reading = true;
        loop {
            while reading && in_flight < AHEAD {
                let wanted = size.map_or(u64::MAX, |size| size - read);
                let rows = if wanted == 0 { Ok(Vec::new()) } else { read_chunk(conn, next, wanted) };
                let rows = rows.unwrap_or_else(|e| {
                    ended = Some(e);
                    Vec::new()
                });
                let Some(&(last, _, _)) = rows.last() else {
                    if ended.is_none() && wanted > 0 && size.is_some() {
                        ended =
                            Some(ReplayError::Entry { index: read, detail: "missing from the log".into() });
                    }
                    reading = false;
                    break;
                };
                next = last + 1;
                read += rows.len() as u64;
                to_open.send(rows).map_err(|_| stopped(next))?;
                in_flight += 1;
            }
            if in_flight == 0 {
                return ended.map_or(Ok(()), Err);
            }
            let (rows, events) = opened.recv().map_err(|_| stopped(next))?;
            in_flight -= 1;
            for (row, event) in rows.into_iter().zip(events) {
                fold(row, event)?;
            }
        }
    })
}

/// Opens a chunk of entries on `workers` threads, keeping their order.
fn open_parallel(rows: &[Row], workers: usize, open: fn(&[Row]) -> Vec<Opened>) -> Vec<Opened> {
    let per = rows.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows.chunks(per).map(|part| scope.spawn(move || open(part))).collect();
        handles
            .into_iter()
            .zip(rows.chunks(per))
            .flat_map(|(handle, part)| {
                handle
                    .join()
                    .unwrap_or_else(|_| vec![Err("an opening thread panicked".to_owned()); part.len()])
            })
            .collect()
    })
}

/// The envelope in an entry: the entry's bytes after its 8-byte time.
fn envelope(leaf: &[u8]) -> Result<&[u8], String> {
    leaf.get(8..).ok_or_else(|| "the entry is shorter than its 8-byte time".to_owned())
}

/// Parses entries without checking their signatures again ([`fold_to`]).
fn open_logged(rows: &[Row]) -> Vec<Opened> {
    rows.iter()
        .map(|(_, leaf, _)| {
            SignedEvent::open_logged(envelope(leaf)?)
                .map_err(|e| format!("its signed event does not parse: {e}"))
        })
        .collect()
}

/// Parses and signature-checks entries, the signatures of [`BATCH`] entries at a time in one
/// Ed25519 batch. An entry that fails comes out as [`SignedEvent::open_bytes`], the sequencer's
/// single verification, says: a batch that does not verify is opened again entry by entry.
///
/// Accepting a batch is as safe here as checking each signature alone. A batch accepts every
/// signature single verification accepts, and more only where a signature's nonce point is
/// encoded non-canonically or it or the key carries a small-order component: signatures only the
/// holder of the signer's secret key can make (malleated signatures of the signer's own, never
/// forgeries), which single verification refuses. The leaf hashes and the tree roots the log
/// key signed fix every envelope's exact bytes, so replay still detects any change to the log.
fn open_verified(rows: &[Row]) -> Vec<Opened> {
    let open_alone = |leaf: &[u8]| {
        SignedEvent::open_bytes(envelope(leaf)?).map_err(|e| format!("its signed event does not verify: {e}"))
    };
    let mut opened = Vec::with_capacity(rows.len());
    for batch in rows.chunks(BATCH) {
        let deferred: Vec<_> = batch
            .iter()
            .map(|(_, leaf, _)| envelope(leaf).ok().and_then(|bytes| SignedEvent::open_deferred(bytes).ok()))
            .collect();
        let checks: Vec<&SignatureCheck> =
            deferred.iter().flatten().flat_map(|(_, checks)| checks.iter()).collect();
        let messages: Vec<&[u8]> = checks.iter().map(|c| c.message.as_slice()).collect();
        let signatures: Vec<Signature> = checks.iter().map(|c| c.signature).collect();
        let keys: Vec<VerifyingKey> = checks.iter().map(|c| c.key).collect();
        let verified = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for ((_, leaf, _), deferred) in batch.iter().zip(deferred) {
            opened.push(match deferred {
                Some((event, _)) if verified => Ok(event),
                // An entry that does not open, or any of a batch that does not verify.
                _ => open_alone(leaf),
            });
        }
    }
    opened
}

fn check_checkpoint(checkpoint: &Checkpoint, tree: &Tree, state: &State) -> Result<(), ReplayError> {
    let fail = |detail: String| ReplayError::Checkpoint { size: checkpoint.size, detail };
    if checkpoint.root != tree.root() {
        return Err(fail(format!(
            "its tree root {} differs from the replayed {}",
            STANDARD.encode(checkpoint.root),
            STANDARD.encode(tree.root())
        )));
    }
    check_state_root(checkpoint, state)
}

fn check_state_root(checkpoint: &Checkpoint, state: &State) -> Result<(), ReplayError> {
    let fail = |detail: String| ReplayError::Checkpoint { size: checkpoint.size, detail };
    let stated =
        checkpoint.extension(STATE_EXTENSION).ok_or_else(|| fail(format!("no '{STATE_EXTENSION}' line")))?;
    let replayed = STANDARD.encode(state.root());
    if stated != replayed {
        return Err(fail(format!("its state root {stated} differs from the replayed {replayed}")));
    }
    Ok(())
}

fn compare_materialised(conn: &Connection, state: &State) -> Result<(), ReplayError> {
    let stored: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT record FROM commons WHERE id = 0",
        [],
        |r| r.get(0),
    ))?;
    let folded = state.commons().map(|c| serde_json::to_string(c).unwrap_or_default());
    if stored != folded {
        return Err(ReplayError::Materialised("the commons record".into()));
    }
    let mut stmt = conn.prepare("SELECT cid, log_index, handle, depositor, status, record FROM deposits")?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredDeposit {
            cid: r.get(0)?,
            log_index: r.get(1)?,
            handle: r.get(2)?,
            depositor: r.get(3)?,
            status: r.get(4)?,
            record: r.get(5)?,
        })
    })?;
    let mut seen = 0usize;
    for row in rows {
        let stored = row?;
        let folded = Cid::parse(&stored.cid).ok().and_then(|cid| state.deposit(&cid));
        let Some(folded) = folded else {
            return Err(ReplayError::Materialised(format!("deposit {} is not in the log", stored.cid)));
        };
        let record: Option<DepositRecord> = serde_json::from_str(&stored.record).ok();
        let expected = crate::ledger::deposit_columns(folded);
        if record.as_ref() != Some(folded) || stored.columns() != expected {
            return Err(ReplayError::Materialised(format!("deposit {}", stored.cid)));
        }
        seen += 1;
    }
    let expected = state.deposits().count();
    if seen != expected {
        return Err(ReplayError::Materialised(format!("{seen} deposit rows, the fold has {expected}")));
    }
    let mut folded: std::collections::BTreeMap<(String, String), String> = state
        .governance()
        .records()
        .iter()
        .map(|r| {
            let (kind, key) = r.key();
            ((kind.to_owned(), key), serde_json::to_string(r).unwrap_or_default())
        })
        .collect();
    let mut stmt = conn.prepare("SELECT kind, key, record FROM records")?;
    let rows =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (kind, key, record) = row?;
        match folded.remove(&(kind.clone(), key.clone())) {
            Some(expected) if expected == record => {}
            Some(_) => return Err(ReplayError::Materialised(format!("the {kind} record '{key}'"))),
            None => {
                return Err(ReplayError::Materialised(format!(
                    "the {kind} record '{key}' is not in the log"
                )));
            }
        }
    }
    if let Some(((kind, key), _)) = folded.into_iter().next() {
        return Err(ReplayError::Materialised(format!("the {kind} record '{key}' is missing")));
    }
    Ok(())
}

fn rebuild(tx: &Connection, state: &State) -> Result<u64, ReplayError> {
    tx.execute("DELETE FROM commons", [])?;
    tx.execute("DELETE FROM deposits", [])?;
    tx.execute("DELETE FROM records", [])?;
    let mut changes: Vec<Change> = state.commons().cloned().map(Change::Commons).into_iter().collect();
    changes.extend(state.deposits().cloned().map(Change::Deposit));
    changes.extend(state.governance().records().into_iter().map(Change::Record));
    materialise(tx, &changes).map_err(|e| ReplayError::Materialised(e.to_string()))?;
    Ok(changes.len() as u64)
}

/// A `deposits` row as stored.
struct StoredDeposit {
    cid: String,
    log_index: u64,
    handle: String,
    depositor: String,
    status: String,
    record: String,
}

impl StoredDeposit {
    fn columns(&self) -> (u64, &str, &str, &str) {
        (self.log_index, &self.handle, &self.depositor, &self.status)
    }
}
