//! `lm train|score` and `audit amputation`: CCNet's perplexity filter rebuilt on the project's
//! own n-gram model, run on the commons, and answered with a comparison run.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::Context;
use substrate_models::fetch;
use substrate_models::{Llama, Weights};
use substrate_ngram::ccnet::Cutoffs;
use substrate_ngram::{Smoothing, Trainer, arpa, text};
use substrate_store::DataDir;
use substrate_training::amputation::{self, ComparePhase, Thresholds};

use crate::cli::{AmputationArgs, LmCommand, TokenArgs};

pub fn lm(command: LmCommand) -> anyhow::Result<()> {
    match command {
        LmCommand::Train { corpus, order, out, smoothing, discount_fallback, tokens } => {
            let smoothing = smoothing_of(&smoothing, discount_fallback.as_deref())?;
            let mut trainer = Trainer::new(order, smoothing, !tokens.no_markers)?;
            for path in &corpus {
                let file =
                    std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
                for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                    let line =
                        line.with_context(|| format!("{} line {}: not UTF-8 text", path.display(), n + 1))?;
                    trainer.add(&line_tokens(&line, tokens))?;
                }
            }
            let (model, estimate) =
                trainer.finish().with_context(|| format!("training on {}", names(&corpus)))?;
            write_arpa(&model, &out)?;
            eprintln!(
                "{}-gram model of {} sentences, {} tokens: {} n-grams by order, written to {}",
                order,
                estimate.sentences,
                estimate.tokens,
                model.counts().iter().map(u64::to_string).collect::<Vec<_>>().join(" / "),
                out.display()
            );
            for (n, o) in estimate.orders.iter().enumerate() {
                let [d1, d2, d3] = o.discounts;
                let note = if o.fallback { " (fallback)" } else { "" };
                eprintln!("  order {}: discounts {d1:.4} {d2:.4} {d3:.4}{note}", n + 1);
            }
            Ok(())
        }
        LmCommand::Score { model, tokens } => {
            let model = read_arpa(&model)?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let mut scores = Vec::new();
            for line in std::io::stdin().lock().lines() {
                let line = line.context("standard input is not UTF-8 text")?;
                let words = line_tokens(&line, tokens);
                scores.clear();
                let markers = !tokens.no_markers;
                let sentence = match words.is_empty() {
                    true => Default::default(),
                    false => model.score_tokens(&words, markers, markers, &mut scores),
                };
                let mut listed: Vec<&str> = words.iter().map(String::as_str).collect();
                if markers && !words.is_empty() {
                    listed.push(substrate_ngram::EOS_WORD);
                }
                let row = serde_json::json!({
                    "tokens": listed,
                    "log10": scores.iter().map(|s| s.log10).collect::<Vec<_>>(),
                    "ngram": scores.iter().map(|s| s.ngram).collect::<Vec<_>>(),
                    "total": sentence.log10,
                    "perplexity": if words.is_empty() { None } else { Some(sentence.perplexity()) },
                    "oov": sentence.oov,
                });
                writeln!(out, "{row}")?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn line_tokens(line: &str, tokens: TokenArgs) -> Vec<String> {
    match tokens.raw_tokens {
        true => line.split_whitespace().map(str::to_owned).collect(),
        false => text::tokens(line),
    }
}

fn smoothing_of(name: &str, fallback: Option<&[f64]>) -> anyhow::Result<Smoothing> {
    let fallback = match fallback {
        None => None,
        Some([d1, d2, d3]) => Some([*d1, *d2, *d3]),
        Some(other) => {
            anyhow::bail!("--discount-fallback takes three discounts D1,D2,D3, not {}", other.len())
        }
    };
    match name.split_once(':') {
        None if name == "modified" => Ok(Smoothing::ModifiedKneserNey { fallback }),
        Some(("nltk", d)) => {
            let discount: f64 =
                d.parse().with_context(|| format!("`{d}` in --smoothing nltk:D is not a number"))?;
            Ok(Smoothing::Nltk { discount })
        }
        _ => anyhow::bail!(
            "--smoothing is `modified` or `nltk:D` (one discount D between 0 and 1), not `{name}`"
        ),
    }
}

fn names(paths: &[std::path::PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub(super) fn write_arpa(model: &substrate_ngram::Model, out: &Path) -> anyhow::Result<()> {
    let partial = out.with_extension("arpa.partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut w = BufWriter::new(file);
    arpa::write(model, &mut w).with_context(|| format!("writing {}", partial.display()))?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

pub(super) fn read_arpa(path: &Path) -> anyhow::Result<substrate_ngram::Model> {
    let file = std::fs::File::open(path).with_context(|| format!("reading the model {}", path.display()))?;
    arpa::read(std::io::BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("{} is not a usable ARPA model", path.display()))
}

pub fn audit(args: &AmputationArgs) -> anyhow::Result<()> {
    let data = DataDir::new(&args.data.data_dir);
    let cutoffs = match args.cutoffs.as_deref() {
        None => None,
        Some([head, tail]) => Some(Cutoffs { head: *head, tail: *tail }),
        Some(other) => anyhow::bail!("--cutoffs takes two perplexities, HEAD,TAIL, not {}", other.len()),
    };
    let thresholds =
        Thresholds { head_percentile: args.head_percentile, tail_percentile: args.tail_percentile, cutoffs };
    // Refused before anything is read or trained.
    thresholds.check()?;
    if let Some(out) = &args.compare {
        for run in ["ccnet-kept", "governed"] {
            let dir = out.join(run);
            if dir.join(substrate_models::lora::WEIGHTS_FILE).exists() {
                anyhow::bail!(
                    "{} holds a finished adapter already; compare into another --compare DIR, or remove it first",
                    dir.display()
                );
            }
        }
    }
    eprintln!("reading the eligible deposits of {}", data.root().display());
    let eligible = amputation::eligible(&data)?;
    let (model, reference) = match &args.reference_model {
        Some(path) => {
            eprintln!("reading the reference model {}", path.display());
            amputation::read_reference(path, args.order, &args.language)?
        }
        None => {
            let path = match &args.reference {
                Some(path) => path.clone(),
                None => {
                    let models = args.models_dir.clone().unwrap_or_else(|| data.root().join("models"));
                    amputation::default_reference(&models, &args.language)?
                }
            };
            let corpus = amputation::reference_corpus(&path, &args.language)?;
            // The commons' own texts are left out of the reference.
            let exclude: BTreeSet<[u8; 32]> =
                eligible.texts.iter().map(|t| amputation::fingerprint(&String::from_utf8_lossy(t))).collect();
            eprintln!(
                "training the {}-gram reference model on {} documents of {}",
                args.order,
                corpus.documents.len(),
                path.display()
            );
            amputation::train_reference(&corpus, args.order, &exclude)?
        }
    };
    if let Some(out) = &args.save_model {
        write_arpa(&model, out)?;
        eprintln!("wrote the reference model to {}", out.display());
    }
    let report = amputation::audit(&eligible, &model, reference, &thresholds)?;
    let saved = amputation::save_scores(&data, &report).context("keeping the scores for the API")?;
    eprintln!("kept every deposit's score in {} (GET /v1/deposits/CID?scores=ccnet)", saved.display());
    if let Some(path) = &args.svg {
        std::fs::write(path, amputation::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the chart to {}", path.display());
    }
    let comparison = match &args.compare {
        Some(out) => Some(compare(args, &data, &report, out)?),
        None => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let (Some(map), Some(c)) = (value.as_object_mut(), &comparison) {
            map.insert("comparison".into(), serde_json::to_value(c)?);
        }
        if let Some(map) = value.as_object_mut() {
            map.remove("deposits");
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_report(&report);
        if let Some(c) = &comparison {
            println!(
                "\nthe answer: held-out perplexity per register, the same base model, snapshot, held-out texts, steps and seed"
            );
            println!(
                "  (a) trained on what CCNet keeps: {} of {} trainable texts, its tail dropped, registers in their natural proportions",
                c.trainable_texts - c.dropped_texts,
                c.trainable_texts
            );
            println!(
                "  (b) trained on the governed mixture over all {} trainable texts\n",
                c.trainable_texts
            );
            println!(
                "{:<16} {:>9} {:>9} {:>9} {:>9}",
                "register", "held out", "base", "(a) ccnet", "(b) gov."
            );
            for r in &c.rows {
                println!(
                    "{:<16} {:>9} {:>9.2} {:>9.2} {:>9.2}",
                    r.register, r.held_out_texts, r.base, r.ccnet, r.governed
                );
            }
        }
    }
    Ok(())
}

/// Trains both adapters of the comparison into `out` and writes its report there.
fn compare(
    args: &AmputationArgs,
    data: &DataDir,
    report: &amputation::Report,
    out: &Path,
) -> anyhow::Result<amputation::Comparison> {
    let models = crate::cli::ModelArgs {
        model: args.model.clone(),
        models_dir: args.models_dir.clone(),
        weights: "auto".into(),
        data: crate::cli::DataArgs { data_dir: args.data.data_dir.clone() },
    };
    let path = super::models::model_path(&models, &fetch::GENERATION);
    let base_sha256 = fetch::file_sha256(&path)?;
    let options = amputation::CompareOptions {
        out: out.to_path_buf(),
        base_sha256,
        lora: super::models::lora_config(&args.lora)?,
        steps: args.lora.steps,
        batch: args.lora.batch,
        seq_len: args.lora.seq_len,
        lr: args.lora.lr,
        save_every: args.lora.save_every,
    };
    eprintln!(
        "comparing: two adapters of {} steps on {} into {}",
        options.steps,
        path.display(),
        out.display()
    );
    let tty = std::io::stderr().is_terminal();
    let load = || {
        eprintln!("loading {}", path.display());
        Llama::load(&path, Weights::Dense)
    };
    let comparison = amputation::compare(data, load, report, &options, |phase| match phase {
        ComparePhase::Scored { texts, dropped, held_out } => eprintln!(
            "scored      {texts} trainable texts, {dropped} in CCNet's tail; {held_out} held out to measure"
        ),
        ComparePhase::Training { run } => {
            if tty {
                eprintln!();
            }
            eprintln!("training    {run}")
        }
        ComparePhase::Step(p) => super::models::show_step(p, tty),
    })?;
    if tty {
        eprintln!();
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("comparison.json", &serde_json::to_vec_pretty(&comparison)?)?;
    write("comparison.md", amputation::comparison_table(&comparison).as_bytes())?;
    write("comparison.svg", amputation::comparison_svg(&comparison).as_bytes())?;
    eprintln!("wrote comparison.json, comparison.md and comparison.svg into {}", out.display());
    Ok(comparison)
}

fn print_report(report: &amputation::Report) {
    let r = &report.reference;
    println!(
        "CCNet's perplexity filter on the eligible deposits of {} (log of {} entries)",
        report.commons, report.log_size
    );
    let ngrams = r.ngrams.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ");
    match r.tokens {
        0 => println!(
            "reference: the {}-gram model read from {} ({}); n-grams by order {ngrams}",
            r.order, r.source, r.language
        ),
        _ => println!(
            "reference: {}-gram modified Kneser-Ney, {} ({}): {} documents, {} sentences, {} tokens; n-grams by order {ngrams}",
            r.order, r.source, r.language, r.documents, r.sentences, r.tokens
        ),
    }
    if r.excluded > 0 {
        println!("  {} reference documents left out: the commons holds the same text", r.excluded);
    }
    println!("tokens: {}", r.tokenisation);
    println!(
        "head below perplexity {:.1}, tail from {:.1}: {}",
        report.head_cutoff, report.tail_cutoff, report.thresholds
    );
    println!();
    print!("{}", amputation::table(report));
    if !report.other_languages.is_empty() {
        let listed: Vec<String> = report.other_languages.iter().map(|(l, n)| format!("{l} ({n})")).collect();
        println!("\nnot scored, in languages the reference does not cover: {}", listed.join(", "));
    }
    let empty: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.scored() + r.other_language + r.no_words == 0)
        .map(|r| r.register.as_str())
        .collect();
    if !empty.is_empty() {
        println!("registers with no eligible text: {}", empty.join(", "));
    }
}
