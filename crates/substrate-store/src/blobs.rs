//! The content-addressed blob directory: `blobs/<2 chars>/<cid>`, each written to a temporary file
//! and renamed into place. Durability is per batch: one `syncfs` covers every file of a batch
//! before the texts' pending copies in SQLite are let go.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use substrate_core::Cid;

/// The base32 alphabet of CIDs: the fan-out directories are every pair of its letters.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {cid}: {source}")]
    Io { cid: String, source: std::io::Error },
    #[error("blob {0} is corrupt on disk (its hash no longer matches its CID)")]
    Corrupt(String),
    #[error("syncing the blob directory: {0}")]
    Sync(std::io::Error),
}

impl BlobStore {
    /// Opens (creating) the blob directory and its fan-out directories, and clears temporary
    /// files a crash left behind.
    pub fn open(dir: &Path) -> std::io::Result<BlobStore> {
        let store = BlobStore { dir: dir.to_owned() };
        fs::create_dir_all(store.temporary())?;
        for leftover in fs::read_dir(store.temporary())? {
            let _ = fs::remove_file(leftover?.path());
        }
        for a in ALPHABET {
            for b in ALPHABET {
                let fan = store.dir.join(format!("{}{}", *a as char, *b as char));
                if !fan.is_dir() {
                    fs::create_dir(&fan)?;
                }
            }
        }
        Ok(store)
    }

    fn temporary(&self) -> PathBuf {
        self.dir.join(".tmp")
    }

    /// The file of a CID: fanned out on two characters of its digest (the first seven are the
    /// constant `bafkrei` prefix).
    fn path(&self, cid: &Cid) -> PathBuf {
        let name = cid.to_string();
        self.dir.join(&name[7..9]).join(name)
    }

    /// Writes `content` under its CID without syncing; call [`BlobStore::sync`] before relying on it.
    pub fn put_unsynced(&self, cid: &Cid, content: &[u8]) -> Result<(), BlobError> {
        let io = |source| BlobError::Io { cid: cid.to_string(), source };
        let (tmp, mut file) = tempfile_in(&self.temporary()).map_err(io)?;
        file.write_all(content).map_err(io)?;
        drop(file);
        fs::rename(&tmp, self.path(cid)).map_err(io)
    }

    /// Makes every blob written so far durable: one `syncfs(2)` for the whole batch instead of an
    /// fsync per file and per directory.
    pub fn sync(&self) -> Result<(), BlobError> {
        let dir = fs::File::open(&self.dir).map_err(BlobError::Sync)?;
        syncfs(&dir).map_err(BlobError::Sync)
    }

    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BlobError> {
        match fs::read(self.path(cid)) {
            Ok(bytes) if Cid::of(&bytes) == *cid => Ok(Some(bytes)),
            Ok(_) => Err(BlobError::Corrupt(cid.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BlobError::Io { cid: cid.to_string(), source }),
        }
    }

    /// Deletes a blob (withdrawal); absent blobs are fine.
    pub fn delete(&self, cid: &Cid) -> Result<(), BlobError> {
        match fs::remove_file(self.path(cid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BlobError::Io { cid: cid.to_string(), source }),
        }
    }

    pub fn contains(&self, cid: &Cid) -> bool {
        self.path(cid).exists()
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}.{n}.tmp", std::process::id()));
    let file = fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok((path, file))
}

/// Gives the calling thread the lowest CPU priority (nice 19); best effort.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn lower_this_threads_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours; on Linux a
    // thread id names one thread for PRIO_PROCESS.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_this_threads_priority() {}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn syncfs(file: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call; syncfs only reads it.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn syncfs(_file: &fs::File) -> std::io::Result<()> {
    // Without syncfs, fall back to a full sync of all filesystems.
    #[allow(unsafe_code)]
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe {
        libc::sync()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let cid = Cid::of(b"oral history");
        store.put_unsynced(&cid, b"oral history").expect("put");
        store.sync().expect("sync");
        assert_eq!(store.get(&cid).expect("get"), Some(b"oral history".to_vec()));
        store.delete(&cid).expect("delete");
        assert_eq!(store.get(&cid).expect("get"), None);
        store.delete(&cid).expect("deleting twice is fine");
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let cid = Cid::of(b"liturgy");
        store.put_unsynced(&cid, b"liturgy").expect("put");
        fs::write(store.path(&cid), b"altered").expect("tamper");
        assert!(matches!(store.get(&cid), Err(BlobError::Corrupt(_))));
    }
}
