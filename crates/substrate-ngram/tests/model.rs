//! The smoothing against hand-computed values, the distribution summing to one in every context,
//! the ARPA round trip, and the refusals of bad input.

#![allow(clippy::unwrap_used)]

use substrate_ngram::{Model, Smoothing, Trainer, arpa, modified_discounts};

const FALLBACK: Smoothing = Smoothing::ModifiedKneserNey { fallback: Some([0.5, 1.0, 1.5]) };

fn train(order: usize, smoothing: Smoothing, sentences: &[&str]) -> Model {
    let mut trainer = Trainer::new(order, smoothing, true).unwrap();
    for s in sentences {
        trainer.add(&s.split_whitespace().collect::<Vec<_>>()).unwrap();
    }
    trainer.finish().unwrap().0
}

fn prob(model: &Model, history: &[&str], word: &str) -> f64 {
    let history: Vec<u32> = history.iter().map(|w| model.id(w)).collect();
    10f64.powf(f64::from(model.score_next(&history, model.id(word)).log10))
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
}

#[test]
fn discounts_follow_the_counts_of_counts() {
    // Y = 10 / (10 + 2·4); D1 = 1 − 2Y·4/10, D2 = 2 − 3Y·2/4, D3 = 3 − 4Y·1/2.
    let d = modified_discounts([10, 4, 2, 1]).unwrap();
    let y = 10.0 / 18.0;
    close(d[0], 1.0 - 2.0 * y * 0.4);
    close(d[1], 2.0 - 3.0 * y * 0.5);
    close(d[2], 3.0 - 4.0 * y * 0.5);
    assert!(modified_discounts([3, 0, 1, 1]).is_none());
    assert!(modified_discounts([1, 1, 1, 1]).is_some());
    // D2 = 2 − 3·(1/3)·10 < 0 is not a discount: far more n-grams seen three times than twice.
    assert!(modified_discounts([1, 1, 10, 1]).is_none());
}

/// `<s> a b </s>`, `<s> a c </s>`, `<s> b c </s>` with D1, D2, D3+ = 0.5, 1, 1.5, by hand.
///
/// Unigram continuation counts: a 1 (after <s>), b 2 (a, <s>), c 2 (a, b), </s> 2 (b, c); their
/// sum is 7, the discounts spare 0.5 + 3·1 = 3.5, so γ = 0.5, spread over the five words the
/// model predicts (<unk>, </s>, a, b, c): p(a) = 0.5/7 + 0.1, p(b) = p(c) = p(</s>) = 1/7 + 0.1,
/// p(<unk>) = 0.1. Bigrams keep raw counts: after <s>, a twice and b once (total 3, γ = 1.5/3).
#[test]
fn modified_kneser_ney_matches_the_hand_computed_toy_corpus() {
    let model = train(2, FALLBACK, &["a b", "a c", "b c"]);
    let (pa, pb) = (0.5 / 7.0 + 0.1, 1.0 / 7.0 + 0.1);
    close(prob(&model, &[], "a"), pa);
    close(prob(&model, &[], "b"), pb);
    close(prob(&model, &[], "</s>"), pb);
    close(prob(&model, &[], "zebra"), 0.1);
    close(prob(&model, &["<s>"], "a"), (2.0 - 1.0) / 3.0 + 0.5 * pa);
    close(prob(&model, &["<s>"], "b"), (1.0 - 0.5) / 3.0 + 0.5 * pb);
    close(prob(&model, &["a"], "b"), 0.5 / 2.0 + 0.5 * pb);
    close(prob(&model, &["c"], "</s>"), (2.0 - 1.0) / 2.0 + 0.5 * pb);
    // Unseen bigrams back off with the context's weight; after </s> or <unk>, nothing is a
    // context, so the unigram stands alone.
    close(prob(&model, &["<s>"], "c"), 0.5 * pb);
    close(prob(&model, &["c"], "a"), 0.5 * pa);
    close(prob(&model, &["</s>"], "a"), pa);
    close(prob(&model, &["zebra"], "a"), pa);
    assert_eq!(model.counts(), vec![6, 7]);

    let mut scores = Vec::new();
    let s = model.score_tokens(&["a", "zebra"], true, true, &mut scores);
    assert_eq!(s.tokens, 3);
    assert_eq!(s.oov, 1);
    assert_eq!(scores.iter().map(|t| t.ngram).collect::<Vec<_>>(), [2, 1, 1]);
    assert!(scores[1].oov);
    close(s.log10, ((2.0 - 1.0) / 3.0 + 0.5 * pa).log10() + (0.5f64 * 0.1).log10() + pb.log10());
}

#[test]
fn a_toy_corpus_without_the_counts_of_counts_is_refused_with_a_reason() {
    let mut trainer = Trainer::new(3, Smoothing::ModifiedKneserNey { fallback: None }, true).unwrap();
    trainer.add(&["a", "b"]).unwrap();
    let err = trainer.finish().unwrap_err().to_string();
    assert!(err.contains("too small to estimate the order-1 discounts"), "{err}");
    assert!(err.contains("larger reference corpus"), "{err}");
    let empty = Trainer::new(5, FALLBACK, true).unwrap().finish().unwrap_err().to_string();
    assert!(empty.contains("no sentence"), "{empty}");
    assert!(Trainer::new(9, FALLBACK, true).is_err());
}

/// A corpus of generated sentences: mostly sixty common words in recurring runs, sometimes one of
/// thousands of rare ones, so that every order has n-grams seen one to four times.
fn generated(sentences: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..sentences)
        .map(|_| {
            let len = 3 + (next() % 9) as usize;
            let mut s = Vec::with_capacity(len);
            let mut prev = (next() % 60) as usize;
            for _ in 0..len {
                // Mostly a word near the previous one, sometimes any: contexts recur.
                prev = match next() % 8 {
                    0 => 60 + (next() % 4000) as usize,
                    1 => (next() % 60) as usize,
                    _ => (prev + 1 + (next() % 3) as usize) % 60,
                };
                s.push(format!("w{}", (prev * prev) % 60 + prev / 60 * 60));
            }
            s.join(" ")
        })
        .collect()
}

#[test]
fn every_context_gives_a_distribution_that_sums_to_one() {
    let corpus = generated(3000, 0x9E3779B97F4A7C15);
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    // Generated text is too regular for every order's discounts: the higher orders take the
    // fallback's, which must sum to one all the same.
    let model = train(4, FALLBACK, &refs);
    let vocabulary: Vec<String> = (0..model.vocabulary() as u32)
        .filter(|&id| id != substrate_ngram::BOS)
        .map(|id| model.word(id).to_owned())
        .collect();
    let histories: Vec<Vec<&str>> = vec![
        vec![],
        vec!["<s>"],
        vec!["<s>", "w0"],
        vec!["w4", "w9", "w16"],
        vec!["w9", "w16", "w25"],
        vec!["w16", "nonsense", "w4"],
        vec!["<s>", "w36", "w49"],
        vec!["w1", "w1", "w1"],
    ];
    for history in histories {
        let total: f64 = vocabulary.iter().map(|w| prob(&model, &history, w)).sum();
        assert!((total - 1.0).abs() < 1e-4, "after {history:?} the probabilities sum to {total}");
    }
}

#[test]
fn arpa_round_trips_to_the_same_model_and_the_same_bytes() {
    let corpus = generated(800, 42);
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let model = train(5, FALLBACK, &refs);
    let mut first = Vec::new();
    arpa::write(&model, &mut first).unwrap();
    let read = arpa::read(&first[..]).unwrap();
    assert_eq!(read.order(), 5);
    assert_eq!(read.counts(), model.counts());
    let mut second = Vec::new();
    arpa::write(&read, &mut second).unwrap();
    assert_eq!(first, second);
    for s in corpus.iter().take(50).chain(["w1 unseen w4 w9".to_owned()].iter()) {
        let tokens: Vec<&str> = s.split_whitespace().collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(
            model.score_tokens(&tokens, true, true, &mut a),
            read.score_tokens(&tokens, true, true, &mut b)
        );
        assert_eq!(a, b);
    }
    let text = String::from_utf8(first).unwrap();
    assert!(text.starts_with("\\data\\\nngram 1="), "{}", &text[..40]);
    assert!(text.contains("\n\\5-grams:\n"));
    assert!(text.trim_end().ends_with("\\end\\"));
}

#[test]
fn a_malformed_arpa_file_is_refused_with_its_line() {
    let good = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t-0.5\n-0.5\t</s>\n-1\t<unk>\n\n\\2-grams:\n-0.2\t<s> </s>\n\n\\end\\\n";
    let model = arpa::read(good.as_bytes()).unwrap();
    assert_eq!(model.order(), 2);
    let cases = [
        ("", "not an ARPA file"),
        ("hello\n", "not an ARPA file"),
        (&good.replace("ngram 2=1", "ngram 2=2"), "1 2-grams where the header declares 2"),
        (&good.replace("-0.2\t<s> </s>", "-0.2\t<s> cat"), "line 11: `cat` is not among the unigrams"),
        (&good.replace("-0.2\t<s> </s>", "-0.2\t<s> </s>\t-0.1"), "a backoff weight on a 2-gram"),
        (&good.replace("-0.5\t</s>", "x\t</s>"), "line 7: `x` is not a number"),
        (&good.replace("-0.5\t</s>", "-0.5\t<eos>"), "no </s> among the unigrams"),
        (&good.replace("\\end\\\n", ""), "ends before \\end\\"),
        (&good.replace("\\2-grams:", "\\3-grams:"), "out of place"),
    ];
    for (text, want) in cases {
        let err = arpa::read(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(want), "{err} lacks {want}");
    }
}

#[test]
fn scoring_a_sentence_at_once_gives_what_scoring_it_word_by_word_gives() {
    let corpus = generated(1500, 7);
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    for order in [1, 2, 3, 5] {
        let model = train(order, FALLBACK, &refs);
        let held_out = generated(200, 8);
        for s in held_out.iter().chain(["w1 nonsense w4 w4 w9 unheard w16 w25".to_owned()].iter()) {
            let ids: Vec<u32> = s.split_whitespace().map(|w| model.id(w)).collect();
            for (bos, eos) in [(true, true), (false, false), (true, false)] {
                let mut fast = Vec::new();
                model.score_ids(&ids, bos, eos, &mut fast);
                let mut history: Vec<u32> =
                    if bos && order > 1 { vec![substrate_ngram::BOS] } else { vec![] };
                let mut plain = Vec::new();
                for &id in ids.iter().chain(eos.then_some(substrate_ngram::EOS).iter()) {
                    plain.push(model.score_next(&history, id));
                    history.push(id);
                    if history.len() >= order {
                        history.remove(0);
                    }
                }
                assert_eq!(fast, plain, "order {order}, {s:?}, bos {bos}, eos {eos}");
            }
        }
    }
}

#[test]
fn a_pruned_arpa_file_without_some_contexts_scores_as_its_backoff_rule_says() {
    // `<s> a b` is held but its context `<s> a` is not (SRILM's pruning leaves such files).
    let pruned = "\\data\\\nngram 1=5\nngram 2=2\nngram 3=1\n\n\\1-grams:\n-1\t<unk>\n-99\t<s>\t-0.3\n-0.7\t</s>\n-0.6\ta\t-0.2\n-0.8\tb\t-0.1\n\n\\2-grams:\n-0.4\ta b\t-0.05\n-0.3\tb </s>\n\n\\3-grams:\n-0.1\t<s> a b\n\n\\end\\\n";
    let model = arpa::read(pruned.as_bytes()).unwrap();
    let ids: Vec<u32> = ["a", "b"].iter().map(|w| model.id(w)).collect();
    let mut fast = Vec::new();
    model.score_ids(&ids, true, true, &mut fast);
    // p(a | <s>) backs off: bo(<s>) + p(a); p(b | <s> a) is the trigram, found although its
    // context was not in the file; p(</s> | a b) backs off to bo(a b) + p(</s> | b).
    let want = [-0.3 - 0.6, -0.1, -0.05 - 0.3];
    for (got, want) in fast.iter().zip(want) {
        assert!((f64::from(got.log10) - want).abs() < 1e-6, "{fast:?}");
    }
    assert_eq!(fast[1].ngram, 3);
    // The context KenLM would add is there, with the probability the rule gives and no backoff.
    let added = model.weights(&[model.id("<s>"), model.id("a")]).unwrap();
    assert!((f64::from(added.prob) - (-0.9)).abs() < 1e-6 && added.backoff == 0.0, "{added:?}");
}
