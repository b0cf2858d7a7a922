//! The content-addressed blob directory: `blobs/<2 chars>/<cid>`, each written to a temporary file
//! and renamed into place. Durability is per batch: one `syncfs` covers every blob of a batch
//! before its log entries commit.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use substrate_core::Cid;

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
    pub fn open(dir: &Path) -> std::io::Result<BlobStore> {
        fs::create_dir_all(dir)?;
        Ok(BlobStore { dir: dir.to_owned() })
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        let name = cid.to_string();
        // The first characters are the constant "bafkrei" prefix; fan out on the digest.
        self.dir.join(&name[7..9]).join(name)
    }

    /// Writes `content` under its CID without syncing; call [`BlobStore::sync`] before relying on it.
    pub fn put_unsynced(&self, cid: &Cid, content: &[u8]) -> Result<(), BlobError> {
        let io = |source| BlobError::Io { cid: cid.to_string(), source };
        let path = self.path(cid);
        let parent = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent).map_err(io)?;
        let mut tmp = tempfile_in(parent, cid).map_err(io)?;
        tmp.1.write_all(content).map_err(io)?;
        drop(tmp.1);
        fs::rename(&tmp.0, &path).map_err(io)?;
        Ok(())
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

fn tempfile_in(dir: &Path, cid: &Cid) -> std::io::Result<(PathBuf, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".{cid}.{}.{n}.tmp", std::process::id()));
    let file = fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok((path, file))
}

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
