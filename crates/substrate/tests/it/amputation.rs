//! CCNet's perplexity filter through the real binary, on a served commons: `audit amputation`
//! trains a 5-gram reference model on a corpus written here, sorts each register's eligible texts
//! into head, middle and tail, keeps every score where `GET /v1/deposits/{cid}?scores=ccnet` finds
//! it, and refuses a reference or thresholds it cannot use saying what is wrong and what to do;
//! `lm train` and `lm score` agree on a training sentence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use substrate_core::event::{Event, Withdrawal};
use substrate_core::{Cid, ConsentTier, SignedEvent};

use crate::util::{Commons, Http, deposit_event, envelope_json, fails, new_key, ok, ok_stdin, path};

/// Words in the chain's vocabulary; most are rare, so the reference has a long tail.
const VOCABULARY: usize = 40_000;

/// Successors each word has in the chain.
const SUCCESSORS: usize = 4;

/// One step in five jumps to any word, drawn by Zipf's law over the whole vocabulary.
const JUMP: f64 = 0.2;

/// The reference: 150 documents of 10 sentences, about 20,000 tokens, enough for every order's
/// counts of counts to give modified Kneser-Ney its discounts.
const DOCUMENTS: usize = 150;
const SENTENCES_PER_DOCUMENT: usize = 10;

/// Where the audit keeps the report for the API.
const SCORES_FILE: &str = "amputation/ccnet-scores.json";

/// SplitMix64: the same texts on every run and every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `range`.
    fn between(&mut self, range: std::ops::RangeInclusive<usize>) -> usize {
        range.start() + (self.next() % (range.end() - range.start() + 1) as u64) as usize
    }
}

/// The word with id `id`, in letters only (a digit would normalise to `0`): bijective base 26,
/// `a` … `z`, `aa` …
fn word(id: usize) -> String {
    let mut letters = Vec::new();
    let mut rest = id + 1;
    while rest > 0 {
        rest -= 1;
        letters.push(b'a' + (rest % 26) as u8);
        rest /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap()
}

/// A Markov chain over the vocabulary: each word is followed by one of its few successors, the
/// first twice as likely as the second and so on (Zipf), or now and then by any word at all.
struct Chain {
    /// Cumulative Zipf weights of the vocabulary, by rank.
    zipf: Vec<f64>,
    successors: Vec<[usize; SUCCESSORS]>,
    /// Cumulative Zipf weights of the successors.
    successor_weights: [f64; SUCCESSORS],
}

impl Chain {
    fn new(seed: u64) -> Chain {
        let mut total = 0.0;
        let zipf: Vec<f64> = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        let mut chain = Chain { zipf, successors: Vec::new(), successor_weights: [0.0; SUCCESSORS] };
        let mut rng = Rng(seed);
        chain.successors =
            (0..VOCABULARY).map(|_| std::array::from_fn(|_| chain.zipf_word(&mut rng))).collect();
        let mut total = 0.0;
        for (i, weight) in chain.successor_weights.iter_mut().enumerate() {
            total += 1.0 / (i + 1) as f64;
            *weight = total;
        }
        chain
    }

    fn zipf_word(&self, rng: &mut Rng) -> usize {
        let target = rng.unit() * self.zipf[VOCABULARY - 1];
        self.zipf.partition_point(|&c| c <= target).min(VOCABULARY - 1)
    }

    /// A sentence of 6 to 20 words walked along the chain, capitalised, with a full stop.
    fn sentence(&self, rng: &mut Rng) -> String {
        let mut current = self.zipf_word(rng);
        let mut words = vec![word(current)];
        for _ in 1..rng.between(6..=20) {
            current = match rng.unit() < JUMP {
                true => self.zipf_word(rng),
                false => {
                    let target = rng.unit() * self.successor_weights[SUCCESSORS - 1];
                    let pick = self.successor_weights.partition_point(|&c| c <= target).min(SUCCESSORS - 1);
                    self.successors[current][pick]
                }
            };
            words.push(word(current));
        }
        let mut sentence = words.join(" ");
        sentence[..1].make_ascii_uppercase();
        sentence.push('.');
        sentence
    }

    /// A document of `sentences` lines.
    fn document(&self, rng: &mut Rng, sentences: usize) -> String {
        (0..sentences).map(|_| self.sentence(rng) + "\n").collect()
    }
}

/// A document of `lines` lines of letter strings no chain walks: words of 5 to 9 random letters.
fn gibberish(rng: &mut Rng, lines: usize) -> String {
    let mut out = String::new();
    for _ in 0..lines {
        let words: Vec<String> = (0..rng.between(6..=20))
            .map(|_| (0..rng.between(5..=9)).map(|_| char::from(b'a' + rng.between(0..=25) as u8)).collect())
            .collect();
        out.push_str(&words.join(" "));
        out.push_str(".\n");
    }
    out
}

/// Writes `documents` documents walked along `chain` as `.txt` files into `dir`; returns them.
fn write_reference(dir: &Path, chain: &Chain, documents: usize, seed: u64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(seed);
    (0..documents)
        .map(|n| {
            let document = chain.document(&mut rng, SENTENCES_PER_DOCUMENT);
            std::fs::write(dir.join(format!("doc-{n:03}.txt")), &document).unwrap();
            document
        })
        .collect()
}

/// Deposits `text` in `register` and `language`, public, signed by `key`; returns its CID.
fn deposit(http: &Http, key: &SigningKey, text: &str, register: &str, language: &str) -> Cid {
    let Event::Deposit(mut deposit) = deposit_event(text.as_bytes(), register, ConsentTier::Public) else {
        unreachable!("deposit_event makes a deposit")
    };
    deposit.language = language.to_owned();
    http.deposit(&SignedEvent::sign(Event::Deposit(deposit), key), text.as_bytes());
    Cid::of(text.as_bytes())
}

fn withdraw(http: &Http, key: &SigningKey, cid: &Cid) {
    let withdrawal = Withdrawal {
        cid: Some(cid.clone()),
        reason: Some("I take it back".into()),
        requested: "2026-01-02T00:00:00.000Z".into(),
    };
    let signed = SignedEvent::sign(Event::Withdrawal(withdrawal), key);
    let reply = http.post_json("/v1/events", &json!({ "envelope": envelope_json(&signed.envelope) }));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// `audit amputation --data-dir DATA` then `extra`; its stdout parsed as JSON (with `--json`).
fn audit_json(commons: &Commons, extra: &[&str]) -> Value {
    let mut args = vec!["audit", "amputation", "--data-dir", path(&commons.data), "--json"];
    args.extend_from_slice(extra);
    let (stdout, stderr) = ok(&args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
}

/// `audit amputation --data-dir DATA` then `extra`, which must fail; its message.
fn audit_fails(commons: &Commons, extra: &[&str]) -> String {
    let mut args = vec!["audit", "amputation", "--data-dir", path(&commons.data)];
    args.extend_from_slice(extra);
    fails(&args)
}

fn scores_file(commons: &Commons) -> PathBuf {
    commons.data.join(SCORES_FILE)
}

/// A row's texts in the head, the middle and the tail.
fn buckets(row: &Value) -> [u64; 3] {
    std::array::from_fn(|b| row["texts"][b].as_u64().unwrap_or_else(|| panic!("texts[{b}] of {row}")))
}

fn count(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("no {field} in {value}"))
}

fn row<'a>(report: &'a Value, register: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["register"] == register)
        .unwrap_or_else(|| panic!("no row for {register} in {report}"))
}

/// The share of a row's scored texts in the tail.
fn tail_share(row: &Value) -> f64 {
    let [head, middle, tail] = buckets(row);
    tail as f64 / (head + middle + tail) as f64
}

/// Requires `xml` to be well-formed (every tag closed in order, attributes quoted, no bare `<` or
/// `&` in text) with a single root element named `root`; returns the text between the tags.
fn well_formed(xml: &str, root: &str) -> String {
    let mut open: Vec<&str> = Vec::new();
    let mut roots = Vec::new();
    let mut text = String::new();
    let mut rest = xml.trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>").expect("an unclosed XML declaration") + 2..];
    }
    while !rest.is_empty() {
        let Some(start) = rest.find('<') else {
            assert!(rest.trim().is_empty(), "text after the root element: {rest:?}");
            break;
        };
        let between = &rest[..start];
        for (i, _) in between.match_indices('&') {
            let entity = &between[i..between[i..].find(';').map_or(between.len(), |end| i + end + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity) || entity.starts_with("&#"),
                "a bare & in {between:?}"
            );
        }
        assert!(open.is_empty() || !between.contains('>'), "a bare > in {between:?}");
        assert!(!open.is_empty() || between.trim().is_empty(), "text outside the root: {between:?}");
        text.push_str(between);
        text.push(' ');
        rest = &rest[start..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->").expect("an unclosed comment") + 3..];
            continue;
        }
        // The tag ends at the first `>` outside a quoted attribute value.
        let mut quote = None;
        let end = rest
            .char_indices()
            .find(|&(_, c)| match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                    false
                }
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    false
                }
                None => c == '>',
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("an unclosed tag: {rest:.80}"));
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "</{name}> closes another element");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().unwrap_or_else(|| panic!("an empty tag <{tag}>"));
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c)),
            "a bad element name in <{tag}>"
        );
        let mut attributes = &tag[name.len()..];
        let mut names = BTreeSet::new();
        while !attributes.trim().is_empty() {
            let (attribute, value) =
                attributes.split_once('=').unwrap_or_else(|| panic!("an attribute with no value in <{tag}>"));
            assert!(names.insert(attribute.trim()), "attribute {} twice in <{tag}>", attribute.trim());
            let value = value.trim_start();
            let q = value.chars().next().filter(|c| *c == '"' || *c == '\'');
            let q = q.unwrap_or_else(|| panic!("an unquoted attribute in <{tag}>"));
            let close = value[1..].find(q).unwrap() + 1;
            assert!(!value[1..close].contains('<'), "a < in an attribute of <{tag}>");
            attributes = &value[close + 1..];
        }
        if open.is_empty() {
            roots.push(name);
        }
        if !self_closing {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
    assert_eq!(roots, [root], "the root elements");
    text
}

#[test]
fn the_audit_sorts_each_registers_texts_and_the_api_gives_each_its_bucket() {
    let commons = Commons::init("amputation commons");
    // The node serves throughout: the audit reads its data directory as training does.
    let daemon = commons.start();
    let http = daemon.http();
    let chain = Chain::new(1);
    let reference = commons.file("reference");
    let documents = write_reference(&reference, &chain, DOCUMENTS, 2);

    // Texts walked along the reference's chain, and texts of letters no chain walks.
    let mut rng = Rng(3);
    let key = new_key();
    let mut narrative: Vec<Cid> =
        (0..12).map(|_| deposit(&http, &key, &chain.document(&mut rng, 6), "narrative", "en")).collect();
    // One of the reference's own documents: the reference leaves it out.
    narrative.push(deposit(&http, &key, &documents[7], "narrative", "en-GB"));
    let lyric: Vec<Cid> =
        (0..12).map(|_| deposit(&http, &key, &gibberish(&mut rng, 6), "lyric", "en")).collect();
    let french = deposit(
        &http,
        &key,
        "Il était une fois une reine qui vivait au bord de la mer.\nElle chantait le soir.\n",
        "narrative",
        "fr",
    );
    let withdrawn = deposit(&http, &key, &chain.document(&mut rng, 6), "narrative", "en");
    withdraw(&http, &key, &withdrawn);
    let log_size = http.log_size();

    let svg = commons.file("amputation.svg");
    let model = commons.file("reference.arpa");
    let report = audit_json(
        &commons,
        &["--reference", path(&reference), "--svg", path(&svg), "--save-model", path(&model)],
    );

    // The reference: every document but the one the commons holds, 5-gram, large enough.
    let r = &report["reference"];
    assert_eq!((count(r, "documents"), count(r, "excluded")), (DOCUMENTS as u64 - 1, 1), "{r}");
    assert_eq!(count(r, "sentences"), ((DOCUMENTS - 1) * SENTENCES_PER_DOCUMENT) as u64, "{r}");
    assert!(count(r, "tokens") >= 10_000, "{r}");
    assert_eq!(count(r, "order"), 5, "{r}");
    assert_eq!(r["ngrams"].as_array().map(Vec::len), Some(5), "{r}");
    assert_eq!(r["discounts"].as_array().map(Vec::len), Some(5), "{r}");
    assert_eq!(count(&report, "log_size"), log_size, "the audit read the whole log");
    assert!(report.get("deposits").is_none(), "the printed report lists the deposits one by one");

    // Each row's buckets add up to its scored texts, and `all` adds up the rows.
    let head = report["head_cutoff"].as_f64().unwrap();
    let tail = report["tail_cutoff"].as_f64().unwrap();
    assert!(head < tail, "{report}");
    assert!(report["thresholds"].as_str().unwrap().contains("percentiles 30 and 60"), "{report}");
    let narrative_row = row(&report, "narrative");
    let lyric_row = row(&report, "lyric");
    assert_eq!(buckets(narrative_row).iter().sum::<u64>(), 13, "{narrative_row}");
    assert_eq!(count(narrative_row, "other_language"), 1, "the French text: {narrative_row}");
    assert_eq!(buckets(lyric_row).iter().sum::<u64>(), 12, "{lyric_row}");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "a row per register of a new commons: {report}");
    for row in rows.iter().filter(|r| !["narrative", "lyric"].contains(&r["register"].as_str().unwrap())) {
        assert_eq!(buckets(row), [0, 0, 0], "{row}");
        assert_eq!(count(row, "other_language") + count(row, "no_words"), 0, "{row}");
    }
    let all = &report["all"];
    for b in 0..3 {
        let texts: u64 = rows.iter().map(|r| buckets(r)[b]).sum();
        let tokens: u64 = rows.iter().map(|r| r["tokens"][b].as_u64().unwrap()).sum();
        assert_eq!(buckets(all)[b], texts, "all's texts[{b}]: {report}");
        assert_eq!(all["tokens"][b].as_u64().unwrap(), tokens, "all's tokens[{b}]: {report}");
    }
    for field in ["other_language", "no_words", "words", "oov"] {
        let sum: u64 = rows.iter().map(|r| count(r, field)).sum();
        assert_eq!(count(all, field), sum, "all's {field}: {report}");
    }
    assert_eq!(buckets(all).iter().sum::<u64>(), 25, "{all}");
    assert_eq!(report["other_languages"], json!({"fr": 1}), "{report}");

    // The percentiles cut the 25 scored texts 30/30/40; the chain's texts are the likely ones.
    assert!(buckets(all)[0] >= 7 && buckets(all)[2] >= 10, "{all}");
    assert!(
        tail_share(narrative_row) < tail_share(lyric_row),
        "CCNet drops as large a share of the chain's texts as of the gibberish:\n{narrative_row}\n{lyric_row}"
    );
    assert!(
        tail_share(narrative_row) <= 0.25 && tail_share(lyric_row) >= 0.5,
        "{narrative_row}\n{lyric_row}"
    );
    let median = |row: &Value| row["median_perplexity"].as_f64().unwrap();
    assert!(median(narrative_row) < median(lyric_row), "{narrative_row}\n{lyric_row}");
    let oov_rate = |row: &Value| count(row, "oov") as f64 / count(row, "words") as f64;
    assert!(oov_rate(narrative_row) < 0.2 && oov_rate(lyric_row) > 0.9, "{narrative_row}\n{lyric_row}");

    // The kept report holds every eligible deposit's score, and not the withdrawn one.
    let kept: Value = serde_json::from_slice(&std::fs::read(scores_file(&commons)).unwrap()).unwrap();
    let scored: BTreeMap<String, &Value> = kept["deposits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["cid"].as_str().unwrap().to_owned(), d))
        .collect();
    let eligible: BTreeSet<String> =
        narrative.iter().chain(&lyric).chain([&french]).map(Cid::to_string).collect();
    assert_eq!(scored.keys().cloned().collect::<BTreeSet<_>>(), eligible, "the kept scores' deposits");
    assert!(!scored.contains_key(&withdrawn.to_string()), "a withdrawn text was scored");
    assert_eq!(kept["rows"], report["rows"], "the kept report and the printed one differ");
    let fr = scored[&french.to_string()];
    assert_eq!(
        (&fr["covered"], &fr["perplexity"], &fr["bucket"]),
        (&json!(false), &Value::Null, &Value::Null)
    );

    // The chart: well-formed SVG naming each register with texts, and `all`.
    let chart = std::fs::read_to_string(&svg).unwrap();
    let words = well_formed(&chart, "svg");
    for register in ["narrative", "lyric", "all"] {
        assert!(words.split_whitespace().any(|w| w == register), "the chart does not name {register}");
    }

    // The API gives each deposit the bucket the report gave it.
    for cid in narrative.iter().chain(&lyric) {
        let answer = http.get(&format!("/v1/deposits/{cid}?scores=ccnet"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        let answer = answer.json();
        let ccnet = &answer["scores"]["ccnet"];
        let kept = scored[&cid.to_string()];
        assert_eq!(ccnet["scored"], true, "{ccnet}");
        assert_eq!(ccnet["bucket"], kept["bucket"], "{cid}: {ccnet}\n{kept}");
        assert_eq!(ccnet["perplexity"], kept["perplexity"], "{cid}: {ccnet}\n{kept}");
        assert_eq!(ccnet["dropped_by_ccnet"], kept["bucket"] == "tail", "{ccnet}");
        assert_eq!(ccnet["reason"], Value::Null, "{ccnet}");
        assert_eq!(ccnet["audit"]["log_size"], log_size, "{ccnet}");
        assert_eq!(ccnet["audit"]["head_cutoff"], report["head_cutoff"], "{ccnet}");
        assert_eq!(ccnet["audit"]["tail_cutoff"], report["tail_cutoff"], "{ccnet}");
        assert_eq!(ccnet["audit"]["reference"]["order"], 5, "{ccnet}");
        assert_eq!(answer["deposit"]["cid"], cid.to_string(), "{answer}");
    }
    let not_scored = |cid: &Cid| {
        let answer = http.get(&format!("/v1/deposits/{cid}?scores=ccnet"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        let ccnet = answer.json()["scores"]["ccnet"].clone();
        assert_eq!((&ccnet["scored"], &ccnet["bucket"]), (&json!(false), &Value::Null), "{cid}: {ccnet}");
        ccnet["reason"].as_str().unwrap_or_else(|| panic!("no reason: {ccnet}")).to_owned()
    };
    let reason = not_scored(&french);
    assert!(reason.contains("fr") && reason.contains("does not cover"), "{reason}");
    let reason = not_scored(&withdrawn);
    assert!(reason.contains("did not score"), "{reason}");
    // A text deposited after the audit: not scored, and the reason says how to score it.
    let late = deposit(&http, &key, &chain.document(&mut rng, 3), "narrative", "en");
    let reason = not_scored(&late);
    assert!(
        reason.contains(&format!("first {log_size} entries"))
            && reason.contains("did not score")
            && reason.contains("substrate audit amputation"),
        "{reason}"
    );
    let detail = http.get(&format!("/v1/deposits/{late}?scores=nope")).error(400, "unknown_scores");
    assert!(detail.contains("scores=nope") && detail.contains("scores=ccnet"), "{detail}");

    // `show --scores ccnet` prints the bucket.
    let (shown, _) = ok(&["show", &lyric[0].to_string(), "--scores", "ccnet", "--node", &daemon.url]);
    let line =
        shown.lines().find(|l| l.trim_start().starts_with("ccnet:")).unwrap_or_else(|| panic!("{shown}"));
    let bucket = scored[&lyric[0].to_string()]["bucket"].as_str().unwrap();
    assert!(line.contains(&format!(", {bucket} (")), "{line}");

    // The saved model, read back with the same cutoffs, scores and sorts every text the same.
    let (h, t) = (report["head_cutoff"].to_string(), report["tail_cutoff"].to_string());
    let again = audit_json(&commons, &["--reference-model", path(&model), "--cutoffs", &format!("{h},{t}")]);
    assert!(again["thresholds"].as_str().unwrap().contains("fixed perplexity cutoffs"), "{again}");
    assert_eq!(again["reference"]["ngrams"], report["reference"]["ngrams"], "{again}");
    assert_eq!(row(&again, "lyric"), lyric_row, "the model read back sorts the gibberish otherwise");
    // The late text is eligible now, and scored; every other text keeps its score and bucket.
    let rescored: Value = serde_json::from_slice(&std::fs::read(scores_file(&commons)).unwrap()).unwrap();
    assert_eq!(count(&rescored, "log_size"), log_size + 1, "{}", rescored["log_size"]);
    let mut cids = BTreeSet::new();
    for d in rescored["deposits"].as_array().unwrap() {
        let cid = d["cid"].as_str().unwrap();
        cids.insert(cid.to_owned());
        match scored.get(cid) {
            Some(before) => assert_eq!(
                (&d["perplexity"], &d["bucket"]),
                (&before["perplexity"], &before["bucket"]),
                "{d}\n{before}"
            ),
            None => assert!(cid == late.to_string() && d["perplexity"].is_f64(), "{d}"),
        }
    }
    assert_eq!(cids.len(), scored.len() + 1, "the second audit scored other deposits");
    assert!(cids.contains(&late.to_string()), "the late text was not scored the second time");
}

#[test]
fn before_any_audit_the_api_says_how_to_get_scores() {
    let commons = Commons::init("unaudited commons");
    let daemon = commons.start();
    let http = daemon.http();
    let text = "A text no audit has read.\n";
    let cid = deposit(&http, &new_key(), text, "narrative", "en");

    let detail = http.get(&format!("/v1/deposits/{cid}?scores=ccnet")).error(404, "no_ccnet_scores");
    assert!(detail.contains("has not run the amputation audit"), "{detail}");
    assert!(detail.contains("substrate audit amputation --data-dir"), "{detail}");
    let detail = http.get(&format!("/v1/deposits/{cid}?scores=nope")).error(400, "unknown_scores");
    assert!(detail.contains("scores=nope") && detail.contains("scores=ccnet"), "{detail}");
    // Without scores asked for, the deposit is there as ever, with no scores.
    let answer = http.get(&format!("/v1/deposits/{cid}"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json().get("scores").is_none(), "{}", answer.body);
    // A deposit that is not there is not found, scores or not.
    let other = Cid::of(b"never deposited");
    http.get(&format!("/v1/deposits/{other}?scores=ccnet")).error(404, "not_found");

    let err = fails(&["show", &cid.to_string(), "--scores", "ccnet", "--node", &daemon.url]);
    assert!(err.contains("no_ccnet_scores") || err.contains("has not run the amputation audit"), "{err}");
    assert!(err.contains("substrate audit amputation"), "{err}");
    assert!(!scores_file(&commons).exists(), "asking for scores wrote a scores file");
}

#[test]
fn audit_refusals_say_what_is_wrong_and_what_to_do() {
    let commons = Commons::init("refusing audit");
    let daemon = commons.start();
    let chain = Chain::new(1);
    let mut rng = Rng(5);
    for n in 0..3 {
        let register = ["narrative", "lyric", "oral"][n];
        deposit(&daemon.http(), &new_key(), &chain.document(&mut rng, 4), register, "en");
    }
    drop(daemon);
    let nothing_kept = |what: &str| {
        assert!(!scores_file(&commons).exists(), "{what}: the scores file was written");
    };

    // A reference of a few sentences.
    let few = commons.file("few");
    write_reference(&few, &chain, 2, 7);
    let err = audit_fails(&commons, &["--reference", path(&few)]);
    assert!(err.contains("too small") && err.contains("at least 10000 tokens"), "{err}");
    nothing_kept("a reference of a few sentences");

    // A reference large enough to estimate from, still too small to stand for a language.
    let small = commons.file("small");
    write_reference(&small, &chain, 40, 7);
    let err = audit_fails(&commons, &["--reference", path(&small)]);
    assert!(
        err.contains("the reference corpus has ")
            && err.contains("must stand for a language")
            && err.contains("give one of at least 10000 tokens"),
        "{err}"
    );
    nothing_kept("a reference under 10,000 tokens");

    // An empty reference directory.
    let empty = commons.file("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = audit_fails(&commons, &["--reference", path(&empty)]);
    assert!(
        err.contains(path(&empty))
            && err.contains("holds no .txt files")
            && err.contains("a directory of plain-text documents"),
        "{err}"
    );
    nothing_kept("an empty reference directory");

    // A model file that is not ARPA past its fifth line.
    let broken = commons.file("broken.arpa");
    std::fs::write(
        &broken,
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\nnot-a-number\t</s>\n-2\t<unk>\n\\end\\\n",
    )
    .unwrap();
    let err = audit_fails(&commons, &["--reference-model", path(&broken)]);
    assert!(
        err.contains(path(&broken))
            && err.contains("is not a usable ARPA model")
            && err.contains("line 6")
            && err.contains("`not-a-number` is not a number")
            && err.contains("`substrate lm train` writes one"),
        "{err}"
    );
    nothing_kept("a malformed ARPA file");

    // A 3-gram model where the 5-gram one is asked for.
    let corpus = commons.file("few.txt");
    std::fs::write(&corpus, chain.document(&mut rng, 30)).unwrap();
    let trigram = commons.file("trigram.arpa");
    let _ = ok(&[
        "lm",
        "train",
        path(&corpus),
        "--order",
        "3",
        "--out",
        path(&trigram),
        "--discount-fallback",
        "0.5,1,1.5",
    ]);
    let err = audit_fails(&commons, &["--reference-model", path(&trigram)]);
    assert!(
        err.contains(&format!("{} is a 3-gram model, not the 5-gram one asked for", path(&trigram)))
            && err.contains("pass --order 3"),
        "{err}"
    );
    nothing_kept("a 3-gram model");

    // Percentiles the wrong way round, with a reference that is fine.
    let reference = commons.file("reference");
    write_reference(&reference, &chain, DOCUMENTS, 2);
    let err = audit_fails(
        &commons,
        &["--reference", path(&reference), "--head-percentile", "70", "--tail-percentile", "60"],
    );
    assert!(
        err.contains("head (70) < tail (60)") && err.contains("CCNet's percentiles are 30 and 60"),
        "{err}"
    );
    nothing_kept("percentiles the wrong way round");
    // Cutoffs that are not finite, or not two of them.
    let err = audit_fails(&commons, &["--reference", path(&reference), "--cutoffs", "10,inf"]);
    assert!(err.contains("finite perplexities with 0 < HEAD < TAIL"), "{err}");
    let err = audit_fails(&commons, &["--reference", path(&reference), "--cutoffs", "10,20,30"]);
    assert!(err.contains("--cutoffs takes two perplexities, HEAD,TAIL, not 3"), "{err}");
    nothing_kept("bad cutoffs");
}

#[test]
fn lm_score_gives_each_token_of_a_training_sentence_a_finite_log10() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = Chain::new(1);
    let mut rng = Rng(11);
    let sentences: Vec<String> = (0..1_500).map(|_| chain.sentence(&mut rng)).collect();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, sentences.join("\n") + "\n").unwrap();
    let model = tmp.path().join("model.arpa");
    let (_, err) = ok(&["lm", "train", path(&corpus), "--order", "3", "--out", path(&model)]);
    assert!(err.contains("3-gram model of 1500 sentences"), "{err}");
    assert!(err.contains("order 3: discounts") && !err.contains("(fallback)"), "{err}");

    let unseen = "Zzqx qqzv.";
    let input = format!("{}\n{unseen}\n", sentences[0]);
    let (stdout, _) = ok_stdin(&["lm", "score", path(&model)], Some(input.as_bytes()));
    let rows: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "a JSON row per line:\n{stdout}");

    let seen = &rows[0];
    let tokens: Vec<&str> = seen["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let mut expected: Vec<String> =
        sentences[0].trim_end_matches('.').split(' ').map(str::to_lowercase).collect();
    expected.extend([".".to_owned(), "</s>".to_owned()]);
    assert_eq!(tokens, expected, "{seen}");
    let log10: Vec<f64> = seen["log10"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(log10.len(), tokens.len(), "{seen}");
    assert!(log10.iter().all(|p| p.is_finite() && *p < 0.0), "{seen}");
    let total = seen["total"].as_f64().unwrap();
    assert!((total - log10.iter().sum::<f64>()).abs() < 1e-4, "{seen}");
    let perplexity = seen["perplexity"].as_f64().unwrap();
    let expected_perplexity = 10f64.powf(-total / tokens.len() as f64);
    assert!((perplexity / expected_perplexity - 1.0).abs() < 1e-6, "{seen}");
    assert_eq!(seen["oov"], 0, "{seen}");
    assert_eq!(seen["ngram"].as_array().map(Vec::len), Some(tokens.len()), "{seen}");

    // Words the model never saw are counted, and still get a finite log10.
    let other = &rows[1];
    assert_eq!(other["oov"], 2, "{other}");
    assert!(
        other["log10"].as_array().unwrap().iter().all(|v| v.as_f64().is_some_and(f64::is_finite)),
        "{other}"
    );
    assert!(other["perplexity"].as_f64().unwrap() > perplexity, "{other}\n{seen}");
}
