//! Log entries: the exact envelope bytes plus the sequencer's integrated time. The Merkle leaf is
//! the 8-byte big-endian integrated time (ms since the epoch) followed by the envelope JSON.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    /// ms since the epoch, as the sequencer integrated the entry; never decreases along the log.
    pub integrated_time: u64,
    pub envelope: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a log entry is at least 9 bytes (8-byte time, then the envelope); this one has {0}")]
pub struct EntryError(pub usize);

impl LogEntry {
    /// The leaf bytes the Merkle tree commits to.
    pub fn leaf(&self) -> Vec<u8> {
        let mut leaf = Vec::with_capacity(8 + self.envelope.len());
        leaf.extend_from_slice(&self.integrated_time.to_be_bytes());
        leaf.extend_from_slice(&self.envelope);
        leaf
    }

    pub fn from_leaf(index: u64, leaf: &[u8]) -> Result<LogEntry, EntryError> {
        if leaf.len() < 9 {
            return Err(EntryError(leaf.len()));
        }
        let (time, envelope) = leaf.split_at(8);
        let mut be = [0u8; 8];
        be.copy_from_slice(time);
        Ok(LogEntry { index, integrated_time: u64::from_be_bytes(be), envelope: envelope.to_vec() })
    }

    pub fn leaf_hash(&self) -> substrate_tlog::Hash {
        substrate_tlog::leaf_hash(&self.leaf())
    }
}
