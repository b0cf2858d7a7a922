//! Forwarding, on `/substrate/submit/1`: a node that is not the sequencer passes the events it
//! is sent to the sequencer and the receipt back; the sequencer admits them as its HTTP API does.

use libp2p::PeerId;
use libp2p::request_response::{self, ResponseChannel};
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_store::{Submission, SubmitError};
use tracing::{debug, warn};

use super::handle::SubmitReply;
use super::{Node, NodeRole, Served};
use crate::protocol::{SubmitRequest, SubmitResponse};

impl Node {
    /// Sends a submission to the sequencer; the reply comes when it answers.
    pub(super) fn forward(&mut self, request: SubmitRequest, reply: SubmitReply) {
        let Some(sequencer) = self.peers.iter().find(|(_, p)| p.sequencer).map(|(id, _)| *id) else {
            let _ =
                reply.send(Err(SubmitError::Unreachable("no sequencer is connected to this node".into())));
            return;
        };
        self.metrics.forwarded.inc();
        let id = self.swarm.behaviour_mut().submit.send_request(&sequencer, request);
        self.forwards.insert(id, reply);
    }

    pub(super) fn on_submit(&mut self, event: request_response::Event<SubmitRequest, SubmitResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.take_submission(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.forwards.remove(&request_id) {
                        let _ = reply.send(match response {
                            SubmitResponse::Submitted(submitted) => Ok(submitted),
                            SubmitResponse::Refused(rejection) => Err(SubmitError::Refused(rejection)),
                            SubmitResponse::Failed(detail) => Err(SubmitError::Unreachable(detail)),
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.forwards.remove(&request_id) {
                    let _ = reply
                        .send(Err(SubmitError::Unreachable(format!("forwarding to {peer} failed: {error}"))));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a forwarded submission could not be answered");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The sequencer's side of forwarding: the same checks as the HTTP API, then the sequencer.
    pub(super) fn take_submission(
        &mut self,
        peer: PeerId,
        request: SubmitRequest,
        channel: ResponseChannel<SubmitResponse>,
    ) {
        let NodeRole::Sequencer { sequencer: Some(sequencer) } = &self.role else {
            let response = SubmitResponse::Failed("this node does not sequence the log".into());
            let _ = self.swarm.behaviour_mut().submit.send_response(channel, response);
            return;
        };
        let submission = match admit(request) {
            Ok(submission) => submission,
            Err(detail) => {
                warn!(%peer, %detail, "refused a forwarded submission");
                let _ =
                    self.swarm.behaviour_mut().submit.send_response(channel, SubmitResponse::Failed(detail));
                return;
            }
        };
        let sequencer = sequencer.clone();
        let served = self.served_tx.clone();
        tokio::spawn(async move {
            let response = match sequencer.submit(submission).await {
                Ok(submitted) => SubmitResponse::Submitted(submitted),
                Err(SubmitError::Refused(rejection)) => SubmitResponse::Refused(rejection),
                Err(e) => SubmitResponse::Failed(e.to_string()),
            };
            let _ = served.send(Served::Submitted(channel, response)).await;
        });
    }
}

/// What a forwarded submission must be before the sequencer sees it: an envelope that opens, of a
/// kind members send, with no control characters in its text fields, and for a deposit the text
/// its statement describes.
pub(super) fn admit(request: SubmitRequest) -> Result<Submission, String> {
    let event =
        SignedEvent::open_bytes(&request.envelope).map_err(|e| format!("the envelope does not open: {e}"))?;
    // The same refusals the HTTP API makes at its edge: a peer does not get round them.
    event.envelope.check_strict().map_err(|e| e.to_string())?;
    if let Some(field) = event.event.control_characters() {
        return Err(format!(
            "the {} event's {field} holds a control character; write it as plain text and sign it again",
            event.event.kind()
        ));
    }
    let content = request.content.map(serde_bytes::ByteBuf::into_vec);
    match (&event.event, &content) {
        (Event::Genesis(_) | Event::Decision(_), _) => {
            return Err(format!("a {} entry is the sequencer's own", event.event.kind()));
        }
        (Event::Deposit(deposit), Some(text)) => deposit.check_content(text).map_err(|e| e.to_string())?,
        (Event::Deposit(_), None) => return Err("a deposit must carry its text".into()),
        (_, Some(_)) => return Err(format!("a {} event carries no text", event.event.kind())),
        (_, None) => {}
    }
    Ok(Submission { event, content })
}

#[cfg(test)]
mod tests {
    use substrate_core::event::{Deposit, Event};
    use substrate_core::{Cid, ConsentTier, Register, SignedEvent};

    use super::admit;
    use crate::protocol::SubmitRequest;

    fn request(title: &str) -> SubmitRequest {
        let text = b"a text sent by a peer".to_vec();
        let event = Event::Deposit(Deposit {
            cid: Some(Cid::of(&text)),
            register: Register::defaults()[0].clone(),
            secondary_registers: vec![],
            consent: ConsentTier::Public,
            title: title.into(),
            language: "en".into(),
            license: "CC0-1.0".into(),
            media_type: "text/plain; charset=utf-8".into(),
            size: text.len() as u64,
            created: "2026-01-01T00:00:00.000Z".into(),
        });
        let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        SubmitRequest {
            envelope: serde_bytes::ByteBuf::from(SignedEvent::sign(event, &key).envelope.to_bytes()),
            content: Some(serde_bytes::ByteBuf::from(text)),
        }
    }

    #[test]
    fn a_peer_is_refused_what_the_http_api_refuses() {
        assert!(admit(request("a plain title")).is_ok());
        let refused = admit(request("a title\u{0}with a NUL")).expect_err("refused");
        assert!(refused.contains("title") && refused.contains("control character"), "{refused}");
    }
}
