//! The read side: deposits, receipts, checkpoints, entries, proofs and tiles, served from SQLite
//! connections of its own and the tree the ledger shares read-only.

use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension};
use substrate_core::governance::book::{Governance, Record, VoteRecord, vote_keys};
use substrate_core::receipt::Receipt;
use substrate_core::state::{Commons, DepositRecord, LEGACY_STATE_ENCODING};
use substrate_core::{Cid, LogEntry, SignedEvent};
use substrate_tlog::{Hash, NoteVerifier, TlogProof, Tree};

use crate::DataDir;
use crate::blobs::{BlobError, BlobStore};
use crate::ledger::{LedgerError, ReceiptSource, Table, latest_checkpoint};
use crate::schema;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Reads the texts of a data directory beside the node that owns it (a training run, say): the
/// blob directory first, then the texts still waiting in SQLite. Opens one connection for all.
pub struct TextReader {
    blobs: BlobStore,
    conn: Connection,
}

/// A text still waiting for the blob directory, by CID: pending texts are keyed by their
/// deposit's log index.
const PENDING_TEXT: &str = "SELECT content FROM pending_texts
     WHERE idx = (SELECT log_index FROM deposits WHERE cid = ?1) AND cid = ?1";

impl TextReader {
    pub fn open(dir: &DataDir) -> Result<TextReader, ReadError> {
        let blobs = BlobStore::open(&dir.blobs()).map_err(|source| {
            ReadError::Ledger(LedgerError::Io { path: dir.blobs().display().to_string(), source })
        })?;
        Ok(TextReader { blobs, conn: schema::open(&dir.database())? })
    }

    /// The deposit's text, if this node holds it.
    pub fn text(&self, cid: &Cid) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some(text) = self.blobs.get(cid)? {
            return Ok(Some(text));
        }
        let pending: Option<Vec<u8>> =
            self.conn.query_row(PENDING_TEXT, [cid.to_string()], |r| r.get(0)).optional()?;
        // The text may have moved to the blob directory between the two reads.
        match pending {
            Some(text) => Ok(Some(text)),
            None => Ok(self.blobs.get(cid)?),
        }
    }
}

/// A cloneable reader over one commons.
#[derive(Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

struct Inner {
    dir: DataDir,
    pool: Mutex<Vec<Connection>>,
    tree: Arc<RwLock<Tree>>,
    verifier: NoteVerifier,
    blobs: BlobStore,
    /// The governance state last restored, with the log size it was restored at.
    governance: Mutex<Option<(u64, Arc<Governance>)>>,
}

/// A mirror's verified C2SP cosignature of one of the log's checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cosigned {
    /// The cosigner's node key as a did:key (also its key name on the signature line).
    pub cosigner: String,
    pub size: u64,
    /// When the cosigner signed, in seconds since the epoch.
    pub timestamp: u64,
    /// The checkpoint note with the log's signature and this cosignature.
    pub note: String,
}

/// A consistency proof between two signed checkpoints.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ConsistencyProof {
    pub old_checkpoint: String,
    pub new_checkpoint: String,
    /// Standard base64 of each hash.
    pub proof: Vec<String>,
}

impl Reader {
    pub fn new(dir: &DataDir, tree: Arc<RwLock<Tree>>, verifier: NoteVerifier, blobs: BlobStore) -> Reader {
        Reader {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                pool: Mutex::new(Vec::new()),
                tree,
                verifier,
                blobs,
                governance: Mutex::new(None),
            }),
        }
    }

    pub fn verifier(&self) -> &NoteVerifier {
        &self.inner.verifier
    }

    /// Runs `f` with a pooled connection.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, ReadError>) -> Result<T, ReadError> {
        let pooled = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open(&self.inner.dir.database())?,
        };
        let result = f(&conn);
        self.inner.pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }

    pub fn commons(&self) -> Result<Commons, ReadError> {
        self.with(|conn| {
            let json: String = conn.query_row("SELECT record FROM commons WHERE id = 0", [], |r| r.get(0))?;
            Ok(serde_json::from_str(&json)
                .map_err(|source| LedgerError::UnparsableRecord { table: Table::Commons, source })?)
        })
    }

    /// The deposit named by a CID or by its handle.
    pub fn deposit(&self, id: &str) -> Result<DepositRecord, ReadError> {
        let not_found = || ReadError::NotFound(format!("no deposit has the CID or handle '{id}'"));
        self.with(|conn| {
            let json: Option<String> = match Cid::parse(id) {
                Ok(cid) => conn
                    .query_row("SELECT record FROM deposits WHERE cid = ?1", [cid.to_string()], |r| r.get(0))
                    .optional()?,
                Err(_) => conn
                    .query_row("SELECT record FROM deposits WHERE handle = ?1", [id], |r| r.get(0))
                    .optional()?,
            };
            let json = json.ok_or_else(not_found)?;
            Ok(serde_json::from_str(&json)
                .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })?)
        })
    }

    /// The governance state as of the last commit, from its materialised records, without the
    /// votes (they stay in their table: [`Reader::governance_with_votes`]); restored again only
    /// when the log has grown since the last call.
    pub fn governance(&self) -> Result<Arc<Governance>, ReadError> {
        self.governance_with_votes(|_| (Vec::new(), Vec::new())).map(|(governance, _)| governance)
    }

    /// [`Reader::governance`] and, of the same commit, the votes on the proposals `which` picks
    /// from it: (those whose every vote is read, in voter order; those whose votes are counted).
    pub fn governance_with_votes(
        &self,
        which: impl FnOnce(&Governance) -> (Vec<u64>, Vec<u64>),
    ) -> Result<(Arc<Governance>, ProposalVotes), ReadError> {
        self.with(|conn| {
            // One read transaction: the size, the records and the votes are of the same commit.
            let tx = conn.unchecked_transaction()?;
            let size: u64 =
                tx.query_row("SELECT COALESCE(MAX(size), 0) FROM checkpoints", [], |r| r.get(0))?;
            let governance = self.cached_governance(&tx, size)?;
            let mut votes = ProposalVotes::default();
            let (read, counted) = which(&governance);
            for id in read {
                let (from, to) = vote_keys(id);
                let mut stmt = tx.prepare_cached(
                    "SELECT record FROM records WHERE kind = 'vote' AND key >= ?1 AND key < ?2 ORDER BY key",
                )?;
                let mut rows = stmt.query([from, to])?;
                let mut list = Vec::new();
                while let Some(row) = rows.next()? {
                    if let Record::Vote(vote) =
                        parse_record(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)?
                    {
                        list.push(vote);
                    }
                }
                votes.counts.insert(id, list.len() as u64);
                votes.on.insert(id, list);
            }
            for id in counted {
                if votes.counts.contains_key(&id) {
                    continue;
                }
                let (from, to) = vote_keys(id);
                let count: u64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM records WHERE kind = 'vote' AND key >= ?1 AND key < ?2",
                    )?
                    .query_row([from, to], |row| row.get(0))?;
                votes.counts.insert(id, count);
            }
            Ok((governance, votes))
        })
    }

    /// The governance records other than votes at `size`. The copy held is brought up to date
    /// with the records written since it was read (`records.at`), by key; it is read whole only
    /// the first time, or when the log is shorter than the copy (a rebuilt or replaced database).
    fn cached_governance(&self, tx: &Connection, size: u64) -> Result<Arc<Governance>, ReadError> {
        let mut cached = self.inner.governance.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, governance)) = cached.as_mut()
            && *at <= size
        {
            if *at < size {
                let mut stmt =
                    tx.prepare_cached("SELECT record FROM records WHERE at > ?1 AND kind != 'vote'")?;
                let mut rows = stmt.query([*at])?;
                let updated = Arc::make_mut(governance);
                while let Some(row) = rows.next()? {
                    updated.put(parse_record(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)?);
                }
                *at = size;
            }
            return Ok(Arc::clone(governance));
        }
        let mut stmt = tx.prepare_cached("SELECT record FROM records WHERE kind != 'vote'")?;
        let mut rows = stmt.query([])?;
        let mut records = Vec::new();
        while let Some(row) = rows.next()? {
            records.push(parse_record(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)?);
        }
        let commons: Option<String> =
            tx.query_row("SELECT record FROM commons WHERE id = 0", [], |r| r.get(0)).optional()?;
        let encoding = match commons {
            Some(json) => {
                serde_json::from_str::<Commons>(&json)
                    .map_err(|source| LedgerError::UnparsableRecord { table: Table::Commons, source })?
                    .state_encoding
            }
            None => LEGACY_STATE_ENCODING,
        };
        let governance = Arc::new(Governance::restore(records, encoding));
        *cached = Some((size, Arc::clone(&governance)));
        Ok(governance)
    }

    /// Every deposit withdrawn or removed, as its record (tombstone) stands.
    pub fn gone_deposits(&self) -> Result<Vec<DepositRecord>, ReadError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached("SELECT record FROM deposits WHERE status != 'active'")?;
            let mut rows = stmt.query([])?;
            let mut gone = Vec::new();
            while let Some(row) = rows.next()? {
                gone.push(
                    serde_json::from_str(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)
                        .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })?,
                );
            }
            Ok(gone)
        })
    }

    /// The data directory read.
    pub fn dir(&self) -> &DataDir {
        &self.inner.dir
    }

    /// Active deposits per register (primary), as (register, count).
    pub fn active_by_register(&self) -> Result<Vec<(String, Vec<String>)>, ReadError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT json_extract(record, '$.register'), cid FROM deposits WHERE status = 'active' ORDER BY 1",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
            for row in rows {
                let (register, cid) = row?;
                match grouped.last_mut() {
                    Some((last, cids)) if *last == register => cids.push(cid),
                    _ => grouped.push((register, vec![cid])),
                }
            }
            Ok(grouped)
        })
    }

    /// The receipt of the entry at `index`.
    pub fn receipt(&self, index: u64) -> Result<Receipt, ReadError> {
        // An index past the log (even one SQLite cannot hold) is simply not there.
        if index >= self.inner.tree.read().unwrap_or_else(|e| e.into_inner()).size() {
            return Err(ReadError::NotFound(format!("no entry {index}")));
        }
        self.with(|conn| {
            let source = ReceiptSource { conn, tree: &self.inner.tree };
            let entry = source.entry(index).map_err(|e| match e {
                LedgerError::MissingEntry { .. } => ReadError::NotFound(format!("no entry {index}")),
                damaged => ReadError::Ledger(damaged),
            })?;
            let event = SignedEvent::open_bytes(&entry.envelope)
                .map_err(|e| LedgerError::UnopenableEntry { index, source: Box::new(e) })?;
            Ok(source.receipt(&event, &entry)?)
        })
    }

    /// The receipt of the entry at `index`, its proof leading instead to the checkpoint that
    /// most of the witnesses (the mirrors whose cosignatures this node keeps) cosigned, with
    /// their cosignature lines in its note: a receipt whose trust no longer rests on the log key
    /// alone. Not found while no checkpoint covering the entry is cosigned.
    pub fn witnessed_receipt(&self, index: u64) -> Result<Receipt, ReadError> {
        let mut receipt = self.receipt(index)?;
        use substrate_tlog::cosignature::{body_of, line_of};
        let cosigned = self.cosignatures()?;
        // Each witness's newest cosignature, grouped by the size it cosigned; only those over the
        // very checkpoint this log signed at that size count.
        let mut by_size: std::collections::BTreeMap<u64, (String, Vec<&str>)> =
            std::collections::BTreeMap::new();
        for kept in cosigned.iter().filter(|c| c.size > index) {
            let (note, lines) = match by_size.entry(kept.size) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert((self.checkpoint_at(kept.size)?, Vec::new()))
                }
            };
            if body_of(&kept.note).ok() == body_of(note).ok()
                && let Some(line) = line_of(&kept.note, &kept.cosigner)
            {
                lines.push(line);
            }
        }
        let Some((&size, (note, lines))) = by_size
            .iter()
            .filter(|(_, (_, lines))| !lines.is_empty())
            .max_by_key(|(size, (_, lines))| (lines.len(), **size))
        else {
            return Err(ReadError::NotFound(format!(
                "entry {index} is in no checkpoint a witness has cosigned yet; mirrors cosign each checkpoint they \
                 verify, so ask again shortly"
            )));
        };
        let mut merged = note.clone();
        for line in lines {
            merged.push_str(line);
            merged.push('\n');
        }
        receipt.proof = crate::ledger::tlog_proof(&self.tree(), index, size, merged)?.to_text();
        Ok(receipt)
    }

    /// The deposit's text, if it is still held (withdrawn texts are gone): from the blob
    /// directory, or from SQLite while it waits to be moved there.
    pub fn content(&self, cid: &Cid) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some(text) = self.inner.blobs.get(cid)? {
            return Ok(Some(text));
        }
        let pending = self
            .with(|conn| Ok(conn.query_row(PENDING_TEXT, [cid.to_string()], |r| r.get(0)).optional()?))?;
        // The text may have moved to the blob directory between the two reads.
        match pending {
            Some(text) => Ok(Some(text)),
            None => Ok(self.inner.blobs.get(cid)?),
        }
    }

    /// How many accepted texts wait in SQLite to be moved into the blob directory.
    pub fn pending_texts(&self) -> Result<u64, ReadError> {
        self.with(|conn| Ok(conn.query_row("SELECT count(*) FROM pending_texts", [], |r| r.get(0))?))
    }

    /// The latest signed checkpoint: (size, note).
    pub fn checkpoint(&self) -> Result<(u64, String), ReadError> {
        self.with(|conn| {
            latest_checkpoint(conn)?.ok_or_else(|| ReadError::NotFound("the log is empty".into()))
        })
    }

    /// The size and root of the tree held now.
    pub fn tree_head(&self) -> (u64, Hash) {
        let tree = self.inner.tree.read().unwrap_or_else(|e| e.into_inner());
        (tree.size(), tree.root())
    }

    /// The root of the first `size` entries held.
    pub fn root_at(&self, size: u64) -> Result<Hash, ReadError> {
        let tree = self.inner.tree.read().unwrap_or_else(|e| e.into_inner());
        tree.root_at(size).map_err(|e| ReadError::BadRequest(e.to_string()))
    }

    /// The RFC 6962 consistency proof between two sizes of the tree held.
    pub fn consistency_hashes(&self, old: u64, new: u64) -> Result<Vec<Hash>, ReadError> {
        let tree = self.inner.tree.read().unwrap_or_else(|e| e.into_inner());
        tree.consistency_proof(old, new).map_err(|e| ReadError::BadRequest(e.to_string()))
    }

    /// Keeps a verified cosignature unless one of a larger checkpoint by the same cosigner is held.
    pub fn keep_cosignature(&self, cosigned: &Cosigned) -> Result<(), ReadError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO cosignatures (cosigner, size, timestamp, note) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (cosigner) DO UPDATE SET size = excluded.size, timestamp = excluded.timestamp,
                 note = excluded.note WHERE excluded.size >= cosignatures.size",
                rusqlite::params![cosigned.cosigner, cosigned.size, cosigned.timestamp, cosigned.note],
            )?;
            Ok(())
        })
    }

    /// The newest cosignature kept from each cosigner.
    pub fn cosignatures(&self) -> Result<Vec<Cosigned>, ReadError> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT cosigner, size, timestamp, note FROM cosignatures ORDER BY cosigner")?;
            let rows = stmt.query_map([], |r| {
                Ok(Cosigned { cosigner: r.get(0)?, size: r.get(1)?, timestamp: r.get(2)?, note: r.get(3)? })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The largest signed checkpoint whose size is in `(above, at_most]`, if there is one: a step
    /// a mirror can verify and keep on its way to a far-off head.
    pub fn checkpoint_between(&self, above: u64, at_most: u64) -> Result<Option<(u64, String)>, ReadError> {
        beyond_sql(at_most, "checkpoint size")?;
        self.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT size, note FROM checkpoints WHERE size > ?1 AND size <= ?2 ORDER BY size DESC LIMIT 1",
                    [above, at_most],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
        })
    }

    /// The signed checkpoint at exactly `size`.
    pub fn checkpoint_at(&self, size: u64) -> Result<String, ReadError> {
        beyond_sql(size, "checkpoint size")?;
        self.with(|conn| {
            conn.query_row("SELECT note FROM checkpoints WHERE size = ?1", [size], |r| r.get(0))
                .optional()?
                .ok_or_else(|| {
                    let near: Vec<u64> = conn
                        .prepare("SELECT size FROM checkpoints WHERE size BETWEEN ?1 - 1000 AND ?1 + 1000 ORDER BY abs(size - ?1) LIMIT 5")
                        .and_then(|mut s| s.query_map([size], |r| r.get(0))?.collect())
                        .unwrap_or_default();
                    ReadError::NotFound(format!("no checkpoint was signed at size {size}; nearby checkpoint sizes: {near:?}"))
                })
        })
    }

    pub fn entries(&self, start: u64, limit: u64) -> Result<Vec<LogEntry>, ReadError> {
        beyond_sql(start, "start")?;
        let limit = limit.min(i64::MAX as u64);
        self.with(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT idx, leaf FROM entries WHERE idx >= ?1 ORDER BY idx LIMIT ?2")?;
            let rows =
                stmt.query_map([start, limit], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            let mut entries = Vec::new();
            for row in rows {
                let (index, leaf) = row?;
                entries.push(
                    LogEntry::from_leaf(index, &leaf)
                        .map_err(|source| LedgerError::MalformedLeaf { index, source })?,
                );
            }
            Ok(entries)
        })
    }

    /// An inclusion proof of entry `index` in the latest checkpoint.
    pub fn prove(&self, index: u64) -> Result<TlogProof, ReadError> {
        let (size, note) = self.checkpoint()?;
        if index >= size {
            return Err(ReadError::NotFound(format!("entry {index} is not in the log (size {size})")));
        }
        Ok(crate::ledger::tlog_proof(&self.tree(), index, size, note)?)
    }

    /// A consistency proof between the checkpoints at `old` and `new`.
    pub fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, ReadError> {
        use base64::Engine;
        if old > new {
            return Err(ReadError::BadRequest(format!(
                "the old size {old} is larger than the new size {new}"
            )));
        }
        let old_checkpoint = self.checkpoint_at(old)?;
        let new_checkpoint = self.checkpoint_at(new)?;
        let hashes: Vec<Hash> =
            self.tree().consistency_proof(old, new).map_err(|e| ReadError::BadRequest(e.to_string()))?;
        let proof = hashes.iter().map(|h| base64::engine::general_purpose::STANDARD.encode(h)).collect();
        Ok(ConsistencyProof { old_checkpoint, new_checkpoint, proof })
    }

    /// A tlog-tiles hash tile, bounded by the latest checkpoint.
    pub fn tile(&self, level: u32, index: u64, width: Option<u64>) -> Result<Vec<u8>, ReadError> {
        let (size, _) = self.checkpoint()?;
        let beyond = || ReadError::NotFound(format!("tile {level}/{index} is beyond the log (size {size})"));
        let nodes_at_level = level
            .checked_mul(substrate_tlog::TILE_HEIGHT)
            .and_then(|shift| size.checked_shr(shift))
            .unwrap_or(0);
        let end = index
            .checked_mul(substrate_tlog::TILE_WIDTH)
            .and_then(|start| start.checked_add(width.unwrap_or(substrate_tlog::TILE_WIDTH)))
            .ok_or_else(beyond)?;
        if end > nodes_at_level {
            return Err(beyond());
        }
        substrate_tlog::tile_hashes(&self.tree(), level, index, width)
            .map_err(|e| ReadError::NotFound(e.to_string()))
    }

    /// A tlog-tiles entry bundle, bounded by the latest checkpoint.
    pub fn entry_bundle(&self, index: u64, width: Option<u64>) -> Result<Vec<u8>, ReadError> {
        let (size, _) = self.checkpoint()?;
        let count = width.unwrap_or(substrate_tlog::TILE_WIDTH);
        let start = index.checked_mul(substrate_tlog::TILE_WIDTH);
        let Some(start) = start.filter(|start| start.checked_add(count).is_some_and(|end| end <= size))
        else {
            return Err(ReadError::NotFound(format!("entry bundle {index} is beyond the log (size {size})")));
        };
        let leaves: Vec<Vec<u8>> = self.entries(start, count)?.iter().map(LogEntry::leaf).collect();
        substrate_tlog::entry_bundle(leaves.iter().map(Vec::as_slice))
            .map_err(|e| ReadError::BadRequest(e.to_string()))
    }

    fn tree(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        self.inner.tree.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// SQLite integers are signed: an index past `i64::MAX` cannot be in any log.
fn beyond_sql(n: u64, what: &str) -> Result<(), ReadError> {
    if n > i64::MAX as u64 {
        return Err(ReadError::NotFound(format!("{what} {n} is beyond any log")));
    }
    Ok(())
}

/// Votes read with a governance state: every vote on the proposals asked for, and how many votes
/// the proposals asked for or counted have.
#[derive(Clone, Debug, Default)]
pub struct ProposalVotes {
    pub on: std::collections::BTreeMap<u64, Vec<VoteRecord>>,
    pub counts: std::collections::BTreeMap<u64, u64>,
}

impl ProposalVotes {
    /// The votes read on proposal `id`, in voter order (none if it was not asked for).
    pub fn on(&self, id: u64) -> Vec<&VoteRecord> {
        self.on.get(&id).map(|votes| votes.iter().collect()).unwrap_or_default()
    }

    pub fn count(&self, id: u64) -> u64 {
        self.counts.get(&id).copied().unwrap_or(0)
    }
}

fn parse_record(json: &str) -> Result<Record, ReadError> {
    Ok(serde_json::from_str(json)
        .map_err(|source| LedgerError::UnparsableRecord { table: Table::Records, source })?)
}

/// Which deposits [`Reader::deposits`] lists: each field that is set must match, and the page
/// holds the latest deposits logged before `before`.
#[derive(Clone, Debug, Default)]
pub struct DepositQuery {
    /// The primary register or one of the secondary ones.
    pub register: Option<String>,
    /// A consent tier as it is spelled (`training-only`).
    pub consent: Option<String>,
    pub language: Option<String>,
    /// The depositor's did:key.
    pub depositor: Option<String>,
    /// Only deposits whose log index is below this one (the previous page's last).
    pub before: Option<u64>,
    pub limit: u64,
}

/// Most deposits one [`Reader::deposits`] looks at: a filter that matches little reads this many
/// rows at most, whoever asks, and says where it stopped.
pub const DEPOSIT_SCAN: u64 = 5_000;

impl Reader {
    /// The deposits `query` picks, the latest first, withdrawn and removed ones as their
    /// tombstones stand.
    pub fn deposits(&self, query: &DepositQuery) -> Result<Vec<DepositRecord>, ReadError> {
        Ok(self.deposits_scanned(query)?.0)
    }

    /// [`Reader::deposits`], looking at no more than [`DEPOSIT_SCAN`] deposits below `before`
    /// (the latest first): also where to go on from when it stopped there without a full page,
    /// as the `before` of the next look.
    pub fn deposits_scanned(
        &self,
        query: &DepositQuery,
    ) -> Result<(Vec<DepositRecord>, Option<u64>), ReadError> {
        let before = query.before.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
        let limit = query.limit.min(i64::MAX as u64);
        self.with(|conn| {
            // The window first, by the log index's own index; the filters only within it.
            let mut stmt = conn.prepare_cached(
                "SELECT record, log_index FROM (
                     SELECT record, log_index, depositor FROM deposits
                     WHERE log_index < ?1 ORDER BY log_index DESC LIMIT ?7)
                 WHERE (?2 IS NULL OR json_extract(record, '$.register') = ?2
                        OR EXISTS (SELECT 1 FROM json_each(record, '$.secondary_registers') WHERE value = ?2))
                   AND (?3 IS NULL OR json_extract(record, '$.consent') = ?3)
                   AND (?4 IS NULL OR json_extract(record, '$.language') = ?4)
                   AND (?5 IS NULL OR depositor = ?5)
                 ORDER BY log_index DESC LIMIT ?6",
            )?;
            let mut rows = stmt.query(rusqlite::params![
                before,
                query.register,
                query.consent,
                query.language,
                query.depositor,
                limit,
                DEPOSIT_SCAN
            ])?;
            let mut deposits = Vec::new();
            while let Some(row) = rows.next()? {
                deposits.push(
                    serde_json::from_str(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)
                        .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })?,
                );
            }
            if deposits.len() as u64 >= limit {
                return Ok((deposits, None));
            }
            // Not a full page: the window ran out, or the deposits did.
            let lowest: Option<u64> = conn
                .prepare_cached(
                    "SELECT MIN(log_index), COUNT(*) FROM (
                         SELECT log_index FROM deposits WHERE log_index < ?1
                         ORDER BY log_index DESC LIMIT ?2)",
                )?
                .query_row(rusqlite::params![before, DEPOSIT_SCAN], |row| {
                    let count: u64 = row.get(1)?;
                    Ok(if count >= DEPOSIT_SCAN { row.get::<_, Option<u64>>(0)? } else { None })
                })?;
            Ok((deposits, lowest))
        })
    }

    /// How many deposits the commons holds, withdrawn and removed ones included.
    pub fn deposit_count(&self) -> Result<u64, ReadError> {
        self.with(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM deposits", [], |r| r.get(0))?))
    }
}
