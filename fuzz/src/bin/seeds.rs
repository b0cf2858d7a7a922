//! Writes the seed corpora, `seeds/<target>/`, from the fixtures: real envelopes, statements,
//! ballots, receipts, notes, proofs, tile paths, identifiers and mesh messages, each one valid.
//!
//! Run from `fuzz/`: `cargo run --release --features generate --bin seeds -- seeds`. The output
//! is the same on every run; an old seed not written again is removed with its directory.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer;
use futures::executor::block_on;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use substrate_core::governance::acts::{
    Action, Dispute, DisputeRuling, Ground, JobReceipt, NodeRegistration, Revocation, Ruling,
    node_binding_message,
};
use substrate_core::governance::tally::{ProposalClass, Vote};
use substrate_core::{Cid, ConsentTier, Envelope, Event, Register, SignedEvent};
use substrate_fuzz::{
    Ballots, Log, MEMBERS, ORIGIN, START, STEWARDS, TEXT, VOTER, WITNESS, candidates, did, key, log_verifier,
    mix, vote,
};
use substrate_mesh::protocol::{
    ADAPTER_PROTOCOL, AdapterFileRequest, AdapterFileResponse, CHECKPOINT_PROTOCOL, CONSISTENCY_PROTOCOL,
    CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse, LOG_PROTOCOL, LogRequest,
    LogResponse, SUBMIT_PROTOCOL, SubmitRequest, SubmitResponse, TEXT_PROTOCOL, Text, TextRequest,
    TextResponse,
};
use substrate_tlog::{Checkpoint, TilePath, Tree, leaf_hash};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    let log = Log::sample();
    let mut seeds = Seeds { root, written: 0 };
    envelope(&mut seeds, &log);
    statement(&mut seeds, &log);
    ballot(&mut seeds);
    receipt(&mut seeds, &log);
    note(&mut seeds, &log);
    tlog_proof(&mut seeds, &log);
    merkle_proof(&mut seeds);
    tile_path(&mut seeds);
    identifiers(&mut seeds, &log);
    mesh_wire(&mut seeds, &log);
    println!("{} seeds written under {}", seeds.written, seeds.root.display());
}

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    /// Starts `target`'s corpus afresh.
    fn target(&mut self, target: &str) -> Corpus<'_> {
        let dir = self.root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Corpus { dir, written: &mut self.written }
    }
}

struct Corpus<'a> {
    dir: PathBuf,
    written: &'a mut usize,
}

impl Corpus<'_> {
    fn write(&mut self, name: &str, bytes: impl AsRef<[u8]>) {
        let path: &Path = &self.dir.join(name);
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        *self.written += 1;
    }
}

/// Every sample event, and an envelope two keys signed (a board's ruling).
fn envelope(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("envelope");
    for (index, event) in log.events.iter().enumerate() {
        corpus.write(&format!("{index}-{}.json", event.event.kind()), event.envelope_bytes());
    }
    let mut ruling = SignedEvent::sign(dispute_ruling(), &key(STEWARDS[0]));
    ruling.cosign(&key(STEWARDS[1]));
    corpus.write("cosigned-dispute-ruling.json", ruling.envelope_bytes());
}

fn dispute_ruling() -> Event {
    Event::DisputeRuling(DisputeRuling {
        dispute: 4,
        ruling: Ruling::Relabel { register: Register::new("oral").expect("a register") },
        reason: "it was told, not written".into(),
        requested: "2027-01-15T00:01:00.000Z".into(),
    })
}

/// A statement of every event kind, each one that opens.
fn statement(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("statement");
    let mut events: Vec<Event> = log.events.iter().map(|e| e.event.clone()).collect();
    let cid = Cid::of(TEXT);
    let node = key(50);
    events.extend([
        Event::Revocation(Revocation {
            person: did(MEMBERS[2]),
            reason: "the same person as another member".into(),
            duplicate: true,
            requested: "r-1".into(),
        }),
        Event::NodeRegistration(NodeRegistration {
            node: did(50),
            binding: STANDARD.encode(node.sign(&node_binding_message(ORIGIN, &did(VOTER))).to_bytes()),
            requested: "r-2".into(),
        }),
        substrate_fuzz::election_proposal(),
        Event::Proposal(substrate_core::governance::acts::Proposal {
            title: "Every other action".into(),
            summary: None,
            class: ProposalClass::Constitutional,
            actions: vec![
                Action::SetParameter { key: "mixture.cap.sacred".into(), value: json!(0.1) },
                Action::RemoveDeposit { cid: cid.clone(), reason: "harm".into() },
                Action::ResolveDispute {
                    dispute: 4,
                    ruling: Ruling::NarrowConsent { consent: ConsentTier::Local },
                },
                Action::ApproveWorkload {
                    kind: "embed".into(),
                    version: "1".into(),
                    models: vec!["ab".repeat(32)],
                },
            ],
            requested: "r-3".into(),
        }),
        Event::Vote(vote(6, Vote::Yes, Some(mix(&[("narrative", 1.0)])), None, "r-4")),
        Event::Dispute(Dispute {
            cid: Some(cid.clone()),
            ground: Ground::WrongRegister,
            detail: "this is a song".into(),
            register: Some(Register::new("lyric").expect("a register")),
            requested: "r-5".into(),
        }),
        dispute_ruling(),
        Event::JobReceipt(JobReceipt {
            workload: "embed@1".into(),
            node: did(50),
            units: 12,
            inputs: vec!["cd".repeat(32)],
            outputs: vec!["ef".repeat(32)],
            requested: "r-6".into(),
        }),
    ]);
    let ballots = Ballots::new();
    events.push(Event::Decision(ballots.state.decision(ballots.mixture).expect("a decision")));
    events.push(Event::Decision(ballots.state.decision(ballots.election).expect("a decision")));
    for (n, event) in events.iter().enumerate() {
        let statement = serde_json::to_vec(&event.to_statement()).expect("a statement serialises");
        corpus.write(&format!("{n:02}-{}.json", event.kind()), statement);
    }
    // Kinds written as a client writes them, as JSON.
    let hex = |b: &str| b.repeat(32);
    let written = [
        (
            "node-offer",
            json!({"node": did(50), "cores": 2, "memoryMib": 4096, "models": [hex("ab")], "workloads": ["embed@1"], "requested": "r-7"}),
            did(50),
        ),
        (
            "job-request",
            json!({"workload": "embed@1", "input": {"kind": "embed", "texts": ["a line", "another"]}, "budget": 100, "deadlineSeconds": 60, "requested": "r-8"}),
            "job/1".into(),
        ),
        (
            "job-request",
            json!({"workload": "generate@1", "input": {"kind": "generate", "prompt": "Once", "maxTokens": 16}, "budget": 100, "requested": "r-9"}),
            "job/2".into(),
        ),
        (
            "job-schedule",
            json!({"job": 1, "step": {"step": "assign", "node": did(50), "role": "run", "deadline": START + 60_000}}),
            "job/1".into(),
        ),
        (
            "job-schedule",
            json!({"job": 1, "step": {"step": "abandon", "reason": "nobody offers embed@1"}}),
            "job/1".into(),
        ),
        (
            "job-result",
            json!({"job": 1, "assignment": 9, "node": did(50), "output": {"kind": "embed", "vectors": [STANDARD.encode([0u8; 8])]}, "cpuMs": 420, "requested": "r-10"}),
            "job/1".into(),
        ),
        (
            "job-result",
            json!({"job": 2, "assignment": 10, "node": did(50), "output": {"kind": "generate", "tokens": [1, 2, 3], "text": " upon"}, "cpuMs": 42, "requested": "r-11"}),
            "job/2".into(),
        ),
        (
            "token-grant",
            json!({"token": hex("01"), "label": "laptop", "expires": "2027-06-01T00:00:00.000Z", "requested": "r-12"}),
            "token".into(),
        ),
        ("token-revocation", json!({"token": hex("01"), "requested": "r-13"}), "token".into()),
        (
            "usage",
            json!({"node": did(VOTER), "seq": 1, "from": "2027-01-15T00:00:00.000Z", "to": "2027-01-15T01:00:00Z",
                "lines": [{"member": did(MEMBERS[1]), "requests": 3, "tokens": 1200}]}),
            format!("usage/{}/1", did(VOTER)),
        ),
    ];
    for (n, (kind, predicate, subject)) in written.into_iter().enumerate() {
        let statement = json!({
            "_type": substrate_core::statement::STATEMENT_TYPE,
            "subject": [{"name": subject, "digest": {"sha256": hex("00")}}],
            "predicateType": Event::predicate_type(kind),
            "predicate": predicate,
        });
        let name = format!("{:02}-{kind}.json", events.len() + n);
        write_if_it_opens(&mut corpus, &name, &serde_json::to_vec(&statement).expect("JSON"));
    }
    let adapter = json!({
        "name": "spring-run", "adapter": hex("aa"), "provenance": hex("bb"), "baseModel": hex("cc"),
        "decision": 12, "snapshotSize": 7, "snapshotRoot": hex("dd"), "deposits": 1, "requested": "r-14",
    });
    let statement = json!({
        "_type": substrate_core::statement::STATEMENT_TYPE,
        "subject": [{"name": "spring-run", "digest": {"sha256": hex("aa")}}],
        "predicateType": Event::predicate_type("adapter"),
        "predicate": adapter,
    });
    write_if_it_opens(&mut corpus, "adapter.json", &serde_json::to_vec(&statement).expect("JSON"));
}

/// Writes a statement typed by hand only if it opens, so a seed is never a refusal.
fn write_if_it_opens(corpus: &mut Corpus, name: &str, statement: &[u8]) {
    let envelope = Envelope::sign(statement.to_vec(), &key(VOTER));
    match SignedEvent::open(envelope) {
        Ok(_) => corpus.write(name, statement),
        Err(e) => panic!("the seed {name} does not open: {e}"),
    }
}

/// Ballots on both proposals, and plain votes.
fn ballot(seeds: &mut Seeds) {
    let mut corpus = seeds.target("ballot");
    let commons = Ballots::new();
    let ranked = |ranking: &[u8]| Some(ranking.iter().map(|n| did(*n)).collect::<Vec<_>>());
    let votes = [
        vote(commons.mixture, Vote::Yes, Some(mix(&[("oral", 0.6), ("narrative", 0.4)])), None, "r-1"),
        vote(commons.mixture, Vote::No, Some(mix(&[("encyclopedic", 1.0)])), None, "r-2"),
        vote(
            commons.mixture,
            Vote::Abstain,
            Some(mix(&[("technical", 0.125), ("sacred", 0.125), ("pedagogical", 0.75)])),
            None,
            "r-3",
        ),
        vote(commons.mixture, Vote::Yes, None, None, "r-4"),
        vote(commons.election, Vote::Yes, None, ranked(&[12, 11, 10, 1]), "r-5"),
        vote(commons.election, Vote::No, None, ranked(&[1]), "r-6"),
        vote(commons.election, Vote::Yes, None, Some(Vec::new()), "r-7"),
    ];
    for (n, vote) in votes.iter().enumerate() {
        corpus.write(&format!("vote-{n}.json"), serde_json::to_vec(vote).expect("a vote serialises"));
    }
    assert_eq!(candidates().len(), 4);
}

/// The receipt of every entry, as `substrate receipt` prints it.
fn receipt(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("receipt");
    let verifier = log_verifier();
    for index in 0..log.entries.len() {
        let receipt = log.receipt(index);
        receipt.verify(&verifier, Some(TEXT)).expect("a fixture receipt verifies");
        corpus.write(&format!("receipt-{index}.json"), serde_json::to_string_pretty(&receipt).expect("JSON"));
    }
}

/// Checkpoint bodies, signed and cosigned notes, a verifier key.
fn note(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("note");
    for size in [1, 4, log.tree.size()] {
        let note = log.note(size);
        let body = substrate_tlog::cosignature::body_of(&note).expect("a note");
        corpus.write(&format!("checkpoint-{size}.txt"), body);
        corpus.write(&format!("note-{size}.txt"), &note);
    }
    let plain =
        Checkpoint { origin: ORIGIN.into(), size: 0, root: substrate_tlog::empty_root(), extensions: vec![] };
    corpus.write("checkpoint-empty.txt", plain.to_text());
    corpus.write("vkey.txt", log_verifier().to_vkey());
}

/// Proofs of several entries, to the whole log and to earlier checkpoints.
fn tlog_proof(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("tlog_proof");
    let size = log.tree.size();
    for (index, at) in [(0, size), (3, size), (size - 1, size), (2, 4), (0, 1)] {
        let mut proof = log.proof(index, at);
        if index == 3 {
            proof.extra = Some(b"application data".to_vec());
        }
        corpus.write(&format!("proof-{index}-of-{at}.txt"), proof.to_text());
    }
}

/// Real inclusion and consistency proofs of the target's tree, in its input layout.
fn merkle_proof(seeds: &mut Seeds) {
    let mut corpus = seeds.target("merkle_proof");
    let tree = Tree::from_leaf_hashes((0u64..1000).map(|i| leaf_hash(&i.to_be_bytes())));
    let layout = |mode: u8, a: u64, b: u64, proof: &[[u8; 32]]| {
        let mut bytes = vec![mode];
        bytes.extend_from_slice(&a.to_le_bytes());
        bytes.extend_from_slice(&b.to_le_bytes());
        proof.iter().for_each(|h| bytes.extend_from_slice(h));
        bytes
    };
    for (index, size) in [(0, 1), (5, 8), (999, 1000), (300, 777), (512, 513)] {
        let proof = tree.inclusion_proof(index, size).expect("in range");
        corpus.write(&format!("inclusion-{index}-{size}.bin"), layout(0, index, size, &proof));
    }
    for (old, new) in [(1, 2), (3, 7), (256, 1000), (999, 1000), (500, 500)] {
        let proof = tree.consistency_proof(old, new).expect("in range");
        corpus.write(&format!("consistency-{old}-{new}.bin"), layout(1, old, new, &proof));
    }
}

fn tile_path(seeds: &mut Seeds) {
    let mut corpus = seeds.target("tile_path");
    let paths = [
        TilePath::Hashes { level: 0, index: 0, width: None },
        TilePath::Hashes { level: 0, index: 3, width: Some(5) },
        TilePath::Hashes { level: 1, index: 0, width: Some(3) },
        TilePath::Hashes { level: 2, index: 1_234_067, width: Some(1) },
        TilePath::Entries { index: 1, width: None },
        TilePath::Entries { index: 3, width: Some(5) },
    ];
    for (n, path) in paths.iter().enumerate() {
        corpus.write(&format!("path-{n}.txt"), path.to_string());
    }
}

fn identifiers(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("identifiers");
    corpus.write("did.txt", did(VOTER));
    corpus.write("cid.txt", Cid::of(TEXT).to_string());
    corpus.write("time.txt", substrate_core::timestamp::rfc3339(START + 1234));
    corpus.write("time-seconds.txt", "2027-01-15T08:00:00Z");
    corpus.write("register.txt", "encyclopedic");
    corpus.write("tier.txt", "training-only");
    corpus.write("handle.txt", format!("tag:fuzz.example,2027:d/{}", log.entries.len()));
}

/// Every message of every protocol, as a node sends it; the first byte chooses it.
fn mesh_wire(seeds: &mut Seeds, log: &Log) {
    let mut corpus = seeds.target("mesh_wire");
    let leaves: Vec<serde_bytes::ByteBuf> =
        log.entries.iter().map(|e| serde_bytes::ByteBuf::from(e.leaf())).collect();
    let cid = Cid::of(TEXT);
    let deposit = &log.events[3];
    let proof = log.tree.consistency_proof(3, log.tree.size()).expect("in range");
    let mut write = |kind: u8, name: &str, bytes: Vec<u8>| {
        let mut seed = vec![kind];
        seed.extend(bytes);
        corpus.write(&format!("{kind:02}-{name}.bin"), seed);
    };
    write(
        0,
        "log-request",
        request::<LogRequest, LogResponse>(LOG_PROTOCOL, LogRequest { start: 0, limit: 512 }),
    );
    write(
        1,
        "log-response",
        response::<LogRequest, LogResponse>(LOG_PROTOCOL, LogResponse { leaves: leaves.clone() }),
    );
    write(
        1,
        "log-response-one",
        response::<LogRequest, LogResponse>(LOG_PROTOCOL, LogResponse { leaves: leaves[..1].to_vec() }),
    );
    write(
        2,
        "consistency-request",
        request::<ConsistencyRequest, ConsistencyResponse>(
            CONSISTENCY_PROTOCOL,
            ConsistencyRequest { old: 3, new: 7 },
        ),
    );
    write(
        3,
        "consistency-response",
        response::<ConsistencyRequest, ConsistencyResponse>(
            CONSISTENCY_PROTOCOL,
            ConsistencyResponse {
                proof: proof.iter().map(|h| serde_bytes::ByteBuf::from(h.to_vec())).collect(),
                error: None,
            },
        ),
    );
    write(
        4,
        "checkpoint-request",
        request::<CheckpointRequest, CheckpointResponse>(
            CHECKPOINT_PROTOCOL,
            CheckpointRequest { above: 3, at_most: 7 },
        ),
    );
    write(
        5,
        "checkpoint-response",
        response::<CheckpointRequest, CheckpointResponse>(
            CHECKPOINT_PROTOCOL,
            CheckpointResponse { note: Some(log.note(log.tree.size())) },
        ),
    );
    write(
        6,
        "text-request",
        request::<TextRequest, TextResponse>(TEXT_PROTOCOL, TextRequest { cids: vec![cid.to_string()], job: None }),
    );
    write(
        7,
        "text-response",
        response::<TextRequest, TextResponse>(
            TEXT_PROTOCOL,
            TextResponse {
                texts: vec![
                    Text {
                        cid: cid.to_string(),
                        content: Some(serde_bytes::ByteBuf::from(TEXT.to_vec())),
                        refused: None,
                    },
                    Text { cid: Cid::of(b"other").to_string(), content: None, refused: Some("local".into()) },
                ],
            },
        ),
    );
    write(
        8,
        "adapter-file-request",
        request::<AdapterFileRequest, AdapterFileResponse>(
            ADAPTER_PROTOCOL,
            AdapterFileRequest { adapter: 12, name: "adapter_config.json".into() },
        ),
    );
    write(
        9,
        "adapter-file-response",
        response::<AdapterFileRequest, AdapterFileResponse>(
            ADAPTER_PROTOCOL,
            AdapterFileResponse {
                content: Some(serde_bytes::ByteBuf::from(b"{\"r\": 8}".to_vec())),
                refused: None,
            },
        ),
    );
    write(
        10,
        "submit-request",
        request::<SubmitRequest, SubmitResponse>(
            SUBMIT_PROTOCOL,
            SubmitRequest {
                envelope: serde_bytes::ByteBuf::from(deposit.envelope_bytes().to_vec()),
                content: Some(serde_bytes::ByteBuf::from(TEXT.to_vec())),
            },
        ),
    );
    let submitted: substrate_store::Submitted =
        serde_json::from_value(json!({"receipt": log.receipt(3), "duplicate": false})).expect("a submission");
    write(
        11,
        "submit-response",
        response::<SubmitRequest, SubmitResponse>(SUBMIT_PROTOCOL, SubmitResponse::Submitted(submitted)),
    );
    write(
        11,
        "submit-refused",
        response::<SubmitRequest, SubmitResponse>(
            SUBMIT_PROTOCOL,
            SubmitResponse::Failed("the disk is full".into()),
        ),
    );
    write(12, "announcement", log.note(log.tree.size()).into_bytes());
    write(13, "peer", substrate_mesh::peer_id_of(&did(WITNESS)).expect("a peer").to_bytes());
    write(14, "swarm-key", substrate_mesh::SwarmKey::from_secret([7; 32]).to_file().into_bytes());
}

fn request<Req, Resp>(protocol: &'static str, request: Req) -> Vec<u8>
where
    Req: Serialize + DeserializeOwned + Send,
    Resp: Serialize + DeserializeOwned + Send,
{
    let mut bytes = Vec::new();
    block_on(Codec::<Req, Resp>::default().write_request(
        &StreamProtocol::new(protocol),
        &mut bytes,
        request,
    ))
    .expect("a request encodes");
    bytes
}

fn response<Req, Resp>(protocol: &'static str, response: Resp) -> Vec<u8>
where
    Req: Serialize + DeserializeOwned + Send,
    Resp: Serialize + DeserializeOwned + Send,
{
    let mut bytes = Vec::new();
    block_on(Codec::<Req, Resp>::default().write_response(
        &StreamProtocol::new(protocol),
        &mut bytes,
        response,
    ))
    .expect("a response encodes");
    bytes
}
