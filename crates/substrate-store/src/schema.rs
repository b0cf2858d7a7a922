//! The SQLite schema. `entries` and `checkpoints` are the log; `commons`, `deposits` and the
//! governance `records` are materialised state that `replay --rebuild` can drop and recompute; `pending_texts` holds
//! accepted texts until they are moved into the blob directory; `cosignatures` keeps the newest
//! verified cosignature from each witness (a mirror), outside the log.

use rusqlite::Connection;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    statement BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_texts (
    cid TEXT PRIMARY KEY,
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
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
";

/// Opens the database with the durability the log promises: WAL, and a full fsync of the WAL at
/// every commit, so a committed batch survives power loss and SIGKILL alike.
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A withdrawn text must not linger in free pages: deleted content is overwritten with zeros.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}
