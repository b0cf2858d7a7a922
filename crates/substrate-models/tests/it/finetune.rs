//! LoRA training on a tiny model: the loss falls on held-out texts, a killed run resumes to the
//! same adapter, and the adapter written in the PEFT layout loads back to the same model.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use substrate_models::finetune::{Progress, Text, TrainConfig, finetune};
use substrate_models::{Adapter, Llama, LoraConfig, ModelError, Target, Weights};

use substrate_models::tiny;

/// Short texts of two sources, regular enough for a tiny model to learn in a few steps.
pub fn texts() -> Vec<Text> {
    let mut texts = Vec::new();
    for i in 0..24 {
        texts.push(Text {
            text: format!("the kitchen table story {i}: the bread, the salt, the table."),
            source: "narrative".into(),
        });
        texts.push(Text {
            text: format!("we sing at dawn, we sing at dusk, we sing {i} times."),
            source: "sacred".into(),
        });
    }
    texts
}

/// A progress callback that lets a run go to its end.
fn go(_: &Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        lora: LoraConfig { rank: 4, alpha: 8., targets: vec![Target::Q, Target::V, Target::Down] },
        steps,
        batch: 4,
        seq_len: 24,
        lr: 1e-2,
        save_every: 5,
        ..TrainConfig::default()
    }
}

#[test]
fn training_lowers_the_held_out_loss_and_the_adapter_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 11, GgmlDType::F32).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let out = dir.path().join("adapter");
    let mut steps_seen = Vec::new();
    let report = finetune(&mut model, "sha-of-tiny", &texts(), &config(30), &out, |p| {
        steps_seen.push(p.step);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(steps_seen, (1..=30).collect::<Vec<_>>());
    assert!(
        report.held_out_after < report.held_out_before * 0.9,
        "held-out loss {} -> {}",
        report.held_out_before,
        report.held_out_after
    );
    assert_eq!(report.held_out_texts, 4, "a tenth of each source's 24 texts (2 + 2)");
    assert!(report.draws["narrative"] > 0 && report.draws["sacred"] > 0);

    // The saved adapter, loaded onto a fresh copy of the model, gives the trained model's logits.
    let config = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["target_modules"], serde_json::json!(["q_proj", "v_proj", "down_proj"]));
    let mut fresh = Llama::load(&tiny.path, Weights::Keep).unwrap();
    let adapter = Adapter::load(&out, &fresh, "sha-of-tiny").unwrap();
    assert_eq!(adapter.factors.len(), 2 * 3);
    adapter.attach(&mut fresh);
    let ids = Tensor::new(&[[40u32, 41, 42, 43, 44]], &Device::Cpu).unwrap();
    let trained = model.logits(&ids, false).unwrap();
    let loaded = fresh.logits(&ids, false).unwrap();
    let diff = (trained - loaded)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "loaded adapter differs by {diff}");

    // The names PEFT expects for a Hugging Face Llama.
    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names();
    names.sort();
    assert!(names.contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert!(names.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    assert_eq!(
        st.tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").unwrap().shape(),
        [32, 4]
    );

    // Loading onto another base model is refused.
    let err = Adapter::load(&out, &fresh, "another-sha").unwrap_err();
    assert!(matches!(err, ModelError::AdapterMismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha-of-tiny"), "{err}");
}

#[test]
fn a_run_stopped_at_a_checkpoint_resumes_to_the_same_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 12, GgmlDType::F32).unwrap();
    let texts = texts();
    let whole = dir.path().join("whole");
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    finetune(&mut model, "sha", &texts, &config(12), &whole, go).unwrap();

    // The same run stopped after step 8, as a kill would stop it: its last checkpoint is step 5.
    let parted = dir.path().join("parted");
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let stop = |p: &Progress| match p.step {
        8 => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    };
    let err = finetune(&mut model, "sha", &texts, &config(12), &parted, stop).unwrap_err();
    assert!(matches!(err, ModelError::Stopped { step: 8 }), "{err}");
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let report = finetune(&mut model, "sha", &texts, &config(12), &parted, go).unwrap();
    assert_eq!(report.resumed_at, 5);
    let a = std::fs::read(whole.join("adapter_model.safetensors")).unwrap();
    let b = std::fs::read(parted.join("adapter_model.safetensors")).unwrap();
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    for name in a.names() {
        assert_eq!(
            a.tensor(name).unwrap().data(),
            b.tensor(name).unwrap().data(),
            "{name} differs after resuming"
        );
    }

    // A checkpoint made with other settings is not silently resumed.
    let mut other = config(12);
    other.lr = 5e-3;
    let err = finetune(&mut model, "sha", &texts, &other, &parted, go).unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn bad_training_input_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 13, GgmlDType::F32).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let out = dir.path().join("out");
    let err = finetune(&mut model, "sha", &[], &config(2), &out, go).unwrap_err();
    assert!(matches!(err, ModelError::EmptyTrainingSet { .. }), "{err}");
    let one = vec![Text { text: "only one".into(), source: "narrative".into() }];
    let err = finetune(&mut model, "sha", &one, &config(2), &out, go).unwrap_err();
    assert!(err.to_string().contains("at least two texts"), "{err}");
    let mut weighted = config(2);
    weighted.weights = BTreeMap::from([("liturgy".to_owned(), 2.)]);
    let err = finetune(&mut model, "sha", &texts(), &weighted, &out, go).unwrap_err();
    assert!(err.to_string().contains("`liturgy`") && err.to_string().contains("narrative, sacred"), "{err}");
    let mut zero = config(2);
    zero.weights = BTreeMap::from([("narrative".to_owned(), 0.), ("sacred".to_owned(), 0.)]);
    let err = finetune(&mut model, "sha", &texts(), &zero, &out, go).unwrap_err();
    assert!(err.to_string().contains("weight 0"), "{err}");
    let mut long = config(2);
    long.seq_len = model.config.context + 1;
    let err = finetune(&mut model, "sha", &texts(), &long, &out, go).unwrap_err();
    assert!(err.to_string().contains("--seq-len") && err.to_string().contains("context"), "{err}");
}

#[test]
fn weights_decide_how_often_each_source_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny::llama(dir.path(), 14, GgmlDType::F32).unwrap();
    let mut model = Llama::load(&tiny.path, Weights::Dense).unwrap();
    let mut weighted = config(10);
    weighted.lr = 1e-4;
    weighted.weights = BTreeMap::from([("narrative".to_owned(), 3.), ("sacred".to_owned(), 1.)]);
    let report = finetune(&mut model, "sha", &texts(), &weighted, &dir.path().join("w"), go).unwrap();
    let (n, s) = (report.draws["narrative"], report.draws["sacred"]);
    assert_eq!(n + s, 40);
    assert!(n > 2 * s, "narrative weighs 3, sacred 1, yet they were drawn {n} and {s} times");
}
