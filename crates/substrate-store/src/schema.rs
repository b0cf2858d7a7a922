//! The SQLite schema. `entries` and `checkpoints` are the log; `commons`, `deposits` and the
//! governance `records` are materialised state that `replay --rebuild` can drop and recompute; `pending_texts` holds
//! accepted texts until they are moved into the blob directory; `cosignatures` keeps the newest
//! verified cosignature from each witness (a mirror), outside the log.

use rusqlite::{Connection, TransactionBehavior};
use substrate_core::{LogEntry, SignedEvent};

/// The schema's version, kept in SQLite's `user_version`. Version 4 adds `entries_leaves`, the
/// entries' leaf hashes in log order apart from their envelopes: opening a ledger rebuilds its
/// tree from them, and read from the table itself that meant reading every envelope (a gigabyte
/// at a million entries) for 32 bytes each. Version 3 keys the texts waiting for
/// the blob directory by their deposit's log index (`pending_texts.idx`): a batch appends them at
/// the end of the table instead of also inserting each into an index of random CIDs, which wrote
/// a page of the write-ahead log per text. Version 2 stamps each governance record
/// with the log size of the batch that last wrote it (`records.at`), so a reader brings its copy
/// up to date by reading only what changed. Version 1 keys each entry by its act (`entries.act`:
/// the statement and its signers, see `SignedEvent::act_digest`); version 0 kept the statement
/// digest alone in `entries.statement`, which merged identical statements signed by different
/// people.
pub const VERSION: i64 = 4;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    act BLOB NOT NULL UNIQUE
);
-- The tree's leaves alone, in order: what opening a ledger reads (a covering index).
CREATE INDEX IF NOT EXISTS entries_leaves ON entries (idx, leaf_hash);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
-- By the deposit's log index; a text is found by CID through `deposits.log_index`.
CREATE TABLE IF NOT EXISTS pending_texts (
    idx INTEGER PRIMARY KEY,
    cid TEXT NOT NULL,
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS commons (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deposits (
    cid TEXT PRIMARY KEY,
    log_index INTEGER NOT NULL UNIQUE,
    handle TEXT NOT NULL UNIQUE,
    depositor TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
-- The withdrawn and removed deposits alone, so opening a ledger finds the blobs a crash left
-- behind without reading every deposit.
CREATE INDEX IF NOT EXISTS deposits_gone ON deposits (cid) WHERE status != 'active';
CREATE TABLE IF NOT EXISTS cosignatures (
    cosigner TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_at ON records (at);
";

/// Opens the database with the durability the log promises: WAL, and a full fsync of the WAL at
/// every commit, so a committed batch survives power loss and SIGKILL alike.
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A withdrawn text must not linger in free pages: deleted content is overwritten with zeros.
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn)?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Whether the materialised records were written before every decided mixture was kept (under
/// its decision's index): then only the mixture in force is stored, under an empty key, and the
/// records must be rebuilt from the log.
pub fn records_predate_history(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM records WHERE kind = 'mixture' AND key = ''")?.exists([])
}

/// Brings a database of an earlier schema version up to [`VERSION`], in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version =
        |conn: &Connection| conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0));
    if version(conn)? >= VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if version(&tx)? >= VERSION {
        return Ok(());
    }
    let has_statement_column =
        tx.prepare("SELECT 1 FROM pragma_table_info('entries') WHERE name = 'statement'")?.exists([])?;
    if has_statement_column {
        tx.execute_batch("ALTER TABLE entries RENAME COLUMN statement TO act")?;
        let leaves: Vec<(u64, Vec<u8>)> = tx
            .prepare("SELECT idx, leaf FROM entries ORDER BY idx")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut update = tx.prepare("UPDATE entries SET act = ?1 WHERE idx = ?2")?;
        for (index, leaf) in leaves {
            let unreadable = |detail: String| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Blob,
                    format!("entry {index} cannot be read to upgrade the schema: {detail}").into(),
                )
            };
            let entry = LogEntry::from_leaf(index, &leaf).map_err(|e| unreadable(e.to_string()))?;
            let event = SignedEvent::open_bytes(&entry.envelope).map_err(|e| unreadable(e.to_string()))?;
            update.execute(rusqlite::params![event.act_digest().as_slice(), index])?;
        }
    }
    let records_lack_at = tx.prepare("SELECT 1 FROM sqlite_master WHERE name = 'records'")?.exists([])?
        && !tx.prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = 'at'")?.exists([])?;
    if records_lack_at {
        // Every record counts as written at the start: a reader reads them all once.
        tx.execute_batch("ALTER TABLE records ADD COLUMN at INTEGER NOT NULL DEFAULT 0")?;
    }
    let pending_by_cid = tx.prepare("SELECT 1 FROM sqlite_master WHERE name = 'pending_texts'")?.exists([])?
        && !tx.prepare("SELECT 1 FROM pragma_table_info('pending_texts') WHERE name = 'idx'")?.exists([])?;
    if pending_by_cid {
        // Every pending text belongs to an active deposit (a withdrawal deletes its text in the
        // same commit), whose row gives its log index.
        tx.execute_batch(
            "CREATE TABLE pending_texts_by_index (
                 idx INTEGER PRIMARY KEY,
                 cid TEXT NOT NULL,
                 content BLOB NOT NULL
             );
             INSERT INTO pending_texts_by_index (idx, cid, content)
                 SELECT deposits.log_index, pending_texts.cid, pending_texts.content
                 FROM pending_texts JOIN deposits ON deposits.cid = pending_texts.cid;
             DROP TABLE pending_texts;
             ALTER TABLE pending_texts_by_index RENAME TO pending_texts;",
        )?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}
