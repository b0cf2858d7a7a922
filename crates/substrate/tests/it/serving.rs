//! The OpenAI-compatible routes through the real binary, on tiny models written in the real
//! formats: the answers are the models' own (the same vectors and tokens as `substrate embed` and
//! `substrate generate`), streaming gives the same text as not streaming, stop sequences cut,
//! every refusal has the OpenAI error shape, a full queue answers 429 with `Retry-After`, and a
//! client that goes away mid-stream frees its slot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Daemon, Http, Reply, ok, ok_stdin, path};

/// A node serving a tiny BERT and a tiny Llama, with `extra` arguments.
fn serving(dir: &Path, extra: &[&str]) -> (Daemon, String, String) {
    let data = dir.join("commons");
    ok(&["init", "--data-dir", path(&data), "--name", "Serving Test"]);
    let bert = tiny::bert(dir, 3).expect("tiny bert");
    let llama = tiny::llama(dir, 3, GgmlDType::Q8_0).expect("tiny llama");
    // Open: these tests are of the routes' shapes; what members pay is tested in `credits`.
    let mut args = vec![
        "--serve-models",
        "--embedding-model",
        path(&bert),
        "--generation-model",
        path(&llama.path),
        "--open-inference",
    ];
    args.extend_from_slice(extra);
    let daemon = Daemon::start_with(&data, dir, &args);
    (daemon, path(&bert).to_owned(), path(&llama.path).to_owned())
}

/// Requires an OpenAI-shaped error with `status` and `code`; returns its message.
fn openai_error(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "expected {status} {code}: {}", reply.body);
    let body = reply.json();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

/// The `data:` payloads of a server-sent event stream.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
}

/// A raw HTTP/1.1 POST, whose connection the caller may drop mid-answer.
fn raw_post(base: &str, route: &str, body: &Value) -> TcpStream {
    let addr = base.strip_prefix("http://").expect("http base");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let body = body.to_string();
    write!(
        stream,
        "POST {route} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    stream
}

/// The status line and headers of a raw answer; the body is left in `reader`.
fn head(reader: &mut impl BufRead) -> (u16, Vec<String>) {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        if line.trim().is_empty() {
            break;
        }
        lines.push(line.trim().to_owned());
    }
    let status = lines[0].split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, lines)
}

#[test]
fn embeddings_and_completions_are_the_models_own_in_the_openai_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, bert, llama) = serving(dir.path(), &[]);
    let http = node.http();
    let bert_id = Path::new(&bert).file_name().unwrap().to_string_lossy().into_owned();
    let llama_id = Path::new(&llama).file_stem().unwrap().to_string_lossy().into_owned();

    let models = http.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [bert_id.as_str(), llama_id.as_str()], "{models}");

    // Embeddings, as floats and as base64: both are what `substrate embed` gives.
    let texts = ["the bread rose overnight", "we sing at dawn"];
    let (local, _) = ok_stdin(&["embed", "--model", &bert], Some(texts.join("\n").as_bytes()));
    let local: Vec<Vec<f32>> = local.lines().map(|l| serde_json::from_str(l).expect("vector")).collect();
    let floats = http.post_json("/v1/embeddings", &json!({"model": bert_id, "input": texts}));
    assert_eq!(floats.status, 200, "{}", floats.body);
    let floats = floats.json();
    assert_eq!(floats["object"], "list");
    assert!(floats["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{floats}");
    // Batched with other texts, a text's vector differs from its own batch by float rounding only.
    let close =
        |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    let got: Vec<Vec<f32>> = floats["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).expect("floats"))
        .collect();
    assert!(
        got.iter().zip(&local).all(|(g, l)| close(g, l)) && got.len() == local.len(),
        "{got:?} against {local:?}"
    );
    let encoded = http.post_json(
        "/v1/embeddings",
        &json!({"model": bert_id, "input": texts[1], "encoding_format": "base64"}),
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.json()["data"][0]["embedding"].as_str().expect("base64"))
        .expect("base64 decodes");
    let decoded: Vec<f32> =
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert!(close(&decoded, &local[1]), "{decoded:?} against {:?}", local[1]);

    // A greedy chat completion is what `substrate generate` gives for the same message.
    let (generated, _) =
        ok(&["generate", "--model", &llama, "--prompt", "why sing at dawn?", "--max-tokens", "10", "--json"]);
    let generated: Value = serde_json::from_str(&generated).expect("json");
    let ask = json!({"model": llama_id, "messages": [{"role": "user", "content": "why sing at dawn?"}], "max_tokens": 10, "temperature": 0});
    let answer = http.post_json("/v1/chat/completions", &ask);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = answer.json();
    assert_eq!(answer["object"], "chat.completion");
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content").to_owned();
    assert_eq!(content, generated["text"].as_str().unwrap(), "{answer}");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["usage"]["completion_tokens"],
        generated["tokens"].as_array().unwrap().len(),
        "{answer}"
    );
    let finish = answer["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(["stop", "length"].contains(&finish), "{answer}");

    // Streaming gives the same text in chunks, the finish reason, the usage when asked, then [DONE].
    let mut streamed_ask = ask.clone();
    streamed_ask["stream"] = json!(true);
    streamed_ask["stream_options"] = json!({"include_usage": true});
    let stream = http.post_json("/v1/chat/completions", &streamed_ask);
    assert_eq!(stream.status, 200, "{}", stream.body);
    let events = events(&stream.body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{}", stream.body);
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk")).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, content);
    let finishes: Vec<&Value> =
        chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
    assert_eq!(finishes, [&json!(finish)], "{}", stream.body);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], answer["usage"]);

    // A stop sequence cuts the text before it.
    let cut_at = content.char_indices().nth(content.chars().count() / 2).map(|(i, _)| i).unwrap_or(0);
    let stop: String = content[cut_at..].chars().take(2).collect();
    if !stop.is_empty() && !content[..cut_at].contains(&stop) {
        let mut stopped = ask.clone();
        stopped["stop"] = json!([stop]);
        let answer = http.post_json("/v1/chat/completions", &stopped).json();
        assert_eq!(answer["choices"][0]["message"]["content"], content[..cut_at], "{answer}");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{answer}");
    }

    // A plain completion takes the prompt as it is.
    let completion = http.post_json(
        "/v1/completions",
        &json!({"model": llama_id, "prompt": "the tide", "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(completion.status, 200, "{}", completion.body);
    assert_eq!(completion.json()["object"], "text_completion");

    // Refusals, each in the OpenAI shape.
    openai_error(
        &http.post_json(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        404,
        "model_not_found",
    );
    openai_error(
        &http.post_json("/v1/embeddings", &json!({"model": llama_id, "input": "x"})),
        404,
        "model_not_found",
    );
    openai_error(&http.post("/v1/chat/completions", b"{not json"), 400, "invalid_json");
    openai_error(
        &http.post_json("/v1/chat/completions", &json!({"model": llama_id, "messages": []})),
        400,
        "missing_messages",
    );
    openai_error(
        &http.post_json(
            "/v1/chat/completions",
            &json!({"model": llama_id, "messages": [{"role": "wizard", "content": "hi"}]}),
        ),
        400,
        "invalid_message",
    );
    openai_error(
        &http.post_json(
            "/v1/chat/completions",
            &json!({"model": llama_id, "messages": [{"role": "user", "content": "hi"}], "temperature": 5}),
        ),
        400,
        "invalid_value",
    );
    openai_error(
        &http.post_json(
            "/v1/chat/completions",
            &json!({"model": llama_id, "messages": [{"role": "user", "content": "hi"}], "n": 2}),
        ),
        400,
        "unsupported_n",
    );
    let long = "the bread rose overnight ".repeat(40);
    let message = openai_error(
        &http.post_json(
            "/v1/chat/completions",
            &json!({"model": llama_id, "messages": [{"role": "user", "content": long}]}),
        ),
        400,
        "context_length_exceeded",
    );
    assert!(message.contains("context is 96"), "{message}");
    openai_error(
        &http.post_json("/v1/embeddings", &json!({"model": bert_id, "input": [[1, 2, 3]]})),
        400,
        "unsupported_input",
    );
    openai_error(
        &http
            .post_json("/v1/embeddings", &json!({"model": bert_id, "input": "x", "encoding_format": "int8"})),
        400,
        "invalid_encoding_format",
    );

    // The Ollama routes: the same models, the same text, newline-delimited JSON when streaming.
    let tags = http.get("/api/tags").json();
    let names: Vec<&str> =
        tags["models"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("{bert_id}:latest"), format!("{llama_id}:latest")], "{tags}");
    let ollama_ask = json!({"model": format!("{llama_id}:latest"), "messages": [{"role": "user", "content": "why sing at dawn?"}], "options": {"temperature": 0, "num_predict": 10}});
    let mut whole = ollama_ask.clone();
    whole["stream"] = json!(false);
    let whole = http.post_json("/api/chat", &whole);
    assert_eq!(whole.status, 200, "{}", whole.body);
    let whole = whole.json();
    assert_eq!(whole["message"]["content"], content, "{whole}");
    assert_eq!(whole["done"], true);
    let streamed = http.post_json("/api/chat", &ollama_ask);
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    let lines: Vec<Value> =
        streamed.body.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let text: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    assert_eq!(text, content);
    let last = lines.last().expect("lines");
    assert_eq!(
        (last["done"].clone(), last["eval_count"].clone()),
        (json!(true), whole["eval_count"].clone()),
        "{last}"
    );
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
    let embedded = http.post_json("/api/embed", &json!({"model": bert_id, "input": texts})).json();
    let vectors: Vec<Vec<f32>> = serde_json::from_value(embedded["embeddings"].clone()).expect("embeddings");
    assert!(vectors.iter().zip(&local).all(|(g, l)| close(g, l)), "{embedded}");
    let missing = http
        .post_json("/api/chat", &json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.json()["error"].as_str().is_some_and(|e| e.contains("not found")), "{}", missing.body);
    assert_eq!(http.get("/api/version").json()["version"].as_str().map(|v| v.split('.').count()), Some(3));
    assert_eq!(http.get("/health").status, 200, "the node stays up");
}

#[test]
fn a_full_queue_is_told_to_retry_and_a_client_that_leaves_frees_its_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, _, llama) = serving(dir.path(), &["--slots", "1", "--queue", "1"]);
    let http = node.http();
    let llama_id = Path::new(&llama).file_stem().unwrap().to_string_lossy().into_owned();
    let ask = json!({"model": llama_id, "messages": [{"role": "user", "content": "go"}], "max_tokens": 40, "temperature": 0});

    // Sixteen clients at once on one slot and a queue of one: those past the queue are told to
    // retry, with Retry-After; every other one gets its answer.
    let answers: Vec<(u16, Vec<String>, String)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let stream = raw_post(&http.base, "/v1/chat/completions", &ask);
                    let mut reader = BufReader::new(&stream);
                    let (status, headers) = head(&mut reader);
                    let mut body = String::new();
                    let _ = reader.read_to_string(&mut body);
                    (status, headers, body)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("client")).collect()
    });
    let refused: Vec<&(u16, Vec<String>, String)> =
        answers.iter().filter(|(status, _, _)| *status == 429).collect();
    assert!(
        !refused.is_empty(),
        "no request was refused: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|(status, _, _)| [200, 429].contains(status)), "{answers:?}");
    for (_, headers, body) in &refused {
        assert!(headers.iter().any(|h| h.eq_ignore_ascii_case("retry-after: 1")), "{headers:?}");
        assert!(body.contains("rate_limit_exceeded"), "{body}");
    }

    // A client that goes away mid-stream leaves the slot to the next one.
    let mut streaming = ask.clone();
    streaming["stream"] = json!(true);
    let holder = raw_post(&http.base, "/v1/chat/completions", &streaming);
    let mut reader = BufReader::new(&holder);
    let (status, _) = head(&mut reader);
    assert_eq!(status, 200);
    // The body is chunked: a chunk's size, then the event.
    let mut first = String::new();
    while !first.starts_with("data: ") {
        first.clear();
        assert!(reader.read_line(&mut first).expect("the first event") > 0, "the stream ended");
    }
    drop(reader);
    drop(holder);
    let start = Instant::now();
    loop {
        let reply = Http::new(&http.base).post_json("/v1/chat/completions", &ask);
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert!(start.elapsed() < Duration::from_secs(20), "the slot was not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http.get("/health").status, 200);
}

#[test]
fn a_node_without_models_says_so_in_the_openai_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("commons");
    ok(&["init", "--data-dir", path(&data), "--name", "No Models"]);
    let node = Daemon::start(&data, dir.path());
    let http = node.http();
    assert_eq!(http.get("/v1/models").json()["data"], json!([]));
    let message = openai_error(
        &http.post_json("/v1/embeddings", &json!({"model": "all-MiniLM-L6-v2", "input": "x"})),
        404,
        "model_not_found",
    );
    assert!(message.contains("--serve-models"), "{message}");
}
