//! The model commands through the real binary, on tiny models written in the real formats:
//! embed, generate, finetune, an adapter applied and refused, and a fine-tuning run killed with
//! SIGKILL that resumes to the adapter an unbroken run makes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use substrate_models::tiny::{self, GgmlDType};

use crate::util::{command, fails, ok, ok_stdin, path};

/// `finetune --model MODEL --data DATA --out OUT`, then `rest`.
fn finetune<'a>(model: &'a str, data: &'a Path, out: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    [&["finetune", "--model", model, "--data", path(data), "--out", path(out)][..], rest].concat()
}

fn training_data(dir: &Path) -> std::path::PathBuf {
    let mut lines = String::new();
    for i in 0..30 {
        lines.push_str(&serde_json::json!({"text": format!("the kitchen table story {i}: the bread, the salt, the table."), "source": "narrative"}).to_string());
        lines.push('\n');
        lines.push_str(&serde_json::json!({"text": format!("we sing at dawn, we sing at dusk, we sing {i} times."), "source": "sacred"}).to_string());
        lines.push('\n');
    }
    let file = dir.join("texts.jsonl");
    std::fs::write(&file, lines).unwrap();
    file
}

#[test]
fn embed_generate_and_finetune_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let bert = tiny::bert(dir.path(), 1).unwrap();
    let (out, err) =
        ok_stdin(&["embed", "--model", path(&bert)], Some(b"the story\nwe sing at dawn\na song\n"));
    let vectors: Vec<Vec<f32>> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 32));
    assert!(err.contains("embedded 3 texts"), "{err}");

    let llama = tiny::llama(dir.path(), 1, GgmlDType::Q8_0).unwrap();
    let model = path(&llama.path);
    let args = [
        "generate",
        "--model",
        model,
        "--prompt",
        "why sing at dawn?",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--json",
    ];
    let (out, err) = ok(&args);
    let base: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(base["tokens"].as_array().unwrap().len(), 8);
    assert!(err.contains("generated 8 tokens"), "{err}");
    // Streaming prints the same text as the JSON reports.
    let (streamed, _) = ok(&args[..args.len() - 1]);
    assert_eq!(streamed.trim_end_matches('\n'), base["text"].as_str().unwrap());

    let data = training_data(dir.path());
    let adapter = dir.path().join("adapter");
    let (out, err) = ok(&finetune(
        model,
        &data,
        &adapter,
        &[
            "--steps",
            "20",
            "--seq-len",
            "24",
            "--rank",
            "4",
            "--lr",
            "0.01",
            "--save-every",
            "5",
            "--weight",
            "sacred=2",
        ],
    ));
    assert_eq!(out.trim(), path(&adapter));
    assert!(err.contains("held-out loss") && err.contains("step    20/20"), "{err}");
    assert!(
        adapter.join("adapter_model.safetensors").exists() && adapter.join("adapter_config.json").exists()
    );

    let with = ok(&[&args[..], &["--adapter", path(&adapter)]].concat()).0;
    let with: serde_json::Value = serde_json::from_str(&with).unwrap();
    assert_eq!(with["prompt_tokens"], base["prompt_tokens"]);
    assert_eq!(with["tokens"].as_array().unwrap().len(), 8);

    // The adapter names its base model: another model refuses it.
    let other = tiny::llama(dir.path(), 2, GgmlDType::Q8_0).unwrap();
    let err =
        fails(&["generate", "--model", path(&other.path), "--prompt", "hi", "--adapter", path(&adapter)]);
    assert!(err.contains("was trained on a base model with sha256"), "{err}");

    // Bad input says what to do.
    let err = fails(&["generate", "--model", path(&dir.path().join("none.gguf")), "--prompt", "hi"]);
    assert!(err.contains("substrate models fetch"), "{err}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let nowhere = dir.path().join("x");
    let err = fails(&finetune(model, &empty, &nowhere, &[]));
    assert!(err.contains("no training texts"), "{err}");
    let err = fails(&finetune(model, &data, &nowhere, &["--weight", "sacred"]));
    assert!(err.contains("SOURCE=WEIGHT"), "{err}");
}

#[test]
fn a_finetune_killed_mid_run_resumes_to_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let llama = tiny::llama(dir.path(), 3, GgmlDType::F32).unwrap();
    let data = training_data(dir.path());
    let run = |out: &Path| -> Vec<String> {
        let rest = ["--steps", "400", "--seq-len", "24", "--rank", "4", "--save-every", "5"];
        finetune(path(&llama.path), &data, out, &rest).into_iter().map(str::to_owned).collect()
    };
    let whole = dir.path().join("whole");
    let args = run(&whole);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let parted = dir.path().join("parted");
    let args = run(&parted);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while !parted.join("checkpoint.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint after a minute");
        std::thread::sleep(Duration::from_millis(5));
    }
    // `Child::kill` sends SIGKILL: no chance to write anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!parted.join("adapter_model.safetensors").exists(), "the run finished before it was killed");

    let (_, err) = ok(&args);
    assert!(err.contains("resuming from"), "{err}");
    let a = std::fs::read(whole.join("adapter_model.safetensors")).unwrap();
    let b = std::fs::read(parted.join("adapter_model.safetensors")).unwrap();
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    assert_eq!(a.names().len(), b.names().len());
    for name in a.names() {
        assert_eq!(
            a.tensor(name).unwrap().data(),
            b.tensor(name).unwrap().data(),
            "{name} differs after resuming"
        );
    }
}
