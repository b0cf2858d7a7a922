//! A mirror's side of the ledger: it holds the same tables as the sequencer but no log key. It
//! takes ranges of entries that the log key's checkpoints vouch for, and keeps one only if every
//! check passes; then it fetches the texts that consent lets it hold.
//!
//! A range is kept only if the checkpoint extends the one held (an RFC 6962 consistency proof,
//! checked before any leaf is read), the leaves give exactly its root, integrated times never go
//! back, every entry opens and folds, and the fold gives exactly the checkpoint's
//! `substrate-state` line. Then entries, materialised state and the checkpoint land in one SQLite
//! commit. On any failure nothing of the range is kept.
//!
//! Opening the entries needs no ledger, so it is a step of its own ([`OpenedRange::open`]): a
//! mirror opens the next range, proven to extend the checkpoint of the range its ledger is
//! keeping, on other threads meanwhile; [`Ledger::keep`] takes it only if that checkpoint is the
//! log held by then. [`Ledger::extend`] does both, one after the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{OptionalExtension, params};
use substrate_core::state::{Change, DepositRecord};
use substrate_core::{Cid, ConsentTier, LogEntry};
use substrate_tlog::{Checkpoint, Hash, NoteVerifier, verify_consistency};

use crate::DataDir;
use crate::ledger::{Ledger, LedgerError, STATE_EXTENSION, Table, materialise};
use crate::opening::{self, Opened};

/// How far ahead of a mirror's clock an entry's integration time may be: clocks on different
/// machines disagree by seconds, not minutes.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FollowError {
    #[error("the checkpoint is not one the log key signed: {0}")]
    Unsigned(String),
    #[error("the range would give {got} entries but the checkpoint is for {expected}")]
    WrongSize { got: u64, expected: u64 },
    #[error("the checkpoint for size {new} is not consistent with the one held for size {old}: {detail}")]
    Inconsistent { old: u64, new: u64, detail: String },
    #[error("leaf {index} is not a log entry (8-byte time and an envelope)")]
    MalformedLeaf { index: u64 },
    #[error("the leaves give root {got} but the checkpoint for size {size} says {expected}")]
    RootMismatch { size: u64, got: String, expected: String },
    #[error("entry {index} goes back in time ({time} after {previous})")]
    TimeGoesBack { index: u64, time: u64, previous: u64 },
    #[error(
        "entry {index} was integrated at {time}, {ahead_ms} ms ahead of this node's clock: the \
         sequencer's clock jumped, or this one is behind; the range is fetched again later"
    )]
    FromTheFuture { index: u64, time: u64, ahead_ms: u64 },
    #[error("entry {index} does not open: {detail}")]
    UnopenableEntry { index: u64, detail: String },
    #[error("entry {index} is refused by the fold: {detail}")]
    FoldRefused { index: u64, detail: String },
    #[error("the genesis names log key {named}, not the key this mirror trusts ({trusted})")]
    ForeignGenesis { named: String, trusted: String },
    #[error("the checkpoint for size {size} carries no '{STATE_EXTENSION}' line")]
    NoStateLine { size: u64 },
    #[error("the fold gives state root {got} but the checkpoint for size {size} says {expected}")]
    StateMismatch { size: u64, got: String, expected: String },
    #[error(
        "the checkpoint for size {size} has root {announced} but the log held here has {held}: a split view"
    )]
    SplitView { size: u64, announced: String, held: String },
    #[error("this node holds the log key: it appends, it does not follow")]
    NotAMirror,
    #[error("the mirror could not store the range: {0}")]
    Storage(String),
}

impl From<LedgerError> for FollowError {
    fn from(e: LedgerError) -> Self {
        FollowError::Storage(e.to_string())
    }
}

/// What a kept range asks of its mirror next.
#[derive(Debug, Default)]
pub struct Extended {
    /// Texts of deposits in the range that consent lets this mirror hold and that it lacks.
    pub wanted: Vec<Cid>,
}

/// A fetched range, checked as far as it can be away from the ledger and with every entry
/// opened: what [`Ledger::keep`] takes. Opening the entries (their signatures above all) is most
/// of a range's work and needs no ledger, so a mirror opens the next range on other cores while
/// its ledger keeps the one before.
pub struct OpenedRange {
    note: String,
    /// The checkpoint's state root line.
    stated: String,
    /// The size and root of the log the range was proven to follow.
    follows: (u64, Hash),
    leaves: Vec<Vec<u8>>,
    /// Each entry's integrated time and leaf hash.
    times: Vec<u64>,
    hashes: Vec<Hash>,
    /// Each entry's event, or why it does not open, reported by `keep` in order.
    events: Vec<Opened>,
}

impl OpenedRange {
    /// Checks that the log key (`verifier`) signed the checkpoint in `note`, that `leaves` take
    /// the log of `follows` (its size and root) to the checkpoint's size and that `proof` shows
    /// the checkpoint extends it, before any leaf is read; that the checkpoint states a state
    /// root; and that every leaf is an entry. Then opens every entry, over every core, the
    /// signatures in Ed25519 batches.
    pub fn open(
        verifier: &NoteVerifier,
        follows: (u64, Hash),
        note: &str,
        leaves: Vec<Vec<u8>>,
        proof: &[Hash],
    ) -> Result<OpenedRange, FollowError> {
        let checkpoint =
            Checkpoint::open(note, verifier).map_err(|e| FollowError::Unsigned(e.to_string()))?;
        let (old, old_root) = follows;
        let got = old + leaves.len() as u64;
        if got != checkpoint.size {
            return Err(FollowError::WrongSize { got, expected: checkpoint.size });
        }
        verify_consistency(old, checkpoint.size, &old_root, &checkpoint.root, proof)
            .map_err(|e| FollowError::Inconsistent { old, new: checkpoint.size, detail: e.to_string() })?;
        let stated = checkpoint
            .extension(STATE_EXTENSION)
            .ok_or(FollowError::NoStateLine { size: checkpoint.size })?
            .to_owned();
        let mut times = Vec::with_capacity(leaves.len());
        let mut hashes = Vec::with_capacity(leaves.len());
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = old + offset as u64;
            let entry = LogEntry::from_leaf(index, leaf).map_err(|_| FollowError::MalformedLeaf { index })?;
            times.push(entry.integrated_time);
            // The leaf is the entry's bytes: its hash is the entry's leaf hash.
            hashes.push(substrate_tlog::leaf_hash(leaf));
        }
        let events = opening::open_parallel(&leaves, open_leaves);
        Ok(OpenedRange { note: note.to_owned(), stated, follows, leaves, times, hashes, events })
    }

    /// How many entries the range holds.
    pub fn entries(&self) -> usize {
        self.leaves.len()
    }
}

/// Whether consent lets a text leave its node for a member mirror: `public` and `commons` do;
/// `training-only` moves only inside an approved job and `local` never leaves.
pub fn replicates(consent: ConsentTier) -> bool {
    matches!(consent, ConsentTier::Public | ConsentTier::Commons)
}

impl Ledger {
    /// Prepares `dir` to mirror the commons whose log key is `vkey` (Go signed-note verifier
    /// format): the key is the only thing the mirror trusts; everything else arrives over the mesh.
    pub fn follow(dir: &DataDir, vkey: &str) -> Result<Ledger, LedgerError> {
        let verifier =
            substrate_tlog::NoteVerifier::from_vkey(vkey.trim()).map_err(|e| LedgerError::LogKey {
                path: "the given log key".into(),
                detail: format!("{e} (give the 'log key' line that `substrate init` printed)"),
            })?;
        if dir.database().exists() || dir.log_key().exists() || dir.log_public_key().exists() {
            return Err(LedgerError::AlreadyInitialised(dir.root().display().to_string()));
        }
        let io = crate::ledger::io_error(dir.root());
        std::fs::create_dir_all(dir.root()).map_err(&io)?;
        std::fs::write(dir.log_public_key(), format!("{}\n", verifier.to_vkey())).map_err(&io)?;
        Ledger::open(dir)
    }

    /// The signed checkpoint note for exactly the log held, if any entry is held.
    pub fn checkpoint_note(&self) -> Result<Option<(u64, String)>, LedgerError> {
        Ok(crate::ledger::latest_checkpoint(&self.conn)?)
    }

    /// Whether an opened checkpoint no larger than the log held agrees with it; `Err` is a split
    /// view: the log key signed two different trees of one size.
    pub fn agrees_with(&self, checkpoint: &Checkpoint) -> Result<(), FollowError> {
        let held =
            self.tree.read().unwrap_or_else(|e| e.into_inner()).root_at(checkpoint.size).unwrap_or_default();
        if held == checkpoint.root {
            Ok(())
        } else {
            Err(FollowError::SplitView {
                size: checkpoint.size,
                announced: hex(&checkpoint.root),
                held: hex(&held),
            })
        }
    }

    /// Keeps `leaves` (which follow the last entry held) if `proof` shows the checkpoint in `note`
    /// extends the one held and every check in the module's description passes; otherwise keeps
    /// nothing and says which check failed. [`OpenedRange::open`], then [`Ledger::keep`].
    pub fn extend(
        &mut self,
        note: &str,
        leaves: Vec<Vec<u8>>,
        proof: &[Hash],
    ) -> Result<Extended, FollowError> {
        if self.is_sequencer() {
            return Err(FollowError::NotAMirror);
        }
        let range = OpenedRange::open(&self.verifier, self.held(), note, leaves, proof)?;
        self.keep(range)
    }

    /// Keeps a range opened off this ledger's thread if it follows exactly the log held and the
    /// checks left pass: the log key signed its checkpoint, the leaves give the checkpoint's root,
    /// and then, entry by entry, times never go back, each entry opened and folds; last the
    /// state root. Otherwise keeps nothing and says which check failed, the first in that order.
    pub fn keep(&mut self, range: OpenedRange) -> Result<Extended, FollowError> {
        if self.is_sequencer() {
            return Err(FollowError::NotAMirror);
        }
        // The range may have been opened with another key: its checkpoint counts only if this
        // ledger's log key signed it.
        let checkpoint = Checkpoint::open(&range.note, &self.verifier)
            .map_err(|e| FollowError::Unsigned(e.to_string()))?;
        let (old, held_root) = self.held();
        let got = old + range.leaves.len() as u64;
        if got != checkpoint.size {
            return Err(FollowError::WrongSize { got, expected: checkpoint.size });
        }
        if range.follows.1 != held_root {
            return Err(FollowError::Inconsistent {
                old,
                new: checkpoint.size,
                detail: format!(
                    "it was proven to follow root {} at that size, not the root {} held",
                    hex(&range.follows.1),
                    hex(&held_root)
                ),
            });
        }
        {
            // Pushed in place and taken back on a mismatch: no copy of the tree.
            let mut tree = self.tree.write().unwrap_or_else(|e| e.into_inner());
            for hash in &range.hashes {
                tree.push(*hash);
            }
            if tree.root() != checkpoint.root {
                let got = hex(&tree.root());
                tree.truncate(old);
                return Err(FollowError::RootMismatch {
                    size: checkpoint.size,
                    got,
                    expected: hex(&checkpoint.root),
                });
            }
        }
        // The fold changes the state in place; a failure anywhere below reloads it from disk.
        let result = self.fold_and_store(&checkpoint, range);
        if result.is_err() {
            self.reload()?;
        }
        result
    }

    /// The size and root of the log held.
    fn held(&self) -> (u64, Hash) {
        let tree = self.tree.read().unwrap_or_else(|e| e.into_inner());
        (tree.size(), tree.root())
    }

    /// Folds the range's opened entries in order, checks the state root, and keeps it all in one
    /// commit.
    fn fold_and_store(
        &mut self,
        checkpoint: &Checkpoint,
        range: OpenedRange,
    ) -> Result<Extended, FollowError> {
        let clock = std::time::Instant::now();
        let OpenedRange { note, stated, leaves, times, hashes, events, .. } = range;
        let first = self.state.size();
        let mut changes: Vec<Change> = Vec::new();
        let mut digests = Vec::with_capacity(leaves.len());
        let mut last_time = self.last_time;
        // The latest integration time this node accepts, by its own clock.
        let latest = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .saturating_add(FUTURE_TOLERANCE_MS);
        // What earlier ranges wrote is in the tables now; each entry loads what it reads.
        self.state.release();
        for ((offset, time), opened) in times.into_iter().enumerate().zip(events) {
            let index = first + offset as u64;
            if time < last_time {
                return Err(FollowError::TimeGoesBack { index, time, previous: last_time });
            }
            if time > latest {
                return Err(FollowError::FromTheFuture {
                    index,
                    time,
                    ahead_ms: time - latest + FUTURE_TOLERANCE_MS,
                });
            }
            last_time = time;
            let event = opened.map_err(|detail| FollowError::UnopenableEntry { index, detail })?;
            self.load(&self.state.reads(&event))?;
            let applied = self
                .state
                .apply(index, time, &event)
                .map_err(|e| FollowError::FoldRefused { index, detail: e.to_string() })?;
            changes.extend(applied.changes);
            digests.push(event.act_digest());
        }
        if let Some(commons) = self.state.commons()
            && commons.log_key != self.verifier.to_vkey()
        {
            return Err(FollowError::ForeignGenesis {
                named: commons.log_key.clone(),
                trusted: self.verifier.to_vkey(),
            });
        }
        let replayed = STANDARD.encode(self.state.root());
        if stated != replayed {
            return Err(FollowError::StateMismatch {
                size: checkpoint.size,
                got: replayed,
                expected: stated,
            });
        }

        let folded = clock.elapsed();
        let tx = self.conn.transaction().map_err(LedgerError::from)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO entries (idx, leaf, leaf_hash, act) VALUES (?1, ?2, ?3, ?4)")
                .map_err(LedgerError::from)?;
            for (offset, ((leaf, hash), digest)) in leaves.iter().zip(&hashes).zip(&digests).enumerate() {
                insert
                    .execute(params![first + offset as u64, leaf, hash.as_slice(), digest.as_slice()])
                    .map_err(LedgerError::from)?;
            }
            materialise(&tx, &changes, checkpoint.size)?;
            tx.execute(
                "INSERT INTO checkpoints (size, note) VALUES (?1, ?2)",
                params![checkpoint.size, note],
            )
            .map_err(LedgerError::from)?;
        }
        let inserted = clock.elapsed();
        tx.commit().map_err(LedgerError::from)?;
        tracing::debug!(
            entries = leaves.len(),
            fold_us = folded.as_micros() as u64,
            insert_us = (inserted - folded).as_micros() as u64,
            commit_us = (clock.elapsed() - inserted).as_micros() as u64,
            "range kept"
        );
        self.last_time = last_time;

        // Texts whose deposit went away, or whose consent narrowed, leave this mirror now.
        // A deposit changed twice in one range is wanted once: `seen` keeps that check O(1).
        // A deposit made in this range has no text here to delete or find: a CID is deposited
        // once, and `keep_texts` keeps only texts of deposits already in the tables.
        let mut wanted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for change in &changes {
            if let Change::Deposit(record) = change {
                let made_here = record.log_index >= first;
                if record.status.is_gone() || !replicates(record.consent) {
                    if !made_here {
                        self.blobs.delete(&record.cid).map_err(LedgerError::from)?;
                    }
                } else if (made_here || !self.blobs.contains(&record.cid)) && seen.insert(&record.cid) {
                    wanted.push(record.cid.clone());
                }
            }
        }
        Ok(Extended { wanted })
    }

    /// Texts this mirror may hold and lacks: every active deposit whose consent replicates and
    /// whose blob is missing (after a restart, or texts that could not be fetched before).
    pub fn wanted_texts(&self) -> Result<Vec<Cid>, LedgerError> {
        let mut stmt = self.conn.prepare("SELECT record FROM deposits WHERE status = 'active'")?;
        let mut rows = stmt.query([])?;
        let mut wanted = Vec::new();
        while let Some(row) = rows.next()? {
            let deposit = self.stored_deposit(row.get_ref(0)?.as_str()?)?;
            if replicates(deposit.consent) && !self.blobs.contains(&deposit.cid) {
                wanted.push(deposit.cid);
            }
        }
        Ok(wanted)
    }

    fn stored_deposit(&self, json: &str) -> Result<DepositRecord, LedgerError> {
        serde_json::from_str(json)
            .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })
    }

    /// Keeps texts fetched from a peer: each must hash to its CID and belong to an active deposit
    /// whose consent lets a mirror hold it. Returns how many were kept; one sync covers them all.
    pub fn keep_texts(&mut self, texts: Vec<(Cid, Vec<u8>)>) -> Result<usize, LedgerError> {
        let mut kept = 0;
        for (cid, content) in texts {
            let stored: Option<String> = self
                .conn
                .prepare_cached("SELECT record FROM deposits WHERE cid = ?1")?
                .query_row([cid.to_string()], |row| row.get(0))
                .optional()?;
            let deposit = stored.map(|json| self.stored_deposit(&json)).transpose()?;
            let allowed = deposit.is_some_and(|d| !d.status.is_gone() && replicates(d.consent));
            if !allowed || Cid::of(&content) != cid {
                tracing::warn!(%cid, "a text that does not match an active replicable deposit was dropped");
                continue;
            }
            self.blobs.put_unsynced(&cid, &content)?;
            kept += 1;
        }
        if kept > 0 {
            self.blobs.sync()?;
        }
        Ok(kept)
    }
}

/// Opens a chunk of a range's leaves (each checked to hold its 8-byte time and more), the
/// signatures in Ed25519 batches; an entry that does not open says why as
/// [`SignedEvent::open_bytes`] does.
fn open_leaves(leaves: &[Vec<u8>]) -> Vec<Opened> {
    let envelopes: Vec<&[u8]> = leaves.iter().map(|leaf| leaf.get(8..).unwrap_or_default()).collect();
    opening::open_batched(&envelopes).into_iter().map(|opened| opened.map_err(|e| e.to_string())).collect()
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
