//! The real default models against engines written by others, on fixtures those engines
//! produced (`.ci/models/make-fixtures`): llama.cpp's greedy tokens on the same GGUF file, and
//! sentence-transformers' vectors for the same texts. They need the fetched models
//! (`substrate models fetch`; the directory is `$SUBSTRATE_MODELS`), so they are ignored unless
//! asked for: `cargo test -p substrate-models -- --ignored`.

use std::path::PathBuf;

use serde::Deserialize;
use substrate_models::fetch::{EMBEDDING, GENERATION};
use substrate_models::{Embedder, Llama, Sampling, Weights, generate};

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("SUBSTRATE_MODELS").map(PathBuf::from).expect(
        "set SUBSTRATE_MODELS to the directory `substrate models fetch --models-dir` filled",
    );
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
}

#[test]
#[ignore = "needs the fetched default models"]
fn greedy_generation_matches_llama_cpp_on_the_same_gguf() {
    let fixture: Greedy = fixture("llama_cpp_greedy.json");
    let path = GENERATION.path(&models_dir());
    assert_eq!(substrate_models::fetch::file_sha256(&path).unwrap(), fixture.model_sha256);
    let model = Llama::load(&path, Weights::Keep).unwrap();
    for case in &fixture.tokenizer_cases {
        assert_eq!(model.tokenizer.encode(&case.text).unwrap(), case.tokens, "tokenizing {:?}", case.text);
    }
    for case in &fixture.cases {
        let ids = model.tokenizer.encode_prompt(&case.prompt).unwrap();
        assert_eq!(ids, case.prompt_tokens, "prompt tokens of {:?}", case.prompt);
        let greedy = Sampling { max_tokens: case.tokens.len(), ..Sampling::default() };
        let ours = generate(&model, &ids, &greedy, |_| {}).unwrap();
        assert_eq!(ours.tokens, case.tokens, "greedy tokens after {:?}", case.prompt);
    }
}

#[derive(Deserialize)]
struct Embeddings {
    model_sha256: String,
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
#[ignore = "needs the fetched default models"]
fn embeddings_match_sentence_transformers() {
    let fixture: Embeddings = fixture("st_embeddings.json");
    let dir = EMBEDDING.path(&models_dir());
    assert_eq!(substrate_models::fetch::file_sha256(&dir.join("model.safetensors")).unwrap(), fixture.model_sha256);
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
#[ignore = "needs the fetched default models"]
fn first_logits_are_close_to_llama_cpp() {
    let fixture: Logits = fixture("llama_cpp_greedy.json");
    let weights = std::env::var("W").ok().and_then(|w| Weights::parse(&w)).unwrap_or(Weights::Keep);
    let model = Llama::load(&GENERATION.path(&models_dir()), weights).unwrap();
    let mut worst = 0f32;
    for case in &fixture.cases {
        let ids = model.tokenizer.encode_prompt(&case.prompt).unwrap();
        let logits = model.forward(&ids, &mut model.new_cache()).unwrap().to_vec1::<f32>().unwrap();
        for &(id, theirs) in &case.top_logits {
            worst = worst.max((logits[id as usize] - theirs).abs());
        }
        eprintln!("{:?}", case.top_logits.iter().map(|&(id, l)| (id, l, logits[id as usize])).collect::<Vec<_>>());
    }
    eprintln!("largest difference in the top-10 logits: {worst}");
    assert!(worst < 0.1, "largest difference in the top-10 logits: {worst}");
}
