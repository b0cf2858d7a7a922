//! `init` and `serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use substrate_core::register::Register;
use substrate_store::{DataDir, InitOptions, Ledger, Reader, SequencerHandle};

use crate::config::NodeConfig;

pub fn init(
    dir: &Path,
    name: &str,
    origin: Option<String>,
    handle_prefix: Option<String>,
    registers: Vec<String>,
    stewards: Vec<String>,
    window: Option<String>,
) -> anyhow::Result<()> {
    let dir = DataDir::new(dir);
    for steward in &stewards {
        substrate_core::identity::key_of(steward).with_context(|| {
            format!("--steward {steward}: give the did:key that `substrate id show` prints")
        })?;
    }
    let windows = window
        .map(|w| {
            let ms = crate::duration::parse_ms(&w).with_context(|| format!("--voting-window {w}"))?;
            Ok::<_, anyhow::Error>(substrate_core::governance::params::Windows {
                ordinary: ms,
                resource: ms,
                constitutional: ms.saturating_mul(2),
            })
        })
        .transpose()?;
    let now = super::now_ms();
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let registers = if registers.is_empty() {
        Register::defaults()
    } else {
        registers.iter().map(|r| Register::new(r.trim())).collect::<Result<_, _>>()?
    };
    let options = InitOptions {
        name: name.to_owned(),
        origin: origin.unwrap_or_else(|| format!("substrate.local/{slug}")),
        handle_prefix: handle_prefix.unwrap_or_else(|| {
            format!("tag:substrate.local,{}:{slug}/", substrate_core::timestamp::year(now))
        }),
        registers,
        stewards,
        windows,
        now,
    };
    let ledger = Ledger::init(&dir, crate::keys::generate(), options)
        .with_context(|| format!("founding a commons in {}", dir.root().display()))?;
    if !dir.config().exists() {
        std::fs::write(dir.config(), crate::config::EXAMPLE)
            .with_context(|| format!("writing {}", dir.config().display()))?;
    }
    let commons = ledger.state().commons().context("the genesis did not record the commons")?;
    println!("founded commons '{}' in {}", commons.name, dir.root().display());
    println!("  origin:      {}", commons.origin);
    println!("  log key:     {}", commons.log_key);
    println!("  log did:     {}", commons.log_did);
    let registers =
        ledger.state().governance().parameters().map(|p| p.registers.as_slice()).unwrap_or_default();
    println!("  registers:   {}", registers.iter().map(Register::as_str).collect::<Vec<_>>().join(", "));
    let stewards = ledger.state().governance().board().members.clone();
    if stewards.is_empty() {
        println!("  stewards:    none (nobody can attest members; found with --steward DID to govern)");
    } else {
        println!("  stewards:    {}", stewards.join(", "));
        if stewards.len() == 1 {
            println!(
                "               (one steward: nobody renews their attestation; elect a board of two or more before it expires)"
            );
        }
    }
    println!("  config:      {}", dir.config().display());
    println!("verify receipts with: substrate verify <receipt> --commons-key '{}'", commons.log_key);
    Ok(())
}

/// A node running in this process: its address, and what stops it.
pub struct RunningNode {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RunningNode {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving, lets the sequencer finish its batch, and waits for both.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| anyhow::anyhow!("the node thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Opens the commons in `dir` and serves it on `listen` from a thread of its own.
pub fn start(dir: &Path, config: &NodeConfig) -> anyhow::Result<RunningNode> {
    let data = DataDir::new(dir);
    let ledger = Ledger::open(&data).with_context(|| format!("opening the commons in {}", dir.display()))?;
    let reader = Reader::new(&data, ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&config.listen))
        .with_context(|| format!("cannot listen on {} (choose another with --listen)", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let max_deposit_bytes = config.max_deposit_bytes;
    let thread = std::thread::Builder::new().name("node".into()).spawn(move || {
        let (sequencer, sequencer_thread) =
            SequencerHandle::spawn(ledger).context("starting the sequencer")?;
        let state = substrate_api::AppState { reader, sequencer, max_deposit_bytes };
        let served = runtime.block_on(substrate_api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        // Every handle is gone with the router: the sequencer finishes its batch and stops.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        sequencer_thread.join().map_err(|_| anyhow::anyhow!("the sequencer panicked"))?;
        served.context("serving HTTP")
    })?;
    Ok(RunningNode { addr, shutdown: Some(shutdown), thread: Some(thread) })
}

pub fn serve(dir: &Path, listen: Option<String>, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config_path = config_path.unwrap_or_else(|| DataDir::new(dir).config());
    let mut config = NodeConfig::load(&config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let node = start(dir, &config)?;
    tracing::info!(addr = %node.addr, data_dir = %dir.display(), "serving");
    println!("listening on {}", node.url());
    wait_for_signal()?;
    tracing::info!("shutting down");
    node.stop()
}

fn wait_for_signal() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = terminate.recv() => Ok(()),
        }
    })?;
    Ok(())
}
