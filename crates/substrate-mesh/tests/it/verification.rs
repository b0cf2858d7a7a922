//! What a mirror checks before it keeps a range (consistency proof, tree root, folded state root),
//! the cosignature it publishes when all pass, and what it reports when one does not.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use substrate_mesh::{Mesh, MeshConfig, MeshEvent, MeshHandle, Role};
use substrate_store::ledger::STATE_EXTENSION;
use substrate_store::{DataDir, Ledger};
use substrate_tlog::cosignature;
use substrate_tlog::{Checkpoint, NoteSigner};
use tokio::sync::broadcast;

use crate::replication::{
    DEADLINE, MIRROR_NODE, ORIGIN, SEQUENCER_NODE, START, commons, deposit, did, key, mirror_role, until,
};

/// The commons' log key, as `Ledger::init` was given it: it can sign any checkpoint a test needs.
fn log_signer() -> Result<NoteSigner> {
    Ok(NoteSigner::new(ORIGIN, key(42))?)
}

/// Waits for the first event matching `wanted`.
async fn event(
    events: &mut broadcast::Receiver<MeshEvent>,
    what: &str,
    wanted: impl Fn(&MeshEvent) -> bool,
) -> Result<MeshEvent> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => bail!("timed out waiting for {what}"),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => bail!("events ended while waiting for {what}: {e}"),
            Ok(Ok(event)) if wanted(&event) => return Ok(event),
            Ok(Ok(_)) => {}
        }
    }
}

async fn start(role: Role, node: u8, bootstrap: Vec<substrate_mesh::Multiaddr>) -> Result<Mesh> {
    Ok(Mesh::start(MeshConfig {
        allowed: vec![did(SEQUENCER_NODE), did(MIRROR_NODE)],
        bootstrap,
        redial_interval: std::time::Duration::from_millis(200),
        ..MeshConfig::new(key(node), log_signer()?.verifier(), role)
    })
    .await?)
}

fn reason(event: &MeshEvent) -> String {
    match event {
        MeshEvent::Rejected { reason, .. } => reason.clone(),
        MeshEvent::SplitView { detail, .. } => detail.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_cosigns_what_verifies_and_refuses_a_wrong_state_root_and_a_fork() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut ledger, reader) = commons(dir.path())?;
    let log = log_signer()?;
    let sequencer =
        start(Role::Sequencer { reader: reader.clone(), sequencer: None }, SEQUENCER_NODE, vec![]).await?;
    let (size, note) = reader.checkpoint()?;
    sequencer.handle().announce(note).await.context("announce")?;
    let mirror_dir = tempfile::tempdir()?;
    let mirror =
        start(mirror_role(mirror_dir.path())?, MIRROR_NODE, vec![sequencer.handle().address()]).await?;
    let root = ledger.tree().read().map_err(|_| anyhow!("tree lock"))?.root();
    until(&mirror.handle(), "the mirror holds the log", |s| s.held == (size, root)).await?;
    let (_, note) = reader.checkpoint()?;
    let stated = Checkpoint::open(&note, &log.verifier())?;

    // The sequencer hears the mirror's cosignature, and it verifies as C2SP tlog-cosignature/v1.
    let status = until(&sequencer.handle(), "the sequencer holds the mirror's cosignature", |s| {
        s.cosignatures.iter().any(|c| c.cosigner == did(MIRROR_NODE) && c.size == size)
    })
    .await?;
    let cosigned = &status.cosignatures[0];
    assert_eq!(Checkpoint::open(&cosigned.note, &log.verifier())?.root, root);
    let mirror_key = substrate_core::identity::key_of(&did(MIRROR_NODE))?;
    let verified = cosignature::verify_with(&cosigned.note, &did(MIRROR_NODE), &mirror_key)?;
    assert_eq!(verified.timestamp, cosigned.timestamp);
    assert_eq!(Checkpoint::open(&cosigned.note, &log.verifier())?, stated, "the log's signature stays");
    assert!(cosignature::body_of(&cosigned.note)? == cosignature::body_of(&note)?);

    // A checkpoint the log key signed whose state line alone is wrong is refused, with the reason.
    ledger.append_batch((5..9).map(deposit).collect(), START + 4)?;
    let (new_size, genuine) = reader.checkpoint()?;
    let mut forged = Checkpoint::open(&genuine, &log.verifier())?;
    forged.extensions = vec![format!("{STATE_EXTENSION} {}", STANDARD.encode([7u8; 32]))];
    let mut events = mirror.handle().events();
    sequencer.handle().announce(forged.sign(&log)?).await?;
    let refused = event(&mut events, "the mirror refuses the wrong state root", |e| {
        matches!(e, MeshEvent::Rejected { .. })
    })
    .await?;
    assert!(reason(&refused).contains("state root"), "{refused:?}");
    assert_eq!(mirror.handle().status().await?.held, (size, root), "nothing of it is kept");

    // The genuine checkpoint for the same size is then verified (with a consistency proof) and kept.
    sequencer.handle().announce(genuine).await?;
    let new_root = ledger.tree().read().map_err(|_| anyhow!("tree lock"))?.root();
    until(&mirror.handle(), "the mirror holds the genuine checkpoint", |s| s.held == (new_size, new_root))
        .await?;
    until(&sequencer.handle(), "the mirror cosigned the new checkpoint", |s| {
        s.cosignatures.iter().any(|c| c.cosigner == did(MIRROR_NODE) && c.size == new_size)
    })
    .await?;

    // A second signed checkpoint for the same size with another root: a split view.
    let fork = Checkpoint { root: [1; 32], ..Checkpoint::open(&reader.checkpoint()?.1, &log.verifier())? };
    let mut events = mirror.handle().events();
    sequencer.handle().announce(fork.sign(&log)?).await?;
    let split =
        event(&mut events, "the mirror reports a split view", |e| matches!(e, MeshEvent::SplitView { .. }))
            .await?;
    assert!(reason(&split).contains("split view"), "{split:?}");
    assert_eq!(mirror.handle().status().await?.held, (new_size, new_root));

    // What the mirror kept is on disk: reopened, its fold gives the sequencer's state root.
    mirror.shutdown().await;
    let reopened = Ledger::open(&DataDir::new(mirror_dir.path()))?;
    let stated = Checkpoint::open(&reader.checkpoint()?.1, &log.verifier())?;
    assert_eq!(reopened.state().size(), new_size);
    assert_eq!(
        Some(STANDARD.encode(reopened.state().root())).as_deref(),
        stated.extension(STATE_EXTENSION),
        "the mirror's fold gives the sequencer's state root"
    );
    sequencer.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_fed_a_tampered_leaf_keeps_nothing_and_says_why() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_ledger, reader) = commons(dir.path())?;
    let (size, note) = reader.checkpoint()?;
    // Tamper with one stored entry behind the store's back: one bit of its integrated time.
    let db = rusqlite::Connection::open(substrate_store::DataDir::new(dir.path()).database())?;
    let mut leaf: Vec<u8> = db.query_row("SELECT leaf FROM entries WHERE idx = 4", [], |r| r.get(0))?;
    leaf[7] ^= 1;
    assert_eq!(db.execute("UPDATE entries SET leaf = ?1 WHERE idx = 4", [&leaf])?, 1);
    drop(db);

    let sequencer = start(Role::Sequencer { reader, sequencer: None }, SEQUENCER_NODE, vec![]).await?;
    sequencer.handle().announce(note.clone()).await?;
    let mirror_dir = tempfile::tempdir()?;
    let mirror =
        start(mirror_role(mirror_dir.path())?, MIRROR_NODE, vec![sequencer.handle().address()]).await?;
    let handle: MeshHandle = mirror.handle();
    let mut events = handle.events();
    // Announced again now that we listen, in case the first refusal came before we subscribed.
    sequencer.handle().announce(note).await?;
    let refused =
        event(&mut events, "the mirror refuses the range", |e| matches!(e, MeshEvent::Rejected { .. }))
            .await?;
    let reason = reason(&refused);
    assert!(reason.contains(&format!("checkpoint for size {size} says")), "{reason}");
    let status = handle.status().await?;
    assert_eq!(status.held, (0, substrate_tlog::empty_root()), "nothing of the range is kept");
    assert!(sequencer.handle().status().await?.cosignatures.is_empty(), "nothing refused is cosigned");

    mirror.shutdown().await;
    sequencer.shutdown().await;
    Ok(())
}
