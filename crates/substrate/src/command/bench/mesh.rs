//! `bench mesh`: replication from a sequencer to mirrors on 127.0.0.1 while deposits stream in,
//! then a fresh mirror's sync of the whole log.

use super::*;

/// How long any one wait of the mesh benchmark may take before it gives up.
const MESH_PATIENCE: Duration = Duration::from_secs(600);

/// A sequencer with its mesh node, mirrors following it while deposits stream in, and then a
/// fresh mirror syncing the whole log, all in this process on 127.0.0.1.
pub(super) fn bench_mesh(
    entries: u64,
    mirrors: usize,
    submitters: usize,
    size: usize,
    consent: Option<ConsentTier>,
) -> anyhow::Result<()> {
    anyhow::ensure!(entries >= 2, "--entries must be at least 2: the genesis and one deposit");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let result = runtime.block_on(mesh_run(entries, mirrors, submitters.max(1), size, consent));
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// What the sampler saw of one mirror while the sequencer appended: how far behind it was.
#[derive(Default)]
struct Lag {
    max: u64,
    sum: u64,
    samples: u64,
}

async fn mesh_run(
    entries: u64,
    mirrors: usize,
    submitters: usize,
    size: usize,
    consent: Option<ConsentTier>,
) -> anyhow::Result<()> {
    use substrate_core::identity::did_of;
    use substrate_mesh::{Mesh, MeshConfig, MeshStatus, Role};
    use substrate_store::{Reader, SequencerHandle};

    let tmp = tempfile::tempdir()?;
    let ledger = init_commons(&tmp.path().join("sequencer"))?;
    let log = ledger.verifier();
    let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());

    // Signed before the clock starts, and sent as envelope bytes: each submitter opens (verifies)
    // them as the HTTP handler does before a deposit reaches the sequencer.
    let deposits: Vec<(Vec<u8>, Vec<u8>)> = tokio::task::spawn_blocking(move || {
        let keys: Vec<SigningKey> = (0..64).map(|_| crate::keys::generate()).collect();
        sample_deposits(&keys, 1..entries as usize, size, consent)
            .into_iter()
            .map(|(event, text)| (event.envelope.to_bytes(), text))
            .collect()
    })
    .await?;
    let replicable = (1..entries as usize)
        .filter(|&i| substrate_store::follow::replicates(sample_consent(i, consent)))
        .count();
    println!(
        "mesh replication on 127.0.0.1: {entries} entries (the genesis and {} deposits of {size} B, {replicable} of them public or commons, whose texts replicate), {submitters} submitters, {mirrors} mirrors following, data in {}",
        deposits.len(),
        tmp.path().display()
    );

    // Node 0 is the sequencer's, 1..=mirrors the following mirrors', the last the fresh mirror's.
    let node_keys: Vec<SigningKey> = (0..mirrors + 2).map(|_| crate::keys::generate()).collect();
    let dids: Vec<String> = node_keys.iter().map(|key| did_of(&key.verifying_key())).collect();
    let (sequencer, sequencer_thread) = SequencerHandle::spawn(ledger)?;
    let sequencer_node = Mesh::start(MeshConfig {
        allowed: dids.clone(),
        ..MeshConfig::new(
            node_keys[0].clone(),
            log.clone(),
            Role::Sequencer { reader: reader.clone(), sequencer: Some(sequencer.clone()) },
        )
    })
    .await?;
    let seq = sequencer_node.handle();
    let start_mirror = |n: usize| {
        let dir = tmp.path().join(format!("mirror-{n}"));
        let config = (|| -> anyhow::Result<MeshConfig> {
            let ledger = Ledger::follow(&DataDir::new(&dir), &log.to_vkey())?;
            let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());
            Ok(MeshConfig {
                allowed: dids.clone(),
                bootstrap: vec![seq.address()],
                ..MeshConfig::new(
                    node_keys[n].clone(),
                    log.clone(),
                    Role::Mirror { ledger: Box::new(ledger), reader },
                )
            })
        })();
        async move { Ok::<_, anyhow::Error>(Mesh::start(config?).await?) }
    };
    // Whether the sequencer has verified the cosignatures of `nodes` on the checkpoint of `size`.
    let cosigned = |nodes: std::ops::Range<usize>, size: u64| {
        let dids = &dids;
        move |status: &MeshStatus| {
            dids[nodes.clone()]
                .iter()
                .all(|did| status.cosignatures.iter().any(|c| c.cosigner == *did && c.size >= size))
        }
    };

    // Phase 1: mirrors follow while the sequencer appends.
    let set_up = Instant::now();
    let mut following = Vec::new();
    for n in 1..=mirrors {
        following.push(start_mirror(n).await?);
    }
    until(&seq, "the mirrors cosign the genesis", cosigned(1..mirrors + 1, 1)).await?;
    let set_up = set_up.elapsed().as_secs_f64();
    let (stop_sampling, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let reader = reader.clone();
        let handles: Vec<_> = following.iter().map(Mesh::handle).collect();
        tokio::spawn(async move {
            let mut lags: Vec<Lag> = handles.iter().map(|_| Lag::default()).collect();
            let mut every = tokio::time::interval(Duration::from_millis(25));
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = &mut stopped => return lags,
                }
                for (mirror, lag) in handles.iter().zip(&mut lags) {
                    // The mirror first, the sequencer just after: a lag errs on the large side.
                    let Ok(status) = mirror.status().await else { continue };
                    let behind = reader.tree_head().0.saturating_sub(status.held.0);
                    lag.max = lag.max.max(behind);
                    lag.sum += behind;
                    lag.samples += 1;
                }
            }
        })
    };

    let mut lanes: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..submitters).map(|_| Vec::new()).collect();
    for (n, deposit) in deposits.into_iter().enumerate() {
        lanes[n % submitters].push(deposit);
    }
    println!("appending {} deposits while {mirrors} mirrors follow", entries - 1);
    let started = Instant::now();
    let lanes: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let sequencer = sequencer.clone();
            tokio::spawn(async move {
                for (envelope, text) in lane {
                    let event = SignedEvent::open_bytes(&envelope)?;
                    if let Event::Deposit(deposit) = &event.event {
                        deposit.check_content(&text)?;
                    }
                    let submitted = sequencer.submit(Submission { event, content: Some(text) }).await?;
                    anyhow::ensure!(!submitted.duplicate, "a bench deposit was a duplicate");
                }
                Ok(())
            })
        })
        .collect();
    for lane in lanes {
        lane.await??;
    }
    let appended = started.elapsed().as_secs_f64();
    let last_append = Instant::now();
    let (size_final, root_final) = reader.tree_head();
    anyhow::ensure!(size_final == entries, "the log holds {size_final} entries, not {entries}");
    let mut lag_at_end = Vec::new();
    for mirror in &following {
        lag_at_end.push(size_final - mirror.handle().status().await?.held.0);
    }
    until(&seq, "the mirrors cosign the final checkpoint", cosigned(1..mirrors + 1, size_final)).await?;
    let cosigned_after = last_append.elapsed().as_secs_f64();
    let _ = stop_sampling.send(());
    let lags = sampler.await?;
    let mut verified = Vec::new();
    for mirror in &following {
        let status = mirror.handle().status().await?;
        anyhow::ensure!(status.held == (size_final, root_final), "a mirror holds another log");
        verified.push(metric(&mirror.handle().metrics().await?, "substrate_checkpoints_cosigned_total"));
    }
    let texts_after = texts_kept(&following, replicable).await?.then(|| last_append.elapsed().as_secs_f64());

    // Phase 2: a fresh mirror syncs the whole log from the sequencer.
    let leaf_bytes = {
        let reader = reader.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut bytes = 0u64;
            let mut start = 0;
            while start < size_final {
                let range = reader.entries(start, 4096)?;
                anyhow::ensure!(!range.is_empty(), "the log ends at {start}");
                start += range.len() as u64;
                bytes += range.iter().map(|e| e.leaf().len() as u64).sum::<u64>();
            }
            Ok(bytes)
        })
        .await??
    };
    println!("a fresh mirror syncs the log of {size_final} entries");
    let served_before = metric(&seq.metrics().await?, "substrate_bytes_served_total");
    let fresh_started = Instant::now();
    // When the bytes served reach the leaves' size, the transfer is (about) over: texts the mirror
    // fetches meanwhile count too, so with steps this comes a little early.
    let fetched = {
        let seq = seq.clone();
        tokio::spawn(async move {
            loop {
                let served = metric(&seq.metrics().await.ok()?, "substrate_bytes_served_total");
                if served - served_before >= leaf_bytes {
                    return Some(fresh_started.elapsed().as_secs_f64());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let fresh = start_mirror(mirrors + 1).await?;
    until(&fresh.handle(), "the fresh mirror holds the final checkpoint", |s| {
        s.held == (size_final, root_final)
    })
    .await?;
    let fresh_held = fresh_started.elapsed().as_secs_f64();
    until(
        &seq,
        "the fresh mirror cosigns the final checkpoint",
        cosigned(mirrors + 1..mirrors + 2, size_final),
    )
    .await?;
    let fresh_cosigned = fresh_started.elapsed().as_secs_f64();
    let served = metric(&seq.metrics().await?, "substrate_bytes_served_total") - served_before;
    fetched.abort();
    let fetched = fetched.await.ok().flatten();
    let fresh_texts = texts_kept(std::slice::from_ref(&fresh), replicable)
        .await?
        .then(|| fresh_started.elapsed().as_secs_f64());

    for node in following.into_iter().chain([fresh, sequencer_node]) {
        node.shutdown().await;
    }
    drop(sequencer);
    tokio::task::spawn_blocking(move || sequencer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the sequencer thread panicked"))?;

    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let deposits = entries - 1;
    let texts = |after: Option<f64>, since: &str| match after {
        Some(t) => format!("{t:.1} s after {since}"),
        None => format!("not within {} s", MESH_PATIENCE.as_secs()),
    };
    println!("set-up: the mirrors connected and cosigned the genesis in {set_up:.1} s");
    println!("live: the sequencer appends while {mirrors} mirrors follow");
    println!(
        "  sequencer durable appends            {deposits} in {appended:.1} s = {:.0} entries/s",
        deposits as f64 / appended
    );
    for (n, lag) in lags.iter().enumerate() {
        println!(
            "  mirror {} lag                         max {} entries, mean {:.0} ({} samples), {} at the last append; {} checkpoints verified",
            n + 1,
            lag.max,
            lag.sum as f64 / lag.samples.max(1) as f64,
            lag.samples,
            lag_at_end[n],
            verified[n]
        );
    }
    if mirrors > 0 {
        println!("  every mirror cosigned the final one  {cosigned_after:.2} s after the last append");
        println!("  every mirror held all {replicable} texts {}", texts(texts_after, "the last append"));
    }
    println!("fresh mirror: syncs the whole log from the sequencer (target: 100,000 entries in < 8 s)");
    println!(
        "  bytes served reached the leaves'     after {}",
        fetched.map_or("?".into(), |t| format!("{t:.1} s"))
    );
    println!(
        "  held the final checkpoint            after {fresh_held:.1} s = {:.0} entries/s",
        entries as f64 / fresh_held
    );
    println!(
        "  cosigned it, seen by the sequencer   after {fresh_cosigned:.1} s = {:.0} entries/s",
        entries as f64 / fresh_cosigned
    );
    println!(
        "  leaves                               {:.1} MiB = {:.2} MiB/s (all bytes served until then: {:.1} MiB)",
        mib(leaf_bytes),
        mib(leaf_bytes) / fresh_cosigned,
        mib(served)
    );
    println!("  held all {replicable} texts               {}", texts(fresh_texts, "it started"));
    println!("machine bounds measured in the same run:");
    println!("  ed25519 verify:    {:.0} /s on one core", ed25519_verifies_per_second());
    println!("  fsync (4 KiB):     {:.0} /s in the data directory", fsyncs_per_second(tmp.path())?);
    let removing = Instant::now();
    tmp.close()?;
    println!("(the data directories took {:.1} s to remove)", removing.elapsed().as_secs_f64());
    Ok(())
}

/// Waits until `node`'s status satisfies `done`, for at most [`MESH_PATIENCE`].
async fn until(
    node: &substrate_mesh::MeshHandle,
    what: &str,
    done: impl Fn(&substrate_mesh::MeshStatus) -> bool,
) -> anyhow::Result<substrate_mesh::MeshStatus> {
    node.until(MESH_PATIENCE, done).await.with_context(|| format!("waiting until {what}"))
}

/// Waits until every mirror has kept `count` texts; false if that takes longer than the patience.
async fn texts_kept(mirrors: &[substrate_mesh::Mesh], count: usize) -> anyhow::Result<bool> {
    let deadline = Instant::now() + MESH_PATIENCE;
    for mirror in mirrors {
        while metric(&mirror.handle().metrics().await?, "substrate_texts_kept_total") < count as u64 {
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(true)
}

/// One counter or gauge from a Prometheus text exposition; 0 if it is absent.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}
