//! Replay: recompute the whole state from the log alone, checking every signature, every stored
//! leaf hash, every checkpoint's tree root and state root, and finally the materialised tables.
//! `Check` reports the first divergence; `Rebuild` rewrites the materialised tables from the fold.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{Connection, OptionalExtension};
use substrate_core::state::{Change, DepositRecord, State};
use substrate_core::{Cid, LogEntry, SignedEvent};
use substrate_tlog::{Checkpoint, NoteSigner, NoteVerifier, Tree};

use crate::DataDir;
use crate::ledger::{STATE_EXTENSION, materialise};
use crate::opening::{self, Opened};
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

pub use crate::opening::BATCH;

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
/// each with its event as `open` opens it, read a chunk at a time and opened ahead of the fold
/// ([`opening::pipeline`]). Entries missing before `size` are an error once those before them
/// are folded.
fn pipeline(
    conn: &Connection,
    size: Option<u64>,
    open: fn(&[Row]) -> Vec<Opened>,
    fold: impl FnMut(Row, Opened) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    // The index of the next entry to read, and how many were read.
    let next = Cell::new(0u64);
    let mut read = 0u64;
    let read_next = || {
        let wanted = size.map_or(u64::MAX, |size| size - read);
        if wanted == 0 {
            return Ok(None);
        }
        let rows = read_chunk(conn, next.get(), wanted)?;
        let Some(&(last, _, _)) = rows.last() else {
            return match size {
                Some(_) => Err(ReplayError::Entry { index: read, detail: "missing from the log".into() }),
                None => Ok(None),
            };
        };
        next.set(last + 1);
        read += rows.len() as u64;
        Ok(Some(rows))
    };
    let stopped =
        || ReplayError::Entry { index: next.get(), detail: "the thread opening entries stopped".into() };
    opening::pipeline(read_next, open, stopped, fold)
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

/// Parses and signature-checks entries in Ed25519 batches ([`opening::open_batched`]): an entry
/// that fails comes out as [`SignedEvent::open_bytes`], the sequencer's single verification,
/// says. The leaf hashes and the tree roots the log key signed fix every envelope's exact bytes,
/// so replay still detects any change to the log.
fn open_verified(rows: &[Row]) -> Vec<Opened> {
    let envelopes: Vec<&[u8]> = rows.iter().map(|(_, leaf, _)| leaf.get(8..).unwrap_or_default()).collect();
    opening::open_batched(&envelopes)
        .into_iter()
        .zip(rows)
        .map(|(opened, (_, leaf, _))| {
            envelope(leaf)?;
            opened.map_err(|e| format!("its signed event does not verify: {e}"))
        })
        .collect()
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
    materialise(tx, &changes, state.size()).map_err(|e| ReplayError::Materialised(e.to_string()))?;
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
