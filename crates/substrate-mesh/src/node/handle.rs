//! [`MeshHandle`]: how everything outside the node's task reaches it, one command and its
//! reply at a time.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use substrate_store::{Forward, Submission, SubmitError, Submitted};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{MeshError, MeshEvent, MeshStatus};
use crate::peer::peer_id_of;
use crate::protocol::SubmitRequest;

pub(super) type SubmitReply = oneshot::Sender<Result<Submitted, SubmitError>>;

/// What the node's task is asked to do.
pub(super) enum Command {
    Announce { note: String, reply: oneshot::Sender<Result<bool, MeshError>> },
    Allow { peer: PeerId },
    Status { reply: oneshot::Sender<MeshStatus> },
    Metrics { reply: oneshot::Sender<String> },
    Submit { request: SubmitRequest, reply: SubmitReply },
    Partition { partitioned: bool },
    JobTexts { job: u64, cids: Vec<String>, reply: super::texts::JobTextsReply },
}

/// A cloneable way to reach a running node.
#[derive(Clone)]
pub struct MeshHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<MeshEvent>,
    pub(super) peer_id: PeerId,
    pub(super) listen: Multiaddr,
}

impl MeshHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The bound listen address with `/p2p/<peer id>`: what goes in another node's bootstrap list.
    pub fn address(&self) -> Multiaddr {
        self.listen.clone().with_p2p(self.peer_id).unwrap_or_else(|addr| addr)
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<MeshEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)
    }

    /// Announces a checkpoint note the log key signed. `Ok(false)`: no peer listens yet; the
    /// checkpoint is kept and announced again when one subscribes.
    pub async fn announce(&self, note: String) -> Result<bool, MeshError> {
        self.ask(|reply| Command::Announce { note, reply }).await?
    }

    /// Lets the node with this did:key connect (a node registered after start).
    pub async fn allow(&self, did: &str) -> Result<(), MeshError> {
        let peer = peer_id_of(did)?;
        self.commands.send(Command::Allow { peer }).await.map_err(|_| MeshError::Stopped)
    }

    pub async fn status(&self) -> Result<MeshStatus, MeshError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Waits until the node's status satisfies `done`, looking again after each of its events
    /// (a lagged receiver counts as one), for at most `patience`.
    pub async fn until(
        &self,
        patience: Duration,
        done: impl Fn(&MeshStatus) -> bool,
    ) -> Result<MeshStatus, MeshError> {
        let mut events = self.events();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(MeshError::TimedOut { waited: patience, last: format!("{status:?}") }),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(MeshError::Stopped),
                Ok(_) => {}
            }
        }
    }

    /// libp2p's, gossipsub's and the node's own metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String, MeshError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Asks the sequencer for the texts of `cids` for job `job`, which the log assigned to this
    /// node: each text, checked against its CID, or why it was not sent. At most
    /// [`crate::protocol::MAX_TEXTS`] per call.
    pub async fn job_texts(&self, job: u64, cids: Vec<String>) -> Result<super::texts::JobTexts, MeshError> {
        self.ask(|reply| Command::JobTexts { job, cids, reply }).await
    }

    /// Cuts this node off (every connection closed, none accepted or dialled) until called again
    /// with `false`: what a network partition looks like from inside.
    pub async fn partition(&self, partitioned: bool) -> Result<(), MeshError> {
        self.commands.send(Command::Partition { partitioned }).await.map_err(|_| MeshError::Stopped)
    }
}

impl Forward for MeshHandle {
    fn forward(
        &self,
        submission: Submission,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Submitted, SubmitError>> + Send>> {
        let commands = self.commands.clone();
        Box::pin(async move {
            let request = SubmitRequest {
                envelope: serde_bytes::ByteBuf::from(submission.event.envelope.to_bytes()),
                content: submission.content.map(serde_bytes::ByteBuf::from),
            };
            let (reply, answer) = oneshot::channel();
            commands.send(Command::Submit { request, reply }).await.map_err(|_| SubmitError::Stopped)?;
            answer.await.map_err(|_| SubmitError::Stopped)?
        })
    }
}
