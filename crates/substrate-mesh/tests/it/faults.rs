//! Faults between nodes: a partitioned mirror converges once the partition heals, and texts whose
//! consent keeps them on their node never cross the wire, even when a registered peer asks for
//! them by CID over `/substrate/text/1`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, noise, tcp, yamux};
use substrate_core::event::{Deposit, Event};
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_mesh::protocol::{TEXT_PROTOCOL, TextRequest, TextResponse};
use substrate_mesh::{Mesh, MeshConfig, Role, node_keypair};
use substrate_store::Submission;

use crate::replication::{
    DEADLINE, MIRROR_NODE, SEQUENCER_NODE, START, commons, deposit, did, key, mirror_of, until,
};

async fn sequencer(reader: substrate_store::Reader, log: substrate_tlog::NoteVerifier) -> Result<Mesh> {
    Ok(Mesh::start(MeshConfig {
        allowed: vec![did(SEQUENCER_NODE), did(MIRROR_NODE)],
        redial_interval: Duration::from_millis(200),
        ..MeshConfig::new(key(SEQUENCER_NODE), log, Role::Sequencer { reader, sequencer: None })
    })
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_mirror_converges_after_the_partition_heals() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    let log = ledger.verifier();
    let sequencer = sequencer(reader.clone(), log.clone()).await?;
    sequencer.handle().announce(reader.checkpoint()?.1).await?;

    let mirror_dir = tempfile::tempdir()?;
    let mirror = Mesh::start(mirror_of(&sequencer, &log, mirror_dir.path())?).await?;
    let m = mirror.handle();
    let held = reader.tree_head();
    until(&m, "the mirror catches up before the partition", |s| s.held == held).await?;

    // Cut off: every connection dropped, none accepted or dialled.
    m.partition(true).await?;
    until(&m, "the mirror has no connection", |s| s.connected.is_empty()).await?;
    until(&sequencer.handle(), "the sequencer sees the mirror go", |s| s.connected.is_empty()).await?;

    // The log grows meanwhile; the announcement reaches nobody.
    for batch in 0..3u32 {
        ledger.append_batch(
            (100 + batch * 10..110 + batch * 10).map(deposit).collect(),
            START + 10 + u64::from(batch),
        )?;
        sequencer.handle().announce(reader.checkpoint()?.1).await?;
    }
    let grown = reader.tree_head();
    assert_eq!(m.status().await?.held, held, "a partitioned mirror learns nothing");

    // Healed: it redials its bootstrap peer, hears the head again on subscribe, and converges.
    m.partition(false).await?;
    let status = until(&m, "the mirror converges after the partition heals", |s| {
        s.held == grown && s.cosignatures.iter().any(|c| c.size == grown.0)
    })
    .await?;
    assert_eq!(status.head, grown.0);
    until(&sequencer.handle(), "the sequencer hears the mirror's cosignature", |s| {
        s.cosignatures.iter().any(|c| c.cosigner == did(MIRROR_NODE) && c.size == grown.0)
    })
    .await?;

    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}

/// A deposit of `text` under `consent`, with its text, by the depositor of `deposit`.
fn deposit_under(text: &[u8], consent: ConsentTier) -> Submission {
    let event = Event::Deposit(Deposit {
        cid: Some(Cid::of(text)),
        register: Register::new("sacred").expect("a default register"),
        secondary_registers: vec![],
        consent,
        title: format!("a {} text", consent.as_str()),
        language: "en".into(),
        license: "CC0-1.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2027-01-01T00:00:00.000Z".into(),
    });
    Submission { event: SignedEvent::sign(event, &key(20)), content: Some(text.to_vec()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_that_must_stay_are_never_sent_even_when_asked_for() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    let texts = [
        (b"a public liturgy anyone may read".to_vec(), ConsentTier::Public),
        (b"a commons lullaby for member mirrors".to_vec(), ConsentTier::Commons),
        (b"a training-only confession that never replicates".to_vec(), ConsentTier::TrainingOnly),
        (b"a local family story that never leaves its node".to_vec(), ConsentTier::Local),
    ];
    ledger.append_batch(texts.iter().map(|(t, c)| deposit_under(t, *c)).collect(), START + 10)?;
    let sequencer = sequencer(reader.clone(), ledger.verifier()).await?;

    // A registered peer speaking only /substrate/text/1 asks for all four by CID: this is exactly
    // what arrives over the connection, decoded.
    let mut peer = libp2p::SwarmBuilder::with_existing_identity(node_keypair(&key(MIRROR_NODE))?)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_| {
            request_response::cbor::Behaviour::<TextRequest, TextResponse>::new(
                [(StreamProtocol::new(TEXT_PROTOCOL), ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })?
        .build();
    peer.dial(sequencer.handle().address())?;
    let cids: Vec<String> = texts.iter().map(|(t, _)| Cid::of(t).to_string()).collect();
    // Asked as a mirror, and as if for a training job the peer holds no assignment of (there is
    // no job at all): the same answer.
    for job in [None, Some(3)] {
        peer.behaviour_mut()
            .send_request(&sequencer.handle().peer_id(), TextRequest { cids: cids.clone(), job });
        let response = tokio::time::timeout(DEADLINE, async {
            loop {
                match peer.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                        bail!("the text request failed: {error}")
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no answer to the text request"))??;

        assert_eq!(response.texts.len(), 4);
        for ((text, consent), answer) in texts.iter().zip(&response.texts) {
            assert_eq!(answer.cid, Cid::of(text).to_string());
            match consent {
                ConsentTier::Public | ConsentTier::Commons => {
                    let content =
                        answer.content.as_ref().context("a text that may replicate was withheld")?;
                    assert_eq!(&content[..], &text[..]);
                }
                ConsentTier::TrainingOnly | ConsentTier::Local => {
                    assert!(answer.content.is_none(), "a {} text crossed the wire", consent.as_str());
                    let refused = answer.refused.as_deref().unwrap_or_default();
                    assert!(refused.contains(consent.as_str()), "the refusal names the tier: {refused}");
                }
            }
        }
    }
    let metrics = sequencer.handle().metrics().await?;
    let withheld = metrics
        .lines()
        .find_map(|l| l.strip_prefix("substrate_texts_withheld_total "))
        .context("no texts_withheld metric")?;
    assert_eq!(withheld.trim(), "4", "two texts withheld from each request: {metrics}");

    // A real mirror following the log ends up with the two texts that may replicate, and only
    // those: it never even asks for the others.
    let mirror_dir = tempfile::tempdir()?;
    let mirror = Mesh::start(mirror_of(&sequencer, &ledger.verifier(), mirror_dir.path())?).await?;
    sequencer.handle().announce(reader.checkpoint()?.1).await?;
    let held = reader.tree_head();
    let mut events = mirror.handle().events();
    until(&mirror.handle(), "the mirror holds the log", |s| s.held == held).await?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mirrored = loop {
        let mirrored = substrate_store::DataDir::new(mirror_dir.path());
        if on_disk(&mirrored, &texts[0].0) && on_disk(&mirrored, &texts[1].0) {
            break mirrored;
        }
        if tokio::time::timeout_at(deadline, events.recv()).await.is_err() {
            bail!("the mirror never kept the public and commons texts");
        }
    };
    for (text, consent) in &texts[2..] {
        assert!(!on_disk(&mirrored, text), "the mirror holds a {} text", consent.as_str());
    }
    let withheld_after = sequencer.handle().metrics().await?;
    assert!(
        withheld_after.contains("substrate_texts_withheld_total 4\n"),
        "the mirror asked for texts it may not hold"
    );

    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}

/// Whether any file under the data directory holds `text`.
fn on_disk(dir: &substrate_store::DataDir, text: &[u8]) -> bool {
    let mut pending = vec![dir.root().to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(text.len()).any(|w| w == text)) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_private_network_key_only_nodes_holding_it_connect() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (ledger, reader) = commons(dir.path())?;
    let log = ledger.verifier();
    let commons_key = substrate_mesh::SwarmKey::from_secret([9; 32]);
    let sequencer = Mesh::start(MeshConfig {
        allowed: vec![did(SEQUENCER_NODE), did(MIRROR_NODE)],
        private_network: Some(commons_key),
        ..MeshConfig::new(
            key(SEQUENCER_NODE),
            log.clone(),
            Role::Sequencer { reader: reader.clone(), sequencer: None },
        )
    })
    .await?;
    sequencer.handle().announce(reader.checkpoint()?.1).await?;

    // The mirror's key is registered, but it holds another private-network key, then none.
    let mirror = |private_network, dir: &std::path::Path| -> Result<MeshConfig> {
        Ok(MeshConfig { private_network, ..mirror_of(&sequencer, &log, dir)? })
    };
    for outsider in [Some(substrate_mesh::SwarmKey::from_secret([10; 32])), None] {
        let outsider_dir = tempfile::tempdir()?;
        let node = Mesh::start(mirror(outsider, outsider_dir.path())?).await?;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        // Its dials fail in the handshake.
        loop {
            let metrics = node.handle().metrics().await?;
            let failed: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("libp2p_swarm_outgoing_connection_error_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if failed >= 1.0 {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the outsider's dials never failed:\n{metrics}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = node.handle().status().await?;
        assert!(status.connected.is_empty(), "a node without the commons' key connected ({outsider:?})");
        assert_eq!(status.held.0, 0, "it learned nothing");
        node.shutdown().await;
    }

    // The same registered key with the commons' private-network key gets in and follows the log.
    let mirror_dir = tempfile::tempdir()?;
    let member = Mesh::start(mirror(Some(commons_key), mirror_dir.path())?).await?;
    let held = reader.tree_head();
    until(&member.handle(), "the mirror with the key follows the log", |s| s.held == held).await?;

    member.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}
