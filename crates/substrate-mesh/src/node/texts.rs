//! Deposit texts between nodes, on `/substrate/text/1`: a mirror asks for the texts it lacks, and
//! a node sends only those whose consent lets them leave it.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use substrate_core::Cid;
use substrate_store::Reader;
use substrate_store::follow::replicates;
use tracing::{debug, warn};

use super::{MeshEvent, Node, NodeRole, Served};
use crate::protocol::{MAX_TEXTS, Text, TextRequest, TextResponse};

/// The texts a mirror lacks, and the request in flight for some of them.
pub(super) struct WantedTexts {
    /// Texts to fetch (CIDs).
    wanted: VecDeque<Cid>,
    /// The text request in flight and the CIDs it asked for (asked again if it fails).
    in_flight: Option<(OutboundRequestId, Vec<Cid>)>,
}

impl WantedTexts {
    pub(super) fn new(wanted: impl IntoIterator<Item = Cid>) -> WantedTexts {
        WantedTexts { wanted: wanted.into_iter().collect(), in_flight: None }
    }

    /// More texts to fetch.
    pub(super) fn want(&mut self, cids: impl IntoIterator<Item = Cid>) {
        self.wanted.extend(cids);
    }
}

/// The texts a worker asked for a job: each CID with its text or why it was not sent; or why the
/// request went nowhere.
pub type JobTexts = Result<Vec<(String, Result<Vec<u8>, String>)>, String>;
pub(crate) type JobTextsReply = oneshot::Sender<JobTexts>;

impl Node {
    /// Asks the sequencer, which holds every text, for texts of a job this node was assigned.
    pub(super) fn ask_job_texts(&mut self, job: u64, cids: Vec<String>, reply: JobTextsReply) {
        let Some(sequencer) = self.peers.iter().find(|(_, p)| p.sequencer).map(|(id, _)| *id) else {
            let _ = reply.send(Err(
                "this node is not connected to the sequencer; the job's texts are asked for again when it is"
                    .into(),
            ));
            return;
        };
        let cids = cids.into_iter().take(MAX_TEXTS).collect();
        let id =
            self.swarm.behaviour_mut().text.send_request(&sequencer, TextRequest { cids, job: Some(job) });
        self.job_texts.insert(id, reply);
    }

    /// Whom a mirror asks for texts and adapter files: the sequencer holds every text and every
    /// file uploaded to it; another mirror only those it fetched.
    pub(super) fn source(&self) -> Option<PeerId> {
        let NodeRole::Mirror(follower) = &self.role else { return None };
        self.peers
            .iter()
            .find(|(_, p)| p.sequencer)
            .map(|(id, _)| *id)
            .or_else(|| follower.sync.best().map(|b| b.from).filter(|p| self.swarm.is_connected(p)))
    }

    /// Asks a peer that may hold them for the next texts this mirror lacks.
    pub(super) fn fetch_texts(&mut self) {
        if self.partitioned {
            return;
        }
        let source = self.source();
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let texts = &mut follower.texts;
        if texts.in_flight.is_some() || texts.wanted.is_empty() {
            return;
        }
        let Some(source) = source else { return };
        let count = texts.wanted.len().min(MAX_TEXTS);
        let asked: Vec<Cid> = texts.wanted.drain(..count).collect();
        let cids = asked.iter().map(Cid::to_string).collect();
        let id = self.swarm.behaviour_mut().text.send_request(&source, TextRequest { cids, job: None });
        texts.in_flight = Some((id, asked));
    }

    pub(super) fn on_text(&mut self, event: request_response::Event<TextRequest, TextResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_texts(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.job_texts.remove(&request_id) {
                        let _ = reply.send(Ok(job_texts(response)));
                        return;
                    }
                    let NodeRole::Mirror(follower) = &mut self.role else { return };
                    if follower.texts.in_flight.as_ref().is_none_or(|(id, _)| *id != request_id) {
                        return;
                    }
                    let mut texts = Vec::new();
                    for text in response.texts {
                        let Ok(cid) = Cid::parse(&text.cid) else { continue };
                        match text.content {
                            Some(content) => texts.push((cid, content.into_vec())),
                            None => {
                                debug!(%peer, cid = %text.cid, refused = ?text.refused, "a text was not sent")
                            }
                        }
                    }
                    let ledger = Arc::clone(&follower.ledger);
                    let served = self.served_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let kept = ledger.lock().unwrap_or_else(|e| e.into_inner()).keep_texts(texts);
                        let _ = served.blocking_send(Served::TextsKept(kept.map_err(|e| e.to_string())));
                    });
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.job_texts.remove(&request_id) {
                    let _ = reply.send(Err(format!("the sequencer did not answer: {error}")));
                    return;
                }
                if let NodeRole::Mirror(follower) = &mut self.role
                    && let Some((_, asked)) = follower.texts.in_flight.take_if(|(id, _)| *id == request_id)
                {
                    warn!(%peer, %error, "a text request failed; the texts are asked for again");
                    follower.texts.wanted.extend(asked);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a text request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The ledger kept the fetched texts (or could not): ask for the next ones.
    pub(super) fn on_texts_kept(&mut self, result: Result<usize, String>) {
        if let NodeRole::Mirror(follower) = &mut self.role {
            follower.texts.in_flight = None;
        }
        match result {
            Ok(count) => {
                self.metrics.texts_kept.inc_by(count as u64);
                self.emit(MeshEvent::TextsKept { count });
            }
            Err(e) => warn!(error = %e, "could not keep fetched texts; they are fetched again"),
        }
        self.fetch_texts();
    }

    /// Sends the texts consent lets leave this node: `public` and `commons` texts of deposits
    /// still active, to registered nodes (the only peers that can connect). Everything else is
    /// answered with the reason and no content.
    pub(super) fn serve_texts(
        &mut self,
        peer: PeerId,
        request: TextRequest,
        channel: ResponseChannel<TextResponse>,
    ) {
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        let asker = crate::peer::did_of_peer(&peer);
        tokio::task::spawn_blocking(move || {
            // A job's request is judged against one reading of the state, not one per text.
            let governance = request.job.map(|_| reader.governance().map_err(|e| e.to_string()));
            let texts = request
                .cids
                .into_iter()
                .take(MAX_TEXTS)
                .map(|cid| {
                    let sent = match (request.job, &asker, &governance) {
                        (Some(job), Some(node), Some(Ok(g))) => text_for_job(&reader, g, job, node, &cid),
                        (Some(_), Some(_), Some(Err(e))) => Err(e.clone()),
                        (Some(_), _, _) => Err("the asker is not a node known by its key".into()),
                        (None, _, _) => text_for_peer(&reader, &cid),
                    };
                    let (content, refused) = match sent {
                        Ok(content) => (Some(serde_bytes::ByteBuf::from(content)), None),
                        Err(reason) => {
                            debug!(%peer, %cid, %reason, "a text was withheld");
                            (None, Some(reason))
                        }
                    };
                    Text { cid, content, refused }
                })
                .collect();
            let _ = served.blocking_send(Served::Texts(channel, TextResponse { texts }));
        });
    }
}

/// What came back for a job's texts: each text checked against its CID.
fn job_texts(response: TextResponse) -> Vec<(String, Result<Vec<u8>, String>)> {
    response
        .texts
        .into_iter()
        .map(|text| {
            let content = match (text.content, text.refused) {
                (Some(content), _) => match Cid::parse(&text.cid) {
                    Ok(cid) if Cid::of(&content) == cid => Ok(content.into_vec()),
                    _ => Err("the text sent does not hash to its CID".to_owned()),
                },
                (None, refused) => Err(refused.unwrap_or_else(|| "not sent".into())),
            };
            (text.cid, content)
        })
        .collect()
}

/// The text of `cid` for job `job` if `node` may have it: a `training-only` text only while the
/// node holds the job's live assignment and the text is in the job's snapshot
/// ([`substrate_core::governance::book::Governance::job_text`]); any other text as a mirror
/// would be sent it.
pub(super) fn text_for_job(
    reader: &Reader,
    governance: &substrate_core::governance::book::Governance,
    job: u64,
    node: &str,
    cid: &str,
) -> Result<Vec<u8>, String> {
    let deposit = reader.deposit(cid).map_err(|e| e.to_string())?;
    if deposit.consent != substrate_core::ConsentTier::TrainingOnly {
        return text_for_peer(reader, cid);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    governance.job_text(job, node, &deposit, now)?;
    match reader.content(&deposit.cid) {
        Ok(Some(content)) => Ok(content),
        Ok(None) => Err(format!("this node does not hold the text of {cid}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The text of `cid` if consent lets it leave this node for a member's mirror, else why not.
pub(super) fn text_for_peer(reader: &Reader, cid: &str) -> Result<Vec<u8>, String> {
    let deposit = reader.deposit(cid).map_err(|e| e.to_string())?;
    if deposit.status.is_gone() {
        return Err(format!("{cid} was withdrawn or removed"));
    }
    if !replicates(deposit.consent) {
        return Err(format!(
            "{cid} is {}: its text does not leave its node (only public and commons texts replicate)",
            deposit.consent.as_str()
        ));
    }
    match reader.content(&deposit.cid) {
        Ok(Some(content)) => Ok(content),
        Ok(None) => Err(format!("this node does not hold the text of {cid} yet")),
        Err(e) => Err(e.to_string()),
    }
}
