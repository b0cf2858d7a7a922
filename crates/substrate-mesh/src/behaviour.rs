//! The libp2p behaviours a node runs, and the settings chosen for a small mesh of known peers.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::metrics::Registry;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, allow_block_list, gossipsub, identify, ping};

use crate::protocol::{
    ADAPTER_PROTOCOL, AdapterFileRequest, AdapterFileResponse, CHECKPOINT_PROTOCOL, CONSISTENCY_PROTOCOL,
    CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse, IDENTIFY_PROTOCOL,
    LOG_PROTOCOL, LogRequest, LogResponse, RESPONSE_SIZE_MAXIMUM, SUBMIT_PROTOCOL, SubmitRequest,
    SubmitResponse, TEXT_PROTOCOL, TextRequest, TextResponse,
};

/// Every behaviour of a node. The allow-list comes first so that a connection it denies is
/// refused before any other behaviour sees it.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub log: request_response::cbor::Behaviour<LogRequest, LogResponse>,
    pub consistency: request_response::cbor::Behaviour<ConsistencyRequest, ConsistencyResponse>,
    pub checkpoint: request_response::cbor::Behaviour<CheckpointRequest, CheckpointResponse>,
    pub text: request_response::cbor::Behaviour<TextRequest, TextResponse>,
    pub submit: request_response::cbor::Behaviour<SubmitRequest, SubmitResponse>,
    pub adapter: request_response::cbor::Behaviour<AdapterFileRequest, AdapterFileResponse>,
}

impl Behaviour {
    /// `sequencer`: whether this node takes submissions (only the sequencer does); its identify
    /// agent version says the role, e.g. `substrate/0.1.0 mirror`.
    pub fn new(key: &Keypair, sequencer: bool, registry: &mut Registry) -> Result<Behaviour, String> {
        let gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config()?)?
                .with_metrics(registry.sub_registry_with_prefix("gossipsub"), Default::default());
        let codec =
            request_response::cbor::codec::Codec::default().set_response_size_maximum(RESPONSE_SIZE_MAXIMUM);
        let log = request_response::Behaviour::with_codec(
            codec,
            [(StreamProtocol::new(LOG_PROTOCOL), ProtocolSupport::Full)],
            // A range is at most MAX_RANGE leaves read from SQLite: seconds, not minutes.
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        // A proof is at most 64 hashes: the default size limits are ample.
        let consistency = request_response::cbor::Behaviour::new(
            [(StreamProtocol::new(CONSISTENCY_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        // A checkpoint note is a few hundred bytes.
        let checkpoint = request_response::cbor::Behaviour::new(
            [(StreamProtocol::new(CHECKPOINT_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        let role = if sequencer { "sequencer" } else { "mirror" };
        // Texts are at most the deposit limit (1 MiB by default) each, up to MAX_TEXTS per response.
        let text = request_response::Behaviour::with_codec(
            request_response::cbor::codec::Codec::default()
                .set_response_size_maximum(RESPONSE_SIZE_MAXIMUM * 8),
            [(StreamProtocol::new(TEXT_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
        );
        // A deposit request carries its text; the sequencer answers within one group commit.
        let submit = request_response::Behaviour::with_codec(
            request_response::cbor::codec::Codec::default().set_request_size_maximum(RESPONSE_SIZE_MAXIMUM),
            [(
                StreamProtocol::new(SUBMIT_PROTOCOL),
                if sequencer { ProtocolSupport::Inbound } else { ProtocolSupport::Outbound },
            )],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        // One adapter file per response, as large as the registry takes (the weights), with room
        // for the CBOR around it; a slow link gets two minutes for it.
        let adapter = request_response::Behaviour::with_codec(
            request_response::cbor::codec::Codec::default()
                .set_response_size_maximum(substrate_training::registry::MAX_FILE_BYTES as u64 + 64 * 1024),
            [(StreamProtocol::new(ADAPTER_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(120)),
        );
        Ok(Behaviour {
            allowed: allow_block_list::Behaviour::default(),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("substrate/{} {role}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            gossipsub,
            log,
            consistency,
            checkpoint,
            text,
            submit,
            adapter,
        })
    }
}

/// Gossipsub for a commons of 2 to 10 nodes, nearly all of which know each other from the static
/// bootstrap list.
fn gossip_config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        // D = 4, D_low = 2, D_high = 8 (defaults 6/5/12 assume hundreds of peers). With 2-10 nodes
        // the defaults would have every node permanently "under-meshed" and grafting on every
        // heartbeat; D_low = 2 keeps a second path so one dead peer does not cut a node off, and
        // D_high = 8 lets a 10-node commons be one full mesh without pruning.
        .mesh_n(4)
        .mesh_n_low(2)
        .mesh_n_high(8)
        // Must stay <= D_low and <= D/2.
        .mesh_outbound_min(1)
        // Gossip (IHAVE) to up to 3 peers outside the mesh: with so few peers, the lazy path is the
        // repair path when a mesh link drops a checkpoint; the default 6 exceeds the peer count.
        .gossip_lazy(3)
        // Checkpoints are rare (one per sequencer batch at most) and tiny; a 1 s heartbeat (the
        // default) repairs the mesh quickly at negligible cost.
        .heartbeat_interval(Duration::from_secs(1))
        // Messages are signed by their libp2p author and only then handed to us; the checkpoint
        // inside is verified again with the log key before anything acts on it.
        .validation_mode(gossipsub::ValidationMode::Strict)
        // A signed checkpoint note with a few cosignatures is well under 4 KiB.
        .max_transmit_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())
}
