//! Text generation: the chat template, greedy or sampled decoding, tokens streamed as they come.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::llama::Llama;

/// One turn of a conversation.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_owned(), content: content.to_owned() }
    }
}

/// Renders `messages` with the model's own chat template (the Jinja text in its GGUF
/// metadata), ending with the prompt for the assistant's turn.
pub fn apply_chat_template(model: &Llama, messages: &[Message]) -> Result<String> {
    let template = model.chat_template.as_deref().ok_or_else(|| {
        ModelError::Template(format!("{} has no tokenizer.chat_template", model.path.display()))
    })?;
    let token = |id: Option<u32>| id.and_then(|id| model.tokenizer.token(id)).unwrap_or_default();
    let mut env = minijinja::Environment::new();
    env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
    });
    env.add_template("chat", template).map_err(|e| ModelError::Template(e.to_string()))?;
    let rendered = env
        .get_template("chat")
        .and_then(|t| {
            t.render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => token(model.tokenizer.bos),
                eos_token => token(Some(model.tokenizer.eos)),
            })
        })
        .map_err(|e| ModelError::Template(e.to_string()))?;
    Ok(rendered)
}

/// How to choose each next token.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// 0 is greedy: always the most likely token.
    pub temperature: f64,
    /// Nucleus sampling: draw from the smallest set of tokens whose probability reaches this.
    pub top_p: f64,
    pub seed: u64,
    pub max_tokens: usize,
    /// Keep going past the end-of-sequence token (for benchmarks).
    pub ignore_eos: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0., top_p: 1., seed: 0, max_tokens: 256, ignore_eos: false }
    }
}

/// What a generation did and how fast.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub tokens: Vec<u32>,
    pub text: String,
    #[serde(skip)]
    pub prompt_time: Duration,
    #[serde(skip)]
    pub decode_time: Duration,
    /// Whether it stopped at the end-of-sequence token rather than at the limit.
    pub stopped: bool,
}

impl Generation {
    pub fn prompt_rate(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// New tokens per second after the first (the first comes out of the prompt pass).
    pub fn decode_rate(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// Generates after `prompt` (token ids, BOS included if wanted), calling `on_text` with each
/// piece of text as soon as it is whole UTF-8.
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    sampling: &Sampling,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    generate_while(model, prompt, sampling, |piece| {
        on_text(piece);
        true
    })
}

/// [`generate`], stopping as soon as `on_text` returns false (a stop sequence seen, or nobody
/// listening any more): the generation so far is returned, `stopped` set.
pub fn generate_while(
    model: &Llama,
    prompt: &[u32],
    sampling: &Sampling,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<Generation> {
    let context = model.config.context;
    if prompt.len() >= context {
        return Err(ModelError::PromptTooLong { tokens: prompt.len(), context });
    }
    let max_tokens = sampling.max_tokens.min(context - prompt.len());
    let mut rng = StdRng::seed_from_u64(sampling.seed);
    let mut cache = model.new_cache();
    let mut stream = model.tokenizer.tokenizer.decode_stream(false);
    let mut out = Generation { prompt_tokens: prompt.len(), ..Default::default() };

    let start = Instant::now();
    let mut logits = model.forward(prompt, &mut cache)?;
    out.prompt_time = start.elapsed();
    let start = Instant::now();
    while out.tokens.len() < max_tokens {
        let next = choose(&logits, sampling, &mut rng);
        out.tokens.push(next);
        if next == model.tokenizer.eos && !sampling.ignore_eos {
            out.stopped = true;
            break;
        }
        if let Some(piece) = stream.step(next).map_err(|e| ModelError::Tokenizer(e.to_string()))? {
            out.text.push_str(&piece);
            if !on_text(&piece) {
                out.stopped = true;
                break;
            }
        }
        if out.tokens.len() == max_tokens {
            break;
        }
        logits = model.forward(&[next], &mut cache)?;
    }
    out.decode_time = start.elapsed();
    Ok(out)
}

/// The index of the largest logit, the first one on a tie.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn choose(logits: &[f32], sampling: &Sampling, rng: &mut StdRng) -> u32 {
    if sampling.temperature <= 0. {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, (f64::from(l - max) / sampling.temperature).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0.;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= sampling.top_p {
            cut = i + 1;
            break;
        }
    }
    probs.truncate(cut);
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut draw = rng.random::<f64>() * mass;
    for (id, p) in &probs {
        draw -= p;
        if draw <= 0. {
            return *id;
        }
    }
    probs.last().map_or(0, |p| p.0)
}
