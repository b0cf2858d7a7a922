//! `substrate bench`: what each measurement takes.

use std::path::PathBuf;

use clap::Subcommand;

use super::ModelArgs;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Concurrent signed deposits over HTTP against a freshly started daemon.
    Deposits {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        deposits: usize,
        /// Text size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    /// Tally many open proposals at once: two chambers plus an Independent Markets mixture each.
    Governance {
        #[arg(long, default_value_t = 10_000)]
        voters: usize,
        #[arg(long, default_value_t = 100)]
        proposals: usize,
    },
    /// Replicate N entries from a sequencer to mirrors on 127.0.0.1 while they are appended, then
    /// time a fresh mirror's sync of the whole log.
    Mesh {
        #[arg(long, default_value_t = 100_000)]
        entries: u64,
        /// Mirrors following while the log is appended (0: the sequencer alone).
        #[arg(long, default_value_t = 2)]
        mirrors: usize,
        /// Concurrent submitters feeding the sequencer, as HTTP clients would.
        #[arg(long, default_value_t = 64)]
        submitters: usize,
        /// Text size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Every deposit's consent tier (training-only or local: no text leaves the sequencer);
        /// default: the four tiers in turn.
        #[arg(long)]
        consent: Option<substrate_core::ConsentTier>,
    },
    /// The governed training run's bookkeeping over a commons of N deposits: fold and snapshot,
    /// reading and tokenising the texts, the plan, one short training step, the record, cards,
    /// attestation and signature; then `audit per` over the result.
    Training {
        #[arg(long, default_value_t = 100_000)]
        deposits: usize,
        /// Text size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[command(flatten)]
        models: ModelArgs,
    },
    /// Open a stored commons in a fresh process: how long `Ledger::open` takes and the memory it
    /// holds.
    Open {
        /// The commons' data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// A commons of V voters with P open proposals each voted on by all of them: time opening it,
    /// then `GET /v1/proposals/{id}` while clients keep depositing.
    Reads {
        #[arg(long, default_value_t = 10_000)]
        voters: usize,
        #[arg(long, default_value_t = 100)]
        proposals: usize,
        /// Concurrent depositing clients during the reads.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// How long to read for, in seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Build the commons in this directory and keep it; when it already holds one, reuse it.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Start a job that exits at once, N times plain and N times in its sandbox: what the
    /// confinement costs before the workload's first instruction.
    Sandbox {
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Also embed this file's lines (`substrate embed`) plain and confined, five times each:
        /// the sandbox's overhead on a real workload (target: under 5%).
        #[arg(long)]
        embed: Option<PathBuf>,
        #[command(flatten)]
        models: ModelArgs,
    },
    /// A stream of N small embedding jobs through worker nodes of as many operators, each a
    /// `substrate serve --role worker` on 127.0.0.1: scheduling, run and end-to-end latency per
    /// job from the log's own times, and jobs per second.
    Jobs {
        #[arg(long, default_value_t = 1000)]
        jobs: usize,
        /// Worker nodes, each of its own operator.
        #[arg(long, default_value_t = 3)]
        workers: usize,
        /// The share of results re-executed by a worker of another operator, in parts per million.
        #[arg(long, default_value_t = 100_000)]
        check_ppm: u32,
        /// Client threads posting the signed requests.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Pin embed@1 to this embedding model's directory (all-MiniLM-L6-v2, say) instead of a
        /// tiny BERT written for the run.
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Build a log of N entries, then time `replay --check` over it.
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Build the log in this directory and keep it; when it already holds a commons, replay
        /// that log instead of building one (building takes minutes, mostly signing).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// A commons of N public deposits of words drawn by Zipf's law: build the search index from
    /// the log, then time Q searches against it in this process, per mode, with the memory and
    /// disk the index takes.
    /// Train the amputation audit's 5-gram reference model on the Wikipedia summaries and score
    /// TEXTS texts of SIZE bytes CCNet's way, on one core and on all; with --tokens-out, write
    /// them normalised and tokenised, a text a line, for KenLM to score the same
    /// (.ci/amputation/bench_kenlm.py).
    Ngram {
        #[arg(long, default_value_t = 100_000)]
        texts: usize,
        /// Text size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value = "en")]
        language: String,
        /// Write the reference model as ARPA here.
        #[arg(long)]
        arpa: Option<PathBuf>,
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        #[command(flatten)]
        models: ModelArgs,
    },
    Search {
        #[arg(long, default_value_t = 100_000)]
        deposits: usize,
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Text size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Also build an index with the embedding model's vectors (all-MiniLM-L6-v2 unless
        /// --model says otherwise) and time vector and hybrid searches.
        #[arg(long)]
        vectors: bool,
        #[command(flatten)]
        models: ModelArgs,
    },
}
