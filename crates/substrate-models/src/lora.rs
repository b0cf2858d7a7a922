//! LoRA adapters in the PEFT layout: `adapter_model.safetensors` and `adapter_config.json`,
//! tensors named and ordered as PEFT names them for a Hugging Face Llama, so that
//! `PeftModel.from_pretrained` loads them onto the Hugging Face version of the base model.
//!
//! The metadata of the safetensors file names the base model and its sha256; loading an
//! adapter onto a different model is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::llama::{Llama, Lora, Target, gguf_rows, hf_rows};

pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const CONFIG_FILE: &str = "adapter_config.json";
/// f32 tensors in the safetensors format with its header's keys in sorted order (the
/// `safetensors` crate writes its metadata from a `HashMap`, so its bytes change from run to run):
/// the same adapter is always the same bytes. Tensors are laid out in name order.
fn safetensors_bytes(
    tensors: &mut [(String, Vec<usize>, Vec<u8>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0;
    for (name, shape, bytes) in tensors.iter() {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    // The data starts 8-byte aligned; the header is padded with spaces, as the format allows.
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, bytes) in tensors.iter() {
        out.extend_from_slice(bytes);
    }
    out
}

/// The safetensors metadata key holding the base model's sha256.
pub const BASE_SHA256: &str = "base_model_sha256";

/// Rank, scale and the projections adapted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<Target>,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// `adapter_config.json` as PEFT writes and reads it (the fields used here).
#[derive(Debug, Serialize, Deserialize)]
struct PeftConfig {
    peft_type: String,
    task_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: Vec<String>,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    inference_mode: bool,
    base_model_name_or_path: Option<String>,
}

/// The factors of one adapter, keyed by layer and projection, in GGUF row order.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub config: LoraConfig,
    pub factors: BTreeMap<(usize, Target), (Tensor, Tensor)>,
    pub base_name: String,
    pub base_sha256: String,
}

fn key(layer: usize, target: Target, factor: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.{factor}.weight",
        target.peft_parent(),
        target.peft_name()
    )
}

impl Adapter {
    /// Puts every factor onto the model's projections (and takes any others off).
    pub fn attach(&self, model: &mut Llama) {
        for layer in 0..model.config.layers {
            for target in Target::ALL {
                let lora = self.factors.get(&(layer, target)).map(|(a, b)| Lora {
                    a: a.clone(),
                    b: b.clone(),
                    scale: self.config.scale(),
                });
                model.set_lora(layer, target, lora);
            }
        }
    }

    /// Writes the adapter into `dir` in the PEFT layout, rows in Hugging Face order.
    pub fn save(&self, dir: &Path, model: &Llama, extra: &[(&str, String)]) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(ModelError::io(dir))?;
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (&(layer, target), (a, b)) in &self.factors {
            let b = match target {
                Target::Q => hf_rows(b, model.config.heads)?,
                Target::K => hf_rows(b, model.config.kv_heads)?,
                _ => b.clone(),
            };
            for (name, t) in [("lora_A", a), ("lora_B", &b)] {
                let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                buffers.push((key(layer, target, name), t.dims().to_vec(), bytes));
            }
        }
        let mut metadata = BTreeMap::from([
            ("format".to_owned(), "pt".to_owned()),
            (BASE_SHA256.to_owned(), self.base_sha256.clone()),
            ("base_model".to_owned(), self.base_name.clone()),
        ]);
        metadata.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let weights = dir.join(WEIGHTS_FILE);
        let partial = dir.join(format!("{WEIGHTS_FILE}.partial"));
        std::fs::write(&partial, safetensors_bytes(&mut buffers, &metadata))
            .map_err(ModelError::io(&partial))?;
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(ModelError::io(&partial))?;
        std::fs::rename(&partial, &weights).map_err(ModelError::io(&weights))?;
        let config = PeftConfig {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: self.config.rank,
            lora_alpha: self.config.alpha,
            lora_dropout: 0.,
            target_modules: self.config.targets.iter().map(|t| t.peft_name().to_owned()).collect(),
            bias: Some("none".into()),
            fan_in_fan_out: false,
            use_rslora: false,
            inference_mode: true,
            base_model_name_or_path: Some(self.base_name.clone()),
        };
        let path = dir.join(CONFIG_FILE);
        let json = serde_json::to_vec_pretty(&config).map_err(|e| ModelError::Invalid(e.to_string()))?;
        std::fs::write(&path, json).map_err(ModelError::io(&path))
    }

    /// Reads a PEFT adapter from `dir` for `model`, whose file has sha256 `model_sha256`.
    pub fn load(dir: &Path, model: &Llama, model_sha256: &str) -> Result<Self> {
        let bad = |path: PathBuf, detail: String| ModelError::BadAdapter { path, detail };
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read(&config_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad(
                config_path.clone(),
                "not found: an adapter directory holds adapter_config.json and adapter_model.safetensors \
                 (made by `substrate finetune --out DIR`)"
                    .into(),
            ),
            _ => ModelError::io(&config_path)(e),
        })?;
        let peft: PeftConfig = serde_json::from_slice(&text)
            .map_err(|e| bad(config_path.clone(), format!("not a PEFT adapter config: {e}")))?;
        if peft.peft_type != "LORA" || peft.fan_in_fan_out || peft.r == 0 {
            return Err(bad(
                config_path,
                format!(
                    "a {} adapter of rank {} (fan_in_fan_out {}): only LoRA adapters with fan_in_fan_out false are read",
                    peft.peft_type, peft.r, peft.fan_in_fan_out
                ),
            ));
        }
        let targets = peft
            .target_modules
            .iter()
            .map(|m| {
                Target::parse(m)
                    .ok_or_else(|| bad(config_path.clone(), format!("unknown target module `{m}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights_path).map_err(ModelError::io(&weights_path))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(weights_path.clone(), format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(weights_path.clone(), format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        match metadata.get(BASE_SHA256) {
            Some(sha) if sha != model_sha256 => {
                return Err(ModelError::AdapterMismatch {
                    adapter: dir.to_path_buf(),
                    adapter_base: sha.clone(),
                    model_path: model.path.clone(),
                    model: model_sha256.to_owned(),
                });
            }
            Some(_) => {}
            None => {
                tracing::warn!(adapter = %dir.display(), "the adapter does not name its base model's sha256; only its shapes are checked")
            }
        }
        let mut factors = BTreeMap::new();
        for layer in 0..model.config.layers {
            for &target in &targets {
                let (out, inp) = model.projection_shape(target);
                let read = |factor: &str, shape: (usize, usize)| -> Result<Tensor> {
                    let name = key(layer, target, factor);
                    let view = tensors.tensor(&name).map_err(|_| {
                        bad(
                            weights_path.clone(),
                            format!("no tensor {name}: the adapter was made for another base model"),
                        )
                    })?;
                    let wanted = [shape.0, shape.1];
                    if view.shape() != wanted {
                        return Err(bad(
                            weights_path.clone(),
                            format!(
                                "{name} is {:?}, this model needs {wanted:?}: the adapter was made for another base model",
                                view.shape()
                            ),
                        ));
                    }
                    to_tensor(&view).map_err(|detail| bad(weights_path.clone(), format!("{name}: {detail}")))
                };
                let a = read("lora_A", (peft.r, inp))?;
                let b = read("lora_B", (out, peft.r))?;
                let b = match target {
                    Target::Q => gguf_rows(&b, model.config.heads)?,
                    Target::K => gguf_rows(&b, model.config.kv_heads)?,
                    _ => b,
                };
                factors.insert((layer, target), (a, b));
            }
        }
        let alpha = match peft.use_rslora {
            // rsLoRA scales by alpha/√r; expressed here as the alpha giving that scale.
            true => peft.lora_alpha * (peft.r as f64).sqrt(),
            false => peft.lora_alpha,
        };
        Ok(Self {
            config: LoraConfig { rank: peft.r, alpha, targets },
            factors,
            base_name: metadata.get("base_model").cloned().unwrap_or_default(),
            base_sha256: model_sha256.to_owned(),
        })
    }
}

fn to_tensor(view: &TensorView<'_>) -> std::result::Result<Tensor, String> {
    let shape = view.shape().to_vec();
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => {
            data.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        other => return Err(format!("tensor type {other:?}; adapters are read in F32, F16 or BF16")),
    };
    Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| e.to_string())
}

/// The L2 norm of every f32 tensor of an adapter's weights file, in the order of their names
/// (summed in f64, in order, so every machine computes the same norm of the same bytes): a
/// fingerprint of the adapter that two honest training runs agree on within rounding.
pub fn tensor_norms(weights: &Path) -> Result<Vec<f32>> {
    let bad = |detail: String| ModelError::BadAdapter { path: weights.to_path_buf(), detail };
    let bytes = std::fs::read(weights).map_err(ModelError::io(weights))?;
    let tensors =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
    names.sort();
    names
        .iter()
        .map(|name| {
            let view = tensors.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", view.dtype())));
            }
            let sum: f64 = view
                .data()
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).powi(2))
                .sum();
            Ok(sum.sqrt() as f32)
        })
        .collect()
}
