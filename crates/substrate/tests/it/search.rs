//! Retrieval through the real binary: `serve --search` finds only what consent lets be found,
//! filters narrow it, a withdrawn text is gone from every search started after its receipt, the
//! index survives SIGKILL and goes on from its last commit, vectors from a tiny BERT rank as the
//! model's own embeddings do and fuse with BM25 by reciprocal rank, and every refusal is
//! `{error, detail}` saying what to do.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use substrate_core::event::{ConsentChange, Event, Withdrawal};
use substrate_core::{Cid, ConsentTier, SignedEvent};
use substrate_models::tiny;

mod answers;
mod members;

use crate::util::{
    Commons, Daemon, Http, deposit_event, did, envelope_json, fails, new_key, ok, ok_stdin, path, segment,
};

/// What a deposit says of itself, besides its text.
#[derive(Clone, Copy)]
struct Text<'a> {
    title: &'a str,
    body: &'a str,
    register: &'a str,
    /// Registers the text is also in.
    secondary: &'a [&'a str],
    language: &'a str,
    consent: ConsentTier,
}

impl<'a> Text<'a> {
    /// A public narrative text in English.
    fn public(title: &'a str, body: &'a str) -> Text<'a> {
        Text {
            title,
            body,
            register: "narrative",
            secondary: &[],
            language: "en",
            consent: ConsentTier::Public,
        }
    }
}

/// Deposits `text` signed by `key`; returns its CID.
fn deposit(http: &Http, key: &SigningKey, text: &Text) -> Cid {
    let bytes = text.body.as_bytes();
    let Event::Deposit(mut deposit) = deposit_event(bytes, text.register, text.consent) else {
        unreachable!("deposit_event makes a deposit")
    };
    deposit.title = text.title.to_owned();
    deposit.language = text.language.to_owned();
    deposit.secondary_registers =
        text.secondary.iter().map(|r| substrate_core::Register::new(r).expect("a register")).collect();
    http.deposit(&SignedEvent::sign(Event::Deposit(deposit), key), bytes);
    Cid::of(bytes)
}

/// Posts a signed event other than a deposit; requires 201.
fn post_event(http: &Http, event: Event, key: &SigningKey) {
    let signed = SignedEvent::sign(event, key);
    let reply = http.post_json("/v1/events", &json!({ "envelope": envelope_json(&signed.envelope) }));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

fn withdraw(http: &Http, key: &SigningKey, cid: &Cid) {
    let withdrawal = Withdrawal {
        cid: Some(cid.clone()),
        reason: Some("I take it back".into()),
        requested: "2026-01-02T00:00:00.000Z".into(),
    };
    post_event(http, Event::Withdrawal(withdrawal), key);
}

fn narrow(http: &Http, key: &SigningKey, cid: &Cid, consent: ConsentTier) {
    let change =
        ConsentChange { cid: Some(cid.clone()), consent, requested: "2026-01-02T00:00:00.000Z".into() };
    post_event(http, Event::ConsentChange(change), key);
}

/// `/v1/search` with `params`, each value percent-encoded.
fn search_path(params: &[(&str, &str)]) -> String {
    let query: Vec<String> =
        params.iter().map(|(name, value)| format!("{name}={}", segment(value))).collect();
    format!("/v1/search?{}", query.join("&"))
}

/// A search that must succeed; its answer.
fn search(http: &Http, params: &[(&str, &str)]) -> Value {
    let reply = http.get(&search_path(params));
    assert_eq!(reply.status, 200, "{}: {}", search_path(params), reply.body);
    reply.json()
}

fn hits(answer: &Value) -> &[Value] {
    answer["hits"].as_array().map(Vec::as_slice).unwrap_or_else(|| panic!("no hits array: {answer}"))
}

/// The CIDs found, each once.
fn found(answer: &Value) -> BTreeSet<String> {
    let cids: Vec<String> =
        hits(answer).iter().map(|h| h["cid"].as_str().expect("a hit's cid").to_owned()).collect();
    let set: BTreeSet<String> = cids.iter().cloned().collect();
    assert_eq!(set.len(), cids.len(), "a text found twice: {answer}");
    set
}

fn cids<'a>(of: impl IntoIterator<Item = &'a Cid>) -> BTreeSet<String> {
    of.into_iter().map(Cid::to_string).collect()
}

fn indexed(answer: &Value) -> u64 {
    answer["indexed"].as_u64().unwrap_or_else(|| panic!("no indexed count: {answer}"))
}

/// Polls `probe` until it holds, for at most 30 s.
fn until<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => assert!(Instant::now() < deadline, "gave up waiting for {what}; last: {last}"),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until `params` find exactly `expected`; returns that answer.
fn until_found(http: &Http, params: &[(&str, &str)], expected: &BTreeSet<String>) -> Value {
    until(&format!("{params:?} to find {} texts", expected.len()), || {
        let answer = search(http, params);
        if found(&answer) == *expected { Ok(answer) } else { Err(answer.to_string()) }
    })
}

/// Waits until the index has read the whole log as it is now.
fn until_caught_up(http: &Http) -> u64 {
    let size = http.log_size();
    until(&format!("the index to read the {size} entries of the log"), || {
        let answer = search(http, &[("q", "anything"), ("mode", "bm25")]);
        if indexed(&answer) >= size { Ok(indexed(&answer)) } else { Err(answer.to_string()) }
    })
}

/// An empty models directory, so that no default model (say from $SUBSTRATE_MODELS) is picked up.
fn no_models(dir: &Path) -> PathBuf {
    let empty = dir.join("no-models");
    std::fs::create_dir_all(&empty).expect("models dir");
    empty
}

/// A node keeping a BM25 index and no embedding model.
fn bm25_node(commons: &Commons) -> Daemon {
    let models = no_models(commons.tmp.path());
    Daemon::start_with(&commons.data, commons.tmp.path(), &["--search", "--serve-models-dir", path(&models)])
}

#[test]
fn consent_decides_what_is_found_and_filters_narrow_it() {
    let commons = Commons::init("Search Consent");
    let node = bm25_node(&commons);
    let http = node.http();

    // Texts sharing a rare word under every tier, each by a signer of its own, all at once.
    let texts = [
        Text::public("Quillwort on the heath", "quillwort grows where the heath floods in winter"),
        Text {
            register: "lyric",
            secondary: &["oral"],
            ..Text::public("A song of quillwort", "we sang of quillwort and the slow water")
        },
        Text {
            language: "fr",
            ..Text::public("Isoète", "la quillwort pousse au bord de l'étang, disait ma grand-mère")
        },
        Text {
            consent: ConsentTier::Commons,
            ..Text::public("Members' quillwort", "quillwort for members only, with sealedword commonsonly")
        },
        Text {
            consent: ConsentTier::TrainingOnly,
            ..Text::public(
                "Training quillwort",
                "quillwort to train on, never shown: sealedword trainingonly",
            )
        },
        Text {
            consent: ConsentTier::Local,
            ..Text::public("Local quillwort", "quillwort that never leaves this node: sealedword localonly")
        },
    ];
    let keys: Vec<SigningKey> = texts.iter().map(|_| new_key()).collect();
    let deposited: Vec<Cid> = std::thread::scope(|scope| {
        let threads: Vec<_> =
            texts.iter().zip(&keys).map(|(text, key)| scope.spawn(|| deposit(&http, key, text))).collect();
        threads.into_iter().map(|t| t.join().expect("depositor")).collect()
    });
    let public = cids(&deposited[..3]);

    // Only the public texts are found, even once the index has read every entry.
    let quillwort = [("q", "quillwort"), ("limit", "100")];
    until_found(&http, &quillwort, &public);
    let head = until_caught_up(&http);
    let answer = search(&http, &quillwort);
    assert_eq!(found(&answer), public, "{answer}");
    assert_eq!((answer["query"].clone(), answer["mode"].clone()), (json!("quillwort"), json!("bm25")));
    assert!(indexed(&answer) >= head, "{answer}");
    for word in ["sealedword", "commonsonly", "trainingonly", "localonly"] {
        assert!(hits(&search(&http, &[("q", word)])).is_empty(), "{word} is found");
    }

    // Each hit is the ledger's record of the text, with its BM25 rank and a passage around the word.
    for (text, (cid, key)) in texts.iter().zip(deposited.iter().zip(&keys)).take(3) {
        let hit = hits(&answer).iter().find(|h| h["cid"] == cid.to_string()).expect("the hit");
        let record = http.get(&format!("/v1/deposits/{cid}")).json()["deposit"].clone();
        assert_eq!(hit["handle"], record["handle"], "{hit}");
        assert_eq!(hit["title"], text.title);
        assert_eq!(hit["depositor"], did(key));
        assert_eq!(hit["register"], text.register);
        assert_eq!(hit["language"], text.language);
        assert_eq!(hit["license"], "CC-BY-4.0");
        assert_eq!(hit["consent"], "public");
        assert!(hit["ranks"]["bm25"].as_u64().is_some_and(|r| (1..=3).contains(&r)), "{hit}");
        assert_eq!(hit["ranks"]["vector"], Value::Null, "{hit}");
        assert!(hit["score"].as_f64().is_some_and(|s| s > 0.0), "{hit}");
        assert!(hit["snippet"].as_str().is_some_and(|s| s.contains("quillwort")), "{hit}");
    }
    let scores: Vec<f64> = hits(&answer).iter().map(|h| h["score"].as_f64().expect("score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not ranked by score: {scores:?}");

    // Filters narrow by register, language and depositor, alone and together.
    let only = |params: &[(&str, &str)]| {
        let mut all = vec![("q", "quillwort")];
        all.extend_from_slice(params);
        found(&search(&http, &all))
    };
    let one = |i: usize| cids([&deposited[i]]);
    assert_eq!(only(&[("register", "lyric")]), one(1));
    assert_eq!(only(&[("language", "fr")]), one(2));
    assert_eq!(only(&[("register", "narrative")]), cids([&deposited[0], &deposited[2]]));
    assert_eq!(only(&[("register", "narrative"), ("language", "en")]), one(0));
    assert_eq!(only(&[("depositor", &did(&keys[1]))]), one(1));
    assert_eq!(only(&[("depositor", &did(&keys[0])), ("register", "lyric")]), BTreeSet::new());
    // A text is found under its secondary registers too, and shows its primary one.
    assert_eq!(only(&[("register", "oral")]), one(1));
    let oral = search(&http, &[("q", "quillwort"), ("register", "oral")]);
    assert_eq!(hits(&oral)[0]["register"], "lyric", "{oral}");
    // The commons text's depositor has nothing public; a register with nothing in it finds nothing.
    assert_eq!(only(&[("depositor", &did(&keys[3]))]), BTreeSet::new());
    assert_eq!(only(&[("register", "sacred")]), BTreeSet::new());
    assert_eq!(hits(&search(&http, &[("q", "quillwort"), ("limit", "1")])).len(), 1);

    // The CLI prints each hit's title and handle; --json is the node's answer.
    let node_url = node.url.as_str();
    let (out, _) = ok(&["search", "quillwort", "--register", "lyric", "--node", node_url]);
    let lyric = search(&http, &[("q", "quillwort"), ("register", "lyric")])["hits"][0].clone();
    assert!(out.starts_with("1 text for \"quillwort\" (bm25, "), "{out}");
    assert!(out.contains(" 1. A song of quillwort  [lyric, en]"), "{out}");
    assert!(
        out.contains(&format!("    {}  by {}", lyric["handle"].as_str().expect("handle"), did(&keys[1]))),
        "{out}"
    );
    let (out, _) = ok(&["search", "quillwort", "--language", "fr", "--json", "--node", node_url]);
    let parsed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(found(&parsed), one(2), "{parsed}");
    let depositor = did(&keys[0]);
    let (out, _) =
        ok(&["search", "quillwort", "--depositor", &depositor, "--limit", "5", "--json", "--node", node_url]);
    let parsed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(found(&parsed), one(0), "{parsed}");

    // Narrowing a text's consent to `commons` takes it out of the results at once, and for good
    // once the index has read the change.
    narrow(&http, &keys[1], &deposited[1], ConsentTier::Commons);
    let rest = cids([&deposited[0], &deposited[2]]);
    assert_eq!(found(&search(&http, &quillwort)), rest);
    until_caught_up(&http);
    assert_eq!(found(&search(&http, &quillwort)), rest);
    assert_eq!(only(&[("register", "lyric")]), BTreeSet::new());
}

#[test]
fn a_withdrawn_text_is_not_found_by_any_search_started_after_its_receipt() {
    let commons = Commons::init("Search Withdrawals");
    let node = bm25_node(&commons);
    let http = node.http();

    // Four depositors, five public texts each, all sharing a word.
    let depositors: Vec<(SigningKey, Vec<Cid>)> = (0..4)
        .map(|d| {
            let key = new_key();
            let texts: Vec<Cid> = (0..5)
                .map(|n| {
                    let body = format!("marshwort by the dyke, told by depositor {d} in telling {n}");
                    deposit(&http, &key, &Text::public(&format!("Marshwort {d}.{n}"), &body))
                })
                .collect();
            (key, texts)
        })
        .collect();
    let all = cids(depositors.iter().flat_map(|(_, texts)| texts));
    let marshwort = [("q", "marshwort"), ("limit", "100")];
    until_found(&http, &marshwort, &all);

    // When each withdrawal's receipt came back.
    let withdrawn: Mutex<HashMap<String, Instant>> = Mutex::new(HashMap::new());
    let violations: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let searches_after = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let searchers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let http = Http::new(&http.base);
                    while !done.load(Ordering::SeqCst) {
                        let asked = Instant::now();
                        let answer = search(&http, &marshwort);
                        let withdrawn = withdrawn.lock().expect("withdrawn");
                        if withdrawn.values().any(|at| *at < asked) {
                            searches_after.fetch_add(1, Ordering::Relaxed);
                        }
                        for cid in found(&answer) {
                            if let Some(at) = withdrawn.get(&cid).filter(|at| **at < asked) {
                                violations.lock().expect("violations").push(format!(
                                    "{cid} found by a search started {:?} after its withdrawal's receipt",
                                    asked - *at
                                ));
                            }
                        }
                    }
                })
            })
            .collect();
        let withdrawers: Vec<_> = depositors
            .iter()
            .map(|(key, texts)| {
                let (withdrawn, violations, base) = (&withdrawn, &violations, &http.base);
                scope.spawn(move || {
                    let http = Http::new(base);
                    for cid in texts {
                        withdraw(&http, key, cid);
                        withdrawn.lock().expect("withdrawn").insert(cid.to_string(), Instant::now());
                        // Straight after the receipt, well before the index can have read it.
                        let answer = search(&http, &marshwort);
                        if found(&answer).contains(&cid.to_string()) {
                            violations
                                .lock()
                                .expect("violations")
                                .push(format!("{cid} found straight after its withdrawal's receipt"));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        for withdrawer in withdrawers {
            withdrawer.join().expect("withdrawer");
        }
        done.store(true, Ordering::SeqCst);
        for searcher in searchers {
            searcher.join().expect("searcher");
        }
    });
    let violations = violations.into_inner().expect("violations");
    assert!(violations.is_empty(), "{violations:#?}");
    let raced = searches_after.load(Ordering::Relaxed);
    assert!(raced >= 4, "only {raced} searches raced the withdrawals");

    // Nothing is left to find, before and after the index reads the withdrawals.
    assert_eq!(found(&search(&http, &marshwort)), BTreeSet::new());
    until_caught_up(&http);
    assert_eq!(found(&search(&http, &marshwort)), BTreeSet::new());
    // The node goes on indexing what comes after.
    let later = deposit(&http, &new_key(), &Text::public("Marshwort again", "marshwort after them all"));
    until_found(&http, &marshwort, &cids([&later]));
}

/// The position the index said it opened at, from the daemon's log.
fn opened_at(daemon: &Daemon) -> u64 {
    let log = daemon.log_text();
    // The log may be coloured: drop the escape sequences first.
    let mut plain = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    let line = plain.lines().find(|l| l.contains("search index open")).unwrap_or_else(|| panic!("{plain}"));
    let value = line.split("indexed=").nth(1).unwrap_or_else(|| panic!("{line}"));
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn the_index_survives_sigkill_and_goes_on_from_its_last_commit() {
    let commons = Commons::init("Search Restart");
    let node = bm25_node(&commons);
    let http = node.http();
    let key = new_key();
    let batch = |http: &Http, name: &str| -> Vec<Cid> {
        (0..8)
            .map(|n| {
                let body = format!("fenwort in the {name} batch, text number {n}");
                deposit(http, &key, &Text::public(&format!("Fenwort {name} {n}"), &body))
            })
            .collect()
    };
    let fenwort = [("q", "fenwort"), ("limit", "100")];

    let first = batch(&http, "first");
    let mut expected = cids(&first);
    let answer = until_found(&http, &fenwort, &expected);
    let committed = indexed(&answer);
    assert!(committed > 0, "{answer}");

    // More texts, and SIGKILL while the index may be reading them.
    let second = batch(&http, "second");
    expected.extend(cids(&second));
    node.kill();

    let node = bm25_node(&commons);
    let http = node.http();
    let opened = opened_at(&node);
    assert!(opened >= committed, "the index opened at {opened}, below the {committed} it had committed");
    let answer = search(&http, &fenwort);
    assert!(indexed(&answer) >= committed, "indexed went back: {answer}");
    assert!(cids(&first).is_subset(&found(&answer)), "the first batch is lost: {answer}");
    until_found(&http, &fenwort, &expected);

    // Texts after the restart are found too, and nothing twice.
    let third = batch(&http, "third");
    expected.extend(cids(&third));
    let answer = until_found(&http, &fenwort, &expected);
    assert_eq!(hits(&answer).len(), 24, "{answer}");
    let head = until_caught_up(&http);
    assert!(head > committed);

    // A second SIGKILL once everything is read: the index opens where it stopped.
    node.kill();
    let node = bm25_node(&commons);
    assert_eq!(opened_at(&node), head, "the index did not open at its last commit");
    assert_eq!(found(&search(&node.http(), &fenwort)), expected);
}

/// The tiny BERT's embeddings of `texts`, as `substrate embed` gives them.
fn embed(model: &Path, texts: &[&str]) -> Vec<Vec<f32>> {
    let (out, _) = ok_stdin(&["embed", "--model", path(model)], Some(texts.join("\n").as_bytes()));
    out.lines().map(|l| serde_json::from_str(l).expect("a vector")).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Texts in the tiny BERT's vocabulary, in two registers.
const STORIES: [(&str, &str); 6] = [
    ("narrative", "the story of the kitchen table"),
    ("narrative", "the teacher asks the class why"),
    ("narrative", "a story of a teacher"),
    ("lyric", "we sing at dawn"),
    ("lyric", "the song we sing at the table"),
    ("lyric", "songs of dawn, songs of the class"),
];

/// Deposits [`STORIES`] (public) and one training-only text; returns the public CIDs in order.
fn deposit_stories(http: &Http) -> Vec<Cid> {
    let key = new_key();
    let hidden = Text {
        consent: ConsentTier::TrainingOnly,
        ..Text::public("Hidden", "the story we sing at dawn at the kitchen table")
    };
    deposit(http, &key, &hidden);
    STORIES
        .iter()
        .enumerate()
        .map(|(n, &(register, body))| {
            let title = format!("Story {n}");
            deposit(http, &key, &Text { register, ..Text::public(&title, body) })
        })
        .collect()
}

/// Requires vector-only hits ranked as the model's own vectors rank `query` against `bodies`.
fn ranked_as_the_model_does(answer: &Value, model: &Path, query: &str, bodies: &HashMap<String, &str>) {
    let hits = hits(answer);
    let mut texts = vec![query];
    texts.extend(hits.iter().map(|h| bodies[h["cid"].as_str().expect("cid")]));
    let vectors = embed(model, &texts);
    let similarity: Vec<f32> = vectors[1..].iter().map(|v| dot(&vectors[0], v)).collect();
    for (rank, hit) in hits.iter().enumerate() {
        assert_eq!(hit["ranks"]["vector"], rank + 1, "{answer}");
        assert_eq!(hit["ranks"]["bm25"], Value::Null, "{answer}");
        let score = hit["score"].as_f64().expect("score");
        assert!((score - 1.0 / (61.0 + rank as f64)).abs() < 1e-12, "not the fused rank: {hit}");
    }
    // Indexed in a batch, a text's vector differs from its own by float rounding only.
    assert!(
        similarity.windows(2).all(|w| w[0] + 1e-4 >= w[1]),
        "ranked {similarity:?} by the model's own vectors: {answer}"
    );
}

#[test]
fn vectors_rank_as_the_model_does_and_fuse_with_bm25() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commons = Commons::init("Search Vectors");
    let bert = tiny::bert(dir.path(), 3).expect("tiny bert");
    let node = Daemon::start_with(
        &commons.data,
        dir.path(),
        &["--serve-models", "--embedding-model", path(&bert), "--search"],
    );
    let http = node.http();
    let public = deposit_stories(&http);
    let bodies: HashMap<String, &str> =
        public.iter().zip(STORIES).map(|(cid, (_, body))| (cid.to_string(), body)).collect();
    let everything = cids(&public);

    // Vector search has no threshold: every public text is ranked, the training-only one never.
    let query = "why we sing";
    let vector = [("q", query), ("mode", "vector"), ("limit", "100")];
    let answer = until_found(&http, &vector, &everything);
    until_caught_up(&http);
    let answer = {
        let again = search(&http, &vector);
        assert_eq!(again["hits"], answer["hits"], "the same question ranks the same");
        again
    };
    assert_eq!(answer["mode"], "vector");
    ranked_as_the_model_does(&answer, &bert, query, &bodies);
    let lyric = search(&http, &[("q", query), ("mode", "vector"), ("register", "lyric")]);
    assert_eq!(found(&lyric), cids(&public[3..]), "{lyric}");
    ranked_as_the_model_does(&lyric, &bert, query, &bodies);

    // Hybrid is the default with a model: a text both rankings hold has both ranks, and every
    // score is the sum of its reciprocal ranks.
    let hybrid = search(&http, &[("q", "kitchen"), ("limit", "100")]);
    assert_eq!(hybrid["mode"], "hybrid");
    assert_eq!(found(&hybrid), everything, "{hybrid}");
    let kitchen =
        hits(&hybrid).iter().find(|h| h["cid"] == public[0].to_string()).expect("the kitchen story");
    assert_eq!(kitchen["ranks"]["bm25"], 1, "{hybrid}");
    assert!(kitchen["ranks"]["vector"].as_u64().is_some(), "{hybrid}");
    assert!(kitchen["snippet"].as_str().is_some_and(|s| s.contains("kitchen")), "{kitchen}");
    let rrf = |rank: &Value| rank.as_u64().map_or(0.0, |r| 1.0 / (60.0 + r as f64));
    let scores: Vec<f64> = hits(&hybrid).iter().map(|h| h["score"].as_f64().expect("score")).collect();
    for hit in hits(&hybrid) {
        let expected = rrf(&hit["ranks"]["bm25"]) + rrf(&hit["ranks"]["vector"]);
        assert!((hit["score"].as_f64().expect("score") - expected).abs() < 1e-12, "{hit}");
        assert!(hit["ranks"]["vector"].as_u64().is_some(), "every text has a vector: {hit}");
    }
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(
        hits(&hybrid)[0]["cid"],
        public[0].to_string(),
        "the one text both rankings hold comes first: {hybrid}"
    );
    // BM25 alone finds only the text with the word.
    let bm25 = search(&http, &[("q", "kitchen"), ("mode", "bm25")]);
    assert_eq!(found(&bm25), cids([&public[0]]), "{bm25}");
    assert_eq!(hits(&bm25)[0]["ranks"]["vector"], Value::Null);

    // The CLI asks for the mode it is given.
    let (out, _) = ok(&["search", query, "--mode", "vector", "--limit", "2", "--node", &node.url]);
    assert!(out.starts_with(&format!("2 texts for \"{query}\" (vector, ")), "{out}");
    let (out, _) =
        ok(&["search", query, "--mode", "vector", "--limit", "100", "--json", "--node", &node.url]);
    let parsed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(parsed["hits"], answer["hits"]);
}

#[test]
fn an_embedding_model_without_serving_still_searches_vectors_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commons = Commons::init("Search Vectors Unserved");
    let bert = tiny::bert(dir.path(), 5).expect("tiny bert");
    let args = ["--embedding-model", path(&bert), "--search"];
    let node = Daemon::start_with(&commons.data, dir.path(), &args);
    let http = node.http();
    // The model is loaded for the index, not served.
    assert_eq!(http.get("/v1/models").json()["data"], json!([]));
    let public = deposit_stories(&http);
    let everything = cids(&public);
    let vector = [("q", "the kitchen song"), ("mode", "vector"), ("limit", "100")];
    let before = until_found(&http, &vector, &everything);
    until_caught_up(&http);
    assert_eq!(search(&http, &[("q", "dawn")])["mode"], "hybrid");

    // After SIGKILL the vectors come back from the index itself, before any catching up.
    node.kill();
    let node = Daemon::start_with(&commons.data, dir.path(), &args);
    let after = search(&node.http(), &vector);
    assert_eq!(after["hits"], before["hits"], "the vectors were not kept");
}

#[test]
fn texts_indexed_before_the_model_was_there_get_vectors_when_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commons = Commons::init("Search Model Arrives");
    let node = bm25_node(&commons);
    let public = deposit_stories(&node.http());
    until_caught_up(&node.http());
    node.stop();

    // The index was built without vectors; with a model it is rebuilt from the log.
    let bert = tiny::bert(dir.path(), 5).expect("tiny bert");
    let node = Daemon::start_with(&commons.data, dir.path(), &["--embedding-model", path(&bert), "--search"]);
    let vector = [("q", "the kitchen song"), ("mode", "vector"), ("limit", "100")];
    until_found(&node.http(), &vector, &cids(&public));
    assert!(node.log_text().contains("rebuilding the search index"), "{}", node.log_text());
}

#[test]
fn refusals_are_json_and_say_what_to_do() {
    // A node without --search has no index to offer.
    let plain = Commons::init("Search Off");
    let off = plain.start();
    let detail = off.http().get(&search_path(&[("q", "anything")])).error(404, "search_off");
    assert!(detail.contains("--search"), "{detail}");
    let err = fails(&["search", "anything", "--node", &off.url]);
    assert!(err.contains("search_off") && err.contains("--search"), "{err}");

    // A node with an index but no embedding model searches BM25 and says how to get vectors.
    let commons = Commons::init("Search Refusals");
    let node = bm25_node(&commons);
    let http = node.http();
    assert_eq!(search(&http, &[("q", "anything")])["mode"], "bm25");
    for mode in ["vector", "hybrid"] {
        let detail = http.get(&search_path(&[("q", "anything"), ("mode", mode)])).error(400, "bad_query");
        assert!(detail.contains("mode=bm25") && detail.contains("--embedding-model"), "{detail}");
    }
    let err = fails(&["search", "anything", "--mode", "vector", "--node", &node.url]);
    assert!(err.contains("bad_query") && err.contains("--embedding-model"), "{err}");

    let long = "w".repeat(1001);
    let bad_queries: [&[(&str, &str)]; 6] = [
        &[("q", "")],
        &[("q", "   ")],
        &[("q", &long)],
        &[("q", "x"), ("limit", "0")],
        &[("q", "x"), ("limit", "101")],
        &[("q", "x"), ("mode", "fuzzy")],
    ];
    for params in bad_queries {
        let detail = http.get(&search_path(params)).error(400, "bad_query");
        assert!(!detail.contains("w".repeat(100).as_str()), "the detail echoes the query: {detail}");
    }
    let bad_requests: [&[(&str, &str)]; 4] =
        [&[], &[("register", "lyric")], &[("q", "x"), ("page", "2")], &[("q", "x"), ("limit", "ten")]];
    for params in bad_requests {
        http.get(&search_path(params)).error(400, "bad_request");
    }
    // The bounds themselves are fine; so is a query of nothing but syntax.
    search(&http, &[("q", &"w".repeat(1000)), ("limit", "100")]);
    search(&http, &[("q", "x"), ("limit", "1")]);
    for odd in ["\"unclosed", "title:", "(((", "*", "AND OR NOT", "é😀"] {
        search(&http, &[("q", odd)]);
    }
    let err = fails(&["search", "x", "--limit", "0", "--node", &node.url]);
    assert!(err.contains("bad_query") && err.contains("limit runs from 1 to 100"), "{err}");
    assert_eq!(http.get("/health").status, 200, "the node stays up");
}
