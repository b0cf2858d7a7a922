//! Bad input: each error names what was wrong and what to do.

use candle_core::quantized::GgmlDType;
use substrate_models::{Embedder, Llama, ModelError, Sampling, Weights, generate};

use substrate_models::tiny;

#[test]
fn a_missing_model_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = Llama::load(&dir.path().join("nope.gguf"), Weights::Auto).unwrap_err();
    assert!(matches!(err, ModelError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("substrate models fetch"), "{err}");
    let err = Embedder::load(&dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("substrate models fetch"), "{err}");
}

#[test]
fn a_truncated_or_foreign_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 21, GgmlDType::F32).unwrap();
    let bytes = std::fs::read(&tiny.path).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Llama::load(&cut, Weights::Auto).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("cut.gguf"), "{err}");
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "a technical note, not a model").unwrap();
    let err = Llama::load(&text, Weights::Auto).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");

    let bert = tiny::bert(dir.path(), 3).unwrap();
    let weights = bert.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    let err = Embedder::load(&bert).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 22, GgmlDType::F32).unwrap();
    let model = Llama::load(&tiny.path, Weights::Keep).unwrap();
    let prompt: Vec<u32> = (0..model.config.context as u32).map(|i| i % 200).collect();
    let err = generate(&model, &prompt, &Sampling::default(), |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::PromptTooLong { tokens: 96, context: 96 }), "{err}");
    assert!(err.to_string().contains("shorten the prompt"), "{err}");
    // One token short of the context still leaves room for one new token.
    let fits = generate(&model, &prompt[1..], &Sampling { ignore_eos: true, ..Sampling::default() }, |_| {})
        .unwrap();
    assert_eq!(fits.tokens.len(), 1);
}
