//! The writer side of a commons' log: creates it, reopens it after a crash, and appends batches
//! of signed events durably (blobs synced, then one SQLite commit with the batch's checkpoint).

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension, params};
use substrate_core::event::{Event, Genesis};
use substrate_core::governance::book::{Record, vote_keys};
use substrate_core::governance::params::Windows;
use substrate_core::receipt::Receipt;
use substrate_core::register::Register;
use substrate_core::state::{Change, Commons, DepositRecord, DepositStatus, Reads, Rejection, State};
use substrate_core::{Cid, LogEntry, SignedEvent};
use substrate_tlog::{Checkpoint, Hash, NoteSigner, Tree};

use crate::DataDir;
use crate::blobs::BlobStore;
use crate::schema;

mod error;
mod jobs;

pub use error::{LedgerError, Table};

/// The checkpoint extension line that carries the state root.
pub const STATE_EXTENSION: &str = "substrate-state";

/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// How long the writer waits for a lock another connection holds, in steps of `LOCK_STEP`.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const LOCK_STEP: std::time::Duration = std::time::Duration::from_micros(100);

/// SQLite's busy handler for the writer: waits a step, up to [`LOCK_WAIT`] in all.
pub(crate) fn wait_for_lock(attempt: i32) -> bool {
    std::thread::sleep(LOCK_STEP);
    u128::from(attempt.unsigned_abs()) < LOCK_WAIT.as_micros() / LOCK_STEP.as_micros()
}

/// How a new commons is founded.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub name: String,
    /// Checkpoint origin and log key name, e.g. `substrate.local/my-commons`.
    pub origin: String,
    pub handle_prefix: String,
    pub registers: Vec<Register>,
    /// The founding stewards' did:keys.
    pub stewards: Vec<String>,
    /// Voting windows other than the defaults.
    pub windows: Option<Windows>,
    /// ms since the epoch.
    pub now: u64,
}

/// One event offered to the log, already signature-checked; deposits carry their checked text.
#[derive(Clone, Debug)]
pub struct Submission {
    pub event: SignedEvent,
    pub content: Option<Vec<u8>>,
}

/// The outcome of one submission in a batch. A fresh entry's receipt is `R`: built, or (on the
/// sequencer's path) [`Unbuilt`], for the caller waiting for it to build.
#[derive(Debug)]
pub enum Outcome<R = Receipt> {
    Appended(R),
    /// The same act (the same statement from the same signers) was already in the log: its
    /// receipt again.
    Duplicate(Receipt),
    Refused(Rejection),
}

impl Outcome<Unbuilt> {
    /// The outcome with its receipt built.
    pub fn build(self) -> Outcome {
        match self {
            Outcome::Appended(unbuilt) => Outcome::Appended(unbuilt.build()),
            Outcome::Duplicate(receipt) => Outcome::Duplicate(receipt),
            Outcome::Refused(rejection) => Outcome::Refused(rejection),
        }
    }
}

/// A fresh entry's receipt before it is built: its event, its entry and its inclusion proof.
/// Building it (the envelope copied, the leaf and the proof in base64) is left to whoever waits
/// for it, off the sequencer's thread, which every batch waits for.
#[derive(Debug)]
pub struct Unbuilt {
    event: SignedEvent,
    entry: LogEntry,
    handle: Option<String>,
    proof: substrate_tlog::TlogProof,
}

impl Unbuilt {
    pub fn build(self) -> Receipt {
        Receipt::new(&self.event, &self.entry, self.handle, self.proof.to_text())
    }
}

pub struct Ledger {
    pub(crate) dir: DataDir,
    pub(crate) conn: Connection,
    pub(crate) blobs: BlobStore,
    pub(crate) tree: Arc<RwLock<Tree>>,
    pub(crate) state: State,
    /// The log key on the sequencer; `None` on a mirror, which only checks the log's signatures.
    pub(crate) signer: Option<NoteSigner>,
    pub(crate) verifier: substrate_tlog::NoteVerifier,
    pub(crate) last_time: u64,
    /// The node that holds the texts deposited here and takes jobs: where a training job on
    /// `local` texts runs (set on a sequencer whose own node works).
    pub(crate) holder: Option<String>,
    /// The local texts of each open training job's snapshot, counted once: the count of a
    /// snapshot does not move (its leaves are fixed), and counting reads every local deposit.
    pub(crate) local_counts: std::cell::RefCell<std::collections::HashMap<u64, usize>>,
}

impl Ledger {
    /// Founds a commons in `dir`: log key, database, blob directory and the genesis entry.
    pub fn init(dir: &DataDir, log_key: SigningKey, options: InitOptions) -> Result<Ledger, LedgerError> {
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| LedgerError::Io { path, source }
        };
        if dir.database().exists() || dir.log_key().exists() || dir.log_public_key().exists() {
            return Err(LedgerError::AlreadyInitialised(dir.root().display().to_string()));
        }
        std::fs::create_dir_all(dir.root()).map_err(io(dir.root()))?;
        let signer = NoteSigner::new(&options.origin, log_key.clone()).map_err(|e| LedgerError::LogKey {
            path: dir.log_key().display().to_string(),
            detail: e.to_string(),
        })?;
        write_secret(&dir.log_key(), &signer.to_skey()).map_err(io(&dir.log_key()))?;
        let genesis = SignedEvent::sign(
            Event::Genesis(Genesis {
                name: options.name,
                origin: options.origin,
                log_key: signer.verifier().to_vkey(),
                registers: options.registers,
                handle_prefix: options.handle_prefix,
                created: substrate_core::timestamp::rfc3339(options.now),
                stewards: options.stewards,
                windows: options.windows,
                state_encoding: Some(substrate_core::canonical::VERSION),
            }),
            &log_key,
        );
        let mut ledger = Ledger::open(dir)?;
        let outcome = ledger.append_batch(vec![Submission { event: genesis, content: None }], options.now)?;
        match outcome.into_iter().next() {
            Some(Outcome::Appended(_)) => Ok(ledger),
            Some(Outcome::Refused(rejection)) => Err(LedgerError::Genesis(rejection)),
            Some(Outcome::Duplicate(receipt)) => {
                Err(LedgerError::Genesis(Rejection::Duplicate(receipt.log_index)))
            }
            None => Err(LedgerError::NoOutcome { position: 0, batch: 1 }),
        }
    }

    /// Reopens the commons in `dir`: the tree from stored leaf hashes, the state from the
    /// materialised tables, checked against the latest checkpoint.
    pub fn open(dir: &DataDir) -> Result<Ledger, LedgerError> {
        let (signer, verifier) = match read_key(&dir.log_key())? {
            Some(skey) => {
                let signer = NoteSigner::from_skey(skey.trim()).map_err(|e| LedgerError::LogKey {
                    path: dir.log_key().display().to_string(),
                    detail: e.to_string(),
                })?;
                let verifier = signer.verifier();
                (Some(signer), verifier)
            }
            None => match read_key(&dir.log_public_key())? {
                Some(vkey) => {
                    let verifier = substrate_tlog::NoteVerifier::from_vkey(vkey.trim()).map_err(|e| {
                        LedgerError::LogKey {
                            path: dir.log_public_key().display().to_string(),
                            detail: e.to_string(),
                        }
                    })?;
                    (None, verifier)
                }
                None => return Err(LedgerError::NotInitialised(dir.root().display().to_string())),
            },
        };
        let database = |source| LedgerError::Database { path: dir.database().display().to_string(), source };
        let mut conn = schema::open(&dir.database()).map_err(database)?;
        if schema::records_predate_history(&conn).map_err(database)? {
            // The materialised records were written before they kept every decided mixture:
            // they are recomputed from the log once.
            drop(conn);
            crate::replay::replay(dir, crate::replay::ReplayMode::Rebuild, Some(verifier.clone()))
                .map_err(|source| LedgerError::RecordsUpgrade { source })?;
            conn = schema::open(&dir.database()).map_err(database)?;
        }
        // Another connection's write (moving texts, a checkpoint restarting the WAL) holds the
        // writer off for a millisecond or two; SQLite's own wait would sleep 1, 2, 5, 10 ms.
        conn.busy_handler(Some(wait_for_lock)).map_err(database)?;
        let blobs = BlobStore::open(&dir.blobs()).map_err(io_error(&dir.blobs()))?;
        let mut ledger = Ledger {
            dir: dir.clone(),
            conn,
            blobs,
            tree: Arc::new(RwLock::new(Tree::new())),
            state: State::new(),
            signer,
            verifier,
            last_time: 0,
            holder: None,
            local_counts: Default::default(),
        };
        ledger.reload()?;
        // The writer's working set (the tables' right edges, the index pages its lookups and
        // inserts touch) outgrows SQLite's default page cache of 2 MiB; a miss is a read call.
        // Set after the tree is rebuilt, so the pages that read leaves do not fill it at open.
        ledger.conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(database)?;
        Ok(ledger)
    }

    /// Rebuilds the in-memory tree and state from disk. Used at open and after a failed batch.
    pub(crate) fn reload(&mut self) -> Result<(), LedgerError> {
        let mut tree = Tree::new();
        {
            let mut stmt = self.conn.prepare("SELECT idx, leaf_hash FROM entries ORDER BY idx")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let idx: u64 = row.get(0)?;
                if idx != tree.size() {
                    return Err(LedgerError::MissingEntry { index: tree.size() });
                }
                tree.push(hash_column(row.get_ref(1)?.as_blob()?, "leaf hash", idx)?);
            }
        }
        let latest = latest_checkpoint(&self.conn)?;
        let (size, state_root) = match &latest {
            None => (0, [0u8; 32]),
            Some((_, note)) => {
                let checkpoint = Checkpoint::open(note, &self.verifier)
                    .map_err(|source| LedgerError::UnverifiedCheckpoint { source })?;
                if checkpoint.size != tree.size() || checkpoint.root != tree.root() {
                    return Err(LedgerError::CheckpointMismatch {
                        checkpoint_size: checkpoint.size,
                        checkpoint_root: checkpoint.root,
                        log_size: tree.size(),
                        log_root: tree.root(),
                    });
                }
                (checkpoint.size, state_root_of(&checkpoint)?)
            }
        };
        let commons: Option<Commons> = self
            .conn
            .query_row("SELECT record FROM commons WHERE id = 0", [], |row| row.get::<_, String>(0))
            .optional()?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|source| LedgerError::UnparsableRecord { table: Table::Commons, source })?;
        // Votes stay in their table, as deposits and acts do: the state is partial and each
        // batch loads what its entries read (`load`).
        let mut records = Vec::new();
        {
            let mut stmt = self.conn.prepare("SELECT record FROM records WHERE kind != 'vote'")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let record: Record = serde_json::from_str(row.get_ref(0)?.as_str()?)
                    .map_err(|source| LedgerError::UnparsableRecord { table: Table::Records, source })?;
                records.push(record);
            }
        }
        self.last_time = match self
            .conn
            .query_row("SELECT leaf FROM entries ORDER BY idx DESC LIMIT 1", [], |row| {
                row.get::<_, Vec<u8>>(0)
            })
            .optional()?
        {
            Some(leaf) => LogEntry::from_leaf(0, &leaf).map(|e| e.integrated_time).unwrap_or(0),
            None => 0,
        };
        // Withdrawals and removals whose blob deletion was interrupted by a crash are finished now.
        {
            let mut stmt = self.conn.prepare("SELECT cid FROM deposits WHERE status != 'active'")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let cid = Cid::parse(row.get_ref(0)?.as_str()?)
                    .map_err(|source| LedgerError::UnparsableCid { table: Table::Deposits, source })?;
                self.blobs.delete(&cid)?;
            }
        }
        self.state = State::restore(commons, records, size, state_root);
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = tree;
        Ok(())
    }

    /// Stops SQLite from checkpointing the WAL inside this connection's commits; whoever calls
    /// this runs checkpoints from another connection (the sequencer does).
    pub fn leave_checkpoints_to_others(&self) -> Result<(), LedgerError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The tree, shared read-only with readers; only the ledger appends to it.
    pub fn tree(&self) -> Arc<RwLock<Tree>> {
        Arc::clone(&self.tree)
    }

    pub fn verifier(&self) -> substrate_tlog::NoteVerifier {
        self.verifier.clone()
    }

    /// Whether this node holds the log key (the sequencer) rather than following the log (a mirror).
    pub fn is_sequencer(&self) -> bool {
        self.signer.is_some()
    }

    fn signer(&self) -> Result<&NoteSigner, LedgerError> {
        self.signer.as_ref().ok_or(LedgerError::Mirror)
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Moves every pending text into the blob directory now.
    pub fn flush_texts(&mut self) -> Result<usize, LedgerError> {
        let mut moved = 0;
        loop {
            match flush_texts(&mut self.conn, &self.blobs, 1024)? {
                0 => return Ok(moved),
                n => moved += n,
            }
        }
    }

    /// Appends what the state accepts of `batch` with integrated time `now` (raised to the last
    /// entry's time if the clock went back), durably, and returns one outcome per submission.
    /// On a storage error nothing of the batch is acknowledged and the ledger reloads from disk.
    /// Proposals whose window closed by then are decided first, so the batch lands after them.
    pub fn append_batch(&mut self, batch: Vec<Submission>, now: u64) -> Result<Vec<Outcome>, LedgerError> {
        Ok(self.append_unbuilt(batch, now)?.into_iter().map(Outcome::build).collect())
    }

    /// [`Ledger::append_batch`], leaving the fresh entries' receipts for the caller to build.
    pub fn append_unbuilt(
        &mut self,
        batch: Vec<Submission>,
        now: u64,
    ) -> Result<Vec<Outcome<Unbuilt>>, LedgerError> {
        self.signer()?;
        self.decide_due(now)?;
        self.append_now(batch, now)
    }

    pub(crate) fn append_now(
        &mut self,
        batch: Vec<Submission>,
        now: u64,
    ) -> Result<Vec<Outcome<Unbuilt>>, LedgerError> {
        let result = self.try_append(batch, now);
        if result.is_err() {
            self.reload()?;
        }
        result
    }

    /// Decides every open proposal whose window closed by `now`: one `Decision` entry each, signed
    /// by the log key, appended one after another so each is tallied on the state the previous
    /// one left. Returns the decided proposals.
    pub fn decide_due(&mut self, now: u64) -> Result<Vec<u64>, LedgerError> {
        self.signer()?;
        let mut decided = Vec::new();
        let now_or_later = now.max(self.last_time);
        while let Some((_, id)) =
            self.state.governance().next_close().filter(|(closes, _)| *closes <= now_or_later)
        {
            self.load(&self.state.decision_reads(id))?;
            let decision = self
                .state
                .decision(id)
                .map_err(|rejection| LedgerError::Tally { proposal: id, rejection: Box::new(rejection) })?;
            let event = SignedEvent::sign(Event::Decision(decision), self.signer()?.signing_key());
            match self.append_now(vec![Submission { event, content: None }], now)?.pop() {
                Some(Outcome::Appended(_)) => decided.push(id),
                Some(Outcome::Duplicate(receipt)) => {
                    return Err(LedgerError::DecisionLogged { proposal: id, index: receipt.log_index });
                }
                Some(Outcome::Refused(rejection)) => {
                    return Err(LedgerError::DecisionRefused {
                        proposal: id,
                        rejection: Box::new(rejection),
                    });
                }
                None => return Err(LedgerError::NoOutcome { position: 0, batch: 1 }),
            }
        }
        Ok(decided)
    }

    fn try_append(&mut self, batch: Vec<Submission>, now: u64) -> Result<Vec<Outcome<Unbuilt>>, LedgerError> {
        let time = now.max(self.last_time);
        let start = self.state.size();
        let clock = std::time::Instant::now();
        let mut staged: Vec<(LogEntry, usize)> = Vec::new();
        let mut changes: Vec<Change> = Vec::new();
        let mut outcomes: Vec<Option<Outcome<Unbuilt>>> = Vec::with_capacity(batch.len());
        let mut duplicates: Vec<(usize, u64)> = Vec::new();
        let mut texts: Vec<(u64, String, Vec<u8>)> = Vec::new();
        let mut batch = batch;
        // What earlier batches wrote is in the tables now; each entry loads what it reads. The
        // acts and deposits the entries name are looked up for the whole batch first.
        self.state.release();
        let absent = self.preload(&batch)?;
        for (position, submission) in batch.iter_mut().enumerate() {
            let index = self.state.size();
            let mut reads = self.state.reads(&submission.event);
            absent.prune(&mut reads);
            self.load(&reads)?;
            let result = self.state.apply(index, time, &submission.event);
            if let (Ok(_), Some(content), Some(cid)) =
                (&result, submission.content.take(), submission.event.event.cid())
            {
                texts.push((index, cid.to_string(), content));
            }
            match result {
                Ok(applied) => {
                    changes.extend(applied.changes);
                    let entry = LogEntry {
                        index,
                        integrated_time: time,
                        envelope: submission.event.envelope_bytes().to_vec(),
                    };
                    staged.push((entry, position));
                    outcomes.push(None);
                }
                Err(Rejection::Duplicate(existing)) => {
                    duplicates.push((position, existing));
                    outcomes.push(None);
                }
                Err(rejection) => outcomes.push(Some(Outcome::Refused(rejection))),
            }
        }
        if staged.is_empty() {
            return self.finish(batch, outcomes, duplicates, Vec::new(), None);
        }
        let applied_at = clock.elapsed();

        // Each leaf is built and hashed once, for the tree and the row alike.
        let leaves: Vec<(Vec<u8>, substrate_tlog::Hash)> = staged
            .iter()
            .map(|(entry, _)| {
                let leaf = entry.leaf();
                let hash = substrate_tlog::leaf_hash(&leaf);
                (leaf, hash)
            })
            .collect();
        let mut tree = self.tree.write().unwrap_or_else(|e| e.into_inner());
        for (_, hash) in &leaves {
            tree.push(*hash);
        }
        let signer = self.signer()?;
        let checkpoint = Checkpoint {
            origin: signer.name().to_owned(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![format!("{STATE_EXTENSION} {}", STANDARD.encode(self.state.root()))],
        };
        drop(tree);
        let note = checkpoint
            .sign(signer)
            .map_err(|source| LedgerError::Signing { size: checkpoint.size, source })?;

        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO entries (idx, leaf, leaf_hash, act) VALUES (?1, ?2, ?3, ?4)")?;
            for ((entry, position), (leaf, hash)) in staged.iter().zip(&leaves) {
                insert.execute(params![
                    entry.index,
                    leaf,
                    hash.as_slice(),
                    batch[*position].event.act_digest().as_slice()
                ])?;
            }
            // The texts become durable with their entries, in this one commit; the blob directory
            // gets them later (see `flush_texts`), off the path every deposit waits on.
            let mut pending =
                tx.prepare_cached("INSERT INTO pending_texts (idx, cid, content) VALUES (?1, ?2, ?3)")?;
            for (index, cid, content) in &texts {
                pending.execute(params![index, cid, content])?;
            }
            materialise(&tx, &changes, checkpoint.size)?;
            tx.execute(
                "INSERT INTO checkpoints (size, note) VALUES (?1, ?2)",
                params![checkpoint.size, note],
            )?;
        }
        tx.commit()?;
        tracing::debug!(
            entries = staged.len(),
            apply_us = applied_at.as_micros() as u64,
            insert_and_commit_us = (clock.elapsed() - applied_at).as_micros() as u64,
            "batch durable"
        );
        self.last_time = time;
        debug_assert_eq!(self.state.size(), start + staged.len() as u64);

        // The withdrawal is durable; now the text goes. A crash here is finished at the next open.
        for change in &changes {
            if let Change::Deposit(record) = change
                && record.status.is_gone()
            {
                self.blobs.delete(&record.cid)?;
            }
        }
        self.finish(batch, outcomes, duplicates, staged, Some((checkpoint.size, note)))
    }

    /// Loads into the partial state, a few queries for the whole batch, the acts and deposits
    /// its entries name (as the state before the batch says: `reads` of an entry may name more
    /// once earlier entries are applied, and `load` fetches that). Returns the keys the tables do
    /// not hold: they stay absent until the batch commits, so no entry looks them up again.
    fn preload(&mut self, batch: &[Submission]) -> Result<Absent, LedgerError> {
        let mut acts = std::collections::BTreeSet::new();
        let mut cids = std::collections::BTreeSet::new();
        for submission in batch {
            let reads = self.state.reads(&submission.event);
            acts.extend(reads.act);
            cids.extend(reads.deposits);
        }
        let acts: Vec<[u8; 32]> = acts.into_iter().collect();
        let cids: Vec<Cid> = cids.into_iter().collect();
        let keys: Vec<String> = cids.iter().map(Cid::to_string).collect();
        let mut found_acts = std::collections::HashSet::new();
        for chunk in acts.chunks(LOOKUP) {
            let mut stmt = self.conn.prepare_cached(&lookup_sql("SELECT act, idx FROM entries WHERE act"))?;
            let keys = (0..LOOKUP).map(|i| chunk.get(i).unwrap_or(&chunk[0]).as_slice());
            let mut rows = stmt.query(rusqlite::params_from_iter(keys))?;
            while let Some(row) = rows.next()? {
                let index: u64 = row.get(1)?;
                let act = hash_column(row.get_ref(0)?.as_blob()?, "act", index)?;
                found_acts.insert(act);
                self.state.load_act(act, index);
            }
        }
        let mut found_deposits = std::collections::HashSet::new();
        for chunk in keys.chunks(LOOKUP) {
            let mut stmt = self.conn.prepare_cached(&lookup_sql("SELECT record FROM deposits WHERE cid"))?;
            let keys = (0..LOOKUP).map(|i| chunk.get(i).unwrap_or(&chunk[0]));
            let mut rows = stmt.query(rusqlite::params_from_iter(keys))?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records
                    .push(serde_json::from_str::<DepositRecord>(row.get_ref(0)?.as_str()?).map_err(
                        |source| LedgerError::UnparsableRecord { table: Table::Deposits, source },
                    )?);
            }
            for record in records {
                found_deposits.insert(record.cid.clone());
                self.state.load_deposit(record);
            }
        }
        Ok(Absent {
            acts: acts.into_iter().filter(|act| !found_acts.contains(act)).collect(),
            deposits: cids.into_iter().filter(|cid| !found_deposits.contains(cid)).collect(),
        })
    }

    /// Loads into the partial state what `reads` names and the state does not hold yet (what it
    /// holds was written by this batch, and is newer than the tables).
    pub(crate) fn load(&mut self, reads: &Reads) -> Result<(), LedgerError> {
        if let Some(act) = reads.act
            && self.state.act_index(&act).is_none()
            && let Some(index) = self
                .conn
                .prepare_cached("SELECT idx FROM entries WHERE act = ?1")?
                .query_row([act.as_slice()], |row| row.get::<_, u64>(0))
                .optional()?
        {
            self.state.load_act(act, index);
        }
        let parse = |json: &str| {
            serde_json::from_str::<DepositRecord>(json)
                .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })
        };
        if reads.every_deposit {
            let mut stmt = self.conn.prepare_cached("SELECT record FROM deposits")?;
            let mut rows = stmt.query([])?;
            let mut all = Vec::new();
            while let Some(row) = rows.next()? {
                all.push(parse(row.get_ref(0)?.as_str()?)?);
            }
            drop(rows);
            drop(stmt);
            all.into_iter().for_each(|record| self.state.load_deposit(record));
        } else {
            for cid in &reads.deposits {
                if self.state.deposit(cid).is_some() {
                    continue;
                }
                let json: Option<String> = self
                    .conn
                    .prepare_cached("SELECT record FROM deposits WHERE cid = ?1")?
                    .query_row([cid.to_string()], |row| row.get(0))
                    .optional()?;
                if let Some(json) = json {
                    self.state.load_deposit(parse(&json)?);
                }
            }
        }
        for proposal in &reads.votes_on {
            let (from, to) = vote_keys(*proposal);
            let mut stmt = self.conn.prepare_cached(
                "SELECT record FROM records WHERE kind = 'vote' AND key >= ?1 AND key < ?2",
            )?;
            let mut rows = stmt.query([from, to])?;
            let mut votes = Vec::new();
            while let Some(row) = rows.next()? {
                match serde_json::from_str::<Record>(row.get_ref(0)?.as_str()?)
                    .map_err(|source| LedgerError::UnparsableRecord { table: Table::Records, source })?
                {
                    Record::Vote(vote) => votes.push(vote),
                    _ => continue,
                }
            }
            drop(rows);
            drop(stmt);
            self.state.load_votes(votes);
        }
        Ok(())
    }

    fn finish(
        &self,
        batch: Vec<Submission>,
        mut outcomes: Vec<Option<Outcome<Unbuilt>>>,
        duplicates: Vec<(usize, u64)>,
        staged: Vec<(LogEntry, usize)>,
        checkpoint: Option<(u64, String)>,
    ) -> Result<Vec<Outcome<Unbuilt>>, LedgerError> {
        let reader = ReceiptSource { conn: &self.conn, tree: &self.tree };
        for (position, index) in duplicates {
            let entry = reader.entry(index)?;
            outcomes[position] = Some(Outcome::Duplicate(reader.receipt(&batch[position].event, &entry)?));
        }
        // Fresh entries all lead to this batch's checkpoint; handles come from the state in hand.
        if let Some((size, note)) = checkpoint {
            let mut events: Vec<Option<SignedEvent>> =
                batch.into_iter().map(|submission| Some(submission.event)).collect();
            let tree = self.tree.read().unwrap_or_else(|e| e.into_inner());
            for (entry, position) in staged {
                let Some(event) = events[position].take() else { continue };
                let proof = tlog_proof(&tree, entry.index, size, note.clone())?;
                let handle =
                    event.event.cid().and_then(|cid| self.state.deposit(cid)).map(|d| d.handle.clone());
                outcomes[position] = Some(Outcome::Appended(Unbuilt { event, entry, handle, proof }));
            }
        }
        let batch = outcomes.len();
        outcomes
            .into_iter()
            .enumerate()
            .map(|(position, o)| o.ok_or(LedgerError::NoOutcome { position, batch }))
            .collect()
    }
}

/// Keys looked up per query when a batch's acts and deposits are loaded; a shorter list repeats
/// its first key, so the statement is prepared once.
const LOOKUP: usize = 32;

/// `prefix` followed by `IN (?1, ..., ?LOOKUP)`.
fn lookup_sql(prefix: &str) -> String {
    let placeholders: Vec<String> = (1..=LOOKUP).map(|i| format!("?{i}")).collect();
    format!("{prefix} IN ({})", placeholders.join(", "))
}

/// What a batch's first lookups found missing from the tables (see `Ledger::preload`).
struct Absent {
    acts: std::collections::HashSet<[u8; 32]>,
    deposits: std::collections::HashSet<Cid>,
}

impl Absent {
    /// Drops from `reads` what is known to be missing from the tables.
    fn prune(&self, reads: &mut Reads) {
        if reads.act.is_some_and(|act| self.acts.contains(&act)) {
            reads.act = None;
        }
        reads.deposits.retain(|cid| !self.deposits.contains(cid));
    }
}

/// Moves up to `limit` accepted texts from `pending_texts` into the blob directory: files written,
/// one `syncfs`, then the pending rows deleted. A text whose deposit was withdrawn meanwhile (its
/// row already gone) has its file removed again. Returns how many texts moved.
pub fn flush_texts(conn: &mut Connection, blobs: &BlobStore, limit: usize) -> Result<usize, LedgerError> {
    let texts: Vec<(u64, String, Vec<u8>)> = {
        let mut stmt = conn.prepare_cached("SELECT idx, cid, content FROM pending_texts LIMIT ?1")?;
        stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    if texts.is_empty() {
        return Ok(0);
    }
    let mut cids = Vec::with_capacity(texts.len());
    for (index, cid, content) in &texts {
        let cid = Cid::parse(cid)
            .map_err(|source| LedgerError::UnparsableCid { table: Table::PendingTexts, source })?;
        blobs.put_unsynced(&cid, content)?;
        cids.push((*index, cid));
    }
    blobs.sync()?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut withdrawn = Vec::new();
    {
        let mut delete = tx.prepare_cached("DELETE FROM pending_texts WHERE idx = ?1")?;
        for (index, cid) in &cids {
            if delete.execute([index])? == 0 {
                withdrawn.push(cid);
            }
        }
    }
    tx.commit()?;
    for cid in withdrawn {
        blobs.delete(cid)?;
    }
    Ok(cids.len())
}

/// Builds receipts from the database and the tree; shared by the writer and the readers.
pub(crate) struct ReceiptSource<'a> {
    pub conn: &'a Connection,
    pub tree: &'a RwLock<Tree>,
}

impl ReceiptSource<'_> {
    /// The entry at `index`; [`LedgerError::MissingEntry`] when the log holds none there.
    pub fn entry(&self, index: u64) -> Result<LogEntry, LedgerError> {
        let leaf: Vec<u8> = self
            .conn
            .query_row("SELECT leaf FROM entries WHERE idx = ?1", [index], |r| r.get(0))
            .optional()?
            .ok_or(LedgerError::MissingEntry { index })?;
        LogEntry::from_leaf(index, &leaf).map_err(|source| LedgerError::MalformedLeaf { index, source })
    }

    /// The receipt of the entry at `entry.index`: its proof leads to the first checkpoint that
    /// covers it, so asking again gives the same receipt byte for byte.
    pub fn receipt(&self, event: &SignedEvent, entry: &LogEntry) -> Result<Receipt, LedgerError> {
        let (size, note): (u64, String) = self.conn.query_row(
            "SELECT size, note FROM checkpoints WHERE size > ?1 ORDER BY size LIMIT 1",
            [entry.index],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let proof =
            tlog_proof(&self.tree.read().unwrap_or_else(|e| e.into_inner()), entry.index, size, note)?;
        let handle = match event.event.cid() {
            Some(cid) => self
                .conn
                .query_row("SELECT handle FROM deposits WHERE cid = ?1", [cid.to_string()], |r| r.get(0))
                .optional()?,
            None => None,
        };
        Ok(Receipt::new(event, entry, handle, proof.to_text()))
    }
}

/// The tlog-proof of entry `index` in the tree of `size`, leading to `note`, the checkpoint signed
/// at that size.
pub(crate) fn tlog_proof(
    tree: &Tree,
    index: u64,
    size: u64,
    note: String,
) -> Result<substrate_tlog::TlogProof, LedgerError> {
    let hashes = tree.inclusion_proof(index, size).map_err(|source| LedgerError::InclusionProof {
        index,
        size,
        source,
    })?;
    Ok(substrate_tlog::TlogProof { index, hashes, extra: None, checkpoint: note })
}

/// Writes the records `changes` leave behind into the materialised tables.
/// Writes `changes` into the materialised tables; governance records are stamped with `size`, the
/// log size this batch brings the log to.
pub(crate) fn materialise(tx: &Connection, changes: &[Change], size: u64) -> Result<(), LedgerError> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO deposits (cid, log_index, handle, depositor, status, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (cid) DO UPDATE SET status = excluded.status, record = excluded.record",
    )?;
    // A record changed several times in one batch (the stability pool's credits, say) is written
    // once, as it ended.
    let mut records: std::collections::BTreeMap<(&'static str, String), &Record> =
        std::collections::BTreeMap::new();
    for change in changes {
        match change {
            Change::Record(record) => {
                records.insert(record.key(), record);
            }
            Change::Commons(commons) => {
                let json = serde_json::to_string(commons).unwrap_or_default();
                tx.execute("INSERT OR REPLACE INTO commons (id, record) VALUES (0, ?1)", [json])?;
            }
            Change::Deposit(record) => {
                if record.status.is_gone() {
                    tx.execute(
                        "DELETE FROM pending_texts WHERE idx = ?1 AND cid = ?2",
                        params![record.log_index, record.cid.to_string()],
                    )?;
                }
                let (log_index, handle, depositor, status) = deposit_columns(record);
                upsert.execute(params![
                    record.cid.to_string(),
                    log_index,
                    handle,
                    depositor,
                    status,
                    serde_json::to_string(record).unwrap_or_default()
                ])?;
            }
        }
    }
    let mut put =
        tx.prepare_cached("INSERT OR REPLACE INTO records (kind, key, record, at) VALUES (?1, ?2, ?3, ?4)")?;
    for ((kind, key), record) in records {
        put.execute(params![kind, key, serde_json::to_string(record).unwrap_or_default(), size])?;
    }
    Ok(())
}

/// The indexed columns of a deposit row, derived from its record: (log_index, handle, depositor,
/// status). Replay compares stored rows with exactly these.
pub(crate) fn deposit_columns(record: &DepositRecord) -> (u64, &str, &str, &'static str) {
    let status = match record.status {
        DepositStatus::Active => "active",
        DepositStatus::Withdrawn { .. } => "withdrawn",
        DepositStatus::Removed { .. } => "removed",
    };
    (record.log_index, &record.handle, &record.depositor, status)
}

pub(crate) fn latest_checkpoint(conn: &Connection) -> rusqlite::Result<Option<(u64, String)>> {
    conn.query_row("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

pub(crate) fn state_root_of(checkpoint: &Checkpoint) -> Result<[u8; 32], LedgerError> {
    checkpoint
        .extension(STATE_EXTENSION)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(LedgerError::NoStateLine { size: checkpoint.size })
}

/// A hash stored in `column` of entry `index`, which must be 32 bytes.
fn hash_column(bytes: &[u8], column: &'static str, index: u64) -> Result<Hash, LedgerError> {
    bytes.try_into().map_err(|_| LedgerError::MalformedHash { column, index, len: bytes.len() })
}

/// A key file's text, or `None` when it does not exist.
fn read_key(path: &std::path::Path) -> Result<Option<String>, LedgerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LedgerError::Io { path: path.display().to_string(), source }),
    }
}

pub(crate) fn io_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> LedgerError {
    let path = path.display().to_string();
    move |source| LedgerError::Io { path: path.clone(), source }
}

/// Writes a secret file readable by its owner only, durably.
pub fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
