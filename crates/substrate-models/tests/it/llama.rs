//! The Llama forward pass: cached decoding, the differentiable training pass and the
//! tokenizer agree with one another.

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, IndexOp, Tensor, Var};
use substrate_models::llama::{Lora, TokenBatch, gguf_rows, hf_rows};
use substrate_models::{Llama, Message, Sampling, Target, Weights, apply_chat_template, generate};

use substrate_models::tiny;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Random factors on every projection of every layer, B not zero so that each one matters.
fn random_loras(model: &mut Llama, rank: usize, seed: u64) -> Vec<Var> {
    let dev = Device::Cpu;
    let mut vars = Vec::new();
    let _ = seed;
    for layer in 0..model.config.layers {
        for target in Target::ALL {
            let (out, inp) = model.projection_shape(target);
            let a = Var::from_tensor(&Tensor::randn(0f32, 0.2, (rank, inp), &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.2, (out, rank), &dev).unwrap()).unwrap();
            model.set_lora(
                layer,
                target,
                Some(Lora { a: a.as_tensor().clone(), b: b.as_tensor().clone(), scale: 2. }),
            );
            vars.push(a);
            vars.push(b);
        }
    }
    vars
}

#[test]
fn cached_decoding_the_full_pass_and_the_training_pass_give_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 1, GgmlDType::F32).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Keep).unwrap();
    random_loras(&mut model, 4, 1);
    let ids: Vec<u32> = model.tokenizer.encode("the kitchen table story, told again").unwrap();
    assert!(ids.len() > 10);
    let batch = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let full = model.logits(&batch, false).unwrap().squeeze(0).unwrap();
    let train = model.logits(&batch, true).unwrap().squeeze(0).unwrap();
    assert!(max_abs_diff(&full, &train) < 1e-4, "training pass differs by {}", max_abs_diff(&full, &train));
    assert_decoding_follows(&model, &ids, &full, 1e-5);
}

#[test]
fn cached_decoding_on_the_quantized_kernels_gives_the_full_pass_logits() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
        let tiny = tiny::llama(dir.path(), 1, dtype).unwrap();
        let model = Llama::load(&tiny.path, Weights::Keep).unwrap();
        let ids: Vec<u32> = model.tokenizer.encode("a liturgy, sung in the round, then spoken").unwrap();
        let batch = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let full = model.logits(&batch, false).unwrap().squeeze(0).unwrap();
        // Both passes quantize the activations; where summation order differs before that, a
        // value can round to the next step, which moves the logits by a fraction of a percent.
        assert_decoding_follows(&model, &ids, &full, 1e-2);
    }
}

/// The first half of `ids` as one prompt, then one token at a time: each step's logits are
/// those of the full pass at that position, to `tolerance` of the range of those logits.
fn assert_decoding_follows(model: &Llama, ids: &[u32], full: &Tensor, tolerance: f32) {
    let mut cache = model.new_cache();
    let half = ids.len() / 2;
    let check = |i: usize, ours: &[f32]| {
        let theirs = full.i(i).unwrap().to_vec1::<f32>().unwrap();
        let (lo, hi) =
            theirs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let diff = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(
            diff < tolerance * (hi - lo),
            "position {i}: cached decoding differs by {diff} of {}",
            hi - lo
        );
    };
    check(half - 1, &model.forward(&ids[..half], &mut cache).unwrap());
    for (i, &id) in ids.iter().enumerate().skip(half) {
        check(i, &model.forward(&[id], &mut cache).unwrap());
    }
    assert_eq!(cache.len(), ids.len());
}

#[test]
fn gradients_reach_every_adapter_tensor_and_the_fused_pass_refuses_to_train() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 2, GgmlDType::Q8_0).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let vars = random_loras(&mut model, 4, 2);
    let ids = Tensor::new(&[[5u32, 9, 77, 200, 31, 8, 19, 40]], &Device::Cpu).unwrap();
    let loss = model.logits(&ids, true).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    for (i, var) in vars.iter().enumerate() {
        let grad = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for adapter tensor {i}"));
        let norm = grad.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm > 0., "adapter tensor {i} got a zero gradient");
    }
    // The inference pass uses fused kernels without a backward pass: training through it must
    // fail loudly rather than leave factors untrained.
    let fused = model.logits(&ids, false).unwrap().sqr().unwrap().mean_all().unwrap();
    let complete = fused.backward().map(|g| vars.iter().all(|v| g.get(v.as_tensor()).is_some()));
    assert!(!matches!(complete, Ok(true)), "the fused pass unexpectedly produced every gradient");
}

#[test]
fn the_training_pass_gives_candle_autograd_s_loss_and_gradients() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 2, GgmlDType::F32).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let vars = random_loras(&mut model, 4, 3);
    // 150 positions: more than one slice of rows through the output product; the last row
    // ends in padding.
    let (rows, len) = (3, 50);
    let ids: Vec<u32> = (0..rows * len + 1).map(|i| (i as u32 * 37 + 11) % 250).collect();
    let mask: Vec<f32> = (0..rows * len).map(|i| if i >= rows * len - 7 { 0. } else { 1. }).collect();
    let batch =
        TokenBatch { inputs: ids[..rows * len].to_vec(), targets: ids[1..].to_vec(), mask, rows, len };
    let ours = model.loss_and_gradients(&batch).unwrap();
    // The same loss through candle's ops on the differentiable tensor pass, and its autograd.
    let dev = Device::Cpu;
    let tensor = |v: &[u32]| Tensor::from_slice(v, (rows, len), &dev).unwrap();
    let (inputs, targets) = (tensor(&batch.inputs), tensor(&batch.targets));
    let mask = Tensor::from_slice(&batch.mask, (rows, len), &dev).unwrap();
    let logp = candle_nn::ops::log_softmax(&model.logits(&inputs, true).unwrap(), 2).unwrap();
    let picked = logp.gather(&targets.unsqueeze(2).unwrap(), 2).unwrap().squeeze(2).unwrap();
    let plain = (picked * &mask)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap()
        .affine(1. / (rows * len - 7) as f64, 0.)
        .unwrap();
    let p = plain.to_scalar::<f32>().unwrap();
    assert!((ours.loss - p).abs() < 1e-4 * p.abs(), "training pass loss {}, candle's {p}", ours.loss);
    assert!((model.batch_loss(&batch).unwrap() - ours.loss).abs() < 1e-6, "the loss alone differs");
    let theirs = plain.backward().unwrap();
    assert_eq!(ours.factors.len() * 2, vars.len(), "a gradient for every factor");
    let factors = (0..model.config.layers).flat_map(|l| Target::ALL.map(|t| (l, t)));
    for (i, key) in factors.flat_map(|k| [(k, 0), (k, 1)]).enumerate() {
        let ((layer, target), which) = key;
        let (da, db) = &ours.factors[&(layer, target)];
        let mine = if which == 0 { da } else { db };
        let want = theirs.get(vars[i].as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = mine.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let name = format!("layer {layer} {} {}", target.peft_name(), ["A", "B"][which]);
        assert!(scale > 0., "{name} got a zero gradient");
        assert_eq!(mine.len(), want.len(), "{name}");
        assert!(diff < 1e-3 * scale, "{name}: gradients differ by {diff} of {scale}");
    }
}

#[test]
fn requantized_weights_stay_close_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 3, GgmlDType::Q4_1).unwrap();
    let ids: Vec<u32> = (10..40).collect();
    let batch = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let keep = Llama::load(&tiny.path, Weights::Keep).unwrap().logits(&batch, false).unwrap();
    let dense = Llama::load(&tiny.path, Weights::Dense).unwrap().logits(&batch, false).unwrap();
    let auto = Llama::load(&tiny.path, Weights::Auto).unwrap().logits(&batch, false).unwrap();
    let scale = keep.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    // Q4_1 against f32 weights: only the activations' 8-bit quantization differs.
    assert!(max_abs_diff(&keep, &dense) < 0.05 * scale, "{} vs {scale}", max_abs_diff(&keep, &dense));
    assert!(max_abs_diff(&auto, &dense) < 0.05 * scale, "{} vs {scale}", max_abs_diff(&auto, &dense));
}

#[test]
fn the_tokenizer_round_trips_and_matches_special_tokens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 4, GgmlDType::F32).unwrap();
    let model = Llama::load(&tiny.path, Weights::Keep).unwrap();
    let tok = &model.tokenizer;
    for text in ["the theme", "  two  spaces\tand a tab\n", "12345 digits 3.14", "é 漢字 🙂", "don't it's"]
    {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    // "the" is merged; digits are split one by one (the `smollm` pre-tokenizer).
    let the = tok.encode("the").unwrap();
    assert_eq!(the.len(), 1, "{the:?}");
    assert_eq!(tok.encode("123").unwrap().len(), 3);
    let ids = tok.encode("<|im_start|>user").unwrap();
    assert_eq!(ids[0], (tiny.vocab - 2) as u32);
    assert_eq!(tok.decode(&ids).unwrap(), "<|im_start|>user");
}

#[test]
fn the_chat_template_renders_and_greedy_generation_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 5, GgmlDType::F32).unwrap();
    let model = Llama::load(&tiny.path, Weights::Keep).unwrap();
    let prompt = apply_chat_template(&model, &[Message::new("user", "why sing at dawn?")]).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a tiny test model.<|im_end|>\n<|im_start|>user\nwhy sing at dawn?<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = model.tokenizer.encode_prompt(&prompt).unwrap();
    let greedy = Sampling { max_tokens: 12, ignore_eos: true, ..Sampling::default() };
    let mut streamed = String::new();
    let a = generate(&model, &ids, &greedy, |piece| streamed.push_str(piece)).unwrap();
    let b = generate(&model, &ids, &greedy, |_| {}).unwrap();
    assert_eq!(a.tokens.len(), 12);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(streamed, a.text);
    assert_eq!(model.tokenizer.decode(&a.tokens).unwrap(), a.text);
    // Greedy is the argmax of the full pass at every step.
    let mut all = ids.clone();
    all.extend(&a.tokens[..11]);
    let batch = Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = model.logits(&batch, false).unwrap().squeeze(0).unwrap();
    for (i, &token) in a.tokens.iter().enumerate() {
        let row = logits.i(ids.len() - 1 + i).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(substrate_models::generate::argmax(&row), token, "step {i}");
    }
    let sampled = Sampling { temperature: 1.0, top_p: 0.9, seed: 7, ..greedy.clone() };
    let s1 = generate(&model, &ids, &sampled, |_| {}).unwrap();
    let s2 = generate(&model, &ids, &sampled, |_| {}).unwrap();
    assert_eq!(s1.tokens, s2.tokens, "the same seed samples the same tokens");
    let other = generate(&model, &ids, &Sampling { seed: 8, ..sampled }, |_| {}).unwrap();
    assert_ne!(s1.tokens, other.tokens, "another seed samples other tokens");
}

#[test]
fn hugging_face_row_order_is_the_inverse_of_the_gguf_permutation() {
    // Two heads of width 4: llama.cpp interleaves each head's halves, [0 2 1 3] per head.
    let rows: Vec<f32> = (0..8).map(|r| r as f32).collect();
    let hf = Tensor::from_vec(rows, (8, 1), &Device::Cpu).unwrap();
    let gguf = gguf_rows(&hf, 2).unwrap();
    let order: Vec<f32> = gguf.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(order, [0., 2., 1., 3., 4., 6., 5., 7.]);
    let back = hf_rows(&gguf, 2).unwrap().to_dtype(DType::F32).unwrap();
    assert_eq!(
        back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        (0..8).map(|r| r as f32).collect::<Vec<_>>()
    );
}
