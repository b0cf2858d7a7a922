//! `bench ngram`: training the amputation audit's reference model, and scoring texts with it the
//! way CCNet does, on one core and on all.

use std::collections::BTreeSet;
use std::path::Path;

use substrate_ngram::{ccnet, text};
use substrate_training::amputation;

use super::*;

pub(super) fn bench_ngram(
    texts: usize,
    size: usize,
    language: &str,
    arpa: Option<&Path>,
    tokens_out: Option<&Path>,
    models: &crate::cli::ModelArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(texts > 0 && size >= 64, "--texts must be at least 1 and --size at least 64");
    let dir = models.models_dir.clone().unwrap_or_else(|| models.data.data_dir.join("models"));
    let path = amputation::default_reference(&dir, language)?;
    let corpus = amputation::reference_corpus(&path, language)?;
    let started = Instant::now();
    let (model, info) = amputation::train_reference(&corpus, 5, &BTreeSet::new())?;
    let trained = started.elapsed();
    println!(
        "trained the 5-gram reference on {} ({} documents, {} tokens) in {:.2} s: {} n-grams",
        path.display(),
        info.documents,
        info.tokens,
        trained.as_secs_f64(),
        info.ngrams.iter().sum::<u64>()
    );
    if let Some(out) = arpa {
        let started = Instant::now();
        crate::command::amputation::write_arpa(&model, out)?;
        println!("wrote {} in {:.2} s", out.display(), started.elapsed().as_secs_f64());
        let started = Instant::now();
        let read = crate::command::amputation::read_arpa(out)?;
        println!(
            "read it back in {:.2} s ({} n-grams)",
            started.elapsed().as_secs_f64(),
            read.counts().iter().sum::<u64>()
        );
    }
    // The texts: the reference's own text cut into pieces of `size` bytes at line ends where it can,
    // as many as asked for, cycling.
    let all: String = corpus.documents.join("\n");
    anyhow::ensure!(
        size * 2 < all.len(),
        "--size {size} is more than half the reference's {} bytes",
        all.len()
    );
    let mut pieces: Vec<String> = Vec::with_capacity(texts);
    let mut at = 0usize;
    while pieces.len() < texts {
        if at + size >= all.len() {
            at = (at + 7) % size.max(1);
        }
        let mut end = (at + size).min(all.len());
        while !all.is_char_boundary(end) {
            end -= 1;
        }
        let mut start = at;
        while !all.is_char_boundary(start) {
            start += 1;
        }
        pieces.push(all[start..end].to_owned());
        at = end;
    }
    let bytes: usize = pieces.iter().map(String::len).sum();
    let score = |part: &[String]| -> (u64, f64) {
        let mut tokens = 0u64;
        let mut sum = 0f64;
        for p in part {
            let s = ccnet::score_document(&model, p);
            tokens += s.tokens;
            sum += s.perplexity().unwrap_or(0.0);
        }
        (tokens, sum)
    };
    let started = Instant::now();
    let (tokens, one) = score(&pieces);
    let single = started.elapsed();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let per = pieces.len().div_ceil(workers);
    let (all_tokens, all_sum) = std::thread::scope(|scope| {
        let parts: Vec<_> = pieces.chunks(per).map(|part| scope.spawn(move || score(part))).collect();
        parts.into_iter().filter_map(|p| p.join().ok()).fold((0, 0.0), |(t, s), (t2, s2)| (t + t2, s + s2))
    });
    let parallel = started.elapsed();
    anyhow::ensure!(
        all_tokens == tokens && (all_sum - one).abs() <= 1e-6 * one.abs(),
        "the parallel scores differ"
    );
    let rate = |d: Duration| pieces.len() as f64 / d.as_secs_f64();
    println!(
        "scored {} texts ({:.1} MB, {} tokens) from raw text: one core {:.2} s ({:.0} texts/s, {:.2} M tokens/s); {} cores {:.2} s ({:.0} texts/s)",
        pieces.len(),
        bytes as f64 / 1e6,
        tokens,
        single.as_secs_f64(),
        rate(single),
        tokens as f64 / single.as_secs_f64() / 1e6,
        workers,
        parallel.as_secs_f64(),
        rate(parallel)
    );
    // The same texts tokenised first, then scored from the tokens alone: KenLM's share of the work.
    let lines: Vec<Vec<String>> = pieces
        .iter()
        .flat_map(|p| p.lines().map(text::tokens).filter(|t| !t.is_empty()).collect::<Vec<_>>())
        .collect();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut total = 0f64;
    for line in &lines {
        out.clear();
        total += model.score_tokens(line, true, true, &mut out).log10;
    }
    let tokens_only = started.elapsed();
    println!(
        "scored the same {} lines from their tokens on one core: {:.2} s ({:.2} M tokens/s), sum of log10 {:.3}",
        lines.len(),
        tokens_only.as_secs_f64(),
        tokens as f64 / tokens_only.as_secs_f64() / 1e6,
        total
    );
    if let Some(path) = tokens_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        for line in &lines {
            writeln!(w, "{}", line.join(" "))?;
        }
        w.flush()?;
        println!("wrote the tokenised lines to {}", path.display());
    }
    Ok(())
}
