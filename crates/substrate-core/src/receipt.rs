//! Receipts: everything needed to check, offline and with only the commons' public key, that an
//! event was signed by its author and is in the commons' log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use substrate_tlog::{Checkpoint, NoteVerifier, TlogProof};

use crate::entry::LogEntry;
use crate::envelope::Envelope;
use crate::event::{ContentError, Event, EventError, SignedEvent};

/// A receipt as the node returns it and `substrate verify` reads it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The event kind: genesis, deposit, withdrawal or consent-change.
    pub kind: String,
    /// The CID of the deposit the event concerns.
    pub cid: Option<String>,
    /// The commons' persistent handle for that deposit.
    pub handle: Option<String>,
    /// A DOI only once a registrar actually issued one; never invented.
    pub doi: Option<String>,
    pub log_index: u64,
    /// RFC 3339 form of the integrated time carried in `entry`.
    pub integrated_time: String,
    /// The signed event (also inside `entry`, byte for byte).
    pub envelope: Envelope,
    /// Standard base64 of the exact leaf bytes: 8-byte big-endian time, then the envelope JSON.
    pub entry: String,
    /// C2SP tlog-proof@v1: inclusion proof and the signed checkpoint it leads to.
    pub proof: String,
}

/// What a verified receipt establishes.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedReceipt {
    pub event: SignedEvent,
    pub entry: LogEntry,
    pub checkpoint: Checkpoint,
}

/// Which part of a receipt failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the receipt's entry is not base64 of a log entry: {0}")]
    Entry(String),
    #[error("the receipt's envelope differs from the envelope inside its log entry")]
    EnvelopeMismatch,
    #[error("signature: {0}")]
    Signature(#[from] EventError),
    #[error("receipt fields: {0}")]
    Fields(String),
    #[error("the tlog proof is malformed: {0}")]
    Proof(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("inclusion proof: {0}")]
    Inclusion(String),
    #[error("content: {0}")]
    Content(#[from] ContentError),
}

impl Receipt {
    /// Which of `witnesses` (did:keys of mirrors) cosigned the checkpoint this receipt's proof
    /// leads to, each cosignature checked against its key. Check the receipt itself with
    /// [`verify`](Self::verify) too: this says nothing of the entry.
    pub fn witnessed_by(&self, witnesses: &[String]) -> Result<Vec<String>, VerifyError> {
        let proof = TlogProof::parse(&self.proof).map_err(|e| VerifyError::Proof(e.to_string()))?;
        let mut cosigned = Vec::new();
        for witness in witnesses {
            let key = crate::identity::key_of(witness)
                .map_err(|e| VerifyError::Fields(format!("the witness {witness} is not a did:key: {e}")))?;
            if substrate_tlog::cosignature::verify_with(&proof.checkpoint, witness, &key).is_ok()
                && !cosigned.contains(witness)
            {
                cosigned.push(witness.clone());
            }
        }
        Ok(cosigned)
    }

    pub fn new(event: &SignedEvent, entry: &LogEntry, handle: Option<String>, proof: String) -> Receipt {
        Receipt {
            kind: event.event.kind().to_owned(),
            cid: event.event.cid().map(ToString::to_string),
            handle,
            doi: None,
            log_index: entry.index,
            integrated_time: crate::timestamp::rfc3339(entry.integrated_time),
            envelope: event.envelope.clone(),
            entry: STANDARD.encode(entry.leaf()),
            proof,
        }
    }

    /// Verifies the receipt offline against the commons' log key, and the content when given.
    pub fn verify(&self, log: &NoteVerifier, content: Option<&[u8]>) -> Result<VerifiedReceipt, VerifyError> {
        let leaf = STANDARD.decode(&self.entry).map_err(|e| VerifyError::Entry(e.to_string()))?;
        let entry =
            LogEntry::from_leaf(self.log_index, &leaf).map_err(|e| VerifyError::Entry(e.to_string()))?;
        let inner: Envelope =
            serde_json::from_slice(&entry.envelope).map_err(|e| VerifyError::Entry(e.to_string()))?;
        if inner != self.envelope {
            return Err(VerifyError::EnvelopeMismatch);
        }
        // A verifier holds a receipt to the strict rules a node holds submissions to.
        inner.check_strict().map_err(|e| VerifyError::Signature(EventError::from(e)))?;
        let event = SignedEvent::open(inner)?;
        let stated_cid = event.event.cid().map(ToString::to_string);
        if stated_cid != self.cid || event.event.kind() != self.kind {
            return Err(VerifyError::Fields(format!(
                "the receipt says {} {:?} but the signed statement is {} {:?}",
                self.kind,
                self.cid,
                event.event.kind(),
                stated_cid
            )));
        }
        if crate::timestamp::rfc3339(entry.integrated_time) != self.integrated_time {
            return Err(VerifyError::Fields(format!(
                "integrated_time {} differs from the entry's {}",
                self.integrated_time,
                crate::timestamp::rfc3339(entry.integrated_time)
            )));
        }
        let proof = TlogProof::parse(&self.proof).map_err(|e| VerifyError::Proof(e.to_string()))?;
        if proof.index != self.log_index {
            return Err(VerifyError::Proof(format!(
                "the proof is for index {} but the receipt says {}",
                proof.index, self.log_index
            )));
        }
        let checkpoint =
            Checkpoint::open(&proof.checkpoint, log).map_err(|e| VerifyError::Checkpoint(e.to_string()))?;
        substrate_tlog::verify_inclusion(
            &entry.leaf_hash(),
            proof.index,
            checkpoint.size,
            &proof.hashes,
            &checkpoint.root,
        )
        .map_err(|e| VerifyError::Inclusion(e.to_string()))?;
        if let (Some(content), Event::Deposit(deposit)) = (content, &event.event) {
            deposit.check_content(content)?;
        }
        Ok(VerifiedReceipt { event, entry, checkpoint })
    }
}
