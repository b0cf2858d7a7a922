//! The real default models against engines written by others, on fixtures those engines
//! produced (`.ci/models/make-fixtures`): llama.cpp's greedy tokens on the same GGUF file, and
//! sentence-transformers' vectors for the same texts. They need the fetched models
//! (`substrate models fetch`; the directory is `$SUBSTRATE_MODELS`), so this test target is
//! built only with the `reference` feature, which `.ci/run` turns on after fetching:
//! `cargo test -p substrate-models --features reference --test reference`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::Deserialize;
use substrate_models::fetch::{EMBEDDING, GENERATION};
use substrate_models::{Embedder, Llama, Sampling, Weights, generate};

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("SUBSTRATE_MODELS")
        .map(PathBuf::from)
        .expect("set SUBSTRATE_MODELS to the directory `substrate models fetch --models-dir` filled");
    assert!(dir.is_dir(), "{} does not exist: run `substrate models fetch` first", dir.display());
    dir
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[derive(Deserialize)]
struct Greedy {
    model_sha256: String,
    tokenizer_cases: Vec<TokenizerCase>,
    cases: Vec<GreedyCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct GreedyCase {
    prompt: String,
    prompt_tokens: Vec<u32>,
    tokens: Vec<u32>,
    /// llama.cpp's top-1 minus top-2 logit at each step.
    margins: Vec<f32>,
}

/// How far apart two engines' logits may be: the largest difference measured between this
/// crate's and llama.cpp's top-10 first logits on the fixture prompts is 0.63 (this small
/// quantized model amplifies each engine's rounding; f32 weights move them by as much).
const LOGIT_TOLERANCE: f32 = 0.75;

#[test]
fn greedy_generation_matches_llama_cpp_on_the_same_gguf() {
    let fixture: Greedy = fixture("llama_cpp_greedy.json");
    let path = GENERATION.path(&models_dir());
    assert_eq!(substrate_models::fetch::file_sha256(&path).unwrap(), fixture.model_sha256);
    let model = Llama::load(&path, Weights::Auto).unwrap();
    for case in &fixture.tokenizer_cases {
        assert_eq!(model.tokenizer.encode(&case.text).unwrap(), case.tokens, "tokenizing {:?}", case.text);
    }
    let (mut clear, mut agreed_free) = (0, 0);
    for case in &fixture.cases {
        let ids = model.tokenizer.encode_prompt(&case.prompt).unwrap();
        assert_eq!(ids, case.prompt_tokens, "prompt tokens of {:?}", case.prompt);
        // Fed llama.cpp's own tokens, every step where llama.cpp's choice is ahead by more than
        // the engines' logit tolerance must choose the same token.
        let mut cache = model.new_cache();
        let mut logits = model.forward(&ids, &mut cache).unwrap();
        for (step, (&token, &margin)) in case.tokens.iter().zip(&case.margins).enumerate() {
            let ours = substrate_models::generate::argmax(&logits);
            if margin > LOGIT_TOLERANCE {
                clear += 1;
                assert_eq!(
                    ours, token,
                    "step {step} after {:?}: llama.cpp's margin was {margin}",
                    case.prompt
                );
            }
            if step + 1 < case.tokens.len() {
                logits = model.forward(&[token], &mut cache).unwrap();
            }
        }
        // Left to itself, greedy decoding follows llama.cpp until the first near tie.
        let greedy = Sampling { max_tokens: case.tokens.len(), ..Sampling::default() };
        let free = generate(&model, &ids, &greedy, |_| {}).unwrap();
        let same = free.tokens.iter().zip(&case.tokens).take_while(|(a, b)| a == b).count();
        let first_tie = case.margins.iter().position(|&m| m <= LOGIT_TOLERANCE).unwrap_or(case.tokens.len());
        assert!(
            same >= first_tie,
            "free greedy left llama.cpp at step {same}, before its first near tie at {first_tie}"
        );
        agreed_free += same;
        eprintln!(
            "{:?}: same greedy tokens for {same} of {} steps",
            case.prompt.lines().nth(3).unwrap_or(""),
            case.tokens.len()
        );
    }
    let total: usize = fixture.cases.iter().map(|c| c.tokens.len()).sum();
    eprintln!("{clear} clear steps agreed; free greedy decoding agreed on {agreed_free} of {total} tokens");
    assert!(
        clear >= total / 2,
        "only {clear} of {total} steps were clear: the fixture is too fragile to test anything"
    );
}

#[derive(Deserialize)]
struct Embeddings {
    model_sha256: String,
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn embeddings_match_sentence_transformers() {
    let fixture: Embeddings = fixture("st_embeddings.json");
    let dir = EMBEDDING.path(&models_dir());
    assert_eq!(
        substrate_models::fetch::file_sha256(&dir.join("model.safetensors")).unwrap(),
        fixture.model_sha256
    );
    let embedder = Embedder::load(&dir).unwrap();
    let ours = embedder.embed(&fixture.texts).unwrap();
    for ((text, a), b) in fixture.texts.iter().zip(&ours).zip(&fixture.embeddings) {
        let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cosine >= 0.999, "cosine {cosine} for {text:?}");
    }
}

#[derive(Deserialize)]
struct LogitCase {
    prompt: String,
    top_logits: Vec<(u32, f32)>,
}

#[derive(Deserialize)]
struct Logits {
    cases: Vec<LogitCase>,
}

#[test]
fn first_logits_are_close_to_llama_cpp() {
    let fixture: Logits = fixture("llama_cpp_greedy.json");
    let model = Llama::load(&GENERATION.path(&models_dir()), Weights::Auto).unwrap();
    let mut worst = 0f32;
    for case in &fixture.cases {
        let ids = model.tokenizer.encode_prompt(&case.prompt).unwrap();
        let logits = model.forward(&ids, &mut model.new_cache()).unwrap();
        for &(id, theirs) in &case.top_logits {
            worst = worst.max((logits[id as usize] - theirs).abs());
        }
    }
    eprintln!("largest difference in the top-10 logits: {worst}");
    assert!(worst < LOGIT_TOLERANCE, "largest difference in the top-10 logits: {worst}");
}
