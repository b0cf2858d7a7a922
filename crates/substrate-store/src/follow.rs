//! A mirror's side of the ledger: it holds the same tables as the sequencer but no log key. It
//! takes ranges of entries that the log key's checkpoints vouch for, and keeps one only if every
//! check passes; then it fetches the texts that consent lets it hold.
//!
//! A range is kept only if the checkpoint extends the one held (an RFC 6962 consistency proof,
//! checked against the held root before any leaf is read), the leaves give exactly its root,
//! integrated times never go back, every entry opens and folds, and the fold gives exactly the
//! checkpoint's `substrate-state` line. Then entries, materialised state and the checkpoint land
//! in one SQLite commit. On any failure nothing of the range is kept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::{OptionalExtension, params};
use substrate_core::state::{Change, DepositRecord};
use substrate_core::{Cid, ConsentTier, LogEntry, SignedEvent};
use substrate_tlog::{Checkpoint, Hash, verify_consistency};

use crate::DataDir;
use crate::ledger::{Ledger, LedgerError, STATE_EXTENSION, Table, materialise};

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
    /// nothing and says which check failed.
    pub fn extend(
        &mut self,
        note: &str,
        leaves: Vec<Vec<u8>>,
        proof: &[Hash],
    ) -> Result<Extended, FollowError> {
        if self.is_sequencer() {
            return Err(FollowError::NotAMirror);
        }
        let checkpoint =
            Checkpoint::open(note, &self.verifier).map_err(|e| FollowError::Unsigned(e.to_string()))?;
        let old = self.state.size();
        let got = old + leaves.len() as u64;
        if got != checkpoint.size {
            return Err(FollowError::WrongSize { got, expected: checkpoint.size });
        }
        let held_root = self.tree.read().unwrap_or_else(|e| e.into_inner()).root();
        verify_consistency(old, checkpoint.size, &held_root, &checkpoint.root, proof)
            .map_err(|e| FollowError::Inconsistent { old, new: checkpoint.size, detail: e.to_string() })?;
        let stated = checkpoint
            .extension(STATE_EXTENSION)
            .ok_or(FollowError::NoStateLine { size: checkpoint.size })?
            .to_owned();
        let entries = leaves
            .iter()
            .enumerate()
            .map(|(offset, leaf)| {
                let index = old + offset as u64;
                LogEntry::from_leaf(index, leaf).map_err(|_| FollowError::MalformedLeaf { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hashes: Vec<Hash> = entries.iter().map(LogEntry::leaf_hash).collect();
        {
            // Pushed in place and taken back on a mismatch: no copy of the tree.
            let mut tree = self.tree.write().unwrap_or_else(|e| e.into_inner());
            for hash in &hashes {
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
        let result = self.fold_and_store(&checkpoint, note, &stated, &entries, &leaves, &hashes);
        if result.is_err() {
            self.reload()?;
        }
        result
    }

    fn fold_and_store(
        &mut self,
        checkpoint: &Checkpoint,
        note: &str,
        stated: &str,
        entries: &[LogEntry],
        leaves: &[Vec<u8>],
        hashes: &[Hash],
    ) -> Result<Extended, FollowError> {
        let mut changes: Vec<Change> = Vec::new();
        let mut digests = Vec::with_capacity(entries.len());
        let mut last_time = self.last_time;
        // What earlier ranges wrote is in the tables now; each entry loads what it reads.
        self.state.release();
        for entry in entries {
            let index = entry.index;
            if entry.integrated_time < last_time {
                return Err(FollowError::TimeGoesBack {
                    index,
                    time: entry.integrated_time,
                    previous: last_time,
                });
            }
            last_time = entry.integrated_time;
            let event = SignedEvent::open_bytes(&entry.envelope)
                .map_err(|e| FollowError::UnopenableEntry { index, detail: e.to_string() })?;
            self.load(&self.state.reads(&event))?;
            let applied = self
                .state
                .apply(index, entry.integrated_time, &event)
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
                expected: stated.to_owned(),
            });
        }

        let tx = self.conn.transaction().map_err(LedgerError::from)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO entries (idx, leaf, leaf_hash, act) VALUES (?1, ?2, ?3, ?4)")
                .map_err(LedgerError::from)?;
            for (((entry, leaf), hash), digest) in entries.iter().zip(leaves).zip(hashes).zip(&digests) {
                insert
                    .execute(params![entry.index, leaf, hash.as_slice(), digest.as_slice()])
                    .map_err(LedgerError::from)?;
            }
            materialise(&tx, &changes)?;
            tx.execute(
                "INSERT INTO checkpoints (size, note) VALUES (?1, ?2)",
                params![checkpoint.size, note],
            )
            .map_err(LedgerError::from)?;
        }
        tx.commit().map_err(LedgerError::from)?;
        self.last_time = last_time;

        // Texts whose deposit went away, or whose consent narrowed, leave this mirror now.
        // A deposit changed twice in one range is wanted once: `seen` keeps that check O(1).
        let mut wanted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for change in &changes {
            if let Change::Deposit(record) = change {
                if record.status.is_gone() || !replicates(record.consent) {
                    self.blobs.delete(&record.cid).map_err(LedgerError::from)?;
                } else if !self.blobs.contains(&record.cid) && seen.insert(&record.cid) {
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

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
