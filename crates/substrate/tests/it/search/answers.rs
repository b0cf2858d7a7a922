//! Answers drawn from the commons: the OpenAI and Ollama chat routes ground an answer in the
//! passages found and cite them (in the last chunk or line when streaming), `substrate chat`
//! lists them, `audit answers` accounts for every quote, and every refusal has the route's shape.

use std::collections::HashMap;

use serde_json::{Value, json};
use substrate_core::Cid;
use substrate_models::tiny;

use super::{STORIES, cids, deposit_stories, until_found};
use crate::util::{Commons, Daemon, ok, path};

/// The citations of an answer: each quote is the span of its deposit's text it names, and each
/// names a public deposit with its record.
fn citations_hold(citations: &Value, bodies: &HashMap<String, &str>) -> usize {
    let citations = citations.as_array().unwrap_or_else(|| panic!("no citations: {citations}"));
    for (n, citation) in citations.iter().enumerate() {
        assert_eq!(citation["index"], n + 1, "{citation}");
        let body = bodies.get(citation["cid"].as_str().expect("cid")).unwrap_or_else(|| panic!("{citation}"));
        let (start, end) = (
            citation["span"]["start"].as_u64().expect("start") as usize,
            citation["span"]["end"].as_u64().expect("end") as usize,
        );
        assert_eq!(&body[start..end], citation["quote"], "{citation}");
        assert_eq!(citation["consent"], "public", "{citation}");
        for key in ["handle", "title", "depositor", "register", "license"] {
            assert!(citation[key].as_str().is_some_and(|v| !v.is_empty()), "{key}: {citation}");
        }
        assert!(citation["referenced"].is_boolean(), "{citation}");
    }
    citations.len()
}

#[test]
fn answers_drawn_from_the_commons_cite_what_they_were_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commons = Commons::init("Search Citations");
    let bert = tiny::bert(dir.path(), 5).expect("tiny bert");
    let llama = tiny::llama_with_context(dir.path(), 3, tiny::GgmlDType::Q8_0, 1024).expect("tiny llama");
    let model = llama.path.file_stem().expect("stem").to_string_lossy().into_owned();
    let args = [
        "--serve-models",
        "--embedding-model",
        path(&bert),
        "--generation-model",
        path(&llama.path),
        "--search",
        "--open-inference",
    ];
    let node = Daemon::start_with(&commons.data, dir.path(), &args);
    let http = node.http();
    let public = deposit_stories(&http);
    let bodies: HashMap<String, &str> =
        public.iter().map(Cid::to_string).zip(STORIES.iter().map(|s| s.1)).collect();
    until_found(&http, &[("q", "kitchen"), ("mode", "vector"), ("limit", "100")], &cids(&public));

    let ask = |extra: Value| {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the kitchen song"}],
            "max_tokens": 8,
            "temperature": 0,
        });
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        http.post_json("/v1/chat/completions", &body)
    };
    // Not streamed: the citations beside the choices, as many as asked for.
    let answer = ask(json!({"retrieval": {"k": 2}}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(citations_hold(&answer.json()["citations"], &bodies), 2);
    // The passages went before the model: the prompt is longer than without them.
    let plain = ask(json!({})).json();
    assert!(plain.get("citations").is_none(), "{plain}");
    assert!(
        answer.json()["usage"]["prompt_tokens"].as_u64() > plain["usage"]["prompt_tokens"].as_u64(),
        "{} vs {plain}",
        answer.body
    );
    // Filtered by register, only that register's texts are cited.
    let lyric = ask(json!({"retrieval": {"k": 8, "register": "lyric", "mode": "hybrid"}})).json();
    assert!(citations_hold(&lyric["citations"], &bodies) >= 1, "{lyric}");
    assert!(lyric["citations"].as_array().expect("list").iter().all(|c| c["register"] == "lyric"), "{lyric}");

    // Streamed: the chunk that ends the answer carries them, and only it.
    let streamed = ask(json!({"retrieval": true, "stream": true}));
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    let chunks: Vec<Value> = streamed
        .body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("a JSON chunk"))
        .collect();
    let with: Vec<&Value> = chunks.iter().filter(|c| c.get("citations").is_some()).collect();
    assert_eq!(with.len(), 1, "{}", streamed.body);
    assert!(with[0]["choices"][0]["finish_reason"].is_string(), "{}", streamed.body);
    assert_eq!(citations_hold(&with[0]["citations"], &bodies), 3);

    // The Ollama route takes the same field: the closing line carries the citations.
    let ollama = |stream: bool| {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "the kitchen song"}],
            "retrieval": {"k": 2},
            "stream": stream,
            "options": {"num_predict": 4, "temperature": 0},
        });
        let reply = http.post_json("/api/chat", &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let lines: Vec<Value> =
            reply.body.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        let with: Vec<&Value> = lines.iter().filter(|l| l.get("citations").is_some()).collect();
        assert_eq!(with.len(), 1, "{}", reply.body);
        assert_eq!(with[0]["done"], true, "{}", reply.body);
        citations_hold(&with[0]["citations"], &bodies)
    };
    assert_eq!(ollama(false), 2);
    assert_eq!(ollama(true), 2);
    let reply = http.post_json(
        "/api/chat",
        &json!({"model": model, "messages": [{"role": "user", "content": "x"}], "retrieval": {"k": 0}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["error"].as_str().is_some_and(|e| e.contains("retrieval.k")), "{}", reply.body);

    // The command line prints the answer, then where it was drawn from.
    let (out, _) =
        ok(&["chat", "the kitchen song", "--model", &model, "--max-tokens", "4", "--node", &node.url]);
    assert!(out.contains("drawn from:") && out.contains("[1] Story"), "{out}");
    // The audit asks each question and accounts for every quote; the JSON lists what it asked.
    let questions = dir.path().join("questions.txt");
    std::fs::write(&questions, "the kitchen song\n\nwhy we sing\n").expect("questions");
    let audit_args =
        ["audit", "answers", path(&questions), "--model", &model, "--max-tokens", "4", "--min-words", "2"];
    let (out, _) = ok(&[&audit_args[..], &["--node", &node.url]].concat());
    assert!(out.contains("answers to 2 questions") && out.contains("| answer citations |"), "{out}");
    let (out, _) = ok(&[&audit_args[..], &["--json", "--node", &node.url]].concat());
    let audit: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(audit["answers"].as_array().map(Vec::len), Some(2), "{audit}");
    assert_eq!(audit["answers"][0]["cited"].as_array().map(Vec::len), Some(3), "{audit}");
    assert_eq!(audit["stages"][1]["stage"], "answer text", "{audit}");

    // Refusals, in the OpenAI shape.
    for (extra, code) in [
        (json!({"retrieval": {"k": 0}}), "invalid_retrieval"),
        (json!({"retrieval": {"k": 9}}), "invalid_retrieval"),
        (json!({"retrieval": "yes"}), "invalid_retrieval"),
        (json!({"retrieval": {"depth": 2}}), "invalid_retrieval"),
        (json!({"retrieval": {"mode": "fuzzy"}}), "retrieval_unavailable"),
    ] {
        let reply = ask(extra.clone());
        assert_eq!(reply.status, 400, "{extra}: {}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["code"], code, "{extra}: {error}");
        assert_eq!(error["param"], "retrieval", "{error}");
    }
    let completion =
        http.post_json("/v1/completions", &json!({"model": model, "prompt": "x", "retrieval": true}));
    assert_eq!(completion.status, 400, "{}", completion.body);

    // A node that serves models but keeps no index says how to get one.
    let other = Commons::init("Search Citations Off");
    let off = Daemon::start_with(&other.data, dir.path(), &args[..5]);
    let reply = off.http().post_json(
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "retrieval": true}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("--search"), "{message}");
}
