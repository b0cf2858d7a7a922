//! The sequencer: one thread owns the [`Ledger`] and appends whatever has queued up since its last
//! commit as one batch (group commit), so a burst of deposits costs one blob sync and one
//! SQLite fsync, not one each. Callers reach it through a cloneable [`SequencerHandle`].

use std::time::{SystemTime, UNIX_EPOCH};

use substrate_core::receipt::Receipt;
use substrate_core::state::Rejection;
use tokio::sync::{mpsc, oneshot};

use crate::ledger::{Ledger, Outcome, Submission};

/// The most submissions one batch takes; more wait for the next batch.
pub const MAX_BATCH: usize = 2048;
/// How many submissions may wait for the sequencer before callers are made to wait.
const QUEUE: usize = 16 * 1024;

type Reply = oneshot::Sender<Result<Submitted, SubmitError>>;

#[derive(Debug)]
pub struct Submitted {
    pub receipt: Receipt,
    /// True when the same statement was already in the log.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Refused(Rejection),
    #[error("the log could not store the event: {0}")]
    Storage(String),
    #[error("the sequencer has stopped")]
    Stopped,
}

#[derive(Clone)]
pub struct SequencerHandle {
    queue: mpsc::Sender<(Submission, Reply)>,
}

impl SequencerHandle {
    /// Starts the sequencer thread; it stops when every handle is dropped, after finishing the
    /// batch in hand.
    pub fn spawn(ledger: Ledger) -> (SequencerHandle, std::thread::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || run(ledger, receiver))
            .unwrap_or_else(|e| panic!("cannot start the sequencer thread: {e}"));
        (SequencerHandle { queue }, thread)
    }

    /// Offers one event to the log; resolves once it is durable (or refused).
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, SubmitError> {
        let (reply, response) = oneshot::channel();
        self.queue.send((submission, reply)).await.map_err(|_| SubmitError::Stopped)?;
        response.await.map_err(|_| SubmitError::Stopped)?
    }
}

fn run(mut ledger: Ledger, mut receiver: mpsc::Receiver<(Submission, Reply)>) {
    let mut pending = Vec::with_capacity(MAX_BATCH);
    while receiver.blocking_recv_many(&mut pending, MAX_BATCH) > 0 {
        let (batch, replies): (Vec<Submission>, Vec<Reply>) = pending.drain(..).unzip();
        let size = batch.len();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        match ledger.append_batch(batch, now) {
            Ok(outcomes) => {
                tracing::debug!(batch = size, log_size = ledger.state().size(), "batch committed");
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let result = match outcome {
                        Outcome::Appended(receipt) => Ok(Submitted { receipt, duplicate: false }),
                        Outcome::Duplicate(receipt) => Ok(Submitted { receipt, duplicate: true }),
                        Outcome::Refused(rejection) => Err(SubmitError::Refused(rejection)),
                    };
                    // A caller that went away no longer needs its answer; the entry stays.
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, batch = size, "batch failed; nothing of it was acknowledged");
                for reply in replies {
                    let _ = reply.send(Err(SubmitError::Storage(error.to_string())));
                }
            }
        }
    }
}
