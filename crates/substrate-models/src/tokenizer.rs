//! The tokenizer a GGUF file carries, rebuilt as a Hugging Face `tokenizers` BPE tokenizer.
//!
//! GGUF stores the vocabulary, the merges and each token's type, plus `tokenizer.ggml.pre`, the
//! name of the pre-tokenizer llama.cpp applies before BPE. That name decides how text is split:
//! SmolLM's `smollm` (like `starcoder` and `refact`) splits every digit apart and then applies
//! the GPT-2 byte-level split. Leaving out the digit split is the known way to tokenize
//! differently from llama.cpp, so an unknown name is an error, not a guess.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{ModelError, Result};

/// llama.cpp's token types: a control token (`<|im_start|>`) and a user-defined one are matched
/// whole, before any splitting.
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The vocabulary and special ids of a GGUF model.
#[derive(Debug)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub bos: Option<u32>,
    pub eos: u32,
    pub add_bos: bool,
}

impl GgufTokenizer {
    pub fn from_gguf(path: &Path, content: &Content) -> Result<Self> {
        let unsupported = |detail: String| ModelError::Unsupported { path: path.to_path_buf(), detail };
        let md = |key: &str| content.metadata.get(key);
        let model = md("tokenizer.ggml.model").and_then(|v| v.to_string().ok());
        if model.map(String::as_str) != Some("gpt2") {
            return Err(unsupported(format!(
                "tokenizer model {model:?}: only byte-level BPE (`gpt2`) tokenizers are read from GGUF"
            )));
        }
        let pre = md("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str);
        let split_digits = match pre.unwrap_or("default") {
            "default" | "gpt2" | "gpt-2" => false,
            "smollm" | "starcoder" | "refact" | "codeshell" => true,
            other => {
                return Err(unsupported(format!("pre-tokenizer `{other}` is not implemented")));
            }
        };
        let strings = |key: &str| -> Result<Vec<String>> {
            let corrupt =
                |detail: String| ModelError::Corrupt { path: path.to_path_buf(), kind: "GGUF model", detail };
            let values = md(key)
                .ok_or_else(|| corrupt(format!("no {key} in its metadata")))?
                .to_vec()
                .map_err(|e| corrupt(format!("{key}: {e}")))?;
            values
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| corrupt(format!("{key}: {e}"))))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?
            .into_iter()
            .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
            .collect::<Vec<_>>();
        let types: Vec<i32> = match md("tokenizer.ggml.token_type").and_then(|v| v.to_vec().ok()) {
            Some(values) => values.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(id, t)| (t.clone(), id as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let mut tokenizer = Tokenizer::new(bpe);
        let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
        let pre_tokenizer: PreTokenizerWrapper = if split_digits {
            Sequence::new(vec![Digits::new(true).into(), byte_level]).into()
        } else {
            byte_level
        };
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| matches!(**ty, CONTROL | USER_DEFINED))
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        tokenizer.add_special_tokens(special).map_err(|e| ModelError::Tokenizer(e.to_string()))?;

        let id = |key: &str| md(key).and_then(|v| v.to_u32().ok());
        let eos = id("tokenizer.ggml.eos_token_id").ok_or_else(|| ModelError::Corrupt {
            path: path.to_path_buf(),
            kind: "GGUF model",
            detail: "no tokenizer.ggml.eos_token_id in its metadata".into(),
        })?;
        let add_bos = md("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok());
        Ok(Self { tokenizer, bos: id("tokenizer.ggml.bos_token_id"), eos, add_bos: add_bos.unwrap_or(false) })
    }

    /// The ids of `text`, special tokens matched whole, without BOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding =
            self.tokenizer.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The same ids as [`GgufTokenizer::encode`], without tracking where each token came from.
    pub fn encode_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding =
            self.tokenizer.encode_fast(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The ids of `text` with each token's byte range in `text` (a token that is part of a
    /// multi-byte character spans the whole character).
    pub fn encode_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Offsets)> {
        let encoding =
            self.tokenizer.encode(text, false).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// The ids a prompt is fed as: BOS first when the model asks for it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// A token's text, as the vocabulary spells it.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }
}

/// Each token's byte range in the text it was encoded from.
pub type Offsets = Vec<(usize, usize)>;

/// A metadata string of a GGUF file, if present.
pub(crate) fn metadata_string<'a>(content: &'a Content, key: &str) -> Option<&'a str> {
    match content.metadata.get(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}
