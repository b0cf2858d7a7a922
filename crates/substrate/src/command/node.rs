//! `init` and `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use substrate_core::register::Register;
use substrate_models::Embedder;
use substrate_store::{DataDir, InitOptions, Ledger, Reader, SequencerHandle};

use substrate_mesh::{Mesh, MeshConfig, MeshHandle, Role, SwarmKey};

use crate::cli::{MeshArgs, ServingArgs, WorkerArgs};
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

/// Prepares `dir` to mirror the commons whose log public key is `vkey`.
pub fn init_mirror(dir: &Path, vkey: &str) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    Ledger::follow(&data, vkey).with_context(|| format!("preparing a mirror in {}", dir.display()))?;
    if !data.config().exists() {
        std::fs::write(data.config(), crate::config::EXAMPLE)
            .with_context(|| format!("writing {}", data.config().display()))?;
    }
    println!("prepared a mirror in {}", dir.display());
    println!("  trusts log key: {}", vkey.trim());
    println!(
        "  next: a node key (`substrate id new --kind node --key {}`),",
        data.root().join("node.key").display()
    );
    println!("        registered by an operator (`substrate node-register --node-key …`),");
    println!("        then `substrate serve --data-dir {} --bootstrap <sequencer multiaddr>`", dir.display());
    Ok(())
}

/// A node running in this process: its address, and what stops it.
pub struct RunningNode {
    pub addr: SocketAddr,
    /// The mesh address (with `/p2p/<peer id>`) when the node joined the mesh.
    pub p2p: Option<String>,
    pub role: &'static str,
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

/// What the HTTP API shows of the mesh node.
struct MeshView(MeshHandle);

impl substrate_api::MeshView for MeshView {
    fn metrics(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> {
        let mesh = self.0.clone();
        Box::pin(async move { mesh.metrics().await.ok() })
    }

    fn peers(&self) -> Pin<Box<dyn Future<Output = Option<serde_json::Value>> + Send>> {
        let mesh = self.0.clone();
        Box::pin(async move {
            let status = mesh.status().await.ok()?;
            Some(serde_json::json!({
                "peerId": status.peer_id.to_string(),
                "role": status.role,
                "address": mesh.address().to_string(),
                "height": status.held.0,
                "head": status.head,
                "lag": status.head.saturating_sub(status.held.0),
                "peers": status.peers,
                "refused": status.refused.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "cosignatures": status.cosignatures.iter().map(|c| serde_json::json!({
                    "cosigner": c.cosigner, "size": c.size, "timestamp": c.timestamp,
                })).collect::<Vec<_>>(),
            }))
        })
    }
}

/// Opens the commons in `dir` and serves it on `listen` from a thread of its own; with `[mesh]`
/// settings it also joins the mesh, as the sequencer if the directory holds the log key and as a
/// mirror otherwise.
pub fn start(dir: &Path, config: &NodeConfig) -> anyhow::Result<RunningNode> {
    let data = DataDir::new(dir);
    // A job's texts live in the jobs' scratch directory only while it runs: a node killed in the
    // middle of one leaves them there, and they go now, whether or not the node works this time.
    let scratch = data.root().join("jobs");
    if let Err(error) = std::fs::remove_dir_all(&scratch)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        anyhow::bail!("cannot empty the jobs' scratch directory {}: {error}", scratch.display());
    }
    let mut ledger =
        Ledger::open(&data).with_context(|| format!("opening the commons in {}", dir.display()))?;
    // A sequencer that also works takes the training jobs on texts that never leave it.
    if config.worker.enabled && ledger.is_sequencer() {
        let key_path = config.mesh.node_key.clone().unwrap_or_else(|| data.root().join("node.key"));
        if let Ok((file, _)) = crate::keys::load(&key_path) {
            ledger.hold_jobs_on(file.did);
        }
    }
    let reader = Reader::new(&data, ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&config.listen))
        .with_context(|| format!("cannot listen on {} (choose another with --listen)", config.listen))?;
    let addr = listener.local_addr()?;
    let log = ledger.verifier();
    let reporting_key = usage_key(&data, config, ledger.is_sequencer())?;
    let (sequencer, sequencer_thread, role) = if ledger.is_sequencer() {
        let (handle, thread) = SequencerHandle::spawn(ledger).context("starting the sequencer")?;
        let role = Role::Sequencer { reader: reader.clone(), sequencer: Some(handle.clone()) };
        (Some(handle), Some(thread), role)
    } else {
        if !config.mesh.enabled() {
            anyhow::bail!(
                "{} holds a mirror, which follows the sequencer over the mesh: give --bootstrap <sequencer multiaddr>",
                dir.display()
            );
        }
        (None, None, Role::Mirror { ledger: Box::new(ledger), reader: reader.clone() })
    };
    let role_name = if sequencer.is_some() { "sequencer" } else { "mirror" };
    let mesh = if config.mesh.enabled() {
        let key_path = config.mesh.node_key.clone().unwrap_or_else(|| data.root().join("node.key"));
        let (_, node_key) = crate::keys::load(&key_path).with_context(|| {
            format!("the mesh needs this node's key: make one with `substrate id new --kind node --key {}` and have an operator register it", key_path.display())
        })?;
        let mut mesh_config = MeshConfig::new(node_key, log, role);
        mesh_config.private_network = swarm_key(&data, config.mesh.swarm_key.as_deref())?;
        if let Some(step) = config.mesh.sync_step {
            anyhow::ensure!(step > 0, "[mesh] sync_step must be at least 1 (the default is 4096)");
            mesh_config.sync_step = step;
        }
        if let Some(listen) = &config.mesh.listen {
            mesh_config.listen = listen.parse().with_context(|| {
                format!("--p2p-listen {listen} is not a multiaddr, e.g. /ip4/127.0.0.1/tcp/7879")
            })?;
        }
        mesh_config.bootstrap = config
            .mesh
            .bootstrap
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("--bootstrap {a} is not a multiaddr ending in /p2p/<peer id>"))
            })
            .collect::<anyhow::Result<_>>()?;
        Some(runtime.block_on(Mesh::start(mesh_config)).context("joining the mesh")?)
    } else {
        None
    };
    let p2p = mesh.as_ref().map(|m| m.handle().address().to_string());
    // A worker on a mirror asks the sequencer for a training job's texts; the sequencer's own
    // node holds them all.
    let texts_from = match (&sequencer, &mesh) {
        (None, Some(mesh)) => Some(mesh.handle()),
        _ => None,
    };
    let sequencer = match (sequencer, &mesh) {
        (Some(local), _) => local,
        (None, Some(mesh)) => SequencerHandle::forwarding(Arc::new(mesh.handle())),
        (None, None) => anyhow::bail!("a mirror without the mesh cannot take events"),
    };
    let worker = if config.worker.enabled {
        let fetch = texts_from.map(|mesh| {
            let runtime = runtime.handle().clone();
            Box::new(move |job: u64, cids: Vec<String>| {
                runtime.block_on(mesh.job_texts(job, cids)).map_err(|e| e.to_string())?
            }) as substrate_jobs::training::FetchTexts
        });
        Some(start_worker(&data, config, reader.clone(), sequencer.clone(), runtime.handle().clone(), fetch)?)
    } else {
        None
    };
    let inference = if config.serving.enabled {
        let every = config.serving.usage_report_seconds.unwrap_or(30);
        anyhow::ensure!(every >= 1, "--usage-report-seconds is at least 1");
        let meter = substrate_api::metering::Meter::new(
            reporting_key,
            config.serving.open_inference,
            std::time::Duration::from_secs(every),
        );
        Some(Arc::new(load_models(&data, config, meter)?))
    } else {
        None
    };
    let search = if config.serving.search {
        let embedder = match &inference {
            Some(inference) => inference.embedder(),
            None => load_embedder(&data, config)?,
        };
        Some(open_search(&data, embedder, reader.clone())?)
    } else {
        None
    };
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let max_deposit_bytes = config.max_deposit_bytes;
    let thread = std::thread::Builder::new().name("node".into()).spawn(move || {
        let view = mesh.as_ref().map(|m| Arc::new(MeshView(m.handle())) as Arc<dyn substrate_api::MeshView>);
        let state = substrate_api::AppState {
            reader,
            sequencer,
            max_deposit_bytes,
            mesh: view,
            inference,
            search: search.as_ref().map(|s| s.index.clone()),
        };
        let served = runtime.block_on(substrate_api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        // The worker finishes the job in hand and stops before the runtime it submits on.
        drop(worker);
        drop(search);
        if let Some(mesh) = mesh {
            runtime.block_on(mesh.shutdown());
        }
        // Every handle is gone with the router and the mesh: the sequencer finishes its batch and stops.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        if let Some(thread) = sequencer_thread {
            thread.join().map_err(|_| anyhow::anyhow!("the sequencer panicked"))?;
        }
        served.context("serving HTTP")
    })?;
    Ok(RunningNode { addr, p2p, role: role_name, shutdown: Some(shutdown), thread: Some(thread) })
}

pub fn serve(
    dir: &Path,
    listen: Option<String>,
    config_path: Option<PathBuf>,
    mesh: MeshArgs,
    worker: WorkerArgs,
    serving: ServingArgs,
) -> anyhow::Result<()> {
    let config_path = config_path.unwrap_or_else(|| DataDir::new(dir).config());
    let mut config = NodeConfig::load(&config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(listen) = mesh.p2p_listen {
        config.mesh.listen = Some(listen);
    }
    if !mesh.bootstrap.is_empty() {
        config.mesh.bootstrap = mesh.bootstrap;
    }
    if let Some(key) = mesh.node_key {
        config.mesh.node_key = Some(key);
    }
    if let Some(key) = mesh.swarm_key {
        config.mesh.swarm_key = Some(key);
    }
    if worker.work || mesh.role.as_deref() == Some("worker") {
        config.worker.enabled = true;
    }
    if !worker.worker_models.is_empty() {
        config.worker.models = worker.worker_models;
    }
    if let Some(program) = worker.workload_program {
        config.worker.program = Some(program);
    }
    config.worker.without_network_namespace |= worker.without_network_namespace;
    config.serving.enabled |= serving.serve_models;
    if serving.embedding_model.is_some() {
        config.serving.embedding_model = serving.embedding_model;
    }
    if serving.generation_model.is_some() {
        config.serving.generation_model = serving.generation_model;
    }
    if serving.models_dir.is_some() {
        config.serving.models_dir = serving.models_dir;
    }
    if serving.slots.is_some() {
        config.serving.slots = serving.slots;
    }
    if serving.queue.is_some() {
        config.serving.queue = serving.queue;
    }
    config.serving.search |= serving.search;
    config.serving.open_inference |= serving.open_inference;
    if serving.usage_report_seconds.is_some() {
        config.serving.usage_report_seconds = serving.usage_report_seconds;
    }
    config.worker.without_scopes |= worker.without_scopes;
    if let Some(slots) = worker.worker_slots {
        anyhow::ensure!(
            (1..=64).contains(&slots),
            "--worker-slots {slots}: a worker runs 1 to 64 jobs at once"
        );
        config.worker.slots = Some(slots);
    }
    let data = DataDir::new(dir);
    match mesh.role.as_deref() {
        Some("sequencer") if !data.log_key().exists() => anyhow::bail!(
            "--role sequencer needs the log key, and {} has none (it is a mirror, or not a commons: `substrate init`)",
            data.log_key().display()
        ),
        Some(role @ ("mirror" | "worker")) if data.log_key().exists() => anyhow::bail!(
            "--role {role}: {} holds the log key, so this directory is the sequencer; prepare a mirror elsewhere with `substrate init --mirror-of <log key>`",
            dir.display()
        ),
        Some(role @ ("mirror" | "worker")) if !config.mesh.enabled() => {
            anyhow::bail!("--role {role} needs the mesh: give --bootstrap <sequencer multiaddr>")
        }
        _ => {}
    }
    let node = start(dir, &config)?;
    tracing::info!(addr = %node.addr, data_dir = %dir.display(), role = node.role, "serving");
    println!("listening on {}", node.url());
    if let Some(p2p) = &node.p2p {
        println!("mesh {} at {p2p}", node.role);
    }
    wait_for_signal()?;
    tracing::info!("shutting down");
    node.stop()
}

/// Starts taking jobs with the node key, in the sandbox the configuration asks for: refused at
/// once if this kernel cannot give it.
fn start_worker(
    data: &DataDir,
    config: &NodeConfig,
    reader: Reader,
    sequencer: SequencerHandle,
    runtime: tokio::runtime::Handle,
    fetch: Option<substrate_jobs::training::FetchTexts>,
) -> anyhow::Result<substrate_jobs::worker::Worker> {
    let key_path = config.mesh.node_key.clone().unwrap_or_else(|| data.root().join("node.key"));
    let (_, key) = crate::keys::load(&key_path).with_context(|| {
        format!(
            "a worker signs its results with its node key: make one with `substrate id new --kind node --key {}` and have an operator register it",
            key_path.display()
        )
    })?;
    let strength = substrate_jobs::Strength {
        network_namespace: !config.worker.without_network_namespace,
        scoped: !config.worker.without_scopes,
    };
    let kernel = substrate_jobs::Kernel::probe();
    if let Err(error) = kernel.check(strength) {
        anyhow::bail!(
            "this node cannot take jobs: {error} (`substrate sandbox` shows what the kernel offers)"
        );
    }
    let mut models = config.worker.models.clone();
    if models.is_empty() {
        models.push(data.root().join("models"));
        models.extend(std::env::var_os("SUBSTRATE_MODELS").map(PathBuf::from));
    }
    let program = match &config.worker.program {
        Some(program) => program.clone(),
        None => std::env::current_exe().context("locating the substrate binary to run workloads")?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let worker_config = substrate_jobs::worker::WorkerConfig {
        models,
        program,
        scratch: data.root().join("jobs"),
        data: data.clone(),
        cores,
        memory_mib: memory_mib(),
        strength,
        poll: std::time::Duration::from_millis(200),
        slots: config.worker.slots.unwrap_or(1).clamp(1, 64),
    };
    let submit: substrate_jobs::worker::Submit = Box::new(move |event| {
        runtime
            .block_on(sequencer.submit(substrate_store::Submission { event, content: None }))
            .map(|submitted| submitted.receipt.log_index)
            .map_err(|error| error.to_string())
    });
    substrate_jobs::worker::Worker::start(worker_config, key, reader, submit, fetch)
        .context("starting the worker thread")
}

/// The models directory `[serving]` names, else $SUBSTRATE_MODELS, else DATA_DIR/models.
fn models_dir(data: &DataDir, config: &NodeConfig) -> PathBuf {
    config
        .serving
        .models_dir
        .clone()
        .or_else(|| std::env::var_os("SUBSTRATE_MODELS").map(PathBuf::from))
        .unwrap_or_else(|| data.root().join("models"))
}

fn model_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The embedding model `[serving]` names (which must load), else the default if it is there.
fn load_embedder(data: &DataDir, config: &NodeConfig) -> anyhow::Result<Option<(String, Arc<Embedder>)>> {
    use substrate_models::fetch::EMBEDDING;
    let path = match &config.serving.embedding_model {
        Some(path) => path.clone(),
        None => match Some(EMBEDDING.path(&models_dir(data, config))).filter(|p| p.exists()) {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let model =
        Embedder::load(&path).with_context(|| format!("loading the embedding model {}", path.display()))?;
    let id =
        if config.serving.embedding_model.is_none() { EMBEDDING.name.to_owned() } else { model_name(&path) };
    Ok(Some((id, Arc::new(model))))
}

/// Loads the models `[serving]` names, or the defaults under the models directory; a model that
/// is named but cannot be loaded stops the node, a default that is missing is left out.
fn load_models(
    data: &DataDir,
    config: &NodeConfig,
    meter: substrate_api::metering::Meter,
) -> anyhow::Result<substrate_api::Inference> {
    use substrate_models::fetch::GENERATION;
    let serving = &config.serving;
    let dir = models_dir(data, config);
    let embedding = load_embedder(data, config)?;
    let generation = match &serving.generation_model {
        Some(path) => Some(path.clone()),
        None => Some(GENERATION.path(&dir)).filter(|p| p.exists()),
    };
    let generation = match generation {
        Some(path) => {
            let model = substrate_models::Llama::load(&path, substrate_models::Weights::Auto)
                .with_context(|| format!("loading the generation model {}", path.display()))?;
            let id = if serving.generation_model.is_none() {
                GENERATION.name.to_owned()
            } else {
                model_name(&path)
            };
            Some((id, model))
        }
        None => None,
    };
    anyhow::ensure!(
        embedding.is_some() || generation.is_some(),
        "--serve-models: no model to serve in {} (run `substrate models fetch`, or name them with --embedding-model and --generation-model)",
        dir.display()
    );
    for (id, _) in embedding.iter() {
        tracing::info!(model = id, "serving embeddings");
    }
    for (id, _) in generation.iter() {
        tracing::info!(model = id, "serving generation");
    }
    Ok(substrate_api::Inference::new(
        embedding,
        generation,
        serving.slots.unwrap_or(1),
        serving.queue.unwrap_or(8),
        meter,
    ))
}

/// The key this node signs its reports of members' inference with: the log key on the
/// sequencer, the node key elsewhere (a node without one cannot charge members, and says so).
fn usage_key(
    data: &DataDir,
    config: &NodeConfig,
    sequencer: bool,
) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
    if sequencer {
        let skey = std::fs::read_to_string(data.log_key())
            .with_context(|| format!("reading the log key {}", data.log_key().display()))?;
        let signer = substrate_tlog::NoteSigner::from_skey(skey.trim())
            .map_err(|e| anyhow::anyhow!("the log key {} does not parse: {e}", data.log_key().display()))?;
        return Ok(Some(signer.signing_key().clone()));
    }
    let path = config.mesh.node_key.clone().unwrap_or_else(|| data.root().join("node.key"));
    Ok(crate::keys::load(&path).ok().map(|(_, key)| key))
}

/// The search index and the thread that keeps it current with the log; dropping it stops the
/// thread.
struct Search {
    index: Arc<substrate_search::SearchIndex>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Search {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens DATA_DIR/search, brings it up to the log before the node answers, and follows the log.
fn open_search(
    data: &DataDir,
    embedder: Option<(String, Arc<Embedder>)>,
    reader: Reader,
) -> anyhow::Result<Search> {
    let dir = data.root().join("search");
    let vectors = embedder.is_some();
    let index = Arc::new(substrate_search::SearchIndex::open(&dir, embedder).with_context(|| {
        format!("opening the search index (delete {} to rebuild it from the log)", dir.display())
    })?);
    tracing::info!(indexed = index.indexed(), vectors, "search index open");
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let follower = index.clone();
    // The first pass may be long (every text embedded); the node answers meanwhile, and a search
    // says how far the index has come.
    let thread = std::thread::Builder::new().name("search".into()).spawn(move || {
        use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
        loop {
            // One step at a time, so that stopping the node never waits on a long first pass.
            while let Err(TryRecvError::Empty) = stopped.try_recv() {
                match follower.step(&reader) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "indexing the commons' texts");
                        break;
                    }
                }
            }
            if !matches!(
                stopped.recv_timeout(std::time::Duration::from_millis(250)),
                Err(RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
    })?;
    Ok(Search { index, stop: Some(stop), thread: Some(thread) })
}

/// This machine's memory, from /proc/meminfo (MiB); 1024 where it cannot be read.
fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(1024, |kib| kib / 1024)
}

/// The private-network key: the configured file (which must exist), else DATA_DIR/swarm.key if
/// there is one.
fn swarm_key(data: &DataDir, configured: Option<&Path>) -> anyhow::Result<Option<SwarmKey>> {
    let default = data.root().join("swarm.key");
    let path = match configured {
        Some(path) => path,
        None if default.exists() => &default,
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the private-network key {}", path.display()))?;
    let key = SwarmKey::parse(&text).with_context(|| format!("{} is unusable", path.display()))?;
    tracing::info!(fingerprint = %key.fingerprint(), "the mesh is a private network");
    Ok(Some(key))
}

/// `substrate peers`: the node's view of the mesh.
pub fn peers(node: &str, json: bool) -> anyhow::Result<()> {
    let view: serde_json::Value = crate::client::Client::new(node).get("/v1/peers")?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!(
        "this node: {} {} at height {} (head {})",
        view["role"].as_str().unwrap_or("?"),
        view["peerId"].as_str().unwrap_or("?"),
        view["height"],
        view["head"]
    );
    let peers = view["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        println!("no peers connected");
    } else {
        println!("{:<54} {:<10} {:>8} {:>6}  ADDRESS", "PEER", "ROLE", "HEIGHT", "LAG");
    }
    for peer in peers {
        let number = |v: &serde_json::Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
        println!(
            "{:<54} {:<10} {:>8} {:>6}  {}",
            peer["peerId"].as_str().unwrap_or("?"),
            peer["role"].as_str().unwrap_or("?"),
            number(&peer["height"]),
            number(&peer["lag"]),
            peer["address"].as_str().unwrap_or("")
        );
    }
    Ok(())
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
