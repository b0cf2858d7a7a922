//! Sentence embeddings on a tiny BERT: unit length, the given order, and the same vector for a
//! text whatever else shares its batch.

use substrate_models::Embedder;

use substrate_models::tiny;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn vectors_are_unit_length_in_order_and_independent_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny::bert(dir.path(), 1).unwrap();
    let embedder = Embedder::load(&path).unwrap();
    assert_eq!(embedder.dim, 32);
    let texts: Vec<String> = [
        "the kitchen table story of the class",
        "a song",
        "we sing at dawn",
        "why, teacher? the class asks why",
        "the story",
    ]
    .map(str::to_owned)
    .to_vec();
    // Enough copies to fill more than one batch, in an order unlike the sorted one.
    let many: Vec<String> = (0..70).map(|i| texts[i * 3 % texts.len()].clone()).collect();
    let vectors = embedder.embed(&many).unwrap();
    assert_eq!(vectors.len(), many.len());
    for (text, v) in many.iter().zip(&vectors) {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.).abs() < 1e-5, "{text}: norm {norm}");
        let alone = &embedder.embed(std::slice::from_ref(text)).unwrap()[0];
        assert!(cosine(alone, v) > 0.99999, "{text}: batched and alone differ ({})", cosine(alone, v));
    }
    assert!(cosine(&vectors[0], &vectors[1]) < 0.9999, "different texts, different vectors");
}

#[test]
fn texts_longer_than_the_model_are_cut_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny::bert(dir.path(), 2).unwrap();
    let embedder = Embedder::load(&path).unwrap();
    let long = "we sing at dawn ".repeat(100);
    let v = embedder.embed(&[long.clone(), format!("{long} and more")]).unwrap();
    assert!(cosine(&v[0], &v[1]) > 0.99999, "both are cut at the same 64 tokens");
}
