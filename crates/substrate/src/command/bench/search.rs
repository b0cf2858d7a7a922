//! `bench search`: building the search index over a commons of many deposits, and the latency of
//! a search against it in this process, beside the embedding model's own throughput.

use std::sync::Arc;

use substrate_models::Embedder;
use substrate_search::{Filters, Mode, SearchIndex};
use substrate_store::Reader;

use super::*;

/// Distinct words the texts are drawn from, by rank with Zipf's law (rank r about as often as 1/r).
const VOCABULARY: f64 = 30_000.0;
/// What the words are made of: the commonest of one syllable, then two, three, four.
const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ne", "ru", "ta", "shi", "ve", "do", "pa", "ri", "su", "go", "be", "fa", "zu", "ha",
    "ye", "wo", "ti",
];
/// Hits asked of each search, as `substrate search` asks by default.
const LIMIT: usize = 10;
/// Searches run before the timed ones.
const WARMUP: usize = 100;
/// Texts embedded by the model alone, the bound on a build with vectors.
const EMBED_SAMPLE: usize = 512;

pub(super) fn bench_search(
    deposits: usize,
    queries: usize,
    size: usize,
    vectors: bool,
    models: &crate::cli::ModelArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(deposits > 0 && queries > 0, "--deposits and --queries must be at least 1");
    anyhow::ensure!(size >= 64, "--size must be at least 64 bytes");
    let embedder = match vectors {
        true => {
            let path = super::super::models::model_path(models, &substrate_models::fetch::EMBEDDING);
            let model = Embedder::load(&path).with_context(|| {
                format!("loading the embedding model (`substrate models fetch`) {}", path.display())
            })?;
            let name =
                models.model.clone().unwrap_or_else(|| substrate_models::fetch::EMBEDDING.name.to_owned());
            Some((name, Arc::new(model)))
        }
        false => None,
    };
    let tmp = tempfile::tempdir()?;
    let started = Instant::now();
    let ledger =
        fill_commons(&tmp.path().join("commons"), deposits, |i| zipf_text(i, size), |_| ConsentTier::Public)?;
    let reader = Reader::new(ledger.dir(), ledger.tree(), ledger.verifier(), ledger.blobs().clone());
    println!(
        "built a commons of {deposits} public deposits of {size} B (words of a {VOCABULARY}-word vocabulary drawn by Zipf's law, the eight registers in turn) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("load average (1 minute) before indexing: {}", load_average());
    let queries: Vec<(String, Cid)> = (0..WARMUP + queries).map(|q| query(q, deposits, size)).collect();
    println!(
        "{} searches per mode, each of 1 to 4 words (in turn) drawn from one deposit's text, {WARMUP} more before them untimed; {LIMIT} hits asked",
        queries.len() - WARMUP
    );

    let plain = build(&tmp.path().join("search-bm25"), None, &reader, deposits, "BM25 only")?;
    time_searches(&plain, &reader, Mode::Bm25, "bm25", &queries)?;
    time_scan(deposits, queries.len() - WARMUP);
    let Some((name, embedder)) = embedder else {
        println!("load average (1 minute) at the end: {}", load_average());
        return Ok(());
    };

    let sample: Vec<String> = (0..EMBED_SAMPLE.min(deposits))
        .map(|i| String::from_utf8_lossy(&zipf_text(i, size)).into_owned())
        .collect();
    let tokens = embedder.count_tokens(&sample)?;
    let started = Instant::now();
    embedder.embed(&sample)?;
    println!(
        "bound: the embedding model alone ({}) embeds {:.1} of these texts/s ({} texts, {:.0} tokens each on average, cut at {})",
        embedder.path.display(),
        sample.len() as f64 / started.elapsed().as_secs_f64(),
        sample.len(),
        tokens.iter().sum::<usize>() as f64 / tokens.len() as f64,
        embedder.max_tokens
    );
    // The BM25-only index stays open, so that what this one adds is measured on its own.
    let both = build(
        &tmp.path().join("search-vectors"),
        Some((name, embedder.clone())),
        &reader,
        deposits,
        "with vectors",
    )?;
    println!(
        "  of which the vectors held in memory: {deposits} x {} floats, {:.1} MiB",
        embedder.dim,
        (deposits * embedder.dim * 4) as f64 / 1048576.0
    );
    for (mode, name) in [(Mode::Bm25, "bm25"), (Mode::Vector, "vector"), (Mode::Hybrid, "hybrid")] {
        time_searches(&both, &reader, mode, name, &queries)?;
    }
    let mut embedding = Vec::new();
    for (text, _) in &queries[WARMUP..] {
        let started = Instant::now();
        embedder.embed(std::slice::from_ref(text))?;
        embedding.push(started.elapsed());
    }
    println!("  of which embedding the query alone: {}", latencies(&mut embedding));
    println!("load average (1 minute) at the end: {}", load_average());
    drop((plain, both));
    Ok(())
}

/// The machine's load average over the last minute, from /proc/loadavg.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().next().unwrap_or("?").to_owned()
}

/// Opens an index in `dir` and brings it up to the log, timed, with the resident memory it added
/// and its size on disk.
fn build(
    dir: &std::path::Path,
    embedder: Option<(String, Arc<Embedder>)>,
    reader: &Reader,
    deposits: usize,
    label: &str,
) -> anyhow::Result<SearchIndex> {
    let before = (status_kib("VmRSS:"), status_kib("RssAnon:"), status_kib("RssFile:"));
    let started = Instant::now();
    let index = SearchIndex::open(dir, embedder)?;
    let entries = index.catch_up(reader)?;
    let seconds = started.elapsed().as_secs_f64();
    let mib = |after: u64, before: u64| after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "index build, {label}: {deposits} deposits ({entries} log entries) in {seconds:.1} s, {:.0} deposits/s",
        deposits as f64 / seconds
    );
    println!(
        "  resident memory added: {:.0} MiB ({:.0} MiB anonymous, {:.0} MiB of mapped files); on disk: {:.1} MiB",
        mib(status_kib("VmRSS:"), before.0),
        mib(status_kib("RssAnon:"), before.1),
        mib(status_kib("RssFile:"), before.2),
        bytes_under(dir) as f64 / 1048576.0
    );
    Ok(index)
}

/// Runs every query through `index` in `mode` and prints the latency of the timed ones.
fn time_searches(
    index: &SearchIndex,
    reader: &Reader,
    mode: Mode,
    name: &str,
    queries: &[(String, Cid)],
) -> anyhow::Result<()> {
    let filters = Filters::default();
    for (text, _) in &queries[..WARMUP.min(queries.len())] {
        index.search(text, &filters, mode, LIMIT, reader)?;
    }
    let (mut times, mut hits, mut found) = (Vec::new(), 0, 0);
    for (text, cid) in &queries[WARMUP.min(queries.len())..] {
        let started = Instant::now();
        let result = index.search(text, &filters, mode, LIMIT, reader)?;
        times.push(started.elapsed());
        hits += result.len();
        found += usize::from(result.iter().any(|hit| hit.deposit.cid == *cid));
    }
    let searches = times.len().max(1) as f64;
    println!(
        "  search, {name:<6} {}; {:.1} hits each, the text a query came from among them in {:.0}%",
        latencies(&mut times),
        hits as f64 / searches,
        found as f64 * 100.0 / searches,
    );
    Ok(())
}

/// The exact vector scan a vector search makes, on its own: a query's dot product with every one
/// of `rows` stored unit vectors of 384 floats (all-MiniLM-L6-v2's width), and the 100 best kept.
/// The vectors are pseudo-random: the scan's cost does not depend on what they say.
fn time_scan(rows: usize, queries: usize) {
    const WIDTH: usize = 384;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let unit = |v: &mut [f32]| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
    };
    let mut values: Vec<f32> = (0..rows * WIDTH).map(|_| next()).collect();
    values.chunks_exact_mut(WIDTH).for_each(unit);
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let mut query: Vec<f32> = (0..WIDTH).map(|_| next()).collect();
        unit(&mut query);
        let started = Instant::now();
        let mut scored: Vec<(usize, f32)> =
            values.chunks_exact(WIDTH).map(|row| substrate_search::dot(row, &query)).enumerate().collect();
        let depth = 100.min(scored.len());
        if depth > 0 {
            scored.select_nth_unstable_by(depth - 1, |a, b| b.1.total_cmp(&a.1));
        }
        std::hint::black_box(&scored);
        times.push(started.elapsed());
    }
    println!(
        "  the exact vector scan alone, {rows} stored vectors of {WIDTH} floats (pseudo-random, unit length), best 100 kept: {}",
        latencies(&mut times)
    );
}

/// p50, p99, max and mean of `times`.
fn latencies(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len().max(1) as f64;
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {mean:.2} ms", at(0.5), at(0.99), at(1.0))
}

/// The bytes of the files under `dir`.
fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Text `n` of about `size` bytes, its words drawn by Zipf's law from the vocabulary.
fn zipf_text(n: usize, size: usize) -> Vec<u8> {
    drawn_words(n, size, |draw, text| {
        // V^u for u uniform in [0, 1) falls on r with probability ln((r + 1) / r) / ln V.
        let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
        word(VOCABULARY.powf(u) as u64 - 1, text);
    })
}

/// Appends the word of `rank` (from 0): the ranks in turn as every word of one syllable, then of
/// two, and so on, so that the commonest words are the shortest.
fn word(rank: u64, text: &mut String) {
    let base = SYLLABLES.len() as u64;
    let (mut rest, mut block, mut length) = (rank, base, 1);
    while rest >= block {
        rest -= block;
        block *= base;
        length += 1;
    }
    for _ in 0..length {
        text.push_str(SYLLABLES[(rest % base) as usize]);
        rest /= base;
    }
}

/// Query `q`: one to four words (in turn) of the text of a deposit that `q` picks, and that
/// text's CID.
fn query(q: usize, deposits: usize, size: usize) -> (String, Cid) {
    let mut state = (q as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let text = zipf_text((next() % deposits as u64) as usize, size);
    let words: Vec<&str> =
        std::str::from_utf8(&text).unwrap_or_default().split_whitespace().skip(2).collect();
    let chosen: Vec<&str> = (0..=q % 4)
        .filter_map(|_| words.get((next() % words.len().max(1) as u64) as usize).copied())
        .collect();
    (chosen.join(" "), Cid::of(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_by_rank() {
        let words: std::collections::BTreeSet<String> = (0..9000)
            .map(|rank| {
                let mut text = String::new();
                word(rank, &mut text);
                text
            })
            .collect();
        assert_eq!(words.len(), 9000);
    }

    #[test]
    fn texts_follow_zipf() {
        let text = String::from_utf8(zipf_text(7, 100_000)).expect("zipf text is ASCII");
        let count = |w: &str| text.split_whitespace().filter(|x| *x == w).count() as f64;
        // Rank 0 ("ka") about twice as often as rank 1 ("lo").
        let ratio = count("ka") / count("lo");
        assert!((1.5..2.7).contains(&ratio), "{ratio}");
    }
}
