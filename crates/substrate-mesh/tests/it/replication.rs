//! A sequencer serving a real store, a mirror that catches up, and a peer nobody registered.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use substrate_core::event::{Deposit, Event};
use substrate_core::governance::acts::{Attestation, NodeRegistration, node_binding_message};
use substrate_core::identity::did_of;
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_mesh::{Mesh, MeshConfig, MeshHandle, MeshStatus, Role};
use substrate_store::{DataDir, InitOptions, Ledger, Reader, Submission};

pub(crate) const ORIGIN: &str = "mesh.test/commons";
/// 2023-11-14, ms since the epoch: a time in the past, since a mirror refuses entries integrated
/// after its own clock.
pub(crate) const START: u64 = 1_700_000_000_000;
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) const STEWARD: u8 = 1;
pub(crate) const OPERATOR: u8 = 10;
pub(crate) const SEQUENCER_NODE: u8 = 100;
pub(crate) const MIRROR_NODE: u8 = 101;
const STRANGER_NODE: u8 = 200;

pub(crate) fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub(crate) fn did(n: u8) -> String {
    did_of(&key(n).verifying_key())
}

fn signed(event: Event, by: u8) -> Submission {
    Submission { event: SignedEvent::sign(event, &key(by)), content: None }
}

pub(crate) fn deposit(n: u32) -> Submission {
    let text = format!("text number {n}").into_bytes();
    let event = Event::Deposit(Deposit {
        cid: Some(Cid::of(&text)),
        register: Register::defaults()[n as usize % 8].clone(),
        secondary_registers: vec![],
        consent: ConsentTier::Public,
        title: format!("text {n}"),
        language: "en".into(),
        license: "CC0-1.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2027-01-01T00:00:00.000Z".into(),
    });
    Submission { event: SignedEvent::sign(event, &key(20)), content: Some(text) }
}

/// The operator binds node key `node` to themselves in this commons.
fn node_registration(node: u8) -> Submission {
    let binding = key(node).sign(&node_binding_message(ORIGIN, &did(OPERATOR)));
    signed(
        Event::NodeRegistration(NodeRegistration {
            node: did(node),
            binding: STANDARD.encode(binding.to_bytes()),
            requested: format!("register {node}"),
        }),
        OPERATOR,
    )
}

/// A commons whose operator registered the sequencer's and the mirror's node keys, with deposits.
pub(crate) fn commons(dir: &std::path::Path) -> Result<(Ledger, Reader)> {
    let mut ledger = Ledger::init(
        &DataDir::new(dir),
        key(42),
        InitOptions {
            name: "mesh test".into(),
            origin: ORIGIN.into(),
            handle_prefix: "tag:mesh.test,2027:d/".into(),
            registers: Register::defaults(),
            stewards: vec![did(STEWARD)],
            windows: None,
            now: START,
        },
    )?;
    let attestation =
        Attestation { person: did(OPERATOR), days: None, note: None, requested: "attest operator".into() };
    ledger.append_batch(vec![signed(Event::Attestation(attestation), STEWARD)], START + 1)?;
    ledger
        .append_batch(vec![node_registration(SEQUENCER_NODE), node_registration(MIRROR_NODE)], START + 2)?;
    ledger.append_batch((0..5).map(deposit).collect(), START + 3)?;
    let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    Ok((ledger, reader))
}

/// The commons' log public key, which is all a mirror is given.
pub(crate) fn log_vkey() -> String {
    substrate_tlog::NoteSigner::new(ORIGIN, key(42)).map(|s| s.verifier().to_vkey()).unwrap_or_default()
}

/// A mirror's role over a fresh ledger in `dir` that trusts the commons' log key.
pub(crate) fn mirror_role(dir: &std::path::Path) -> Result<Role> {
    let ledger = Ledger::follow(&DataDir::new(dir), &log_vkey())?;
    let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    Ok(Role::Mirror { ledger: Box::new(ledger), reader })
}

/// How the mirror node (key `MIRROR_NODE`) follows `sequencer` into a fresh ledger in `dir`.
pub(crate) fn mirror_of(
    sequencer: &Mesh,
    log: &substrate_tlog::NoteVerifier,
    dir: &std::path::Path,
) -> Result<MeshConfig> {
    Ok(MeshConfig {
        allowed: vec![did(SEQUENCER_NODE)],
        bootstrap: vec![sequencer.handle().address()],
        redial_interval: Duration::from_millis(200),
        ..MeshConfig::new(key(MIRROR_NODE), log.clone(), mirror_role(dir)?)
    })
}

/// Waits until the node's status satisfies `done`, for at most [`DEADLINE`].
pub(crate) async fn until(
    node: &MeshHandle,
    what: &str,
    done: impl Fn(&MeshStatus) -> bool,
) -> Result<MeshStatus> {
    node.until(DEADLINE, done).await.with_context(|| format!("waiting until {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_catches_up_and_an_unregistered_peer_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    let registered: Vec<String> = reader.governance()?.nodes().map(|n| n.node.clone()).collect();
    assert_eq!(registered.len(), 2, "both node keys are registered");
    let log = ledger.verifier();

    let sequencer = Mesh::start(MeshConfig {
        allowed: registered.clone(),
        redial_interval: Duration::from_millis(200),
        ..MeshConfig::new(
            key(SEQUENCER_NODE),
            log.clone(),
            Role::Sequencer { reader: reader.clone(), sequencer: None },
        )
    })
    .await?;
    let (size, note) = reader.checkpoint()?;
    sequencer.handle().announce(note).await.context("announce")?;

    let mirror_dir = tempfile::tempdir()?;
    let mirror = Mesh::start(MeshConfig {
        allowed: registered.clone(),
        bootstrap: vec![sequencer.handle().address()],
        redial_interval: Duration::from_millis(200),
        ..MeshConfig::new(key(MIRROR_NODE), log.clone(), mirror_role(mirror_dir.path())?)
    })
    .await?;
    let root = ledger.tree().read().map_err(|_| anyhow::anyhow!("tree lock"))?.root();
    until(&mirror.handle(), "the mirror holds the sequencer's log", |s| s.held == (size, root)).await?;

    // More entries, a new checkpoint: the mirror fetches only what it lacks.
    ledger.append_batch((5..12).map(deposit).collect(), START + 4)?;
    let (size, note) = reader.checkpoint()?;
    assert!(sequencer.handle().announce(note).await?, "the mirror listens on the topic");
    let root = ledger.tree().read().map_err(|_| anyhow::anyhow!("tree lock"))?.root();
    until(&mirror.handle(), "the mirror holds the new checkpoint", |s| s.held == (size, root)).await?;

    // A node whose key nobody registered dials the sequencer and is refused.
    let stranger_dir = tempfile::tempdir()?;
    let stranger = Mesh::start(MeshConfig {
        allowed: vec![did(SEQUENCER_NODE)],
        bootstrap: vec![sequencer.handle().address()],
        redial_interval: Duration::from_millis(200),
        ..MeshConfig::new(key(STRANGER_NODE), log.clone(), mirror_role(stranger_dir.path())?)
    })
    .await?;
    let stranger_id = stranger.handle().peer_id();
    let status = until(&sequencer.handle(), "the sequencer refuses the stranger", |s| {
        s.refused.contains(&stranger_id)
    })
    .await?;
    assert!(!status.connected.contains(&stranger_id));
    assert!(status.connected.contains(&mirror.handle().peer_id()), "the mirror stays connected");
    let status =
        until(&stranger.handle(), "the stranger has no connection", |s| s.connected.is_empty()).await?;
    assert_eq!(status.held, (0, substrate_tlog::empty_root()), "the stranger learned nothing");

    stranger.shutdown().await;
    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_far_behind_catches_up_in_signed_steps() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    // Checkpoints at sizes 1, 2, 4 and 9 so far; then one every 10 entries up to 59.
    for batch in 0..5u32 {
        ledger.append_batch(
            (100 + batch * 10..110 + batch * 10).map(deposit).collect(),
            START + 10 + u64::from(batch),
        )?;
    }
    let log = ledger.verifier();
    let sequencer = Mesh::start(MeshConfig {
        allowed: vec![did(MIRROR_NODE)],
        ..MeshConfig::new(
            key(SEQUENCER_NODE),
            log.clone(),
            Role::Sequencer { reader: reader.clone(), sequencer: None },
        )
    })
    .await?;
    sequencer.handle().announce(reader.checkpoint()?.1).await?;

    let mirror_dir = tempfile::tempdir()?;
    let mirror =
        Mesh::start(MeshConfig { sync_step: 12, ..mirror_of(&sequencer, &log, mirror_dir.path())? }).await?;
    let mut events = mirror.handle().events();
    // Meanwhile, what the mirror reports as held is never more than it has committed (its tree
    // runs ahead while a step is folded): read its status, then its last committed checkpoint.
    let committed = {
        let data = DataDir::new(mirror_dir.path());
        let tree = std::sync::Arc::new(std::sync::RwLock::new(substrate_tlog::Tree::new()));
        Reader::new(&data, tree, log.clone(), substrate_store::BlobStore::open(&data.blobs())?)
    };
    let watcher = {
        let handle = mirror.handle();
        tokio::spawn(async move {
            let mut overstated = Vec::new();
            for _ in 0..2000 {
                let Ok(status) = handle.status().await else { break };
                let kept = committed.checkpoint().map_or(0, |(size, _)| size);
                if status.held.0 > kept {
                    overstated.push((status.held.0, kept));
                }
                if kept >= 59 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            overstated
        })
    };
    let head = reader.tree_head();
    let mut steps = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while steps.last() != Some(&head.0) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(substrate_mesh::MeshEvent::CaughtUp { size, .. })) => steps.push(size),
            Ok(_) => {}
            Err(_) => bail!("the mirror did not reach {} (steps so far {steps:?})", head.0),
        }
    }
    // Each step is the largest checkpoint at most 12 entries ahead, kept before the next.
    assert_eq!(steps, vec![9, 19, 29, 39, 49, 59]);
    let overstated = watcher.await?;
    assert!(overstated.is_empty(), "the mirror reported (held, committed) {overstated:?}");
    let status = mirror.handle().status().await?;
    assert_eq!(status.held, head);
    assert!(status.cosignatures.iter().any(|c| c.size == head.0), "the head is cosigned");

    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}

/// While the ledger checks one step, the next is fetched; when a step is refused, the one fetched
/// after it goes too, and the mirror keeps the steps before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_drops_the_step_fetched_after_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    // Checkpoints at sizes 1, 2, 4 and 9 so far; then one every 10 entries up to 59.
    for batch in 0..5u32 {
        ledger.append_batch(
            (100 + batch * 10..110 + batch * 10).map(deposit).collect(),
            START + 10 + u64::from(batch),
        )?;
    }
    // Tamper with entry 12, in the step from 9 to 19, behind the store's back: one bit of its
    // integrated time.
    let db = rusqlite::Connection::open(DataDir::new(dir.path()).database())?;
    let mut leaf: Vec<u8> = db.query_row("SELECT leaf FROM entries WHERE idx = 12", [], |r| r.get(0))?;
    leaf[7] ^= 1;
    assert_eq!(db.execute("UPDATE entries SET leaf = ?1 WHERE idx = 12", [&leaf])?, 1);
    drop(db);
    let log = ledger.verifier();
    let sequencer = Mesh::start(MeshConfig {
        allowed: vec![did(MIRROR_NODE)],
        ..MeshConfig::new(
            key(SEQUENCER_NODE),
            log.clone(),
            Role::Sequencer { reader: reader.clone(), sequencer: None },
        )
    })
    .await?;
    let note = reader.checkpoint()?.1;
    sequencer.handle().announce(note.clone()).await?;

    let mirror_dir = tempfile::tempdir()?;
    let mirror =
        Mesh::start(MeshConfig { sync_step: 12, ..mirror_of(&sequencer, &log, mirror_dir.path())? }).await?;
    let mut events = mirror.handle().events();
    let (mut kept, mut refusals) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Refused, then asked again: a step fetched after the refused one and handed to the ledger
    // anyway would be a refusal of its own in between.
    while refusals.len() < 2 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(substrate_mesh::MeshEvent::CaughtUp { size, .. })) => kept.push(size),
            Ok(Ok(substrate_mesh::MeshEvent::Rejected { reason, .. })) => {
                refusals.push(reason);
                sequencer.handle().announce(note.clone()).await?;
            }
            Ok(_) => {}
            Err(_) => bail!("the mirror did not refuse the step twice (kept {kept:?}, refused {refusals:?})"),
        }
    }
    assert_eq!(kept, vec![9], "the step before the tampered one is kept");
    for reason in &refusals {
        assert!(reason.contains("the checkpoint for size 19 says"), "{reason}");
    }
    assert_eq!(mirror.handle().status().await?.held.0, 9);

    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}
