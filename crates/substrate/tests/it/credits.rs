//! Inference paid for, through the real binary: a request that names nobody is refused, a
//! member's is answered as far as their commons floor and credits go and refused 402 past them
//! (saying what is left and when the floor refills), members asking at once are each charged
//! what they used, the tokens reach the log in aggregate as the node's `usage` entries, and a
//! node stopped between reports reports what it served before it goes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Daemon, Http, ok, path};

/// A key made by `substrate id new` in `dir`: its file and did.
fn person(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.json"));
    let (did, _) = ok(&["id", "new", "--key", path(&file)]);
    (file, did.trim().to_owned())
}

/// A POST with `token` as the bearer (none: anonymous): status, `Retry-After`, body.
fn post(url: &str, route: &str, token: Option<&str>, body: &Value) -> (u16, Option<String>, Value) {
    let mut request = ureq::post(&format!("{url}{route}")).timeout(Duration::from_secs(120));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.send_json(body.clone()) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("POST {route}: {e}"),
    };
    let status = response.status();
    let retry = response.header("Retry-After").map(str::to_owned);
    let text = response.into_string().expect("body");
    (status, retry, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

fn chat(model: &str, max_tokens: Option<u64>) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Tell the story of the kitchen table."}],
        "temperature": 0,
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

fn total_tokens(answer: &Value) -> u64 {
    answer["usage"]["total_tokens"].as_u64().unwrap_or_else(|| panic!("no usage in {answer}"))
}

/// The node's usage record once it holds `tokens`, or a panic after 30 s.
fn until_charged(http: &Http, tokens: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let usage = http.get("/v1/usage").json();
        let held =
            usage["nodes"].as_array().map_or(0, |n| n.iter().filter_map(|r| r["tokens"].as_u64()).sum());
        if held == tokens {
            return usage;
        }
        assert!(held < tokens, "the log charged more tokens ({held}) than were served ({tokens}): {usage}");
        assert!(Instant::now() < deadline, "the log holds {held} of the {tokens} tokens served: {usage}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn members_pay_for_inference_from_floor_then_credits_and_the_log_charges_what_they_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (steward, steward_did) = person(dir.path(), "steward");
    let (rich, rich_did) = person(dir.path(), "rich");
    let (poor, poor_did) = person(dir.path(), "poor");
    let (carol, carol_did) = person(dir.path(), "carol");
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", path(&data), "--name", "Paid Inference", "--steward", &steward_did]);
    let bert = tiny::bert(dir.path(), 3).expect("tiny bert");
    let llama = tiny::llama_with_context(dir.path(), 3, GgmlDType::Q8_0, 1024).expect("tiny llama");
    let model = llama.path.file_stem().expect("stem").to_string_lossy().into_owned();
    let embedder = bert.file_name().expect("name").to_string_lossy().into_owned();
    let serving = |every: &str| {
        let args = [
            "--serve-models",
            "--embedding-model",
            path(&bert),
            "--generation-model",
            path(&llama.path),
            "--usage-report-seconds",
            every,
        ];
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()
    };
    let args = serving("1");
    let node = Daemon::start_with(&data, dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let http = node.http();
    let url = node.url.clone();
    for did in [&rich_did, &poor_did, &carol_did] {
        ok(&["member", "attest", did, "--days", "30", "--key", path(&steward), "--node", &url]);
    }
    // Rich earns credits by depositing; poor and carol have only the floor.
    for n in 0..3 {
        let text = format!("A story of the kitchen table, number {n}.");
        let receipt = dir.path().join(format!("receipt-{n}.json"));
        crate::util::ok_stdin(
            &[
                "deposit",
                "--receipt",
                path(&receipt),
                "--register",
                "narrative",
                "--consent",
                "public",
                "--title",
                "Table",
                "--lang",
                "en",
                "--license",
                "CC-BY-4.0",
                "--key",
                path(&rich),
                "--node",
                &url,
            ],
            Some(text.as_bytes()),
        );
    }
    let token = |key: &Path| {
        ok(&["token", "new", "--label", "test", "--expires", "1d", "--key", path(key), "--node", &url])
            .0
            .trim()
            .to_owned()
    };
    let (rich_token, poor_token, carol_token) = (token(&rich), token(&poor), token(&carol));
    let credits = |did: &str| http.get(&format!("/v1/credits/{did}")).json();
    let rate = http.get("/v1/usage").json()["per1000Tokens"].as_u64().expect("the price");
    assert_eq!(rate, 1);

    // Nobody named: refused, in each API's shape, saying how to be someone.
    for route in ["/v1/chat/completions", "/v1/completions"] {
        let body = if route == "/v1/completions" {
            json!({"model": model, "prompt": "The kitchen", "max_tokens": 4})
        } else {
            chat(&model, Some(4))
        };
        let (status, _, refused) = post(&url, route, None, &body);
        assert_eq!(status, 401, "{refused}");
        assert_eq!(refused["error"]["code"], "member_required", "{refused}");
        assert_eq!(refused["error"]["type"], "authentication_error", "{refused}");
        let message = refused["error"]["message"].as_str().expect("message");
        assert!(message.contains("substrate token new") && message.contains("RFC 9421"), "{message}");
    }
    let (status, _, refused) = post(&url, "/v1/embeddings", None, &json!({"model": embedder, "input": "x"}));
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("member_required")), "{refused}");
    let (status, _, refused) =
        post(&url, "/api/generate", None, &json!({"model": model, "prompt": "hi", "stream": false}));
    assert_eq!(status, 401, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("API token")), "{refused}");

    // Poor has a floor of about a thousand tokens: a request that may use more is refused 402
    // with what is left; one that leaves the length to the node is shortened to what it pays.
    let floor = credits(&poor_did)["floorToday"].as_f64().expect("floor");
    assert!(floor > 0.0 && floor < 1.03, "{floor}");
    let (status, retry, refused) =
        post(&url, "/v1/chat/completions", Some(&poor_token), &chat(&model, Some(5000)));
    assert_eq!(status, 402, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_credits", "{refused}");
    assert_eq!(refused["error"]["credits"]["member"], poor_did.as_str(), "{refused}");
    assert_eq!(refused["error"]["credits"]["balance"], 0.0, "{refused}");
    assert!(
        refused["error"]["credits"]["floorRefills"].as_str().is_some_and(|t| t.ends_with("T00:00:00.000Z")),
        "{refused}"
    );
    let seconds: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=86_400).contains(&seconds), "{seconds}");
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(message.contains("max_tokens") && message.contains("floor refills"), "{message}");
    // Ollama's routes refuse in Ollama's shape, with the same Retry-After.
    let (status, ollama_retry, refused) = post(
        &url,
        "/api/generate",
        Some(&poor_token),
        &json!({"model": model, "prompt": "The kitchen", "stream": false, "options": {"num_predict": 5000}}),
    );
    assert_eq!(status, 402, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("floor refills")), "{refused}");
    let ollama_seconds: u64 = ollama_retry.expect("Retry-After on Ollama's 402").parse().expect("seconds");
    assert!(ollama_seconds.abs_diff(seconds) <= 2, "{ollama_seconds} and {seconds}");

    let mut served = 0;
    let (status, _, answer) = post(&url, "/v1/chat/completions", Some(&poor_token), &chat(&model, None));
    assert_eq!(status, 200, "{answer}");
    let used = total_tokens(&answer);
    assert!(used as f64 <= floor * 1000.0 + 0.5, "{used} tokens past a floor of {floor}");
    served += used;
    // What it used is held against poor before the log has it: a request for one token more
    // than is left is refused, though the log has not charged anything yet.
    let prompt = answer["usage"]["prompt_tokens"].as_u64().expect("prompt");
    let left = ((floor * 1000.0).round() as u64 / rate).saturating_sub(used);
    let over = (left + 1).saturating_sub(prompt).max(1);
    let (status, _, refused) =
        post(&url, "/v1/chat/completions", Some(&poor_token), &chat(&model, Some(over)));
    assert_eq!((status, refused["error"]["code"].as_str()), (402, Some("insufficient_credits")), "{refused}");

    // Two members asking at once are each answered and each charged what they used.
    let asks: Vec<_> = [&rich_token, &carol_token, &rich_token, &carol_token, &rich_token]
        .into_iter()
        .map(|token| {
            let (url, token, body) = (url.clone(), token.clone(), chat(&model, Some(24)));
            std::thread::spawn(move || post(&url, "/v1/chat/completions", Some(&token), &body))
        })
        .collect();
    for ask in asks {
        let (status, _, answer) = ask.join().expect("the request");
        assert_eq!(status, 200, "{answer}");
        served += total_tokens(&answer);
    }
    let (status, _, embedded) = post(
        &url,
        "/v1/embeddings",
        Some(&rich_token),
        &json!({"model": embedder, "input": ["we sing at dawn", "the bread rose"]}),
    );
    assert_eq!(status, 200, "{embedded}");
    served += embedded["usage"]["total_tokens"].as_u64().expect("usage");
    let (status, _, generated) = post(
        &url,
        "/api/generate",
        Some(&carol_token),
        &json!({"model": model, "prompt": "The kitchen", "stream": false, "options": {"num_predict": 8}}),
    );
    assert_eq!(status, 200, "{generated}");
    served += generated["prompt_eval_count"].as_u64().expect("prompt")
        + generated["eval_count"].as_u64().expect("eval");

    // The log charges exactly what was served, as the sequencer's own reports.
    let usage = until_charged(&http, served);
    let log_did = http.get("/v1/commons").json()["log_did"].as_str().expect("log did").to_owned();
    let record = &usage["nodes"][0];
    assert_eq!(record["node"], log_did.as_str(), "{usage}");
    assert_eq!(record["charged"].as_u64(), Some(served * rate), "{usage}");
    assert_eq!(record["unpaid"], 0, "{usage}");
    let statement = credits(&poor_did);
    let floor_now = statement["floorToday"].as_f64().expect("floor");
    assert!(floor_now <= floor - used as f64 / 1000.0 + 0.0005, "{floor} then {floor_now}: {statement}");
    assert_eq!(statement["balance"], 0.0, "{statement}");
    let rich_after = credits(&rich_did);
    // Rich's floor paid for what rich used; the credits rich earned wait for a longer day.
    assert_eq!(rich_after["balance"], 27.0, "{rich_after}");
    assert!(rich_after["floorToday"].as_f64().expect("floor") < floor, "{rich_after}");

    // Stopped between reports, the node reports what it served before it goes; restarted, it
    // numbers its reports on from the log.
    node.stop();
    let args = serving("3600");
    let node = Daemon::start_with(&data, dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let http = node.http();
    let (status, _, answer) =
        post(&node.url, "/v1/chat/completions", Some(&rich_token), &chat(&model, Some(6)));
    assert_eq!(status, 200, "{answer}");
    served += total_tokens(&answer);
    let reports = http.get("/v1/usage").json()["nodes"][0]["reports"].as_u64().expect("reports");
    node.stop();
    let node = Daemon::start_with(&data, dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let usage = until_charged(&node.http(), served);
    assert_eq!(usage["nodes"][0]["reports"].as_u64(), Some(reports + 1), "{usage}");
    node.stop();
    let replay = crate::util::run(&["ledger", "replay", "--check", "--data-dir", path(&data)], None);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
}
