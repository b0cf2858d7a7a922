//! The adapter registry through the real binary and a served commons: a decided mixture trains
//! an adapter that `train` records in the log and uploads; uploads that are not the adapter's own
//! files are refused whoever sends them; `pull` keeps only what verifies; a withdrawal marks the
//! adapter, `train --like` retrains without it, and replay checks every adapter's snapshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_core::event::Event;
use substrate_core::{ConsentTier, SignedEvent};
use substrate_models::tiny::{self, GgmlDType};

use crate::util::{Commons, Http, deposit_event, fails, field, new_key, ok, path};

const SETTINGS: [&str; 8] = ["--batch", "2", "--seq-len", "32", "--save-every", "4", "--rank", "4"];

struct Registry {
    commons: Commons,
    model: PathBuf,
    node_key: PathBuf,
    steward: PathBuf,
}

impl Registry {
    /// A commons whose one steward operates a registered node.
    fn new() -> Registry {
        let tmp = tempfile::tempdir().unwrap();
        let steward = tmp.path().join("steward.json");
        let (did, _) = ok(&["id", "new", "--key", path(&steward)]);
        let data = tmp.path().join("data");
        let (stdout, _) = ok(&[
            "init",
            "--data-dir",
            path(&data),
            "--name",
            "registry commons",
            "--voting-window",
            "3s",
            "--steward",
            did.trim(),
        ]);
        let vkey = field(&stdout, "log key:");
        let commons = Commons { tmp, data, vkey };
        let model = tiny::llama(commons.tmp.path(), 7, GgmlDType::F32).unwrap().path;
        let node_key = commons.data.join("node.key");
        ok(&["id", "new", "--kind", "node", "--key", path(&node_key)]);
        Registry { commons, model, node_key, steward }
    }

    fn train(&self, node: &str, out: &Path, steps: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "train",
            "--data-dir",
            path(&self.commons.data),
            "--model",
            path(&self.model),
            "--out",
            path(out),
            "--steps",
            steps,
            "--node",
            node,
        ];
        args.extend(SETTINGS);
        args.extend(extra);
        ok(&args)
    }
}

/// PUTs raw bytes.
fn put(http: &Http, route: &str, bytes: &[u8]) -> crate::util::Reply {
    let response = ureq::put(&format!("{}{route}", http.base))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(bytes);
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("PUT {route}: {e}"),
    };
    let status = response.status();
    crate::util::Reply { status, body: response.into_string().unwrap() }
}

fn adapter_id(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("adapter ")?.split_once(": recorded in the log")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no publication in:\n{stdout}"))
}

#[test]
fn a_decided_mixture_trains_an_adapter_that_the_registry_keeps_and_marks() {
    let r = Registry::new();
    let daemon = r.commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let steward = path(&r.steward);
    ok(&["node-register", "--node-key", path(&r.node_key), "--key", steward, "--node", node]);

    // Nine texts, each by its own depositor; the first one's key is kept to withdraw it later.
    let mut keys = Vec::new();
    for (n, register) in ["narrative", "oral", "sacred"].iter().cycle().take(9).enumerate() {
        let text =
            format!("Text {n} of the {register} kind: the bread rose while the river ran past the mill.");
        let key = new_key();
        http.deposit(
            &SignedEvent::sign(deposit_event(text.as_bytes(), register, ConsentTier::Public), &key),
            text.as_bytes(),
        );
        keys.push((key, substrate_core::Cid::of(text.as_bytes())));
    }
    // The commons gives sacred texts no weight this time.
    let (proposed, _) = ok(&[
        "propose",
        "--title",
        "Spoken and told",
        "--set-mixture",
        "narrative=0.5,oral=0.5",
        "--key",
        steward,
        "--node",
        node,
    ]);
    let id: String = proposed.split_whitespace().nth(1).unwrap().to_owned();
    ok(&["vote", &id, "yes", "--key", steward, "--node", node]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get("/v1/mixture").json()["current"].is_null() {
        assert!(Instant::now() < deadline, "the mixture was not decided");
        std::thread::sleep(Duration::from_millis(100));
    }
    let decision = http.get("/v1/mixture").json()["current"]["decision"].as_u64().unwrap();

    // Trained, recorded in the log and uploaded in one command.
    let out = r.commons.file("adapter");
    let (stdout, _) = r.train(node, &out, "12", &[]);
    let id = adapter_id(&stdout);
    assert!(stdout.contains(&format!("adapter {id}: 13 files on the node, complete")), "{stdout}");
    let listed = http.get("/v1/adapters").json();
    let adapter = &listed["adapters"][0];
    assert_eq!(
        (adapter["id"].as_u64(), adapter["decision"].as_u64()),
        (Some(id), Some(decision)),
        "{listed}"
    );
    assert_eq!(adapter["deposits"], 6, "sacred has no weight: {listed}");
    assert_eq!((adapter["filesComplete"].as_bool(), adapter["withdrawn"].as_u64()), (Some(true), Some(0)));
    let shown = http.get(&format!("/v1/adapters/{id}")).json();
    assert!(shown["card"].as_str().unwrap().starts_with("---\n"), "{shown}");
    assert_eq!(shown["attestation"]["predicateType"], "https://slsa.dev/provenance/v1", "{shown}");
    assert_eq!(shown["files"].as_array().map(Vec::len), Some(13), "{shown}");

    // Anyone may upload, so nothing but the adapter's own files is kept.
    let files = format!("/v1/adapters/{id}/files");
    put(&http, &format!("{files}/notes.txt"), b"hello").error(404, "not_an_adapter_file");
    put(&http, &format!("{files}/..%2Fescape"), b"x").error(404, "not_an_adapter_file");
    let readme = std::fs::read(out.join("README.md")).unwrap();
    assert_eq!(put(&http, &format!("{files}/README.md"), &readme).status, 200, "the same bytes again");
    let detail = put(&http, &format!("{files}/README.md"), b"# a better card").error(409, "already_stored");
    assert!(detail.contains("never changes"), "{detail}");
    http.get(&format!("/v1/adapters/{}", id + 100)).error(404, "unknown_adapter");
    http.get(&format!("{files}/nothing.bin")).error(404, "file_not_stored");

    // A second run, kept off the log, then published by hand with a hostile upload in between.
    let second = r.commons.file("second");
    let (stdout, _) = r.train(node, &second, "8", &["--no-publish"]);
    assert!(stdout.contains("not published (--no-publish)"), "{stdout}");
    let (_, node_signing) =
        substrate_core::identity::KeyFile::parse(&std::fs::read_to_string(&r.node_key).unwrap()).unwrap();
    let (_, publication) = substrate_training::registry::publication(&second, "by hand".into()).unwrap();
    let post = |event: Event, key: &ed25519_dalek::SigningKey| {
        let signed = SignedEvent::sign(event, key);
        http.post_json("/v1/events", &serde_json::json!({"envelope": signed.envelope}))
    };
    // Refusals first: an unregistered node, a root that is not the log's, a later snapshot.
    let detail = post(Event::Adapter(publication.clone()), &new_key()).error(403, "unregistered_node");
    assert!(detail.contains("substrate node-register"), "{detail}");
    let mut forged = publication.clone();
    forged.snapshot_root = "ab".repeat(32);
    let detail = post(Event::Adapter(forged), &node_signing).error(409, "snapshot_mismatch");
    assert!(detail.contains("recomputed from the log"), "{detail}");
    let (_, first) = substrate_training::registry::publication(&out, "again".into()).unwrap();
    post(Event::Adapter(first), &node_signing).error(409, "adapter_published");
    let logged = post(Event::Adapter(publication), &node_signing);
    assert_eq!(logged.status, 201, "{}", logged.body);
    let second_id = logged.json()["log_index"].as_u64().unwrap();
    let files = format!("/v1/adapters/{second_id}/files");
    let bytes = |name: &str| std::fs::read(second.join(name)).unwrap();
    put(&http, &format!("{files}/run.json"), &bytes("run.json")).error(409, "upload_order");
    put(&http, &format!("{files}/provenance.intoto.json"), &bytes("run.json")).error(422, "digest_mismatch");
    assert_eq!(
        put(&http, &format!("{files}/provenance.intoto.json"), &bytes("provenance.intoto.json")).status,
        201
    );
    let mut tampered = bytes("adapter_model.safetensors");
    *tampered.last_mut().unwrap() ^= 1;
    put(&http, &format!("{files}/adapter_model.safetensors"), &tampered).error(422, "digest_mismatch");
    put(&http, &format!("{files}/model.sig"), &bytes("model.sig")).error(409, "upload_order");
    let pulled = r.commons.file("pulled-early");
    let err = fails(&["adapters", "pull", &second_id.to_string(), "--out", path(&pulled), "--node", node]);
    assert!(
        err.contains("holds only part of adapter") && err.contains("substrate adapters publish"),
        "{err}"
    );
    // Publishing again finishes the upload; the log is not asked twice.
    let (stdout, _) =
        ok(&["adapters", "publish", path(&second), "--node-key", path(&r.node_key), "--node", node]);
    assert!(stdout.contains(&format!("adapter {second_id}: already in the log")), "{stdout}");
    assert!(stdout.contains("complete"), "{stdout}");

    // Pull keeps only what verifies.
    let pulled = r.commons.file("pulled");
    let (stdout, _) = ok(&["adapters", "pull", &id.to_string(), "--out", path(&pulled), "--node", node]);
    assert!(stdout.contains("signature and attestation verified"), "{stdout}");
    ok(&["adapters", "verify", path(&pulled), "--data-dir", path(&r.commons.data)]);
    let stored = r.commons.data.join("registry").join(id.to_string()).join("CONTRIBUTIONS.md");
    std::fs::write(&stored, "# nobody contributed").unwrap();
    let tampered_out = r.commons.file("pulled-tampered");
    let err = fails(&["adapters", "pull", &id.to_string(), "--out", path(&tampered_out), "--node", node]);
    assert!(err.contains("does NOT verify; nothing was kept") && err.contains("CONTRIBUTIONS.md"), "{err}");
    assert!(!tampered_out.exists(), "a pull that does not verify kept {}", tampered_out.display());

    // A contributor withdraws a text the adapter was trained on: the registry marks it.
    let (key, cid) = &keys[0];
    let withdraw = SignedEvent::sign(
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(cid.clone()),
            reason: None,
            requested: "now".into(),
        }),
        key,
    );
    let withdrawn = http.post_json("/v1/events", &serde_json::json!({"envelope": withdraw.envelope}));
    assert_eq!(withdrawn.status, 201, "{}", withdrawn.body);
    let at = withdrawn.json()["log_index"].as_u64().unwrap();
    let (shown, _) = ok(&["adapters", "show", &id.to_string(), "--json", "--node", node]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let marks = shown["withdrawals"].as_array().unwrap();
    assert_eq!(marks.len(), 1, "{shown}");
    assert_eq!(
        (marks[0]["cid"].as_str(), marks[0]["status"].as_str(), marks[0]["since"].as_u64()),
        (Some(cid.to_string().as_str()), Some("withdrawn"), Some(at))
    );
    let (text, _) = ok(&["adapters", "show", &id.to_string(), "--node", node]);
    assert!(
        text.contains("withdrawals: 1 deposit of its snapshot gone")
            && text.contains(&format!("train --like {id}")),
        "{text}"
    );

    // Retraining like it leaves the withdrawn text out and keeps its settings.
    let like = r.commons.file("like");
    let (stdout, stderr) = r.train(node, &like, "99", &["--like", &id.to_string()]);
    assert!(stderr.contains(&format!("like adapter {id}: decision {decision}")), "{stderr}");
    let record: Value = serde_json::from_slice(&std::fs::read(like.join("run.json")).unwrap()).unwrap();
    let original: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        record["hyperparameters"]["steps"], original["hyperparameters"]["steps"],
        "--like keeps its settings"
    );
    let cids: Vec<&str> =
        record["contributions"].as_array().unwrap().iter().filter_map(|c| c["cid"].as_str()).collect();
    assert_eq!(cids.len(), 5, "{record}");
    assert!(!cids.contains(&cid.to_string().as_str()), "the withdrawn text was trained on again");
    adapter_id(&stdout);

    // Replay recomputes every adapter's snapshot.
    daemon.stop();
    let replay = r.commons.replay("--check");
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));

    // Served: the registry's adapters for this base model are models of the OpenAI routes.
    let empty = r.commons.file("no-models");
    std::fs::create_dir_all(&empty).unwrap();
    let serving = [
        "--serve-models",
        "--generation-model",
        path(&r.model),
        "--serve-models-dir",
        path(&empty),
        "--open-inference",
    ];
    let daemon =
        crate::util::Daemon::start_with(&r.commons.data, r.commons.file("logs").parent().unwrap(), &serving);
    let http = daemon.http();
    let base = r.model.file_stem().unwrap().to_string_lossy().into_owned();
    let listed: Vec<String> = http.get("/v1/models").json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let named = format!("adapter-{id}");
    assert!(listed.contains(&base) && listed.contains(&named), "{listed:?}");
    let ask = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"messages": [{"role": "user", "content": "the bread"}], "max_tokens": 6, "temperature": 0});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        http.post_json("/v1/chat/completions", &body)
    };
    let by_name = ask(serde_json::json!({"model": named}));
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    assert_eq!(by_name.json()["model"], named.as_str());
    // llama-server's per-request field names the same adapter on the base model.
    let by_lora = ask(serde_json::json!({"model": base, "lora": [{"id": id, "scale": 1}]}));
    assert_eq!(by_lora.status, 200, "{}", by_lora.body);
    assert_eq!(
        by_lora.json()["choices"][0]["message"]["content"],
        by_name.json()["choices"][0]["message"]["content"],
        "the same adapter, named two ways"
    );
    for (extra, status, code) in [
        (serde_json::json!({"model": "adapter-999999"}), 404, "model_not_found"),
        (serde_json::json!({"model": base, "lora": [{"id": id, "scale": 0.5}]}), 400, "invalid_lora"),
        (serde_json::json!({"model": base, "lora": [{"id": id}, {"id": id}]}), 400, "invalid_lora"),
    ] {
        let reply = ask(extra.clone());
        assert_eq!(reply.status, status, "{extra}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], code, "{extra}: {}", reply.body);
    }
    let ollama = http.post_json(
        "/api/chat",
        &serde_json::json!({"model": named, "messages": [{"role": "user", "content": "the bread"}], "stream": false, "options": {"num_predict": 6, "temperature": 0}}),
    );
    assert_eq!(ollama.status, 200, "{}", ollama.body);
    let tags = http.get("/api/tags").json();
    let tagged: Vec<&str> =
        tags["models"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(tagged.contains(&format!("{named}:latest").as_str()), "{tags}");
    let shown = http.post_json("/api/show", &serde_json::json!({"model": named}));
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json()["capabilities"], serde_json::json!(["completion"]), "{}", shown.body);
    assert_eq!(
        ollama.json()["message"]["content"],
        by_name.json()["choices"][0]["message"]["content"],
        "the Ollama route serves the same adapter"
    );
    daemon.stop();
}
