//! Checkpoint cosignatures, on the commons' cosignature topic: a mirror cosigns each checkpoint
//! it has verified and kept (C2SP tlog-cosignature/v1, key name = its node did:key) and publishes
//! it, again whenever a peer subscribes; every node keeps the newest verified cosignature of each
//! registered node, and a sequencer stores them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::gossipsub::{IdentTopic, PublishError};
use substrate_core::identity::did_of;
use substrate_store::Cosigned;
use substrate_tlog::{Checkpoint, cosignature};
use tracing::{debug, warn};

use super::{MeshEvent, Node, NodeRole};
use crate::peer::peer_id_of;

/// This node's cosigning, and the cosignatures it heard.
pub(super) struct Cosigning {
    /// The node key: a mirror cosigns with it, under its did:key as the key name.
    node_key: SigningKey,
    name: String,
    topic: IdentTopic,
    /// A mirror's cosignature of its latest accepted checkpoint: published again on subscribe.
    cosigned: Option<String>,
    /// The newest cosignature heard from each cosigner.
    heard: BTreeMap<String, Cosigned>,
}

impl Cosigning {
    /// Cosigning with `node_key` on `topic`, starting from the cosignatures already `heard`.
    pub(super) fn new(
        node_key: SigningKey,
        topic: IdentTopic,
        heard: BTreeMap<String, Cosigned>,
    ) -> Cosigning {
        Cosigning { name: did_of(&node_key.verifying_key()), node_key, topic, cosigned: None, heard }
    }

    /// The cosignature topic.
    pub(super) fn topic(&self) -> &IdentTopic {
        &self.topic
    }

    /// The newest cosignature heard from each registered node, this one included.
    pub(super) fn heard(&self) -> impl Iterator<Item = &Cosigned> {
        self.heard.values()
    }
}

impl Node {
    /// Cosigns a checkpoint this mirror has just verified and publishes the cosignature.
    pub(super) fn cosign(&mut self, note: &str) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match cosignature::cosign(note, &self.cosigning.name, &self.cosigning.node_key, now) {
            Ok(cosigned) => {
                self.metrics.checkpoints_cosigned.inc();
                self.cosigning.cosigned = Some(cosigned.clone());
                // Our own cosignature counts among those heard.
                self.on_cosignature(*self.swarm.local_peer_id(), cosigned);
                self.publish_cosignature();
            }
            Err(e) => warn!(error = %e, "could not cosign a verified checkpoint"),
        }
    }

    pub(super) fn publish_cosignature(&mut self) {
        let Some(cosigned) = self.cosigning.cosigned.clone() else { return };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.cosigning.topic.clone(), cosigned.into_bytes())
        {
            Ok(_) | Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::Duplicate) => {}
            Err(e) => warn!(error = %e, "could not publish a cosignature"),
        }
    }

    /// Keeps every verified cosignature by a registered node on a checkpoint the log key signed.
    pub(super) fn on_cosignature(&mut self, from: PeerId, note: String) {
        let checkpoint = match Checkpoint::open(&note, &self.log_key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                return self.reject(from, format!("a cosigned checkpoint the log key did not sign: {e}"));
            }
        };
        for name in cosignature::signers(&note) {
            if name == self.log_key.name() {
                continue;
            }
            let peer = match peer_id_of(&name) {
                Ok(peer) if self.allowed.contains(&peer) || peer == *self.swarm.local_peer_id() => peer,
                // A node this one has not seen registered yet: the entry that registers it may
                // be in a part of the log not kept here yet. Not a sign of tampering; it counts
                // once its registration is held.
                Ok(_) => {
                    debug!(cosigner = %name, "a cosignature by a node not registered in the log held; skipped");
                    self.refresh_allowed();
                    continue;
                }
                Err(_) => {
                    self.reject(from, format!("a cosignature by {name}, which is not a node's did:key"));
                    continue;
                }
            };
            let verified = substrate_core::identity::key_of(&name)
                .map_err(|e| e.to_string())
                .and_then(|key| cosignature::verify_with(&note, &name, &key).map_err(|e| e.to_string()));
            let cosigned = match verified {
                Ok(cosigned) => cosigned,
                Err(e) => {
                    self.reject(from, e);
                    continue;
                }
            };
            if self.cosigning.heard.get(&name).is_some_and(|held| held.size > checkpoint.size) {
                continue;
            }
            let height = &mut self.peers.entry(peer).or_default().height;
            *height = Some(height.unwrap_or(0).max(checkpoint.size));
            debug!(cosigner = %name, size = checkpoint.size, "a checkpoint was cosigned");
            self.metrics.cosignatures_heard.inc();
            let record = Cosigned {
                cosigner: name.clone(),
                size: checkpoint.size,
                timestamp: cosigned.timestamp,
                note: note.clone(),
            };
            if matches!(self.role, NodeRole::Sequencer { .. }) {
                let reader = self.reader.clone();
                let kept = record.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = reader.keep_cosignature(&kept) {
                        warn!(error = %e, "could not store a cosignature");
                    }
                });
            }
            self.cosigning.heard.insert(name.clone(), record);
            self.emit(MeshEvent::Cosigned { cosigner: name, size: checkpoint.size });
        }
    }
}
