//! The mesh's wire: every request and response of its request-response protocols, decoded by the
//! CBOR codec the nodes run (libp2p's `request_response::cbor`), then handed to what a node does
//! with it: a range's leaves opened as a mirror opens them (`OpenedRange::open`), a step's
//! checkpoint opened, the texts' CIDs parsed, a submission admitted as the sequencer's
//! forwarding admits one. Also the gossip messages (checkpoint notes and cosignatures) and the
//! peer ids a connection presents, mapped to the did:keys the allow-list holds.
//!
//! Input: one byte choosing the message, then its bytes. Whatever decodes encodes to bytes that
//! decode to the same value and encode to the same bytes.

#![no_main]

use std::fmt::Debug;
use std::sync::LazyLock;

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;
use libp2p::{PeerId, StreamProtocol};
use serde::Serialize;
use serde::de::DeserializeOwned;
use substrate_core::{Cid, Event, LogEntry, SignedEvent};
use substrate_fuzz::{Log, ORIGIN, WITNESS, did, key, log_verifier};
use substrate_mesh::protocol::{
    ADAPTER_PROTOCOL, AdapterFileRequest, AdapterFileResponse, CHECKPOINT_PROTOCOL, CONSISTENCY_PROTOCOL,
    CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse, LOG_PROTOCOL, LogRequest,
    LogResponse, SUBMIT_PROTOCOL, SubmitRequest, SubmitResponse, TEXT_PROTOCOL, TextRequest, TextResponse,
};
use substrate_mesh::{SwarmKey, did_of_peer, peer_id_of};
use substrate_store::OpenedRange;
use substrate_tlog::{Checkpoint, Hash, NoteVerifier, cosignature, empty_root, verify_consistency};

static LOG: LazyLock<Log> = LazyLock::new(Log::sample);
static VERIFIER: LazyLock<NoteVerifier> = LazyLock::new(log_verifier);
/// The signed checkpoint of every size of the fixture log, by size.
static NOTES: LazyLock<Vec<String>> = LazyLock::new(|| (0..=LOG.tree.size()).map(|n| LOG.note(n)).collect());
/// The log a mirror holds when it asks for a consistency proof: the first three entries.
const HELD: u64 = 3;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    match kind % 16 {
        0 => drop(request::<LogRequest, LogResponse>(LOG_PROTOCOL, bytes)),
        1 => {
            if let Some(response) = response::<LogRequest, LogResponse>(LOG_PROTOCOL, bytes) {
                open_range(response.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec).collect());
            }
        }
        2 => drop(request::<ConsistencyRequest, ConsistencyResponse>(CONSISTENCY_PROTOCOL, bytes)),
        3 => {
            if let Some(response) =
                response::<ConsistencyRequest, ConsistencyResponse>(CONSISTENCY_PROTOCOL, bytes)
            {
                check_consistency(&response);
            }
        }
        4 => drop(request::<CheckpointRequest, CheckpointResponse>(CHECKPOINT_PROTOCOL, bytes)),
        5 => {
            let response = response::<CheckpointRequest, CheckpointResponse>(CHECKPOINT_PROTOCOL, bytes);
            if let Some(note) = response.and_then(|r| r.note) {
                open_checkpoint(&note);
            }
        }
        6 => {
            if let Some(request) = request::<TextRequest, TextResponse>(TEXT_PROTOCOL, bytes) {
                request.cids.iter().for_each(|cid| parse_cid(cid));
            }
        }
        7 => {
            if let Some(response) = response::<TextRequest, TextResponse>(TEXT_PROTOCOL, bytes) {
                response.texts.iter().for_each(|text| parse_cid(&text.cid));
            }
        }
        8 => drop(request::<AdapterFileRequest, AdapterFileResponse>(ADAPTER_PROTOCOL, bytes)),
        9 => drop(response::<AdapterFileRequest, AdapterFileResponse>(ADAPTER_PROTOCOL, bytes)),
        10 => {
            if let Some(request) = request::<SubmitRequest, SubmitResponse>(SUBMIT_PROTOCOL, bytes) {
                admit(request);
            }
        }
        11 => {
            if let Some(SubmitResponse::Submitted(submitted)) =
                response::<SubmitRequest, SubmitResponse>(SUBMIT_PROTOCOL, bytes)
            {
                let _ = submitted.receipt.verify(&VERIFIER, None);
            }
        }
        12 => {
            // A checkpoint announcement, and a cosignature: gossip messages are notes in UTF-8.
            if let Ok(note) = std::str::from_utf8(bytes) {
                open_checkpoint(note);
                let witness = did(WITNESS);
                let _ = cosignature::signers(note);
                let _ = cosignature::verify_with(note, &witness, &key(WITNESS).verifying_key());
            }
        }
        13 => peer(bytes),
        14 => {
            if let Ok(text) = std::str::from_utf8(bytes)
                && let Ok(swarm_key) = SwarmKey::parse(text)
            {
                assert_eq!(SwarmKey::parse(&swarm_key.to_file()).ok(), Some(swarm_key));
            }
        }
        _ => {}
    }
});

/// Decodes a request as the node's codec does; checks that it encodes and decodes again stably.
fn request<Req, Resp>(protocol: &'static str, bytes: &[u8]) -> Option<Req>
where
    Req: Serialize + DeserializeOwned + Send + Debug,
    Resp: Serialize + DeserializeOwned + Send,
{
    let protocol = StreamProtocol::new(protocol);
    let mut codec = Codec::<Req, Resp>::default();
    let decoded = block_on(codec.read_request(&protocol, &mut Cursor::new(bytes))).ok()?;
    let mut first = Vec::new();
    block_on(codec.write_request(&protocol, &mut first, decoded)).expect("a decoded request encodes");
    let again =
        block_on(codec.read_request(&protocol, &mut Cursor::new(&first))).expect("its encoding decodes");
    let mut second = Vec::new();
    block_on(codec.write_request(&protocol, &mut second, again)).expect("a decoded request encodes");
    assert_eq!(first, second, "a request's encoding is not stable");
    block_on(codec.read_request(&protocol, &mut Cursor::new(&second))).ok()
}

/// [`request`], for a response.
fn response<Req, Resp>(protocol: &'static str, bytes: &[u8]) -> Option<Resp>
where
    Req: Serialize + DeserializeOwned + Send,
    Resp: Serialize + DeserializeOwned + Send + Debug,
{
    let protocol = StreamProtocol::new(protocol);
    let mut codec = Codec::<Req, Resp>::default();
    let decoded = block_on(codec.read_response(&protocol, &mut Cursor::new(bytes))).ok()?;
    let mut first = Vec::new();
    block_on(codec.write_response(&protocol, &mut first, decoded)).expect("a decoded response encodes");
    let again =
        block_on(codec.read_response(&protocol, &mut Cursor::new(&first))).expect("its encoding decodes");
    let mut second = Vec::new();
    block_on(codec.write_response(&protocol, &mut second, again)).expect("a decoded response encodes");
    assert_eq!(first, second, "a response's encoding is not stable");
    block_on(codec.read_response(&protocol, &mut Cursor::new(&second))).ok()
}

/// A range of leaves as a mirror opens it: from the empty log to the signed checkpoint of as many
/// entries as it has leaves. The checkpoint vouches only for its size here (the leaves' root is
/// the ledger's check, after opening), so the range opens exactly when every leaf is an entry.
fn open_range(leaves: Vec<Vec<u8>>) {
    for (index, leaf) in leaves.iter().enumerate() {
        if let Ok(entry) = LogEntry::from_leaf(index as u64, leaf) {
            assert_eq!(&entry.leaf(), leaf);
        }
    }
    let Some(note) = NOTES.get(leaves.len()).filter(|_| !leaves.is_empty()) else { return };
    let entries = leaves.iter().all(|leaf| leaf.len() >= 9);
    let opened = OpenedRange::open(&VERIFIER, (0, empty_root()), note, leaves, &[]);
    assert_eq!(opened.is_ok(), entries, "{:?}", opened.err());
}

/// A consistency proof from the log a mirror holds to the fixture's whole log, its hashes taken
/// as the mirror takes them (one that is not 32 bytes counts as zeros).
fn check_consistency(response: &ConsistencyResponse) {
    let proof: Vec<Hash> =
        response.proof.iter().map(|h| h.as_slice().try_into().unwrap_or([0; 32])).collect();
    let size = LOG.tree.size();
    let (old_root, new_root) = (LOG.tree.root_at(HELD).unwrap_or_default(), LOG.tree.root());
    if verify_consistency(HELD, size, &old_root, &new_root, &proof).is_ok() {
        assert_eq!(LOG.tree.consistency_proof(HELD, size).as_ref(), Ok(&proof), "a second consistency proof");
    }
}

/// A checkpoint note as a mirror opens an announcement or a step.
fn open_checkpoint(note: &str) {
    if let Ok(checkpoint) = Checkpoint::open(note, &VERIFIER) {
        assert_eq!(checkpoint.origin, ORIGIN);
    }
}

fn parse_cid(text: &str) {
    if let Ok(cid) = Cid::parse(text) {
        assert_eq!(cid.to_string(), text);
    }
}

/// What the sequencer's forwarding checks of a submission before the sequencer sees it (the
/// mesh's `admit`, which is private to its node module): the envelope opens, strictly, with no
/// control characters, and a deposit carries the text its statement describes.
fn admit(request: SubmitRequest) {
    let Ok(event) = SignedEvent::open_bytes(&request.envelope) else { return };
    if event.envelope.check_strict().is_err() || event.event.control_characters().is_some() {
        return;
    }
    if let (Event::Deposit(deposit), Some(text)) = (&event.event, &request.content) {
        let _ = deposit.check_content(text);
    }
}

/// A peer id from a connection, mapped to the did:key the allow-list names it by, and back.
fn peer(bytes: &[u8]) {
    let Ok(peer) = PeerId::from_bytes(bytes) else { return };
    if let Some(did) = did_of_peer(&peer) {
        let back = peer_id_of(&did).expect("the did:key of a peer names a key");
        assert_eq!(back, peer, "two peer ids map to {did}");
    }
}
